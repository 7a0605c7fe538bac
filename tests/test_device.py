import torch

from vlsteps import model_size_gb, param_count, pick_device, pick_dtype


def test_cpu_runs_in_fp32():
    assert pick_dtype("qwen-vl", "cpu") == pick_dtype(device="cpu") == torch.float32


def test_gpu_without_bf16_gets_fp16(monkeypatch):
    """A T4 has no bf16: the notebooks must choose fp16 there."""
    def t4(including_emulation=True):
        return including_emulation     # a T4 only emulates bf16

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", t4)
    assert pick_dtype("qwen-vl", "cuda") == pick_dtype(device="cuda") == torch.float16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert pick_dtype("qwen-vl", "cuda") == pick_dtype(device="cuda") == torch.bfloat16


def test_gpu_dtype_is_the_registrys(monkeypatch):
    """The notebook's dtype comes from the registry: ViLT stays float32 on a GPU, BLIP-2 runs in float16."""
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert pick_dtype("vilt", "cuda") == torch.float32
    assert pick_dtype("blip2", "cuda") == torch.float16
    assert pick_dtype("instructblip-vicuna", "cuda") == torch.float16, "4-bit computes in float16"


def test_device_is_one_that_torch_can_use():
    device = pick_device()
    assert device in ("cuda", "mps", "cpu")
    torch.zeros(1, device=device)


def test_model_size_counts_parameters_at_their_dtype():
    layer = torch.nn.Linear(1000, 1000)
    assert param_count(layer) == 1_001_000
    assert abs(model_size_gb(layer) - 4.004e-3) < 1e-6
    assert abs(model_size_gb(layer.half()) - 2.002e-3) < 1e-6
