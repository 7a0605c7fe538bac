"""CLIPScore (Hessel et al., 2021): how well a caption fits its image, with no reference captions.

    CLIPScore(image, caption) = w · max(cos(E_image, E_caption), 0),   w = 2.5

E are CLIP's image and text embeddings. The weight 2.5 only stretches the range (cosines of matching
CLIP ViT pairs rarely pass 0.4) and the clamp at 0 treats "unrelated" and "opposite" alike. Scores of
different CLIP models are not comparable: always say which CLIP scored a table.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

W = 2.5


def _rows(x, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2:
        raise ValueError(f"{name} must be a vector or a 2-D array (n, dim), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} holds NaN or infinite values")
    return x


def clip_score_from_embeddings(image_emb, text_emb, w: float = W) -> np.ndarray:
    """CLIPScore of row i of `image_emb` with row i of `text_emb` (one score per pair, shape (n,)).

    Rows are L2-normalized here, so raw or normalized embeddings give the same result; a zero vector
    has no direction and scores 0."""
    img, txt = _rows(image_emb, "image_emb"), _rows(text_emb, "text_emb")
    if img.shape != txt.shape:
        raise ValueError(f"one caption per image: image_emb {img.shape} and text_emb {txt.shape} must match")
    norms = np.linalg.norm(img, axis=1) * np.linalg.norm(txt, axis=1)
    dots = np.einsum("nd,nd->n", img, txt)
    cos = np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)
    return (w * np.maximum(cos, 0.0)).astype(np.float32)


def clip_score(embedder, images: Sequence, captions: Sequence[str], w: float = W) -> np.ndarray:
    """CLIPScore of each (image, caption) pair, with `embedder` a `vlsteps.embed.ClipEmbedder` (or anything
    with `.images(list)` and `.texts(list)` returning (n, dim) arrays)."""
    if isinstance(captions, str):
        raise TypeError("captions must be a list of strings; wrap a single caption as [caption]")
    images, captions = list(images), list(captions)
    if any(not isinstance(c, str) for c in captions):
        raise TypeError("captions must be a list of strings")
    if len(images) != len(captions):
        raise ValueError(f"{len(images)} images but {len(captions)} captions: give one caption per image")
    if not images:
        return np.zeros(0, dtype=np.float32)
    return clip_score_from_embeddings(embedder.images(images), embedder.texts(captions), w)
