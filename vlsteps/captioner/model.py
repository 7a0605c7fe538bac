"""The captioner: image features -> one Transformer encoder block -> one Transformer decoder block -> word logits.

The notebook (notebooks/captioner.ipynb) writes the two blocks and the causal mask out for the reader; the
definitions marked `# Copied from` are the package's copies of its cells, for training and serving without a
notebook (`python -m tools.check_copies` checks that they still match).

The architecture of the original Keras trainer this grew from (its layers, in PyTorch). One addition: a learned
position embedding on the image tokens. Attention without positions treats the feature grid as an unordered set,
and a caption that says "left of" needs to know where things are.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

ENCODERS = ("cnn", "efficientnet_b1", "clip", "vit")
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


# Copied from notebooks/captioner.ipynb: causal_mask
def causal_mask(length: int, device=None) -> torch.Tensor:
    """True where attention is forbidden: position t may look at positions 0..t only."""
    return torch.triu(torch.ones(length, length, dtype=torch.bool, device=device), diagonal=1)


class ImageFeatures(nn.Module):
    """uint8 images (B, 3, H, W) -> feature tokens (B, N, C). Normalising is part of the model, so every caller
    (training, the demo, the service) feeds the same plain pixels."""

    def __init__(self, backbone: nn.Module, mean, std, frozen: bool, note: str):
        super().__init__()
        self.backbone, self.frozen, self.note = backbone, frozen, note
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        if frozen:
            self.backbone.requires_grad_(False).eval()

    def train(self, mode: bool = True):
        super().train(mode)
        if self.frozen:
            self.backbone.eval()   # a frozen backbone keeps its batch-norm statistics and no dropout
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = (images.float() / 255 - self.mean) / self.std
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            out = self.backbone(x.to(next(self.backbone.parameters()).dtype))
        if out.dim() == 4:                                   # a CNN's grid (B, C, h, w) -> (B, h*w, C)
            out = out.flatten(2).transpose(1, 2)
        return out.float()


def small_cnn() -> nn.Sequential:
    """Four 3x3 convolutions of stride 2: 64x64 pixels -> a 4x4 grid of 128 features (16 image tokens)."""
    layers, width = [], 3
    for out, stride in ((32, 2), (64, 2), (96, 2), (128, 2)):
        layers += [nn.Conv2d(width, out, 3, stride, 1), nn.BatchNorm2d(out), nn.ReLU()]
        width = out
    return nn.Sequential(*layers)


def imagenet_weights_file() -> Path:
    """Where torchvision keeps EfficientNet-B1's ImageNet weights once downloaded (never downloaded here)."""
    from torchvision.models import EfficientNet_B1_Weights
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(EfficientNet_B1_Weights.IMAGENET1K_V2.url).name


