"""Caption one image with a trained run: `caption_image(load("run_dir"), pil_image)` or, for a service route,
`caption_bytes("run_dir", upload_bytes)`. The upload is decoded in memory and never written anywhere."""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from .. import images
from . import decode
from .data import Vocabulary, pixels
from .model import Captioner
from .runs import load_checkpoint


@dataclass
class Trained:
    model: Captioner
    vocab: Vocabulary
    checkpoint: Path


def _checkpoint(path: Path) -> Path:
    if path.is_dir():
        for name in ("best.safetensors", "last.safetensors"):
            if (path / name).is_file():
                return path / name
        raise FileNotFoundError(f"{path} holds no checkpoint (best.safetensors or last.safetensors): train first")
    if path.suffix != ".safetensors" or not path.is_file():
        raise FileNotFoundError(f"No run folder or .safetensors checkpoint at {path}")
    return path


def load(run_dir_or_checkpoint, device: str = "cpu") -> Trained:
    """A run's model in eval mode: its best checkpoint (a folder given) or the named .safetensors file. Kept
    loaded while the file is unchanged, so a service or a widget loads it once."""
    checkpoint = _checkpoint(Path(run_dir_or_checkpoint).expanduser().resolve())
    return _load(checkpoint, checkpoint.stat().st_mtime_ns, device)


@functools.lru_cache(maxsize=4)
def _load(checkpoint: Path, mtime_ns: int, device: str) -> Trained:
    from .train import Config, build_model
    folder = checkpoint.parent
    cfg = Config(**json.loads((folder / "config.json").read_text()))
    vocab = Vocabulary.from_json((folder / "vocab.json").read_text())
    model = build_model(cfg, len(vocab))
    model.load_saved_state(load_checkpoint(checkpoint)[0])
    return Trained(model.to(device).eval(), vocab, checkpoint)


@torch.no_grad()
def caption_image(trained: Trained, image: Image.Image, beam_size: int = 3) -> str:
    size = trained.model.image_size
    batch = pixels(images.load_image(image).resize((size, size), Image.BICUBIC))[None]
    batch = batch.to(next(trained.model.parameters()).device)
    if beam_size == 1:
        return decode.greedy(trained.model, batch, trained.vocab)[0]
    return decode.beam(trained.model, batch, trained.vocab, beam_size)[0]


def caption_bytes(run_dir_or_checkpoint, image_bytes: bytes, beam_size: int = 3) -> str:
    """The caption of an uploaded image file's bytes; ImageLoadError (one clear message) for anything that is
    not a JPEG, PNG, WebP, GIF or BMP within the size limits of vlsteps.images."""
    image = images.load_image(bytes(image_bytes))
    return caption_image(load(str(run_dir_or_checkpoint)), image, beam_size)
