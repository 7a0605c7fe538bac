"""`build`'s reading and embedding on Ray Data (`python -m vlsteps.index build --ray`): Ray does the distribution,
the retries and the back-pressure; the driver plans and writes exactly as the plain path does (`build.build`).

    pending keys -> map_batches(read: bytes, hash, pixels; tasks) -> map_batches(embed; an actor pool) -> driver

The read step runs `build.read` on the workers (a URL is fetched there), so on a cluster every node must read the
files at the same paths (shared storage) or use URLs. Each actor loads the model itself (`build.load_embedder`,
with the driver's VLSTEPS_* and HF_* settings in its environment) and holds one GPU where the cluster has GPUs.
Rows keep fixed shapes, so Ray moves them as tensors: a row with nothing to embed carries zeros and a flag.
"""
from __future__ import annotations

import functools
import logging
import math
import os
from typing import Iterator, Sequence

import numpy as np
import torch
from PIL import Image

from .build import Item, Pending, load_embedder, read

RAY_MISSING = "--ray needs Ray Data: pip install 'ray[data]>=2.40' (or pip install 'vlsteps[index]')"


def import_ray():
    """Ray, or ImportError with the one message that says how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401  (ray without its [data] extra has no pandas/pyarrow)
    except ImportError:
        raise ImportError(RAY_MISSING) from None
    return ray


def _read(batch: dict, known: set[str], pixels, shape: tuple) -> dict:
    """The read step: `build.read` on each row, as columns Ray can move (a failure's reason in `error`)."""
    rows = [read(Pending(str(k), int(s), str(m)), known, pixels)
            for k, s, m in zip(batch["key"], batch["size"], batch["mtime_ns"])]
    items = [got if isinstance(got, Item) else Item(got[0], 0, "", "") for got in rows]
    return {"key": np.array([i.key for i in items], dtype=object),
            "size": np.array([i.size for i in items], dtype=np.int64),
            "mtime_ns": np.array([i.mtime_ns for i in items], dtype=object),
            "id": np.array([i.id for i in items], dtype=object),
            "error": np.array(["" if isinstance(got, Item) else got[1] for got in rows], dtype=object),
            "has_pixels": np.array([i.pixels is not None for i in items]),
            "pixels": np.stack([np.zeros(shape, np.float32) if i.pixels is None else i.pixels.numpy()
                                for i in items])}


class _Embed:
    """The embed step's actor: its own copy of the model, `threads` torch threads."""

    def __init__(self, load, threads: int):
        torch.set_num_threads(threads)
        self.embedder = load()

    def __call__(self, batch: dict) -> dict:
        has = batch.pop("has_pixels")
        pixels = batch.pop("pixels")
        vectors = np.zeros((len(has), self.embedder.dim), np.float32)
        if has.any():
            vectors[has] = self.embedder.image_features(torch.from_numpy(pixels[has])).cpu().numpy()
        return {**batch, "has_vector": has, "vector": vectors}


class RayRunner:
    """`build(..., runner=RayRunner(...))`: Ray starts on the first `run` with work to do (a run with nothing
    pending starts nothing) and stops at `close`. `address=None` starts a local Ray on this machine's cores;
    "auto" or "ray://head:10001" joins a cluster. `workers`: embedding actors (default: one per GPU, else one)."""

    def __init__(self, embedder, model_key: str, address: str | None = None, workers: int | None = None):
        self.ray = import_ray()
        self.embedder, self.model_key, self.address, self.workers = embedder, model_key, address, workers
        self.started = False

    def _start(self) -> None:
        env = {k: v for k, v in os.environ.items() if k.startswith(("VLSTEPS_", "HF_"))}
        quiet = dict(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False,
                     runtime_env={"env_vars": env})
        if self.address:
            self.ray.init(address=self.address, **quiet)
        else:
            self.ray.init(num_cpus=os.cpu_count(), **quiet)
        self.started = True
        context = self.ray.data.DataContext.get_current()
        context.enable_progress_bars = False           # build's own bar counts the files
        context.print_on_execution_start = False
        logging.getLogger("ray.data").setLevel(logging.WARNING)

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()
            self.started = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _resources(self) -> tuple[int, dict]:
        """(actors, their resources): a GPU each where there are GPUs, else half a CPU each, so that the read
        tasks (a CPU each) keep most CPUs and stay an operator of their own (Ray fuses steps that ask for the same
        resources into one process, which would then read and embed in turn). Torch threads per actor: a node's
        CPUs over the actors it holds, so the actors together do not oversubscribe the cores (Ray would give each
        as many threads as CPUs it reserved)."""
        total = self.ray.cluster_resources()
        gpus = int(total.get("GPU", 0))
        workers = self.workers or max(gpus, 1)
        nodes = [n for n in self.ray.nodes() if n.get("Alive")] or [{"Resources": total}]
        per_node = min(int(n["Resources"].get("CPU", 1)) for n in nodes)
        threads = max(1, per_node // math.ceil(workers / len(nodes)))
        if gpus:
            return workers, {"num_gpus": 1, "num_cpus": 1, "threads": threads}
        return workers, {"num_cpus": 0.5, "threads": threads}

    def run(self, todo: Sequence[Pending], known: set[str], batch_size: int) -> Iterator[Item | tuple[str, str]]:
        if not todo:
            return
        if not self.started:
            self._start()
        ray = self.ray
        workers, resources = self._resources()
        threads = resources.pop("threads")
        shape = tuple(self.embedder.pixels(Image.new("RGB", (8, 8))).shape)
        ds = ray.data.from_items([{"key": p.key, "size": p.size, "mtime_ns": p.mtime_ns} for p in todo],
                                 override_num_blocks=max(1, math.ceil(len(todo) / batch_size)))
        ds = ds.map_batches(_read, batch_size=batch_size, batch_format="numpy", num_cpus=1,
                            fn_kwargs={"known": known, "pixels": self.embedder.preprocess, "shape": shape})
        ds = ds.map_batches(_Embed, batch_size=batch_size, batch_format="numpy",
                            fn_constructor_kwargs={"load": functools.partial(load_embedder, self.model_key,
                                                                             batch_size), "threads": threads},
                            compute=ray.data.ActorPoolStrategy(size=workers), **resources)
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            for i, key in enumerate(batch["key"]):
                if batch["error"][i]:
                    yield str(key), str(batch["error"][i])
                else:
                    yield Item(str(key), int(batch["size"][i]), str(batch["mtime_ns"][i]), str(batch["id"][i]),
                               vector=batch["vector"][i] if batch["has_vector"][i] else None)

    def vectors(self, items: Sequence[Item]) -> np.ndarray:
        return np.stack([item.vector for item in items])
