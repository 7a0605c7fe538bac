"""`python -m tools.bench serve`: what batching across requests buys a client that sends one image per request.

For each CLIP image tower (real size, random weights: throughput does not depend on the weights' values) two copies
of the service run side by side as subprocesses on loopback: the batched one (micro-batches of up to 16) and a
one-request-one-forward one (the same server with VLSTEPS_SERVE_MAX_BATCH=1, which is how Photofield AI serves its
one-image requests). Each concurrency level is run against both in turn, so a busy machine slows both alike.
Measured: throughput, p50/p99 latency, errors, the server's RSS before (no model loaded) and after, and the ratio
to the in-process batched embedder the service runs (its runtime, its threads) on the same files, timed in the
same round: what the HTTP layer costs.
"""
from __future__ import annotations

import asyncio
import os

from vlsteps.device import describe
from vlsteps.serve.loadtest import Server, load

from .workload import make_images, save_model, scratch, served_embedder, timed

LEVELS = (1, 4, 16)
REQUESTS = {"B/32": 64, "L/14": 24}    # per level and server: a few minutes in all on 2 CPU cores


def bench_serve(archs=("B/32", "L/14"), levels=LEVELS, requests: dict | None = None) -> list[dict]:
    requests = {**REQUESTS, **(requests or {})}
    rows = []
    print(f"vlsteps serve: {describe()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
          f"one-image multipart requests to /image-embeddings, concurrency {', '.join(map(str, levels))}", flush=True)
    for arch in archs:
        with scratch("vlsteps-bench-serve-") as tmp:
            save_model(arch, tmp / "clip")
            n = requests[arch]
            paths = make_images(n, tmp)
            images = [p.read_bytes() for p in paths]
            embedder, chosen = served_embedder(tmp / "clip", f"bench-{arch}")
            print(f"  {arch}: CLIP on {chosen['runtime']}, {chosen['clip_threads']} thread(s)", flush=True)
            embedder.images(paths[:16])                                           # warm-up
            servers = {}
            try:
                servers["batched"] = Server(tmp / "clip", 16, tmp / "batched.log")
                servers["one-at-a-time"] = Server(tmp / "clip", 1, tmp / "single.log")
                rss_before = {k: s.rss_mb() for k, s in servers.items()}
                for s in servers.values():                                        # load the model, warm up
                    asyncio.run(load(s.url, images[:8], 4))
                for i, level in enumerate(levels):
                    # the in-process rate is measured in the same round, and who goes first alternates, so a
                    # machine that gets busier or quieter during the run shifts all three alike
                    results = {}
                    for name in list(servers)[::1 if i % 2 == 0 else -1]:
                        results[name] = asyncio.run(load(servers[name].url, images, level))
                    in_process = n / timed(lambda: embedder.images(paths))
                    for name, result in results.items():
                        rows.append({"arch": arch, "server": name, "concurrency": level, **result,
                                     "rss_before_mb": rss_before[name], "rss_after_mb": servers[name].rss_mb(),
                                     "in_process_img_s": in_process, "of_in_process": result["img_s"] / in_process})
                        print(f"  {arch} {name:13s} c={level:2d}: {result['img_s']:6.2f} img/s, p50 "
                              f"{result['p50_ms']:7.0f} ms, p99 {result['p99_ms']:7.0f} ms, {result['errors']} "
                              f"errors (in-process {in_process:.2f} img/s)", flush=True)
            finally:
                for s in servers.values():
                    s.stop()
    _table(rows)
    return rows


def _table(rows: list[dict]) -> None:
    print("\n| CLIP | server | conc. | img/s | p50 ms | p99 ms | errors | RSS before → after MB | of in-process | "
          "batched ÷ one-at-a-time |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    single = {(r["arch"], r["concurrency"]): r["img_s"] for r in rows if r["server"] == "one-at-a-time"}
    for r in rows:
        ratio = f"{r['img_s'] / single[(r['arch'], r['concurrency'])]:.2f}×" if r["server"] == "batched" else ""
        print(f"| {r['arch']} | {r['server']} | {r['concurrency']} | {r['img_s']:.2f} | {r['p50_ms']:.0f} | "
              f"{r['p99_ms']:.0f} | {r['errors']} | {r['rss_before_mb']:.0f} → {r['rss_after_mb']:.0f} | "
              f"{100 * r['of_in_process']:.0f} % | {ratio} |")
    print("of in-process: the server's rate over the in-process batched embedder's (batch 16, same files), "
          "measured in the same round")
