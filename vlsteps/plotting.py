"""Pictures: image grids with captions, labelled boxes, and heat maps over images."""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
from PIL import Image, ImageDraw, ImageFont

BOX_COLORS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45"]


def show_grid(images, captions=None, ncols: int = 4, size: float = 3.0, title: str | None = None):
    """A grid of images with a caption under each; returns the figure."""
    images = list(images)
    if not images:
        raise ValueError("show_grid needs at least one image")
    captions = list(captions) if captions is not None else [""] * len(images)
    if len(captions) != len(images):
        raise ValueError(f"{len(images)} images but {len(captions)} captions")
    ncols = min(ncols, len(images))
    nrows = math.ceil(len(images) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, caption in zip(axes.flat, images, captions):
        ax.imshow(image)
        ax.set_title(caption, fontsize=9, wrap=True)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def draw_boxes(image: Image.Image, boxes, labels=None, normalized: bool = False) -> Image.Image:
    """A copy of image with labelled boxes (x1, y1, x2, y2); `normalized` boxes are in 0..1.

    Line width and label size grow with the image, so labels stay readable on a 4000-pixel photo."""
    out = image.convert("RGB").copy()
    draw = ImageDraw.Draw(out)
    labels = list(labels) if labels is not None else [None] * len(boxes)
    w, h = out.size
    width = max(2, round(min(w, h) / 150))
    font = ImageFont.load_default(size=max(11, round(min(w, h) / 30)))
    for i, (box, label) in enumerate(zip(boxes, labels)):
        x1, y1, x2, y2 = (float(v) for v in box)
        if normalized:
            x1, y1, x2, y2 = x1 * w, y1 * h, x2 * w, y2 * h
        x1, x2 = sorted((min(max(x1, 0), w - 1), min(max(x2, 0), w - 1)))
        y1, y2 = sorted((min(max(y1, 0), h - 1), min(max(y2, 0), h - 1)))
        color = BOX_COLORS[i % len(BOX_COLORS)]
        draw.rectangle([x1, y1, x2, y2], outline=color, width=width)
        if label:
            left, top, right, bottom = draw.textbbox((0, 0), str(label), font=font)
            pad = width + 2
            ty = y1 - (bottom - top) - 2 * pad if y1 - (bottom - top) - 2 * pad >= 0 else y1
            draw.rectangle([x1, ty, x1 + (right - left) + 2 * pad, ty + bottom + 2 * pad], fill=color)
            draw.text((x1 + pad, ty + pad), str(label), fill="white", font=font)
    return out


def overlay_heatmap(image: Image.Image, heat, alpha: float = 0.5, cmap: str = "jet") -> Image.Image:
    """Blend a 2-D heat map (any size, any range) over image, stretched to the image size."""
    heat = np.asarray(heat, dtype=np.float32)
    if heat.ndim != 2:
        raise ValueError(f"heat map must be 2-D, got shape {heat.shape}")
    span = heat.max() - heat.min()
    heat = (heat - heat.min()) / span if span > 0 else np.zeros_like(heat)
    colored = (plt.get_cmap(cmap)(heat)[..., :3] * 255).astype(np.uint8)
    colored = Image.fromarray(colored).resize(image.size, Image.BILINEAR)
    return Image.blend(image.convert("RGB"), colored, alpha)
