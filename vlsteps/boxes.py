"""The one box type of the grounding models (Qwen2.5-VL's JSON, Kosmos-2's entities) and the one clamp.

Both parsers and `vlsteps.draw_boxes` use it, so a box is cut to its image in one place, the same way.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Box:
    """A labelled box, x1 <= x2 and y1 <= y2 (pixels, or 0..1 fractions before `scaled`)."""
    x1: float
    y1: float
    x2: float
    y2: float
    label: str = ""

    @classmethod
    def ordered(cls, x1: float, y1: float, x2: float, y2: float, label: str = "") -> Box:
        """Inverted corners swapped: a model may name the corners in either order."""
        return cls(min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2), label)

    @property
    def xyxy(self) -> tuple[float, float, float, float]:
        return (self.x1, self.y1, self.x2, self.y2)

    def scaled(self, sx: float, sy: float) -> Box:
        return Box(self.x1 * sx, self.y1 * sy, self.x2 * sx, self.y2 * sy, self.label)

    def clamped(self, width: float, height: float) -> Box | None:
        """The part inside 0..width x 0..height; None when no area is left (nothing to draw)."""
        x1, x2 = (min(max(v, 0.0), width) for v in (self.x1, self.x2))
        y1, y2 = (min(max(v, 0.0), height) for v in (self.y1, self.y2))
        if x2 <= x1 or y2 <= y1:
            return None
        return Box(x1, y1, x2, y2, self.label)


def iou(a, b) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes (or Boxes): the grounding scores' measure."""
    a, b = (v.xyxy if isinstance(v, Box) else tuple(v) for v in (a, b))
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(0.0, w) * max(0.0, h)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
