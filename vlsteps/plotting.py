"""Pictures: image grids with captions, labelled boxes, and heat maps over images."""
from __future__ import annotations

import math
import textwrap
from collections.abc import Iterable

import matplotlib.pyplot as plt
from matplotlib.cm import ScalarMappable
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .boxes import Box

BOX_COLORS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45"]


CAPTION_SIZE = 9
CAPTION_LINES = 4


def fit_caption(text: str, width_px: float, title, renderer, max_lines: int = CAPTION_LINES) -> str:
    """`text` wrapped to fit `width_px` and cut to `max_lines` with "…", measured on the `title` artist itself (a
    probe in another figure measured a few pixels off on some matplotlib versions)."""
    text = str(text)
    if not text.strip():
        return ""

    def width(s: str) -> float:
        title.set_text(s)
        return title.get_window_extent(renderer).width

    chars = max(len(line) for line in text.splitlines())
    while True:
        lines = [w for line in text.splitlines() for w in (textwrap.wrap(line, chars) or [""])]
        if len(lines) > max_lines:
            lines = lines[:max_lines]
            lines[-1] = lines[-1][:max(chars - 1, 1)].rstrip() + "…"
        fitted = "\n".join(lines)
        if chars <= 4 or width(fitted) <= width_px:
            return fitted
        chars -= 1


def show_grid(images, captions=None, ncols: int = 4, size: float = 3.0, title: str | None = None,
              colorbar: str | None = None, cmap: str = "jet"):
    """A grid of images with a caption under each, each caption wrapped or cut to its own panel.

    `colorbar` (its label) adds the scale of heat maps drawn by `overlay_heatmap` with `cmap`: each map is
    stretched from its own lowest value to its own highest, so the bar reads low..high, not absolute values."""
    images = list(images)
    if not images:
        raise ValueError("show_grid needs at least one image")
    captions = list(captions) if captions is not None else [""] * len(images)
    if len(captions) != len(images):
        raise ValueError(f"{len(images)} images but {len(captions)} captions")
    ncols = min(ncols, len(images))
    nrows = math.ceil(len(images) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.6), squeeze=False,
                             layout="constrained")
    for ax in axes.flat[len(images):]:
        fig.delaxes(ax)                     # no empty panels
    shown = list(axes.flat[:len(images)])
    for ax, image in zip(shown, images):
        ax.imshow(image)
        ax.axis("off")
        ax.set_title("", fontsize=CAPTION_SIZE)
    if colorbar:
        bar = fig.colorbar(ScalarMappable(cmap=cmap), ax=shown, fraction=0.03, ticks=[0, 1])
        bar.ax.set_yticklabels(["low", "high"])
        bar.set_label(colorbar)
    if title:
        fig.suptitle(title)
    renderer = fig.canvas.get_renderer()
    # Fit, lay out, measure again: taller captions shrink the (aspect-locked) images and so the widths to fit.
    # Constrained layout settles over two draws (matplotlib 3.10 lags one), so each pass lays out twice.
    for _ in range(4):
        fig.draw_without_rendering()
        fig.draw_without_rendering()
        fitted = True
        for ax, caption in zip(shown, captions):
            width = ax.get_window_extent(renderer).width
            if ax.title.get_window_extent(renderer).width > width or not ax.get_title() and caption:
                ax.set_title(fit_caption(caption, width, ax.title, renderer), fontsize=CAPTION_SIZE)
                fitted = False
        if fitted:
            break
    return fig


def draw_boxes(image: Image.Image, boxes: Iterable[Box]) -> Image.Image:
    """A copy of image with each box drawn and labelled (pixels); boxes are cut to the image, empty ones skipped.

    Line width and label size grow with the image, so labels stay readable on a 4000-pixel photo."""
    out = image.convert("RGB").copy()
    draw = ImageDraw.Draw(out)
    w, h = out.size
    width = max(2, round(min(w, h) / 150))
    font = ImageFont.load_default(size=max(11, round(min(w, h) / 30)))
    for i, box in enumerate(boxes):
        box = box.clamped(w - 1, h - 1)
        if box is None:
            continue
        x1, y1, x2, y2 = box.xyxy
        color = BOX_COLORS[i % len(BOX_COLORS)]
        draw.rectangle([x1, y1, x2, y2], outline=color, width=width)
        if box.label:
            left, top, right, bottom = draw.textbbox((0, 0), box.label, font=font)
            pad = width + 2
            ty = y1 - (bottom - top) - 2 * pad if y1 - (bottom - top) - 2 * pad >= 0 else y1
            draw.rectangle([x1, ty, x1 + (right - left) + 2 * pad, ty + bottom + 2 * pad], fill=color)
            draw.text((x1 + pad, ty + pad), box.label, fill="white", font=font)
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
