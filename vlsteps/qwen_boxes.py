"""Qwen2.5-VL grounding: boxes out of its fenced JSON answer, parsed without ever raising (Kosmos-2: kosmos_boxes).

Qwen2.5-VL answers "where is X?" prompts with text such as

    ```json
    [{"bbox_2d": [135, 114, 1016, 672], "label": "cat"}]
    ```

where the coordinates are pixels of the *resized* image the model saw (its size is
`image_grid_thw[0, 1:] * 14`), not of the original photo. A model's text is untrusted input: it may be
cut off by `max_new_tokens`, wrapped in prose, malformed, or (from random weights) gibberish. The parser
therefore returns only well-formed boxes and an empty list for everything else.
"""
from __future__ import annotations

import json
import math
import re

from .boxes import Box

# An opening fence: one that JSON follows (a closing fence, or backticks in a label, are followed by something else).
_OPENING_FENCE = re.compile(r"```[ \t]*(?:json|JSON)?\s*(?=[\[{])")


def _number(v) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    try:
        v = float(v)
    except OverflowError:   # an int too large for a float
        return None
    return v if math.isfinite(v) else None


def _box(item) -> Box | None:
    """One list entry as a Box, or None when it is not {"bbox_2d": [4 finite numbers], "label": ...}."""
    if not isinstance(item, dict):
        return None
    coords = item.get("bbox_2d")
    if not isinstance(coords, (list, tuple)) or len(coords) != 4:
        return None
    nums = [_number(v) for v in coords]
    if any(v is None for v in nums):
        return None
    label = item.get("label", "")
    label = label if isinstance(label, str) else "" if label is None else str(label)
    # Negatives clipped at 0 here; the far edges once the image size is known (`rescale`).
    return Box.ordered(*nums, label.strip()).clamped(math.inf, math.inf)


class _Truncated(Exception):
    pass


def _runs_off_end(text: str, start: int) -> bool:
    """Whether the bracket opened at text[start] is still open (or inside a string) when the text ends."""
    depth, in_string, escaped = 0, False, False
    for ch in text[start:]:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
            if depth == 0:
                return False
    return True


def _int(digits: str) -> int | float:
    """A JSON integer; one past Python's int-from-str digit limit is out of range anyway, so it becomes inf."""
    try:
        return int(digits)
    except ValueError:
        return float(digits)


def _json_values(text: str):
    """Every JSON value that starts at a '[' or '{' in text, in order, skipping prose and stray brackets.

    Raises _Truncated when a value runs off the end of the text: a cut-off answer is not an answer, and the
    complete objects inside it must not be taken for the whole list.
    """
    decoder = json.JSONDecoder(parse_int=_int)
    i = 0
    while True:
        starts = [j for j in (text.find("[", i), text.find("{", i)) if j >= 0]
        if not starts:
            return
        i = min(starts)
        try:
            value, end = decoder.raw_decode(text, i)
        except json.JSONDecodeError:
            if _runs_off_end(text, i):
                raise _Truncated from None
            i += 1
            continue
        yield value
        i = end


def parse_boxes(text) -> list[Box]:
    """The boxes in a Qwen2.5-VL grounding answer; [] for anything that is not a complete, valid answer.

    Accepts the answer with or without ```json fences and with prose around it, and a single object instead
    of a list; swaps inverted corners and clips negative coordinates at 0; skips entries without a 4-number
    `bbox_2d`. Returns [] (never raising) for truncated JSON, garbage, and anything that is not a string.
    """
    if not isinstance(text, str) or not text.strip():
        return []
    # The JSON inside an opening fence first (prose before it may hold brackets of its own), then the whole text:
    # what looked like a fence may be backticks in a label. Where the JSON ends is found by parsing, not by the
    # closing fence (a label may hold backticks too).
    fence = _OPENING_FENCE.search(text)
    for payload in ([text[fence.end():]] if fence else []) + [text]:
        try:
            boxes = _first_boxes(payload)
        except (_Truncated, RecursionError):   # cut off by max_new_tokens, or absurdly nested brackets
            continue
        if boxes:
            return boxes
    return []


def _first_boxes(text: str) -> list[Box]:
    """The boxes of the first JSON value in text that holds any; [] when none does."""
    for value in _json_values(text):
        items = value if isinstance(value, list) else [value]
        boxes = [b for b in (_box(item) for item in items) if b is not None]
        if boxes:
            return boxes
    return []


def input_size(image_grid_thw, patch_size: int = 14) -> tuple[int, int]:
    """(width, height) in pixels of the resized image the model saw: the patch grid times the patch size."""
    rows = image_grid_thw.tolist() if hasattr(image_grid_thw, "tolist") else list(image_grid_thw)
    row = rows[0] if rows and isinstance(rows[0], (list, tuple)) else rows
    _, grid_h, grid_w = (int(v) for v in row)
    return grid_w * patch_size, grid_h * patch_size


def rescale(boxes: list[Box], from_size: tuple[int, int], to_size: tuple[int, int]) -> list[Box]:
    """Boxes in from_size (w, h) pixels mapped to to_size (w, h) pixels, clipped to the image."""
    (fw, fh), (tw, th) = from_size, to_size
    if fw <= 0 or fh <= 0:
        raise ValueError(f"from_size must be positive, got {from_size}")
    sx, sy = tw / fw, th / fh
    return [c for c in (b.scaled(sx, sy).clamped(tw, th) for b in boxes) if c is not None]
