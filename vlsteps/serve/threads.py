"""How many threads the service computes on, chosen for the machine when the app is made, said in /api/v1/status.

torch's default, one intra-op thread per core, lets its threads stall each other wherever anything else needs a
core too (the decoding of the next images, other processes): on a shared 2-core machine one thread embedded 3.4-3.9
images/s at batch 1 against 0.66-1.10 with two (issue 20). So torch gets one thread up to two cores and all but one
core above that, the core left to the event loop and to decoding; `VLSTEPS_SERVE_THREADS` overrides. Decoding and
preprocessing run in `prepare_threads` threads of their own (Pillow and torchvision release the GIL).
"""
from __future__ import annotations

import os

import torch


def cores() -> int:
    """The cores this process may run on (its affinity, which a container's CPU set narrows), else all."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def choose(requested: int = 0) -> dict:
    """Sets torch's intra-op threads (`requested`, or for the machine when 0) and says what was chosen and why."""
    n = cores()
    threads = requested or (1 if n <= 2 else n - 1)
    torch.set_num_threads(threads)
    why = ("VLSTEPS_SERVE_THREADS" if requested else
           "auto: one thread on up to 2 cores, else all cores but one (left to decoding)")
    return {"cores": n, "torch_threads": torch.get_num_threads(), "prepare_threads": min(4, max(2, n - threads)),
            "chosen_by": why}
