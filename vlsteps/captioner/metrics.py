"""How good a captioner is: the original Keras trainer's masked next-token accuracy while training; on held-out
images BLEU-4 and CIDEr (pycocoevalcap, the COCO caption evaluation code), and on shape scenes exact match and
per-attribute accuracy. Every score comes with the image-blind baseline beside it: the same score for one fixed
caption."""
from __future__ import annotations

from collections import Counter

import torch
import torch.nn.functional as F

from .. import world
from .data import Split, Vocabulary, tokenize


def masked_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Sparse cross-entropy averaged over real words only: <pad> targets (id 0) count for nothing."""
    return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=Vocabulary.pad)


def masked_accuracy(logits: torch.Tensor, targets: torch.Tensor) -> tuple[int, int]:
    """(right, counted): next words predicted exactly, over the non-<pad> targets."""
    real = targets != Vocabulary.pad
    return int(((logits.argmax(-1) == targets) & real).sum()), int(real.sum())


def _words(text: str) -> str:
    return " ".join(tokenize(text))


def caption_scores(hyps: list[str], refs: list[list[str]]) -> dict[str, float]:
    """Corpus BLEU-4 and CIDEr of one hypothesis per image against all its references (0..1 and 0..10)."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    if len(hyps) != len(refs) or not hyps:
        raise ValueError(f"need one hypothesis per image: {len(hyps)} hypotheses, {len(refs)} images")
    gts = {i: [_words(r) for r in rs] for i, rs in enumerate(refs)}
    res = {i: [_words(h) or "<empty>"] for i, h in enumerate(hyps)}   # the scorers cannot take an empty string
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    cider, _ = Cider().compute_score(gts, res)
    return {"BLEU-4": float(bleu[3]), "CIDEr": float(cider)}


def exact_match(hyps: list[str], refs: list[list[str]]) -> float:
    """The share of captions that equal one of their image's references word for word."""
    return sum(_words(h) in {_words(r) for r in rs} for h, rs in zip(hyps, refs)) / len(hyps)


def attribute_accuracy(hyps: list[str], scenes: list[world.Scene]) -> dict[str, float]:
    """Per field, the share right: how many things; each thing's size, colour and shape (in the caption's
    left/above-first order); the relation, over two-thing scenes. A caption outside the grammar is wrong in all."""
    right, total = Counter(), Counter()
    for hyp, scene in zip(hyps, scenes):
        said, true = world.parse(hyp), world.truth(scene)
        total["count"] += 1
        right["count"] += bool(said) and said["count"] == true["count"]
        for j, thing in enumerate(true["things"]):
            for k, field in enumerate(("size", "colour", "shape")):
                total[field] += 1
                right[field] += bool(said) and j < len(said["things"]) and said["things"][j][k] == thing[k]
        if true["relation"]:
            total["relation"] += 1
            right["relation"] += bool(said) and said["relation"] == true["relation"]
    return {field: right[field] / total[field] for field in world.FIELDS if total[field]}


def blind_baseline(train: Split) -> str:
    """What a captioner that never looks at the image does best on exact match: the commonest training caption
    (ties broken alphabetically, so it is the same every run)."""
    counts = Counter(_words(c) for caps in train.captions for c in caps)
    return min(counts, key=lambda c: (-counts[c], c))


def score(hyps: list[str], split: Split) -> dict[str, float]:
    """BLEU-4, CIDEr and exact match; on shape scenes also each attribute's accuracy."""
    out = {**caption_scores(hyps, split.captions), "exact match": exact_match(hyps, split.captions)}
    if split.sources and all(isinstance(s, world.Scene) for s in split.sources):
        out.update({f"{field} acc": v for field, v in attribute_accuracy(hyps, split.sources).items()})
    return out
