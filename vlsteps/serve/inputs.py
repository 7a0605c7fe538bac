"""What a request may carry in, checked before any model sees it: images (URL, data URL, upload) and texts.

Every refusal is a `BadInput` with an HTTP status and one sentence; the routes turn it into their API's error shape.
"""
from __future__ import annotations

import base64
import binascii
import logging
import re
from typing import Annotated

from PIL import Image
from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

from ..images import FORMATS, ImageLoadError, load_image
from .settings import Settings

log = logging.getLogger("vlsteps.serve")
MAX_ASPECT = 200        # Qwen2-VL's processor's limit on long side / short side (smart_resize's MAX_RATIO)
# PhotoPrism writes parameters after "; " (media.DataUrl: "data:text/plain; charset=utf-8;base64,...")
DATA_URL = re.compile(r"data:(?P<type>[\w.+-]+/[\w.+-]+)?(?:\s*;\s*[\w-]+=[^;,]*)*(?P<b64>\s*;\s*base64)?,", re.I)


class BadInput(ValueError):
    """A request the service will not run: `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def image_from(source: str, settings: Settings) -> Image.Image:
    """An RGB image from an http(s) URL (fetched under the address policy, deadline and byte cap) or a data URL."""
    if not isinstance(source, str) or not source.strip():
        raise BadInput("No image: send an http(s) URL or a data URL (data:image/jpeg;base64,...).")
    source = source.strip()
    if source[:5].lower() == "data:":
        return image_bytes(_data_url_bytes(source, settings.max_image_bytes), settings)
    if not source.lower().startswith(("http://", "https://")):
        raise BadInput(f"Unsupported image source {source[:60]!r}: send an http(s) URL or a data URL.")
    return _loaded(source, settings, timeout=settings.fetch_timeout_s, policy=settings.policy)


def image_bytes(data: bytes, settings: Settings) -> Image.Image:
    """An RGB image from the bytes of an uploaded file."""
    return _loaded(data, settings)


def _loaded(source, settings: Settings, **fetch) -> Image.Image:
    """`load_image`, every failure of it a `BadInput`: its own `ImageLoadError`s, and whatever else a decoder raises
    on bytes a client sent (Pillow raises a bare ValueError for a PNG whose text chunk inflates past its cap, and
    its plugins raise what they meet), so no image is a 500 whichever decoder reads it. Then the shape: no model
    here reads a strip (Qwen2-VL refuses one; CLIP scales its short side up, 1x20000 pixels to gigabytes)."""
    try:
        image = load_image(source, max_bytes=settings.max_image_bytes, **fetch)
    except ImageLoadError as e:
        message = str(e)
        raise BadInput(message, 403 if message.startswith("Refused") else 413 if "limit" in message else 422) from None
    except Exception as e:      # see the docstring: any decoder's failure on a client's bytes is the client's
        log.info("image not decoded: %r", e)
        raise BadInput(f"The image could not be decoded ({e.__class__.__name__}); send a "
                       f"{', '.join(FORMATS[:-1])} or {FORMATS[-1]} file.", 422) from None
    if max(image.size) > MAX_ASPECT * min(image.size):
        raise BadInput(f"The image is {image.width}x{image.height} pixels, one side over {MAX_ASPECT} times the "
                       "other; crop or pad it first.", 422)
    return image


def _data_url_bytes(url: str, max_bytes: int) -> bytes:
    match = DATA_URL.match(url)
    kind = (match and match["type"] or "").lower()
    if kind and not kind.startswith("image/") and kind != "application/octet-stream":
        raise BadInput(f"The data URL holds {kind}, not an image: send a photo (data:image/jpeg;base64,...).", 415)
    if not match or not match["b64"]:
        raise BadInput("A data URL must be base64: data:image/jpeg;base64,<data>.")
    payload = url[match.end():]
    if len(payload) > (max_bytes + 2) // 3 * 4 + 4:    # refused before decoding: base64 is 4 chars per 3 bytes
        raise BadInput(f"The data URL holds more than {max_bytes / 1e6:.0f} MB; shrink the image first.", 413)
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise BadInput("The data URL's payload is not valid base64.") from None


def _utf8(value):
    """Refuses a str that is not text: a lone surrogate ("\\ud800" in JSON) encodes to nothing a tokenizer reads."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as e:
            raise PydanticCustomError("lone_surrogate", "a lone surrogate {char} at character {at} is not text; send "
                                      "UTF-8 (a \\ud800-\\udfff escape must be half of a pair)",
                                      {"char": ascii(value[e.start]), "at": e.start}) from None
    return value


Text = Annotated[str, BeforeValidator(_utf8)]     # a request's text field: a str that is text, else 422


def texts_within(texts, settings: Settings) -> list[str]:
    """The texts, refused when there are none, too many or one is too long."""
    if not isinstance(texts, list) or not texts:
        raise BadInput('Send at least one text: {"texts": ["a photo of a cat"]}.', 422)
    if len(texts) > settings.max_texts:
        raise BadInput(f"{len(texts)} texts in one request; at most {settings.max_texts}.", 413)
    for text in texts:
        if not isinstance(text, str):
            raise BadInput("Every text must be a string.", 422)
        if len(text) > settings.max_text_chars:
            raise BadInput(f"A text of {len(text)} characters; at most {settings.max_text_chars}.", 413)
    return texts
