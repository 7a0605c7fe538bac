"""Writing a caption: greedy (the likeliest next word, every step) and beam search (the k likeliest prefixes).

`greedy` and `beam` are copies of notebooks/captioner.ipynb's cells (checked by `python -m tools.check_copies`).
"""
from __future__ import annotations

import torch

from .data import Split, Vocabulary, pixels


# Copied from notebooks/captioner.ipynb: greedy
@torch.no_grad()
def greedy(model, images: torch.Tensor, vocab: Vocabulary, max_len: int | None = None) -> list[str]:
    """One caption per uint8 image: feed <start>, append the argmax word, stop at <end> or `max_len` ids."""
    max_len = max_len or model.seq_length
    memory = model.encode(images)
    ids = torch.full((len(images), 1), vocab.start, device=images.device)
    done = torch.zeros(len(images), dtype=torch.bool, device=images.device)
    for _ in range(max_len - 1):
        word = model.decoder(ids, memory)[:, -1].argmax(-1).masked_fill(done, vocab.pad)
        ids = torch.cat([ids, word[:, None]], 1)
        done |= word == vocab.end
        if done.all():
            break
    return [vocab.decode(row) for row in ids.tolist()]


# Copied from notebooks/captioner.ipynb: beam
@torch.no_grad()
def beam(model, images: torch.Tensor, vocab: Vocabulary, beam_size: int = 3, max_len: int | None = None,
         length_penalty: float = 0.7) -> list[str]:
    """Keep the `beam_size` prefixes of highest total log-probability; a finished one (it said <end>) only grows
    by <pad> at no cost. The winner maximises total / length ** length_penalty (0: raw total, which favours
    short captions; 1: the mean per word)."""
    max_len, k = max_len or model.seq_length, beam_size
    n, device = len(images), images.device
    memory = model.encode(images).repeat_interleave(k, 0)
    ids = torch.full((n * k, 1), vocab.start, device=device)
    scores = torch.full((n, k), float("-inf"), device=device)
    scores[:, 0] = 0.0                                           # at first all k beams are the same <start>
    finished = torch.zeros(n * k, dtype=torch.bool, device=device)
    for _ in range(max_len - 1):
        logp = torch.log_softmax(model.decoder(ids, memory)[:, -1].float(), -1)
        logp[finished] = float("-inf")
        logp[finished, vocab.pad] = 0.0
        vocab_size = logp.shape[1]
        top, where = (scores.view(-1, 1) + logp).view(n, k * vocab_size).topk(k, -1)
        rows = (torch.arange(n, device=device)[:, None] * k + where // vocab_size).view(-1)
        word = (where % vocab_size).view(-1)
        ids, finished, scores = torch.cat([ids[rows], word[:, None]], 1), finished[rows] | (word == vocab.end), top
        if finished.all():
            break
    lengths = ((ids[:, 1:] != vocab.pad).sum(1)).clamp(min=1).view(n, k).float()
    best = (scores / lengths ** length_penalty).argmax(-1)
    return [vocab.decode(ids[i * k + int(b)].tolist()) for i, b in enumerate(best)]


def caption_split(model, split: Split, vocab: Vocabulary, beam_size: int = 1, batch_size: int = 64,
                  device: str = "cpu") -> list[str]:
    """A caption for every image of a split: greedy when beam_size is 1, else beam search."""
    model.eval()
    out = []
    for lo in range(0, len(split), batch_size):
        images = torch.stack([pixels(split.image(i, model.image_size))
                              for i in range(lo, min(lo + batch_size, len(split)))]).to(device)
        out += greedy(model, images, vocab) if beam_size == 1 else beam(model, images, vocab, beam_size)
    return out
