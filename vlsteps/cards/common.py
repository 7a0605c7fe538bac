"""What several stand-in builders share: seeding, safe decoding, sizes, and what teaches a small tower layout."""
from __future__ import annotations

from .. import world

# Tiny but structurally faithful: enough layers and heads for every code path, nothing more.
TINY = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)


def seeded(seed: int = 0) -> None:
    """Seed before each model init, so building one key alone gives the same bytes as building all."""
    import torch
    torch.manual_seed(seed)


def pixels(image_processor, images):
    """What image_processor makes of square RGB images already at its output size (a test checks the numbers are
    the same): rescale and normalise only, without the processor's per-image cost, for training loops."""
    import numpy as np
    import torch
    x = torch.from_numpy(np.stack([np.asarray(image) for image in images])).permute(0, 3, 1, 2).float() / 255
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (image_processor.image_mean, image_processor.image_std))
    return (x - mean) / std


def sincos_positions(grid: int, dim: int):
    """(grid * grid, dim) 2-D sine-cosine position embeddings (MAE's), row-major: a start from which a small ViT's
    tokens learn where their shape stands sooner than from the near-zero random init (a 2-layer, 32-wide tower told
    per patch, after 1,000 steps: 0.99 against 0.61)."""
    import torch
    ys, xs = torch.meshgrid(torch.arange(grid).float(), torch.arange(grid).float(), indexing="ij")
    omega = 1 / 10000 ** (torch.arange(dim // 4) / (dim // 4))

    def axis(p):
        return torch.cat([torch.sin(p.reshape(-1, 1) * omega), torch.cos(p.reshape(-1, 1) * omega)], 1)
    return torch.cat([axis(xs), axis(ys)], 1)


def patch_heads(width: int):
    """Linear heads, one per `world.PATCH_FIELDS` field, that read what a patch token shows: trained beside a VQA
    stand-in and thrown away after, so the saved model keeps the real class's structure."""
    import torch
    return torch.nn.ModuleList(torch.nn.Linear(width, 1 + len(v)) for v in world.PATCH_FIELDS.values())


def patch_truth(scenes, grid: int, size: int):
    """`world.patch_labels` of each scene drawn at size px, cut grid x grid: a (scenes, grid * grid, fields) tensor."""
    import numpy as np
    import torch
    return torch.from_numpy(np.stack([world.patch_labels(s, grid, size) for s in scenes]))


def patch_loss(heads, tokens, truth):
    """Summed cross-entropy of heads (`patch_heads`) on patch tokens (batch, patches, width) against truth
    (batch, patches, fields), `patch_truth` in the tokens' order."""
    import torch.nn.functional as F
    return sum(F.cross_entropy(head(tokens).flatten(0, 1), truth[..., j].flatten()) for j, head in enumerate(heads))


def harden_lm_head(model, tok, logit_std: float = 10.0) -> int:
    """Make random-weight decoding safe for the notebooks' post-processing.

    Rows of the output embedding for special/added tokens and for tokens that do not decode to plain
    ASCII alphanumerics are zeroed; the others are rescaled so their logits have std ~logit_std. A
    zero logit then never beats the best of hundreds of N(0, 10^2) logits, so greedy, beam and sampled
    text is never empty and never holds EOS, image tokens or broken byte pieces. It is done on the
    weights because BLIP-2/InstructBLIP ignore the saved generation_config. Returns the rows zeroed.
    """
    import torch
    weight = model.get_output_embeddings().weight
    bad_ids = set(tok.all_special_ids) | set(tok.get_added_vocab().values())
    bad, good = [], []
    for i in range(weight.shape[0]):
        s = tok.decode([i]) if i < len(tok) else ""
        ok = i not in bad_ids and s.isascii() and s.replace(" ", "").isalnum()
        (good if ok else bad).append(i)
    with torch.no_grad():
        weight[bad] = 0
        weight[good] = weight[good] / weight[good].std() * (logit_std / weight.shape[1] ** 0.5)
    return len(bad)
