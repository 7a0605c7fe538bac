"""`python -m tools.bench runtime`: the service's two CLIP runtimes side by side (`--runtime torch|onnx`), on a
real-size image tower with random weights: images/s of the model call alone (preprocessed pixels in, unit vectors
out) at batch 1 and 8, on one and two threads. With `--busy`, another process keeps one core busy all the while, as
on a shared machine: what the service's thread choice (`vlsteps.serve.threads`) must hold up under.

Rounds are interleaved and who goes first alternates, so a machine that gets busier or quieter slows both alike; the
table holds the median over rounds, with the load average, which says how clean the numbers are.
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys

import numpy as np
import torch

from vlsteps.embed import ClipEmbedder
from vlsteps.onnx_clip import OnnxClipEmbedder

from .workload import make_images, save_model, scratch, timed

BATCHES = (1, 8)
THREADS = (1, 2)


def bench_runtime(arch: str = "B/32", images: int = 16, rounds: int = 3, busy: bool = False) -> list[dict]:
    print(f"CLIP {arch} image tower, torch vs ONNX Runtime (CPU): {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}; {images} images per batch size, thread count and round"
          + ("; another process keeps one core busy" if busy else ""), flush=True)
    rows, before = [], torch.get_num_threads()
    with scratch("vlsteps-bench-runtime-") as tmp:
        save_model(arch, tmp / "clip")
        runtimes = {"torch": ClipEmbedder.from_pretrained(tmp / "clip", model_key=f"bench-{arch}",
                                                          device="cpu", dtype=torch.float32)}
        onnx = {n: OnnxClipEmbedder.from_pretrained(tmp / "clip", model_key=f"bench-{arch}", threads=n)
                for n in THREADS}
        pixels = runtimes["torch"].pixel_values(make_images(images, tmp))
        burner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
        try:
            for r in range(rounds):
                for threads in THREADS:
                    torch.set_num_threads(threads)
                    runtimes["onnx"] = onnx[threads]
                    for batch in BATCHES:
                        chunks = torch.split(pixels, batch)
                        for name in list(runtimes)[::1 if (r + threads + batch) % 2 else -1]:
                            embed = runtimes[name].image_features
                            if r == 0:
                                embed(chunks[0])                                     # warm-up
                            seconds = timed(lambda: [embed(c) for c in chunks])
                            rows.append({"round": r, "runtime": name, "threads": threads, "batch": batch,
                                         "img_s": images / seconds, "load": os.getloadavg()[0]})
                            print(f"  round {r} {name:5s} {threads} thread(s) batch {batch}: "
                                  f"{images / seconds:6.2f} img/s", flush=True)
            same = np.sum(runtimes["torch"].image_features(pixels[:4]).numpy() *
                          onnx[THREADS[0]].image_features(pixels[:4]).numpy(), axis=1).min()
        finally:
            torch.set_num_threads(before)
            if burner:
                burner.kill()
    _table(rows, arch, same)
    return rows


def _table(rows: list[dict], arch: str, same: float) -> None:
    def median(runtime, threads, batch):
        return statistics.median(r["img_s"] for r in rows if (r["runtime"], r["threads"], r["batch"]) ==
                                 (runtime, threads, batch))

    print("\n| CLIP | threads | batch | torch img/s | onnx img/s | onnx ÷ torch |")
    print("|---|---:|---:|---:|---:|---:|")
    for threads in THREADS:
        for batch in BATCHES:
            t, o = median("torch", threads, batch), median("onnx", threads, batch)
            print(f"| {arch} | {threads} | {batch} | {t:.2f} | {o:.2f} | {o / t:.2f}× |")
    print(f"median over rounds; load average {statistics.median(r['load'] for r in rows):.1f} "
          f"(min {min(r['load'] for r in rows):.1f}, max {max(r['load'] for r in rows):.1f}) on "
          f"{os.cpu_count()} CPUs; lowest cosine of the two runtimes' vectors: {same:.6f}")
