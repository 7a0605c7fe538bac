"""Full-size dry runs: each registry model built at full size with untrained weights from its real architecture (no
download, nothing written to disk), running its notebook's own workload once, so the memory and time a learner
meets are measured, not guessed. Untrained weights cost the same memory and arithmetic as trained ones; generation
is held to the notebook's token count (min_new_tokens = max_new_tokens), since untrained weights stop anywhere. The
weights are a constant, not drawn at random: the same memory and arithmetic, without seconds of random-number
generation per billion parameters on a busy CPU.

Each (model, dtype) runs in its own subprocess, so peak RSS is that model's alone; a model whose computed need
exceeds the memory available now (less a margin for other processes) is recorded as not fitting, never skipped;
one whose step does not finish in time is recorded with the memory and time it reached. Smallest models first,
every model in float32 before any in bfloat16. Results merge into vlsteps/architectures/measured.json under this
machine's name.

    python -m tools.dryrun [KEY...] [--timeout STEP_SECONDS] [--dtype float32]     (or: make sizes)
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time

from vlsteps import architectures, registry, sizes
from vlsteps.files import atomic_write

RESULTS = architectures.MEASURED
MARGIN_GB = 3.0           # left to other processes on this machine
OVERHEAD_GB = 1.5         # framework, activations and generation state on top of the weights (estimate for the check)
CPU_DTYPES = ("float32", "bfloat16")
STEP_TIMEOUT_S = 600      # for the workload step; building the model comes on top

def _rss_gb(field: str = "VmRSS") -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024 / sizes.GB
    raise RuntimeError(f"{field} not in /proc/self/status")


def _mem_available_gb() -> float:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024 / sizes.GB
    raise RuntimeError("MemAvailable not in /proc/meminfo")


def machine() -> dict:
    import torch
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    with open("/proc/meminfo") as f:
        ram = int(next(line for line in f if line.startswith("MemTotal:")).split()[1]) * 1024 / 2**30
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return {"cpu": cpu, "cores": os.cpu_count(), "ram_gib": round(ram, 1), "gpu": gpu}


def machine_name(m: dict) -> str:
    return f"{m['cpu']}, {m['cores']} cores, {m['ram_gib']:g} GiB RAM, GPU: {m['gpu']}"


def _build_constant(key: str, device: str, dtype) -> dict:
    """Every weight-holding part of `key` at full size, weights set to a constant (each page written: resident)."""
    import torch
    from transformers.initialization import no_init_weights
    with no_init_weights():
        models = {c: sizes.build(key, c, device=device, dtype=dtype) for c in sizes.module_components(key)}
    with torch.no_grad():
        for model in models.values():
            for p in model.parameters():
                p.fill_(0.01)
    return models


def child(key: str, dtype_name: str, device: str, step_timeout: float) -> dict:
    """Build `key` at full size on `device` and run its workload once; memory and times as a dict. A step that
    runs past `step_timeout` is reported with what it reached, and the process ends."""
    import threading
    import torch
    dtype = getattr(torch, dtype_name)
    cuda = device == "cuda"
    card = registry.get(key)
    result = {"status": "building", "workload": card.workload.text, "rss_baseline_gb": round(_rss_gb(), 2),
              "threads": torch.get_num_threads()}

    def finish(status: str) -> dict:
        result.update(status=status, peak_rss_gb=round(_rss_gb("VmHWM"), 2),
                      load_avg_1m=round(os.getloadavg()[0], 1))   # other processes' share of the CPU meanwhile
        if cuda:
            result["cuda_max_allocated_gb"] = round(torch.cuda.max_memory_allocated() / sizes.GB, 2)
        return result

    t0 = time.perf_counter()
    models = _build_constant(key, device, dtype)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    result.update(build_s=round(time.perf_counter() - t0, 1), rss_after_build_gb=round(_rss_gb(), 2))

    def too_slow():
        running = time.perf_counter() - t0
        print(json.dumps(finish(f"not measured: the step did not finish in {running:.0f} s (peak RAM so far)")),
              flush=True)
        os._exit(0)

    watchdog = threading.Timer(step_timeout, too_slow)
    watchdog.daemon = True
    watchdog.start()
    t0 = time.perf_counter()
    with torch.inference_mode():   # the notebook's unit of work once, on random inputs of the real shapes
        new_tokens = card.workload.run(card, models, device, dtype, torch.Generator().manual_seed(0))
    if cuda:
        torch.cuda.synchronize()
    step_s = time.perf_counter() - t0
    watchdog.cancel()
    result.update(step_s=round(step_s, 2), new_tokens=new_tokens)
    if new_tokens:
        result["s_per_new_token"] = round(step_s / new_tokens, 3)
    return finish("measured")


# ---- the parent: fit checks, subprocesses, the results file ----

def _run_child(key: str, dtype: str, device: str, step_timeout: float) -> dict:
    cmd = ["nice", "-n", "10", sys.executable, "-m", "tools.dryrun", "--child", key, dtype, device,
           str(step_timeout)]
    t0 = time.perf_counter()
    timeout = 3 * step_timeout   # the build and the imports come on top of the step's own deadline
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    except subprocess.TimeoutExpired:
        return {"status": f"not measured: building and running took over {timeout:.0f} s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode == 0 and lines:
        return json.loads(lines[-1])
    reason = "killed (out of memory?)" if proc.returncode in (-9, 137) else f"exit {proc.returncode}"
    tail = (proc.stderr.strip().splitlines() or [""])[-1][:300]
    return {"status": f"failed: {reason}: {tail}", "wall_s": round(time.perf_counter() - t0, 1)}


def measure(key: str, dtype: str, device: str, step_timeout: float) -> dict:
    weights = sizes.weight_bytes(key, dtype) / sizes.GB
    need = weights + OVERHEAD_GB
    if device == "cpu":
        available = _mem_available_gb() - MARGIN_GB
        if need > available:
            return {"status": "does not fit", "needs_gb": round(need, 1), "available_gb": round(available, 1),
                    "weights_gb": round(weights, 2)}
    result = _run_child(key, dtype, device, step_timeout)
    result["weights_gb"] = round(weights, 2)
    return result


def load_results() -> dict:
    if RESULTS.exists():
        return json.loads(RESULTS.read_text(encoding="utf-8"))
    return {"_comment": "Written by `python -m tools.dryrun` (`make sizes`): full-size dry runs with untrained "
                        "weights, one machine per entry. Do not edit by hand.", "machines": {}}


def save(results: dict) -> None:
    atomic_write(RESULTS, json.dumps(results, indent=1, sort_keys=False) + "\n")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.dryrun", description=__doc__.split("\n\n")[0])
    parser.add_argument("keys", nargs="*", help="registry keys (default: all)")
    parser.add_argument("--timeout", type=float, default=STEP_TIMEOUT_S,
                        help=f"seconds one workload step may take (default {STEP_TIMEOUT_S})")
    parser.add_argument("--dtype", action="append", choices=CPU_DTYPES, help="CPU dtypes to run (default: both)")
    args = parser.parse_args(argv)
    keys = args.keys or list(registry.CARDS)
    for key in keys:
        registry.get(key)
    keys.sort(key=lambda k: sizes.weight_bytes(k, "float32"))
    import torch
    info = machine()
    runs = [(dtype, "cpu") for dtype in args.dtype or CPU_DTYPES]
    if torch.cuda.is_available():
        runs.append((None, "cuda"))   # at each model's notebook dtype
    for dtype, device in runs:
        for key in keys:
            _measure_and_save(key, dtype or cuda_dtype(key), device, args.timeout, info)


def cuda_dtype(key: str) -> str:
    """The notebook's GPU dtype; a 4-bit notebook is measured at float16 (bitsandbytes is not a dependency)."""
    dtype = registry.get(key).dtype
    return dtype if dtype in ("float32", "float16", "bfloat16") else "float16"


def _measure_and_save(key: str, dtype: str, device: str, step_timeout: float, info: dict) -> None:
    import torch
    name = machine_name(info)
    print(f"{key} {dtype} on {device} ...", flush=True)
    result = measure(key, dtype, device, step_timeout)
    print(f"  {result}", flush=True)
    results = load_results()   # re-read: another run may have merged meanwhile
    entry = results["machines"].setdefault(name, {**info, "results": {}})
    entry.update(date=datetime.date.today().isoformat(), torch=torch.__version__,
                 transformers=__import__("transformers").__version__, diffusers=__import__("diffusers").__version__)
    label = dtype if device == "cpu" else f"cuda:{dtype}"
    entry["results"].setdefault(key, {})[label] = result
    save(results)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        key, dtype_name, device, step_timeout = sys.argv[2:6]
        print(json.dumps(child(key, dtype_name, device, float(step_timeout))), flush=True)
    else:
        main(sys.argv[1:])
