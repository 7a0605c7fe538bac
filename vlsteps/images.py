"""Images in: real sample photos that ship inside installed packages, and guarded loading of user images."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

MAX_BYTES = 20 * 1024 * 1024    # a photo, not a dataset
MAX_PIXELS = 40_000_000         # ~ 8000 x 5000; past that it is a decompression bomb or a scan
TIMEOUT_S = 10


class ImageLoadError(ValueError):
    """An image could not be loaded; the message says why and what to do."""


def _skimage(name):
    def load():
        from skimage import data
        return getattr(data, name)()
    return load


def _motorcycle_left():
    from skimage import data
    return data.stereo_motorcycle()[0]


def _grace_hopper():
    from matplotlib import cbook
    with cbook.get_sample_data("grace_hopper.jpg") as f:
        return np.asarray(Image.open(f).convert("RGB"))


SAMPLE_PHOTOS = {
    "chelsea": _skimage("chelsea"),          # a tabby cat
    "coffee": _skimage("coffee"),            # a cup of coffee on a saucer
    "astronaut": _skimage("astronaut"),      # Eileen Collins in a space suit
    "rocket": _skimage("rocket"),            # a rocket on its launch pad
    "motorcycle": _motorcycle_left,          # a motorcycle in a studio
    "grace_hopper": _grace_hopper,           # Grace Hopper in uniform
}


def sample_photo(name: str) -> Image.Image:
    """One of the real photos that scikit-image and matplotlib install: no network needed."""
    if name not in SAMPLE_PHOTOS:
        raise KeyError(f"No sample photo {name!r}; choose one of: {', '.join(SAMPLE_PHOTOS)}")
    return Image.fromarray(SAMPLE_PHOTOS[name]()).convert("RGB")


def sample_photos(names=None) -> dict[str, Image.Image]:
    return {name: sample_photo(name) for name in (names or SAMPLE_PHOTOS)}


def _fetch(url: str, timeout: float, max_bytes: int) -> bytes:
    import requests
    try:
        with requests.get(url, stream=True, timeout=timeout) as response:
            response.raise_for_status()
            declared = int(response.headers.get("Content-Length") or 0)
            if declared > max_bytes:
                raise ImageLoadError(f"{url} is {declared / 1e6:.1f} MB, over the {max_bytes / 1e6:.0f} MB limit; "
                                     "download and shrink it first")
            chunks, size = [], 0
            for chunk in response.iter_content(64 * 1024):
                size += len(chunk)
                if size > max_bytes:
                    raise ImageLoadError(f"{url} is over the {max_bytes / 1e6:.0f} MB limit; "
                                         "download and shrink it first")
                chunks.append(chunk)
            return b"".join(chunks)
    except requests.RequestException as e:
        raise ImageLoadError(f"Could not fetch {url}: {e.__class__.__name__}: {e}. "
                             "Check the URL and your network, or pass a local file.") from None


def load_image(source, *, timeout: float = TIMEOUT_S, max_bytes: int = MAX_BYTES,
               max_pixels: int = MAX_PIXELS) -> Image.Image:
    """An RGB PIL image from a PIL image, a path or an http(s) URL, with size limits and clear errors."""
    if isinstance(source, Image.Image):
        return source.convert("RGB")
    source = str(source)
    if source.startswith(("http://", "https://")):
        data = _fetch(source, timeout, max_bytes)
    elif "://" in source:
        raise ImageLoadError(f"Unsupported URL scheme in {source!r}: use http(s) or a local path.")
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            raise ImageLoadError(f"No such image file: {path}")
        if path.stat().st_size > max_bytes:
            raise ImageLoadError(f"{path} is {path.stat().st_size / 1e6:.1f} MB, over the "
                                 f"{max_bytes / 1e6:.0f} MB limit; shrink it first")
        data = path.read_bytes()
    try:
        image = Image.open(io.BytesIO(data))   # reads the header only: size is known before decoding
        width, height = image.size
        if width * height > max_pixels:
            raise ImageLoadError(f"{source} is {width}x{height} pixels, over the {max_pixels:,}-pixel limit "
                                 "(a decompression bomb or a huge scan); resize it first")
        return image.convert("RGB")
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError) as e:
        raise ImageLoadError(f"{source} is not a readable image ({e.__class__.__name__}); "
                             "pass a JPEG, PNG, WebP, GIF or BMP") from None
