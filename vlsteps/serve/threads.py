"""What the service computes on, chosen for the machine when the app is made, said in /api/v1/status: CLIP's
runtime and the threads of each runtime.

CLIP runs on ONNX Runtime on a machine without CUDA (where onnxruntime is installed), on torch on a GPU. Measured on
this project's 2-core CPU (2026-12-06, real-size random-weight B/32, `python -m tools.bench runtime [--busy]`)
ONNX Runtime embedded 1.22-1.40x torch's images/s on a free machine and 1.27-2.84x with one core busy (README,
Serving). It gets every core, its threads blocking rather than spinning while they wait: with a core free two
threads embedded 1.64x (one image) and 1.86x (batches of 8) the images/s of one, and with that core busy as many as
one (spinning threads, timed alone: 0.76x at one image).

torch's threads, which the captioners (and CLIP on torch) use, stall each other wherever anything else needs a core
too (the decoding of the next images, other processes): on a shared 2-core machine one thread embedded 3.4-3.9
images/s at batch 1 against 0.66-1.10 with two (issue 20). So torch gets one thread up to two cores and all but one
core above that, the core left to the event loop and to decoding. `VLSTEPS_SERVE_THREADS` sets both runtimes'
threads, `VLSTEPS_SERVE_RUNTIME` the runtime. Decoding and preprocessing run in `prepare_threads` threads of their
own (Pillow and torchvision release the GIL).
"""
from __future__ import annotations

import importlib.util
import os

import torch


def cores() -> int:
    """The cores this process may run on (its affinity, which a container's CPU set narrows), else all."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def runtime(requested: str = "auto") -> tuple[str, str]:
    """(CLIP's runtime, why): `requested`, or for "auto" onnx on a machine without CUDA that has onnxruntime."""
    if requested != "auto":
        return requested, "VLSTEPS_SERVE_RUNTIME or --runtime"
    if torch.cuda.is_available():
        return "torch", "auto: CUDA is there (the ONNX path runs on the CPU only)"
    if not all(importlib.util.find_spec(name) for name in ("onnxruntime", "onnx")):
        return "torch", "auto: no GPU, but onnxruntime or onnx is not installed (pip install 'vlsteps[serve]')"
    return "onnx", "auto: no GPU; ONNX Runtime is the faster CPU path"


def choose(requested: int = 0, requested_runtime: str = "auto") -> dict:
    """Sets torch's intra-op threads (`requested`, or for the machine when 0), picks CLIP's runtime and its threads,
    and says what was chosen and why."""
    n = cores()
    clip_runtime, runtime_why = runtime(requested_runtime)
    torch_threads = requested or (1 if n <= 2 else n - 1)
    torch.set_num_threads(torch_threads)
    clip_threads = requested or (n if clip_runtime == "onnx" else torch_threads)
    why = ("VLSTEPS_SERVE_THREADS" if requested else
           "auto: torch one thread on up to 2 cores, else all cores but one (left to decoding); ONNX Runtime every "
           "core, waiting threads blocking")
    return {"cores": n, "runtime": clip_runtime, "runtime_chosen_by": runtime_why,
            "torch_threads": torch.get_num_threads(), "clip_threads": clip_threads,
            "prepare_threads": min(4, max(2, n - torch_threads)), "chosen_by": why}
