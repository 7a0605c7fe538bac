"""What a request may carry in, checked before any model sees it: images (URL, data URL, upload) and texts.

Every refusal is a `BadInput` with an HTTP status and one sentence; the routes turn it into their API's error shape.
"""
from __future__ import annotations

import base64
import binascii
import re

from PIL import Image

from ..images import ImageLoadError, load_image
from .settings import Settings

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
    try:
        return load_image(source, timeout=settings.fetch_timeout_s, max_bytes=settings.max_image_bytes,
                          policy=settings.policy)
    except ImageLoadError as e:
        message = str(e)
        status = 403 if message.startswith("Refused") else 413 if "limit" in message else 422
        raise BadInput(message, status) from None


def image_bytes(data: bytes, settings: Settings) -> Image.Image:
    """An RGB image from the bytes of an uploaded file."""
    try:
        return load_image(data, max_bytes=settings.max_image_bytes)
    except ImageLoadError as e:
        raise BadInput(str(e), 413 if "limit" in str(e) else 422) from None


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
