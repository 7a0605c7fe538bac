"""The served models: loaded on first use (in their own thread, so the server keeps answering meanwhile), one
micro-batcher per model and task, and a record of which folders are stand-ins, for the log and /api/v1/status."""
from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from .. import checkpoint, registry
from ..generation import token_budget
from ..standins import is_learned, is_standin
from ..standins.wording import what
from . import captioners
from .batching import MicroBatcher
from .inputs import image_bytes
from .labels import ZeroShotLabeler, vocabulary
from .settings import Settings

log = logging.getLogger("vlsteps.serve")


def clip_embedder(folder: Path, runtime: str, threads: int = 0, batch_size: int = 32, model_key: str = "clip"):
    """CLIP from `folder` on `runtime` (`threads.choose`'s): torch, or ONNX Runtime on `threads` (0: torch's count),
    exported on first use (`vlsteps.onnx_clip`)."""
    if runtime == "onnx":
        from ..onnx_clip import OnnxClipEmbedder
        return OnnxClipEmbedder.from_pretrained(folder, model_key, batch_size, threads or None)
    from ..embed import ClipEmbedder
    return ClipEmbedder.from_pretrained(folder, model_key=model_key, batch_size=batch_size)


class ModelPool:
    def __init__(self, settings: Settings, prepare_threads: int = 2, clip_threads: int = 0):
        self.settings, self.clip_threads = settings, clip_threads
        self._prepare = ThreadPoolExecutor(prepare_threads, thread_name_prefix="serve-prepare")   # decode, resize
        self.sources: dict[str, dict] = {}       # registry key -> {"folder", "standin", "learned"} once loaded
        self._loaded: dict[str, object] = {}
        self._lock = threading.RLock()   # a model built from another (labels from CLIP) loads both
        self._threads: dict[str, ThreadPoolExecutor] = {}
        self._batchers: dict[str, MicroBatcher] = {}

    # --- loading ------------------------------------------------------------------------------------
    def folder(self, key: str) -> Path:
        if key == "clip" and self.settings.clip_dir:
            path = Path(self.settings.clip_dir).expanduser()
            if not path.is_dir():
                raise checkpoint.ModelNotFoundError(f"VLSTEPS_SERVE_CLIP_DIR={self.settings.clip_dir!r} is no folder")
        else:
            path = checkpoint.model_dir(key, banner=False)
        standin, learned = is_standin(path), is_learned(path)
        self.sources[key] = {"folder": str(path), "standin": standin, "learned": learned}
        if standin:
            spec = registry.get(key)
            log.warning("STAND-IN: '%s' is %s%s. For real results: %s", key, what(spec.repo_id, learned),
                        "" if learned else "; its outputs are gibberish by design", spec.download_command)
        return path

    def _get(self, name: str, build):
        if name in self._loaded:      # no lock: the event loop must not wait while another model loads
            return self._loaded[name]
        with self._lock:
            if name not in self._loaded:
                log.info("loading %s", name)
                self._loaded[name] = build()
            return self._loaded[name]

    def embedder(self):
        """CLIP on the settings' runtime and `clip_threads`."""
        return self._get("clip", lambda: clip_embedder(self.folder("clip"), self.settings.runtime, self.clip_threads,
                                                       self.settings.max_batch))

    def labeler(self) -> ZeroShotLabeler:
        return self._get("labels", lambda: ZeroShotLabeler(self.embedder(), vocabulary(self.settings.labels_file)))

    def captioner(self, name: str) -> captioners.Captioner:
        key = captioners.MODELS[name].key
        # A stand-in's caption is noise: a few tokens say as much (the notebooks cap theirs the same way).
        return self._get(name, lambda: captioners.load(key, self.folder(key),
                                                       token_budget(self.folder(key), self.settings.max_new_tokens),
                                                       self.settings.adapters.get(name)))

    def load_adapted(self) -> None:
        """The caption models given an adapter, loaded and merged now: a bad adapter stops the service at start, with
        what to do, rather than failing every request for that model."""
        from ..finetune.merge import AdapterError, check
        for name, path in self.settings.adapters.items():
            if name not in captioners.MODELS:
                raise AdapterError(f"Adapter {name}={path}: '{name}' is not a served caption model; adapters merge "
                                   f"into {', '.join(captioners.MODELS)}.")
            check(path, captioners.MODELS[name].key)
        for name, path in self.settings.adapters.items():
            self.captioner(name)
            log.info("'%s' runs with the LoRA adapter %s merged in", name, path)

    def collection(self):
        """The Chroma collection of this CLIP's vectors (`vlsteps.index`; the one clip.ipynb fills)."""
        from .. import index
        path = self.settings.chroma_path or None
        return self._get("chroma", lambda: index.image_collection(index.chroma_client(path), self.embedder()))

    # --- batched calls ------------------------------------------------------------------------------
    def _batcher(self, task: str, model: str, run, prepare=None) -> MicroBatcher:
        if task not in self._batchers:
            thread = self._threads.setdefault(model, ThreadPoolExecutor(1, thread_name_prefix=f"serve-{model}"))
            self._batchers[task] = MicroBatcher(run, self.settings.max_batch, self.settings.max_wait_ms / 1e3,
                                                name=task, thread=thread, max_queue=self.settings.max_queue,
                                                prepare=prepare, prepare_pool=self._prepare)
        return self._batchers[task]

    def _pixels(self, image) -> torch.Tensor:
        """An image, or the bytes of an uploaded one (a bad one is the client's `BadInput`), as CLIP's pixels."""
        return self.embedder().pixels(image_bytes(image, self.settings) if isinstance(image, bytes) else image)

    async def image_vectors(self, images: list) -> np.ndarray:
        """(n, dim) float32 unit vectors of PIL images or image files' bytes; each image is one item of the shared
        image batcher, decoded and preprocessed in the pool's prepare threads, not in the model's."""
        batcher = self._batcher("clip-images", "clip",
                                lambda items: list(self.embedder().image_features(torch.stack(items)).cpu().numpy()),
                                prepare=self._pixels)
        return np.stack(await asyncio.gather(*(batcher.submit(image) for image in images)))

    async def text_vectors(self, texts: list[str]) -> np.ndarray:
        batcher = self._batcher("clip-texts", "clip", lambda items: list(self.embedder().texts(items)))
        return np.stack(await asyncio.gather(*(batcher.submit(text) for text in texts)))

    async def labels(self, image, k: int = 5) -> list[dict]:
        vector = await self.image_vectors([image])
        labeler = await asyncio.get_running_loop().run_in_executor(self._threads["clip"], self.labeler)
        return labeler.labels(vector, k)[0]

    async def caption(self, name: str, image, prompt: str | None) -> tuple[str, float]:
        """(caption, confidence) from caption model `name` (a key of `captioners.MODELS`)."""
        if not captioners.MODELS[name].prompted:
            prompt = None
        batcher = self._batcher(f"caption-{name}", name, lambda items: self.captioner(name).caption(items))
        return await batcher.submit((image, prompt))

    def status(self) -> dict:
        return {"loaded": sorted(k for k in self._loaded),
                "sources": self.sources,
                "standins": sorted(k for k, v in self.sources.items() if v["standin"]),
                "batching": {task: b.stats() for task, b in self._batchers.items()}}
