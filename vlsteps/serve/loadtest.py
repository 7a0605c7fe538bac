"""The service as a client meets it: `Server` runs `python -m vlsteps.serve` (or, given `command`, another service
with the same routes) in a subprocess on a free loopback port and waits for it to answer; `load` sends image or text
requests at a given concurrency and times them. The serve notebook uses both, and so does the benchmark behind the
README's serving figures (`python -m tools.bench serve`).
"""
from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

START_TIMEOUT_S = 120


def free_port() -> int:
    """A loopback port that nothing listens on now, for a server started next."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`python -m vlsteps.serve` in a subprocess on a free loopback port; `clip_dir` replaces model_dir("clip").
    `command(port)`, when given, starts another service instead (in `cwd`; ready when `health` answers 200)."""

    def __init__(self, clip_dir: Path | None = None, max_batch: int = 16, log: Path | None = None,
                 command=None, cwd: Path | None = None, health: str = "/health", **env):
        self.port, self.max_batch = free_port(), max_batch
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "VLSTEPS_SERVE_MAX_BATCH": str(max_batch), **env}
        if clip_dir:
            env["VLSTEPS_SERVE_CLIP_DIR"] = str(clip_dir)
        self.log = Path(log or tempfile.mkstemp(prefix="vlsteps-serve-", suffix=".log")[1])
        self._log = open(self.log, "w")
        argv = command(self.port) if command else [sys.executable, "-m", "vlsteps.serve", "--port", str(self.port),
                                                   "--log-level", "warning"]
        self.proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + health, timeout=2).status_code == 200:
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

    def cpu_s(self) -> float:
        """CPU seconds the server has used so far (user and system, all its threads)."""
        import psutil
        times = psutil.Process(self.proc.pid).cpu_times()
        return times.user + times.system

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()


async def load(url: str, images: list[bytes], concurrency: int, per_request: int = 1,
               texts: list[str] | None = None) -> dict:
    """The images, `per_request` to a multipart request (or, given `texts`, the texts, `per_request` to a
    /text-embeddings request), `concurrency` requests at a time; items/s, latencies, errors."""
    latencies, errors = [], 0
    items = texts if texts is not None else images
    queue = [items[i:i + per_request] for i in range(0, len(items), per_request)][::-1]

    async def send(client, chunk):
        if texts is not None:
            return await client.post("/text-embeddings", json={"texts": chunk})
        return await client.post("/image-embeddings", files=[(f"image{i}", (f"{i}.jpg", data, "image/jpeg"))
                                                             for i, data in enumerate(chunk)])

    async def worker(client):
        nonlocal errors
        while queue:
            chunk = queue.pop()
            start = time.perf_counter()
            try:
                ok = (await send(client, chunk)).status_code == 200
            except httpx.HTTPError:
                ok = False
            latencies.append(time.perf_counter() - start)
            errors += not ok

    async with httpx.AsyncClient(base_url=url, timeout=300, limits=httpx.Limits(max_connections=concurrency)) as c:
        start = time.perf_counter()
        await asyncio.gather(*(worker(c) for _ in range(concurrency)))
        wall = time.perf_counter() - start
    latencies.sort()
    return {"img_s": len(items) / wall, "p50_ms": 1e3 * statistics.median(latencies),
            "p99_ms": 1e3 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], "errors": errors}