class _HFVision(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(pixel_values=x).last_hidden_state


def image_features(name: str) -> tuple[ImageFeatures, int]:
    """The named encoder and the image side it expects."""
    if name == "cnn":
        return ImageFeatures(small_cnn(), (0.5,) * 3, (0.25,) * 3, False, "a small CNN trained from scratch"), 64
    if name == "efficientnet_b1":
        from torchvision.models import efficientnet_b1
        net, path = efficientnet_b1(weights=None), imagenet_weights_file()
        if path.is_file():
            net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            return ImageFeatures(net.features, IMAGENET_MEAN, IMAGENET_STD, True,
                                 f"EfficientNet-B1, ImageNet weights from {path}, frozen"), 240
        return ImageFeatures(net.features, IMAGENET_MEAN, IMAGENET_STD, False,
                             f"EfficientNet-B1 from RANDOM initialisation, trained with the rest (no ImageNet "
                             f"weights at {path})"), 240
    if name in ("clip", "vit"):
        from transformers import AutoImageProcessor, CLIPVisionModel, ViTModel
        from transformers.utils import logging as hf_logging
        from ..checkpoint import is_real, model_dir
        from ..standins import is_learned
        from ..standins.wording import TRAINED_HERE
        folder = model_dir(name)
        # The checkpoints hold more than the image tower (CLIP's text tower, ViT's classifier): transformers
        # reports every unused key as a warning, which here is expected.
        level = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()
        try:
            model = (CLIPVisionModel if name == "clip" else ViTModel).from_pretrained(folder, dtype=torch.float32)
        finally:
            hf_logging.set_verbosity(level)
        processor = AutoImageProcessor.from_pretrained(folder)
        kind = ("real checkpoint" if is_real(name) else f"STAND-IN {TRAINED_HERE}" if is_learned(folder)
                else "STAND-IN with random weights")
        return ImageFeatures(_HFVision(model), processor.image_mean, processor.image_std, True,
                             f"the collection's {name} image tower ({kind}), frozen"), model.config.image_size
    raise ValueError(f"Unknown encoder {name!r}; choose one of {', '.join(ENCODERS)}")


# Copied from notebooks/captioner.ipynb: TransformerEncoderBlock
class TransformerEncoderBlock(nn.Module):
    """The original trainer's encoder: LayerNorm -> Dense(embed_dim, relu) -> self-attention -> add & LayerNorm."""

    def __init__(self, in_dim: int, tokens: int, embed_dim: int, heads: int):
        super().__init__()
        self.norm_in, self.proj = nn.LayerNorm(in_dim), nn.Linear(in_dim, embed_dim)
        self.position = nn.Parameter(torch.zeros(1, tokens, embed_dim))
        self.attn = nn.MultiheadAttention(embed_dim, heads, batch_first=True)
        self.norm_out = nn.LayerNorm(embed_dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.proj(self.norm_in(features))) + self.position
        attended, _ = self.attn(x, x, x, need_weights=False)
        return self.norm_out(x + attended)


# Copied from notebooks/captioner.ipynb: TransformerDecoderBlock
class TransformerDecoderBlock(nn.Module):
    """Token + position embeddings -> causal self-attention -> cross-attention to the image -> feed-forward;
    each followed by add & LayerNorm; then a linear layer to one logit per vocabulary word."""

    def __init__(self, vocab_size: int, seq_length: int, embed_dim: int, ff_dim: int, heads: int, dropout: float):
        super().__init__()
        self.scale = math.sqrt(embed_dim)
        self.tokens, self.positions = nn.Embedding(vocab_size, embed_dim), nn.Embedding(seq_length, embed_dim)
        self.self_attn = nn.MultiheadAttention(embed_dim, heads, dropout=dropout, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(embed_dim, heads, dropout=dropout, batch_first=True)
        self.ff = nn.Sequential(nn.Linear(embed_dim, ff_dim), nn.ReLU(), nn.Dropout(dropout),
                                nn.Linear(ff_dim, embed_dim))
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(embed_dim) for _ in range(3))
        self.dropout, self.out = nn.Dropout(dropout), nn.Linear(embed_dim, vocab_size)

    def forward(self, ids: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        length = ids.shape[1]
        x = self.tokens(ids) * self.scale + self.positions(torch.arange(length, device=ids.device))
        # No padding mask is needed: pads only ever follow a caption's last word, and the causal mask already
        # hides every later position from each real one; what pad positions predict the loss ignores.
        a, _ = self.self_attn(x, x, x, attn_mask=causal_mask(length, ids.device), need_weights=False)
        x = self.norm1(x + a)
        c, _ = self.cross_attn(x, memory, memory, need_weights=False)
        x = self.norm2(x + c)
        x = self.norm3(x + self.ff(x))
        return self.out(self.dropout(x))


class Captioner(nn.Module):
    """`Captioner(vocab_size, encoder="cnn")(images, ids)` -> logits (B, T, vocab_size) for the word after each id."""

    def __init__(self, vocab_size: int, encoder: str = "cnn", seq_length: int = 36, embed_dim: int = 512,
                 ff_dim: int = 256, enc_heads: int = 2, dec_heads: int = 4, dropout: float = 0.1):
        super().__init__()
        self.features, self.image_size = image_features(encoder)
        with torch.no_grad():
            blank = torch.zeros(1, 3, self.image_size, self.image_size, dtype=torch.uint8)
            _, tokens, width = self.features(blank).shape
        self.encoder = TransformerEncoderBlock(width, tokens, embed_dim, enc_heads)
        self.decoder = TransformerDecoderBlock(vocab_size, seq_length, embed_dim, ff_dim, dec_heads, dropout)
        self.seq_length = seq_length

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, 3, S, S) -> memory (B, N, embed_dim): what the decoder's cross-attention reads."""
        return self.encoder(self.features(images))

    def forward(self, images: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        return self.decoder(ids, self.encode(images))

    def saved_state(self) -> dict[str, torch.Tensor]:
        """Every weight the run trains; a frozen pretrained backbone is reloaded from its own source instead."""
        skip = "features.backbone." if self.features.frozen else None
        return {k: v for k, v in self.state_dict().items() if not (skip and k.startswith(skip))}

    def load_saved_state(self, state: dict[str, torch.Tensor]) -> None:
        missing, unexpected = self.load_state_dict(state, strict=False)
        missing = [k for k in missing if not (self.features.frozen and k.startswith("features.backbone."))]
        if missing or unexpected:
            raise ValueError(f"checkpoint does not fit this model: missing {missing[:5]}, unexpected {unexpected[:5]}")
