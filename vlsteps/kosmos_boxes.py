"""Kosmos-2 grounding: entities from `Kosmos2Processor.post_process_generation` to labelled pixel boxes.

`post_process_generation(text)` returns `(caption, entities)` with each entity
`(phrase, (start, end), [(x1, y1, x2, y2), ...])`, the boxes in 0..1 of the processed (224 x 224) image.
Because the model's processor stretches the photo to a square, the same fractions map straight back onto
the original photo. A model can emit anything, so malformed entities and boxes are skipped, never fatal.
"""
from __future__ import annotations

import math
from numbers import Real

from PIL import Image

from .boxes import Box
from .plotting import draw_boxes


def _box(box, label: str, width: int, height: int) -> Box | None:
    """A normalized box as a Box in whole pixels, or None if it is not 4 finite numbers in order."""
    if isinstance(box, (str, bytes)):
        return None
    try:
        values = list(box)
    except TypeError:
        return None
    if len(values) != 4 or not all(isinstance(v, Real) and not isinstance(v, bool) for v in values):
        return None
    try:
        x1, y1, x2, y2 = (float(v) for v in values)
    except OverflowError:   # an int or fraction too large for a float
        return None
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        return None
    inside = Box(x1, y1, x2, y2, label).clamped(1.0, 1.0)     # None too for corners out of order (no area)
    if inside is None:
        return None
    return Box(*(round(v) for v in inside.scaled(width, height).xyxy), label)


def entities_to_boxes(entities, image_size) -> list[Box]:
    """Labelled pixel boxes on an image of `image_size` = (width, height), one per box (an entity may have
    several). Anything that is not a well-formed entity or box is left out."""
    width, height = image_size
    out = []
    if not isinstance(entities, (list, tuple)):
        return out
    for entity in entities:
        if not isinstance(entity, (list, tuple)) or len(entity) != 3:
            continue
        phrase, _span, boxes = entity
        if not isinstance(boxes, (list, tuple)):
            continue
        label = phrase.strip() if isinstance(phrase, str) else ""
        out.extend(b for b in (_box(box, label, width, height) for box in boxes) if b is not None)
    return out


def draw_entities(image: Image.Image, entities) -> Image.Image:
    """A copy of `image` with each entity's boxes drawn and labelled; no valid boxes, no drawing."""
    return draw_boxes(image, entities_to_boxes(entities, image.size))
