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

    def iou(self, other: Box) -> float:
        """Intersection over union of two boxes: how a predicted box is scored against the true one."""
        w = min(self.x2, other.x2) - max(self.x1, other.x1)
        h = min(self.y2, other.y2) - max(self.y1, other.y1)
        inter = max(w, 0.0) * max(h, 0.0)
        union = (self.x2 - self.x1) * (self.y2 - self.y1) + (other.x2 - other.x1) * (other.y2 - other.y1) - inter
        return inter / union if union > 0 else 0.0
