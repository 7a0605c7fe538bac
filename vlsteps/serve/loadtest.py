"""`python -m vlsteps.tools.bench serve`: what batching across requests buys a client that sends one image per request.

For each CLIP image tower (real size, random weights: throughput does not depend on the weights' values) two copies
of the service run side by side as subprocesses on loopback: the batched one (micro-batches of up to 16) and a
one-request-one-forward one (the same server with VLSTEPS_SERVE_MAX_BATCH=1, which is how Photofield AI serves its
one-image requests). Each concurrency level is run against both in turn, so a busy machine slows both alike.
Measured: throughput, p50/p99 latency, errors, the server's RSS before (no model loaded) and after, and the ratio
to the in-process batched `ClipEmbedder` on the same files, timed in the same round: what the HTTP layer costs.
"""
from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

LEVELS = (1, 4, 16)
REQUESTS = {"B/32": 64, "L/14": 24}    # per level and server: a few minutes in all on 2 CPU cores
START_TIMEOUT_S = 120


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`python -m vlsteps.serve` in a subprocess on a free loopback port; `clip_dir` replaces model_dir("clip")."""

    def __init__(self, clip_dir: Path | None = None, max_batch: int = 16, log: Path | None = None, **env):
        self.port, self.max_batch = _free_port(), max_batch
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "VLSTEPS_SERVE_MAX_BATCH": str(max_batch), **env}
        if clip_dir:
            env["VLSTEPS_SERVE_CLIP_DIR"] = str(clip_dir)
        self.log = Path(log or tempfile.mkstemp(prefix="vlsteps-serve-", suffix=".log")[1])
        self._log = open(self.log, "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "vlsteps.serve", "--port", str(self.port),
                                      "--log-level", "warning"], env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server did not answer within {START_TIMEOUT_S} s; see {self.log}")
            time.sleep(0.2)

    def rss_mb(self) -> float:
        import psutil
        return psutil.Process(self.proc.pid).memory_info().rss / 2**20

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()


async def load(url: str, images: list[bytes], concurrency: int) -> dict:
    """Every image as its own multipart request, `concurrency` at a time; wall time, latencies, errors."""
    latencies, errors = [], 0
    queue = list(enumerate(images))

    async def worker(client):
        nonlocal errors
        while queue:
            i, data = queue.pop()
            start = time.perf_counter()
            try:
                r = await client.post("/image-embeddings", files=[(f"image{i}", (f"{i}.jpg", data, "image/jpeg"))])
                ok = r.status_code == 200
            except httpx.HTTPError:
                ok = False
            latencies.append(time.perf_counter() - start)
            errors += not ok

    async with httpx.AsyncClient(base_url=url, timeout=300, limits=httpx.Limits(max_connections=concurrency)) as c:
        start = time.perf_counter()
        await asyncio.gather(*(worker(c) for _ in range(concurrency)))
        wall = time.perf_counter() - start
    latencies.sort()
    return {"img_s": len(images) / wall, "p50_ms": 1e3 * statistics.median(latencies),
            "p99_ms": 1e3 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], "errors": errors}


def bench_serve(archs=("B/32", "L/14"), levels=LEVELS, requests: dict | None = None) -> list[dict]:
    from ..tools.bench import build_model, make_images
    from ..device import describe
    from ..embed import ClipEmbedder
    requests = {**REQUESTS, **(requests or {})}
    rows = []
    print(f"vlsteps serve: {describe()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
          f"one-image multipart requests to /image-embeddings, concurrency {', '.join(map(str, levels))}", flush=True)
    for arch in archs:
        with tempfile.TemporaryDirectory(prefix="vlsteps-bench-serve-") as tmp:
            tmp = Path(tmp)
            model, processor = build_model(arch)
            model.save_pretrained(tmp / "clip")
            processor.save_pretrained(tmp / "clip")
            del model
            n = requests[arch]
            paths = make_images(n, tmp)
            images = [p.read_bytes() for p in paths]
            embedder = ClipEmbedder.from_pretrained(tmp / "clip", model_key=f"bench-{arch}", batch_size=16)
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
                    in_process = n / _seconds(lambda: embedder.images(paths))
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


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


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
    print("of in-process: the server's rate over the in-process batched ClipEmbedder's (batch 16, same files), "
          "measured in the same round")
