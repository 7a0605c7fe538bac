"""CLIP embeddings as plain arrays: batched, under inference mode, L2-normalized, float32.

Used by the CLIP notebook (zero-shot, the Chroma index, the search widget), by the BLIP notebook
(CLIPScore, re-ranking captions) and by `python -m tools.bench index`. One place decides how an
image becomes a vector, so the index, the queries and the benchmark always agree.

    embedder = ClipEmbedder.from_pretrained(vlsteps.model_dir("clip"), model_key="clip")
    img = embedder.images([photo1, photo2])     # (2, D) float32, each row has norm 1
    txt = embedder.texts(["a photo of a cat"])  # (1, D)
    sims = img @ txt.T                           # cosine similarities
"""
from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF

from .images import load_image

# Prompt templates for zero-shot labels, averaged by `ClipEmbedder.prompt_ensemble` (the CLIP paper's ensembling
# over templates like these): the CLIP notebook's, and what the learned stand-in is measured with.
TEMPLATES = ("a photo of a {}.", "a close-up photo of a {}.", "a bright photo of a {}.", "a photo of the large {}.",
             "a low resolution photo of a {}.", "an image showing a {}.")

# Config keys that change with how a model was saved or loaded, not with what it computes.
_VOLATILE_KEYS = {"_name_or_path", "transformers_version", "dtype", "torch_dtype", "_attn_implementation",
                  "_attn_implementation_autoset", "_commit_hash", "architectures", "output_attentions",
                  "output_hidden_states", "return_dict", "use_cache"}


def _unit(out) -> torch.Tensor:
    """The projected embedding, L2-normalized in float32 (transformers 5 wraps it in an output object)."""
    feats = out.pooler_output if hasattr(out, "pooler_output") else out
    return torch.nn.functional.normalize(feats.float(), dim=-1)


def _plain_steps(image_processor):
    """(shortest edge, [crop h, crop w], mean, std, rescale factor) of a processor doing CLIP's standard steps and
    nothing else, for `ClipEmbedder.pixels`; None for any other processor (it then runs the processor itself)."""
    get = getattr(image_processor, "to_dict", dict)()
    size, crop = get.get("size") or {}, get.get("crop_size") or {}
    standard = (type(image_processor).__name__ == "CLIPImageProcessor" and set(size) == {"shortest_edge"}
                and set(crop) == {"height", "width"} and get.get("resample") == 3
                and max(crop.values()) <= size["shortest_edge"]            # a crop past the image would pad
                and all(get.get(k) for k in ("do_resize", "do_center_crop", "do_rescale", "do_normalize")))
    if not standard:
        return None
    return (int(size["shortest_edge"]), [int(crop["height"]), int(crop["width"])],
            torch.tensor(get["image_mean"], dtype=torch.float32).view(3, 1, 1),
            torch.tensor(get["image_std"], dtype=torch.float32).view(3, 1, 1), float(get["rescale_factor"]))


def _strip(obj):
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in sorted(obj.items()) if k not in _VOLATILE_KEYS}
    if isinstance(obj, (list, tuple)):
        return [_strip(v) for v in obj]
    return obj


def model_fingerprint(model, samples: int = 256) -> str:
    """8 hex chars that differ between architectures, sizes *and weights* (a stand-in vs the real CLIP, two
    checkpoints of one config) but not between dtypes or load paths of one checkpoint. Part of the Chroma
    collection name.

    The weights enter as the sign bits of `samples` evenly spaced values of every tensor: the one part of
    a float that no cast between float32, float16 and bfloat16 changes (magnitudes change in the last bits,
    and any rounding of them flips somewhere), read in milliseconds instead of hashing gigabytes. Other
    weights (a new seed, a fine-tune) flip thousands of the sampled signs."""
    h = hashlib.sha256(json.dumps(_strip(model.config.to_dict()), sort_keys=True, default=str).encode())
    signs = []
    with torch.no_grad():
        for name, tensor in sorted(model.state_dict().items()):
            flat = tensor.detach().reshape(-1)
            k = min(samples, flat.numel())
            picks = torch.arange(k, device=flat.device) * (flat.numel() - 1) // max(k - 1, 1)   # exact in int64
            signs.append(torch.signbit(flat[picks].float()).cpu())
            h.update(f"{name}:{tuple(tensor.shape)};".encode())
    if signs:
        h.update(np.packbits(torch.cat(signs).numpy()).tobytes())
    return h.hexdigest()[:8]


