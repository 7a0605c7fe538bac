"""The service's limits and switches, read once from the environment so a deployment sets them without code."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..paths import outputs_dir
from ..net import AddressPolicy

PREFIX = "VLSTEPS_SERVE_"
RUNTIMES = ("auto", "torch", "onnx")   # what CLIP's towers run on (vlsteps.onnx_clip, serve.threads.runtime)


def _number(name: str, default, kind=int, low=1):
    raw = os.environ.get(PREFIX + name)
    if raw in (None, ""):
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ValueError(f"{PREFIX}{name}={raw!r} is not a {kind.__name__}") from None
    if not value >= low or value == float("inf"):       # NaN compares False, inf would wait forever
        raise ValueError(f"{PREFIX}{name}={raw!r} must be a finite number, at least {low}")
    return value


def _runtime() -> str:
    raw = os.environ.get(PREFIX + "RUNTIME") or RUNTIMES[0]
    if raw not in RUNTIMES:
        raise ValueError(f"{PREFIX}RUNTIME={raw!r} is not a runtime: use one of {', '.join(RUNTIMES)}")
    return raw


def adapter_entry(text: str) -> tuple[str, str]:
    """One `KEY=PATH` (--adapter, VLSTEPS_SERVE_ADAPTERS): a served caption model's key and a LoRA adapter folder."""
    key, _, path = text.partition("=")
    if not key.strip() or not path.strip():
        raise ValueError(f"adapter {text!r} is not KEY=PATH: a caption model's key and the folder its LoRA adapter "
                         "was saved to, such as blip2=outputs/finetune/blip2/adapter")
    return key.strip(), path.strip()


def _adapters() -> dict[str, str]:
    """VLSTEPS_SERVE_ADAPTERS: KEY=PATH entries separated as in PATH (':', on Windows ';')."""
    raw = os.environ.get(PREFIX + "ADAPTERS", "")
    try:
        return dict(adapter_entry(text) for text in raw.split(os.pathsep) if text.strip())
    except ValueError as e:
        raise ValueError(f"{PREFIX}ADAPTERS: {e}") from None


def _notebook_run() -> str:
    return str(outputs_dir() / "captioner" / "shapes_default")


@dataclass(frozen=True)
class Settings:
    """`token`: the Bearer token every API route requires when set (PhotoPrism sends `Service.Key` as one).
    `max_batch` / `max_wait_ms`: the micro-batcher's largest batch and how long the first request of a batch
    waits for others (0: a batch takes what has arrived and what is being decoded, so a lone request runs at
    once). `policy`: which addresses image URLs may reach (public only, plus VLSTEPS_ALLOW_HOSTS)."""
    token: str = ""
    max_batch: int = 16
    max_wait_ms: float = 0.0
    max_queue: int = 1024        # waiting items per model past which requests get 429 (retry later)
    max_image_bytes: int = 20 * 1024 * 1024
    max_images: int = 16
    max_texts: int = 64
    max_text_chars: int = 1000
    max_new_tokens: int = 30
    threads: int = 0            # torch's and ONNX Runtime's intra-op threads; 0: chosen for the machine (serve.threads)
    runtime: str = RUNTIMES[0]  # CLIP's: auto (onnx without CUDA, serve.threads), torch, or onnx (ONNX Runtime)
    fetch_timeout_s: float = 10.0
    body_timeout_s: float = 30.0    # a request body not in full by then gets 408 and its connection closed
    clip_dir: str = ""          # a CLIP folder to serve instead of model_dir("clip") (the benchmark's models)
    labels_file: str = ""       # one label per line, instead of ImageNet's 1000 class names
    chroma_path: str = ""       # the on-disk index /search reads; default: vlsteps.index's (outputs_dir()/chroma)
    # caption model key -> the LoRA adapter folder merged into it when it loads (vlsteps.finetune.merge)
    adapters: dict[str, str] = field(default_factory=dict)
    # The trained run POST /caption uses; default: the one notebooks/captioner.ipynb trains.
    captioner_run: str = field(default_factory=lambda: _notebook_run())
    policy: AddressPolicy = field(default_factory=lambda: AddressPolicy(allow_private=False))

    @classmethod
    def from_env(cls) -> Settings:
        return cls(token=os.environ.get(PREFIX + "TOKEN", ""),
                   max_batch=_number("MAX_BATCH", cls.max_batch),
                   max_wait_ms=_number("MAX_WAIT_MS", cls.max_wait_ms, float, 0),
                   max_queue=_number("MAX_QUEUE", cls.max_queue),
                   max_image_bytes=_number("MAX_IMAGE_BYTES", cls.max_image_bytes),
                   max_images=_number("MAX_IMAGES", cls.max_images),
                   max_texts=_number("MAX_TEXTS", cls.max_texts),
                   max_text_chars=_number("MAX_TEXT_CHARS", cls.max_text_chars),
                   max_new_tokens=_number("MAX_NEW_TOKENS", cls.max_new_tokens),
                   threads=_number("THREADS", cls.threads, low=0),
                   runtime=_runtime(),
                   fetch_timeout_s=_number("FETCH_TIMEOUT_S", cls.fetch_timeout_s, float),
                   body_timeout_s=_number("BODY_TIMEOUT_S", cls.body_timeout_s, float),
                   clip_dir=os.environ.get(PREFIX + "CLIP_DIR", ""),
                   labels_file=os.environ.get(PREFIX + "LABELS", ""),
                   adapters=_adapters(),
                   captioner_run=os.environ.get(PREFIX + "CAPTIONER_RUN") or _notebook_run(),
                   policy=AddressPolicy.from_env())
