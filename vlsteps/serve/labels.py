"""Labels by CLIP zero-shot: the image's embedding against one text embedding per label of a vocabulary.

The vocabulary is ImageNet's 1000 class names (as torchvision ships them, no download) or a user's file of one
label per line (`VLSTEPS_SERVE_LABELS`). Its text embeddings are computed once, on first use, from the CLIP
paper's prompt "a photo of a {}." (`ClipEmbedder.prompt_ensemble`; more templates gain ~1 % accuracy and cost a
slower first request).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

TEMPLATES = ("a photo of a {}.",)


def vocabulary(labels_file: str = "") -> list[str]:
    if not labels_file:
        from torchvision.models import ResNet50_Weights
        return list(ResNet50_Weights.IMAGENET1K_V2.meta["categories"])
    path = Path(labels_file).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"VLSTEPS_SERVE_LABELS={labels_file!r}: no such file (one label per line)")
    names = list(dict.fromkeys(line.strip() for line in path.read_text().splitlines() if line.strip()))
    if len(names) < 2:
        raise ValueError(f"{path} holds {len(names)} label(s): zero-shot labels need at least two")
    return names


class ZeroShotLabeler:
    """`labels(image_vectors, k)`: per image the k most likely labels, with

    - confidence: the softmax probability over the vocabulary, at CLIP's own temperature (sums to 1 per image);
    - topicality: the image-text cosine similarity, clipped to [0, 1] (how well the label fits on its own).

    A label whose confidence rounds to 0 is left out: PhotoPrism reads a confidence of 0 as "unknown" and files the
    label at 80 % (photoprism/photoprism, internal/ai/vision/api_response.go, LabelResult.ToClassify).
    """

    def __init__(self, embedder, names: list[str]):
        self.names = names
        self.text = embedder.prompt_ensemble(names, TEMPLATES)      # (labels, dim), rows of norm 1
        self.scale = embedder.logit_scale

    def labels(self, image_vectors: np.ndarray, k: int = 5) -> list[list[dict]]:
        sims = image_vectors @ self.text.T
        logits = self.scale * sims
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        out = []
        for p, s in zip(probs, sims):
            top = np.argsort(-p, kind="stable")[:k]
            labels = [{"name": self.names[i], "confidence": round(float(p[i]), 4),
                       "topicality": round(float(np.clip(s[i], 0, 1)), 4)} for i in top]
            out.append([label for label in labels if label["confidence"] > 0])
        return out


def merge(per_image: list[list[dict]]) -> list[dict]:
    """The labels of several views of one photo as one list, merged as PhotoPrism's own server merges them
    (internal/ai/vision/labels.go, mergeLabels): a label seen in several views keeps its highest confidence and the
    rest of its first sighting; the list is ordered by confidence, highest first (classify.Labels' order)."""
    merged: dict[str, dict] = {}
    for labels in per_image:
        for label in labels:
            seen = merged.setdefault(label["name"], dict(label))
            seen["confidence"] = max(seen["confidence"], label["confidence"])
    return sorted(merged.values(), key=lambda label: -label["confidence"])