class Pixels:
    """One image (PIL or path) -> the model's input (3, H, W). Thread-safe, so a server runs it in threads of its own
    while the model runs; picklable without the model, so `vlsteps.index`'s Ray workers decode with it.

    A standard CLIP processor's steps (shortest edge, antialiased bicubic, center crop, rescale, normalize) run as
    plain torchvision calls on the one image: the same values as the processor's to float rounding, at half its cost
    (checked in tests/test_embed.py). Any other image processor runs itself."""

    def __init__(self, image_processor):
        self.image_processor = image_processor
        self._plain = _plain_steps(image_processor)

    def __call__(self, image, draft: bool = False) -> torch.Tensor:
        """`draft`: a JPEG file's bytes or path decode at a reduced scale that keeps the shortest edge above the
        model's (`load_image`): not the processor's values to float rounding, but a photo indexed several times
        faster."""
        image = load_image(image, draft=self._plain[0] if draft and self._plain else None)
        if self._plain is None:
            return self.image_processor(images=[image], return_tensors="pt")["pixel_values"][0]
        size, crop, mean, std, scale = self._plain
        t = TF.pil_to_tensor(image)
        h, w = t.shape[-2:]
        t = TF.resize(t, [size, int(size * w / h)] if h < w else [int(size * h / w), size],
                      interpolation=TF.InterpolationMode.BICUBIC, antialias=True)
        (ch, cw), (h, w) = crop, t.shape[-2:]
        top, left = int((h - ch) / 2), int((w - cw) / 2)          # the processor's rounding, not torchvision's
        return (t[:, top:top + ch, left:left + cw].float() * scale - mean) / std


