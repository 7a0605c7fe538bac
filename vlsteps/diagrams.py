"""Architecture diagrams drawn with matplotlib: labelled boxes, arrows, and a row of stages.

The notebooks draw their model's architecture from real config values; the drawing itself repeats, so it
lives here and the notebook cell holds only what is specific to the model (the stages and their numbers).
"""
from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.patches import FancyBboxPatch

EDGE = "#444444"


def canvas(width: float, height: float, figsize: tuple[float, float], ncols: int = 1, width_ratios=None):
    """A figure of `ncols` empty panels, each with data coordinates 0..width x 0..height and no axes drawn."""
    fig, axes = plt.subplots(1, ncols, figsize=figsize, squeeze=False,
                             gridspec_kw={"width_ratios": width_ratios} if width_ratios else None)
    for ax in axes.flat:
        ax.set_xlim(0, width)
        ax.set_ylim(0, height)
        ax.axis("off")
    return fig, list(axes.flat)


def box(ax, x: float, y: float, w: float, h: float, text: str, color: str, fontsize: float = 9):
    """A rounded box with its lower-left corner at (x, y) and `text` centred in it."""
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.08", fc=color, ec=EDGE,
                                lw=1))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=fontsize)


def arrow(ax, start, end, text: str = "", at=None, color: str = EDGE, ha: str = "left", fontsize: float = 8):
    """An arrow from `start` to `end`, `text` beside its middle (or at `at`)."""
    ax.annotate("", xy=end, xytext=start, arrowprops=dict(arrowstyle="-|>", color=color, lw=1.3))
    if text:
        x, y = at or ((start[0] + end[0]) / 2, (start[1] + end[1]) / 2)
        ax.text(x, y, text, fontsize=fontsize, color=color, ha=ha, va="center")


def two_towers(towers, space: str, pairs: int = 5, title: str = "two towers, one space"):
    """A dual encoder (CLIP-style) beside its contrastive loss: `towers` is `[(input text, tower text, color), ...]`
    (the first drawn on top), each projected into the box `space`; the right panel is the `pairs` x `pairs` matrix
    of image-text scores whose diagonal is the target. Returns the figure."""
    fig, (ax, bx) = canvas(10, 6, figsize=(12, 4.2), ncols=2, width_ratios=[1.4, 1])
    for (data, tower, color), y in zip(towers, (3.6, 0.6)):
        box(ax, 0.1, y + 0.15, 1.9, 1.2, data, "#e9ecef")
        box(ax, 2.6, y, 2.9, 1.5, tower, color)
        arrow(ax, (2.0, y + 0.75), (2.6, y + 0.75))
        label_y = y + 0.75 + (0.6 if y > 3 else -0.6)          # above the upper arrow, below the lower one
        arrow(ax, (5.5, y + 0.75), (7.0, 3.0), "projection\n+ L2 norm", at=(5.75, label_y))
    box(ax, 7.0, 2.0, 2.9, 2.0, space, "#fff3bf")
    ax.set_title(title)
    bx.set_xlim(-0.8, pairs + 0.1)
    bx.set_ylim(-0.1, pairs + 0.7)
    for i in range(pairs):
        bx.text(-0.4, pairs - i - 0.5, f"I{i + 1}", ha="center", va="center", fontsize=9)
        bx.text(i + 0.5, pairs + 0.35, f"T{i + 1}", ha="center", va="center", fontsize=9)
        for j in range(pairs):
            box(bx, j + 0.05, pairs - i - 0.95, 0.9, 0.9, "match" if i == j else "I·T",
                "#8ce99a" if i == j else "#f1f3f5", fontsize=7)
    bx.set_title("contrastive loss: each row and column\nis a softmax; the diagonal is the target")
    fig.tight_layout()
    return fig


def pipeline(stages, title: str | None = None, box_width: float = 1.5, gap: float = 0.4, height: float = 1.6,
             fontsize: float = 9):
    """Stages `[(text, color), ...]` left to right, an arrow between each pair; returns the figure."""
    step = box_width + gap
    fig, (ax,) = canvas(len(stages) * step - gap, 1.0, figsize=(len(stages) * step * 0.95, height))
    ax.set_xlim(-0.05, len(stages) * step - gap + 0.05)
    ax.set_ylim(-0.1, 1.1)
    for i, (text, color) in enumerate(stages):
        box(ax, i * step, 0, box_width, 1, text, color, fontsize)
        if i:
            arrow(ax, (i * step - gap + 0.05, 0.5), (i * step - 0.05, 0.5))
    if title:
        ax.set_title(title, fontsize=fontsize + 1)
    return fig


