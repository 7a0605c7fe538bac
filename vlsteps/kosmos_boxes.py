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

from .plotting import draw_boxes


def _box(box, width: int, height: int):
    """A normalized box as pixel (x1, y1, x2, y2), or None if it is not 4 finite numbers in order."""
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
    x1, x2 = (min(max(v, 0.0), 1.0) for v in (x1, x2))
    y1, y2 = (min(max(v, 0.0), 1.0) for v in (y1, y2))
    if x2 <= x1 or y2 <= y1:
        return None
    return (round(x1 * width), round(y1 * height), round(x2 * width), round(y2 * height))


def entities_to_boxes(entities, image_size) -> list[tuple[str, tuple[int, int, int, int]]]:
    """`[(label, (x1, y1, x2, y2)), ...]` in pixels of an image of `image_size` = (width, height), one per
    box (an entity may have several). Anything that is not a well-formed entity or box is left out."""
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
        for box in boxes:
            pixels = _box(box, width, height)
            if pixels is not None:
                out.append((label, pixels))
    return out


def draw_entities(image: Image.Image, entities) -> Image.Image:
    """A copy of `image` with each entity's boxes drawn and labelled; no valid boxes, no drawing."""
    boxes = entities_to_boxes(entities, image.size)
    if not boxes:
        return image.convert("RGB").copy()
    return draw_boxes(image, [b for _, b in boxes], [label for label, _ in boxes])