class ClipEmbedder:
    """Wraps a `CLIPModel` (or any model with get_image_features/get_text_features) and its processor.

    `images()` / `texts()` return `np.ndarray` of shape (N, dim), float32, rows L2-normalized, so a dot
    product is the cosine similarity. Work is done in batches of `batch_size` under
    `torch.inference_mode()`; while one batch runs through the model the next one is decoded and
    preprocessed in a background thread (`prefetch=True`).
    """

    def __init__(self, model, processor, device=None, batch_size: int = 32, model_key: str = "clip",
                 prefetch: bool = True):
        self.model = model.eval()
        self.processor = processor
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        if next(model.parameters()).device != self.device:
            self.model = self.model.to(self.device)
        self.dtype = next(self.model.parameters()).dtype
        self.batch_size = int(batch_size)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model_key = model_key
        self.prefetch = prefetch
        self.dim = int(model.config.projection_dim)
        self.fingerprint = model_fingerprint(model)
        self.preprocess = Pixels(getattr(processor, "image_processor", processor))

    @classmethod
    def from_pretrained(cls, path, model_key: str = "clip", device=None, dtype=None, batch_size: int = 32,
                        attn_implementation: str | None = "sdpa"):
        """Load `CLIPModel` + `CLIPProcessor` from a local folder (e.g. `vlsteps.model_dir("clip")`)."""
        from transformers import CLIPModel, CLIPProcessor

        from . import registry
        from .device import pick_device, pick_dtype
        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(f"No model folder {path}: download it first (tools/download_models.sh "
                                    f"{model_key})")
        device = device or pick_device()
        dtype = dtype or pick_dtype(model_key if model_key in registry.CARDS else None, device)
        kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
        model = CLIPModel.from_pretrained(path, dtype=dtype, **kwargs).to(device)
        processor = CLIPProcessor.from_pretrained(path)
        return cls(model, processor, device=device, batch_size=batch_size, model_key=model_key)

    def __repr__(self) -> str:
        return (f"ClipEmbedder(model_key={self.model_key!r}, dim={self.dim}, fingerprint={self.fingerprint}, "
                f"device={self.device.type}, dtype={str(self.dtype).replace('torch.', '')}, "
                f"batch_size={self.batch_size})")

    @property
    def collection_tag(self) -> str:
        """`<model_key>-<dim>d-<fingerprint>`: what binds a vector store to this embedding model."""
        return f"{self.model_key}-{self.dim}d-{self.fingerprint}"

    # --- images -------------------------------------------------------------------------------------
    def pixel_values(self, images: Sequence) -> torch.Tensor:
        """Decode (if paths) and preprocess a batch: (B, 3, H, W), what the model's own processor gives."""
        return torch.stack([self.pixels(x) for x in images])

    def pixels(self, image) -> torch.Tensor:
        """One image (PIL or path) decoded and preprocessed: (3, H, W). Thread-safe (see `Pixels`)."""
        return self.preprocess(image)

    def _batches(self, items: Sequence) -> Iterable[torch.Tensor]:
        chunks = [items[i:i + self.batch_size] for i in range(0, len(items), self.batch_size)]
        if not self.prefetch or len(chunks) < 2:
            for chunk in chunks:
                yield self.pixel_values(chunk)
            return
        # One worker: batch i+1 is decoded/preprocessed while batch i runs through the model.
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(self.pixel_values, chunks[0])
            for nxt in chunks[1:]:
                current = pending.result()
                pending = pool.submit(self.pixel_values, nxt)
                yield current
            yield pending.result()

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Projected, L2-normalized image embeddings for preprocessed pixels (stays on the device)."""
        with torch.inference_mode():
            pixel_values = pixel_values.to(self.device, self.dtype, non_blocking=True)
            return _unit(self.model.get_image_features(pixel_values=pixel_values))

    def images(self, images: Sequence) -> np.ndarray:
        """(N, dim) float32, L2-normalized. `images`: PIL images and/or file paths."""
        images = list(images)
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = [self.image_features(pv).cpu().numpy() for pv in self._batches(images)]
        return np.concatenate(out).astype(np.float32, copy=False)

    # --- texts --------------------------------------------------------------------------------------
    def texts(self, texts: Sequence[str]) -> np.ndarray:
        """(N, dim) float32, L2-normalized. Texts longer than the model's 77 tokens are truncated."""
        if isinstance(texts, str):
            raise TypeError("texts() takes a list of strings; wrap a single query as [query]")
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = [self.text_features(texts[i:i + self.batch_size]) for i in range(0, len(texts), self.batch_size)]
        return np.concatenate(out).astype(np.float32, copy=False)

    def text_features(self, texts: list[str]) -> np.ndarray:
        """One batch of texts (right-padded to the longest) as L2-normalized embeddings."""
        tok = getattr(self.processor, "tokenizer", self.processor)
        with torch.inference_mode():
            enc = tok(texts, padding=True, truncation=True, return_tensors="pt")
            enc = {k: v.to(self.device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
            return _unit(self.model.get_text_features(**enc)).cpu().numpy()

    def prompt_ensemble(self, classnames: Sequence[str], templates: Sequence[str]) -> np.ndarray:
        """One text embedding per class: the normalized mean over templates like "a photo of a {}."
        (CLIP paper, sec. 3.1.4). Returns (n_classes, dim), float32, rows normalized."""
        if not templates or any("{}" not in t for t in templates):
            raise ValueError("each template needs a '{}' where the class name goes, e.g. 'a photo of a {}.'")
        prompts = [t.format(c) for c in classnames for t in templates]
        emb = self.texts(prompts).reshape(len(classnames), len(templates), self.dim).mean(axis=1)
        return (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)

    @property
    def logit_scale(self) -> float:
        """CLIP's learned temperature, exp(logit_scale): similarities are multiplied by it before softmax."""
        scale = getattr(self.model, "logit_scale", None)
        return float(scale.detach().float().exp()) if scale is not None else 100.0