def blip():
    """BLIP (Li et al., 2022) in two panels: MED, one model that reads text in three ways over the image tokens of
    the real checkpoints (384 px, 16 px patches), and CapFilt, the loop that cleans its web training data."""
    fig, (ax1, ax2) = canvas(10, 7, figsize=(15, 5.4), ncols=2, width_ratios=[1.35, 1])
    self_, cross, causal, ffn, loss, data = "#cfe2ff", "#ffd8a8", "#ffc9c9", "#d3f9d8", "#fff3bf", "#e9ecef"
    red, blue = "#c92a2a", "#1971c2"
    box(ax1, 0.2, 1.2, 2.0, 3.6, "Image encoder\n(ViT)\n\nimage tokens:\n[CLS] + 576 patches", data)
    ax1.text(1.2, 0.5, "image", ha="center", fontsize=9)
    columns = [("Text encoder", "[CLS] + text", [("bi self-attn", self_), ("feed forward", ffn)], "ITC\n(contrastive)"),
               ("Image-grounded\ntext encoder", "[ENC] + text",
                [("bi self-attn", self_), ("cross-attn", cross), ("feed forward", ffn)], "ITM\n(match: yes/no)"),
               ("Image-grounded\ntext decoder", "[DEC] + text",
                [("causal self-attn", causal), ("cross-attn", cross), ("feed forward", ffn)], "LM\n(write the text)")]
    ax1.plot([1.2, 1.2, 7.5], [1.2, 0.95, 0.95], color=red, lw=1.3)  # image tokens run under the text stacks ...
    for c, (title, tokens, layers, head) in enumerate(columns):
        x = 3.0 + c * 2.35
        ax1.text(x + 1.0, 6.6, title, ha="center", va="center", fontsize=9, weight="bold")
        for j, (name, color) in enumerate(layers):
            box(ax1, x, 1.2 + j * 1.15, 2.0, 0.9, name, color, fontsize=8)
        ax1.text(x + 1.0, 0.5, tokens, ha="center", fontsize=9)
        box(ax1, x + 0.25, 5.0, 1.5, 0.95, head, loss, fontsize=8)
        arrow(ax1, (x + 1.0, 1.2 + len(layers) * 1.15 - 0.25), (x + 1.0, 5.0))
        if c > 0:                                                     # ... and up the gap into each cross-attn
            ax1.plot([x - 0.18, x - 0.18], [0.95, 2.8], color=red, lw=1.3)
            arrow(ax1, (x - 0.18, 2.8), (x, 2.8), color=red)
    arrow(ax1, (2.2, 4.6), (3.25, 5.3), "image [CLS]", at=(1.75, 5.25), color=blue)
    ax1.text(5.0, 0.05, "same colour = shared weights (encoder and decoder share cross-attn and feed forward); "
             "red: image tokens into cross-attention", ha="center", fontsize=8, style="italic")
    ax1.set_title("MED: one model, three ways to read text")
    box(ax2, 0.1, 5.2, 2.8, 1.2, "web images +\nalt-texts (noisy)", data)
    box(ax2, 0.1, 0.3, 2.8, 1.2, "human-written\nCOCO captions", data)
    box(ax2, 3.9, 4.3, 2.5, 1.0, "Captioner\n(decoder, LM)", causal)
    box(ax2, 3.9, 2.2, 2.5, 1.0, "Filter\n(ITM encoder)", cross)
    box(ax2, 7.1, 2.0, 2.8, 1.5, "bootstrapped data:\nweb images with their\nkept texts + COCO", ffn)
    box(ax2, 7.1, 4.6, 2.8, 1.0, "pre-train a\nnew BLIP on it", loss)
    arrow(ax2, (2.9, 5.7), (3.9, 5.0), "images", at=(3.1, 5.65))
    arrow(ax2, (2.9, 5.3), (3.9, 3.0), "alt-texts", at=(3.05, 4.1))
    arrow(ax2, (5.15, 4.3), (5.15, 3.2), "synthetic\ncaptions", at=(5.25, 3.75))
    arrow(ax2, (6.4, 2.7), (7.1, 2.75), "kept", at=(6.5, 3.0))
    arrow(ax2, (2.9, 1.2), (4.6, 2.2), "fine-tune captioner\nand filter on it", at=(2.2, 2.0))
    arrow(ax2, (2.9, 0.7), (8.5, 2.0), "added as they are", at=(5.6, 1.05))
    arrow(ax2, (8.5, 3.5), (8.5, 4.6))
    ax2.set_title("CapFilt: the model cleans its own training data")
    fig.tight_layout()
    return fig
