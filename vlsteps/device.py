"""Device and dtype choice, and giving memory back between models."""
from __future__ import annotations

import gc

import torch


def pick_device() -> str:
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def pick_dtype(device: str | None = None) -> torch.dtype:
    """bf16 where the GPU has it (A100, H100), fp16 where not (T4, Apple), fp32 on CPU."""
    device = device or pick_device()
    if device == "cuda":
        # Without including_emulation=False a T4 answers True and runs bf16 slowly in emulation.
        return torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float16
    if device == "mps":
        return torch.float16
    return torch.float32


def describe(device: str | None = None) -> str:
    device = device or pick_device()
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        return f"cuda: {props.name}, {props.total_memory / 2**30:.1f} GiB, dtype {pick_dtype(device)}"
    return f"{device}: {torch.get_num_threads()} threads, dtype {pick_dtype(device)}"


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
