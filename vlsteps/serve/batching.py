"""Requests that arrive together run together: a micro-batcher per model.

A client that sends one image per request (Photofield does) would otherwise cost one forward pass per image, and
a forward pass of 1 leaves most of a GPU, or the vector units of a CPU, idle. Each request's item goes into a queue;
one worker per model takes the first item, then whatever else arrives within `max_wait_s` of it (at most
`max_batch` items), runs them as one call in the model's own thread, and hands each request its own result. While
a batch runs, the next one queues up, so under load batches fill without waiting at all.

An item may first need work of its own (decoding and preprocessing an image): `prepare(item)` runs in a thread
pool of its own, so it neither holds up the model's thread nor runs one image at a time. An item being prepared is
on its way: a batch waits for it (up to `PREPARE_WAIT_S` past its first item), or else every image that takes longer
to decode than `max_wait_s` misses the batch it came with (16 in flight ran as batches of 8, issue 20).

What a request gets does not depend on what shared its batch, up to floating-point order: a batch of another size
sums in another order (BLAS blocking), so numbers (embedding components, confidences) may differ by up to
`SCORE_TOLERANCE`, and text (captions, label names and their order) is the same except where two candidates score
within that tolerance of each other. Making every item bit-identical would mean running it alone, i.e. no batching.
"""
from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence


SCORE_TOLERANCE = 1e-3   # the most a number in an answer may move with its batch (README, "Serving")
PREPARE_WAIT_S = 1.0     # the longest a batch waits for items still being prepared


class Busy(RuntimeError):
    """The queue is full: the client should retry later (HTTP 429; PhotoPrism retries on it)."""


class MicroBatcher:
    """`run(items) -> results` (same length, same order) is called with 1..max_batch items, one call at a time, in
    `thread` (batchers of one model share it, so a model never runs two batches at once). `prepare(item)`, when
    given, turns each submitted item into what `run` takes, in `prepare_pool` (its errors go to that item's caller).
    """

    def __init__(self, run: Callable[[list], Sequence], max_batch: int = 16, max_wait_s: float = 0.01,
                 name: str = "model", thread: ThreadPoolExecutor | None = None, max_queue: int = 1024,
                 prepare: Callable | None = None, prepare_pool: ThreadPoolExecutor | None = None):
        if max_batch < 1 or max_wait_s < 0:
            raise ValueError(f"max_batch must be >= 1 and max_wait_s >= 0, got {max_batch}, {max_wait_s}")
        self.run, self.max_batch, self.max_wait_s, self.name = run, int(max_batch), float(max_wait_s), name
        self.max_queue = int(max_queue)
        self.batch_sizes: Counter = Counter()    # how many batches of each size have run (for /api/v1/status)
        self._thread = thread or ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"vlsteps-serve-{name}")
        self._pending: deque = deque()   # (arrival time, item, future), oldest first
        self.prepare, self._prepare_pool, self._preparing = prepare, prepare_pool, 0
        self._arrived: asyncio.Event | None = None
        self._loop = self._worker = None

    async def submit(self, item):
        """The result for one item, computed in a batch with whatever other items are waiting."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:      # a new event loop (a restarted server, a test client): a new worker
            self._loop, self._arrived, self._pending = loop, asyncio.Event(), deque()
            self._worker = loop.create_task(self._work())
        if len(self._pending) + self._preparing >= self.max_queue:
            raise Busy(f"{self.name}: {len(self._pending) + self._preparing} requests are already waiting; retry "
                       "in a moment")
        if self.prepare is not None:
            self._preparing += 1
            try:
                item = await loop.run_in_executor(self._prepare_pool, self.prepare, item)
            finally:
                self._preparing -= 1
                self._arrived.set()        # one fewer on its way: a batch waiting for it may go
        future = loop.create_future()
        self._pending.append((time.monotonic(), item, future))
        self._arrived.set()
        return await future

    async def _next_batch(self) -> list:
        while not self._pending:
            self._arrived.clear()
            await self._arrived.wait()
        first = self._pending[0][0]
        while len(self._pending) < self.max_batch and (left := self._wait_left(first)) > 0:
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), left)
            except asyncio.TimeoutError:
                break
        size = min(self.max_batch, len(self._pending))
        batch = [self._pending.popleft() for _ in range(size)]
        return [entry for entry in batch if not entry[2].done()]   # drop clients that gave up

    def _wait_left(self, first: float) -> float:
        """How much longer the batch whose first item arrived at `first` waits for more."""
        until = first + (max(self.max_wait_s, PREPARE_WAIT_S) if self._preparing else self.max_wait_s)
        return until - time.monotonic()

    async def _work(self):
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._next_batch()
            if not batch:
                continue
            self.batch_sizes[len(batch)] += 1
            try:
                results = await loop.run_in_executor(self._thread, self.run, [item for _, item, _ in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"{self.name}: {len(results)} results for {len(batch)} items")
            except Exception as e:    # the model failed: every request of this batch hears why
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(e)
                continue
            for (_, _, future), result in zip(batch, results):
                if not future.done():
                    future.set_result(result)

    def stats(self) -> dict:
        batches = sum(self.batch_sizes.values())
        items = sum(size * n for size, n in self.batch_sizes.items())
        return {"max_batch": self.max_batch, "max_wait_ms": self.max_wait_s * 1e3, "batches": batches,
                "items": items, "mean_batch": round(items / batches, 2) if batches else None}
