"""Device and dtype choice, and giving memory back between models."""
from __future__ import annotations

import gc

import torch

from . import registry


def pick_device() -> str:
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def pick_dtype(key: str | None = None, device: str | None = None) -> torch.dtype:
    """The dtype model `key` runs in on `device`: float32 on a CPU; on a GPU the registry's dtype (the one its
    notebook was written for), with bfloat16 falling back to float16 where the GPU has no native bfloat16 (a T4,
    Apple). Without a key: the GPU's best half precision (for models outside the registry)."""
    device = device or pick_device()
    if device == "cpu":
        return torch.float32
    wanted = registry.get(key).dtype if key else "bfloat16"
    if wanted == "float32":
        return torch.float32
    # Without including_emulation=False a T4 answers True and runs bf16 slowly in emulation.
    native_bf16 = device == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False)
    if wanted == "bfloat16" and native_bf16:
        return torch.bfloat16
    return torch.float16          # float16, bfloat16 without native support, and 4-bit's compute dtype


def describe(device: str | None = None) -> str:
    device = device or pick_device()
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        return f"cuda: {props.name}, {props.total_memory / 2**30:.1f} GiB"
    return f"{device}: {torch.get_num_threads()} threads"


def param_count(model) -> int:
    return sum(p.numel() for p in model.parameters())


def model_size_gb(model) -> float:
    """Bytes held by parameters and buffers, at their current dtypes."""
    tensors = list(model.parameters()) + list(model.buffers())
    return sum(t.numel() * t.element_size() for t in tensors) / 1e9


def free_memory() -> None:
    """Call after `del model`: collects garbage and returns cached GPU memory to the driver."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
