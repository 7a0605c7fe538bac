"""Images in: real sample photos that ship inside installed packages, and guarded loading of user images."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .net import AddressPolicy, FetchError, fetch

MAX_BYTES = 20 * 1024 * 1024    # a photo, not a dataset
MAX_PIXELS = 40_000_000         # ~ 8000 x 5000; past that it is a decompression bomb or a scan
# The formats decoded, and the ones the error message offers: Image.open tries no other plugin (EPS would run
# Ghostscript). MPO, the multi-picture JPEG of some cameras, opens as JPEG.
FORMATS = ("JPEG", "PNG", "WebP", "GIF", "BMP")


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


def save_photos(photos: dict[str, Image.Image], folder: Path | None = None) -> dict[str, Path]:
    """The photos as PNG files (written once, atomically), for what reads paths: an index, a service, a grid.

    `folder` defaults to outputs/photos."""
    from .files import atomic_write
    from .paths import outputs_dir
    folder = Path(folder) if folder is not None else outputs_dir() / "photos"
    paths = {}
    for name, photo in photos.items():
        paths[name] = folder / f"{name}.png"
        if not paths[name].exists():
            buffer = io.BytesIO()
            photo.save(buffer, format="PNG")
            atomic_write(paths[name], buffer.getvalue())
    return paths


def load_image(source, *, timeout: float | None = None, max_bytes: int = MAX_BYTES, max_pixels: int = MAX_PIXELS,
               policy: AddressPolicy = AddressPolicy()) -> Image.Image:
    """An upright RGB PIL image from a PIL image, a path, an http(s) URL or the bytes of an image file (an upload),
    with size limits and clear errors.

    `timeout` caps a whole download (default: VLSTEPS_TIMEOUT, else 30 s). `policy` says which addresses a URL may
    reach: all by default; code that loads URLs other people send passes `AddressPolicy.from_env()`.
    """
    if isinstance(source, Image.Image):
        image, name = source, "The image"
    elif isinstance(source, (bytes, bytearray)):
        name = "The image"
        if len(source) > max_bytes:
            raise ImageLoadError(f"{name} is {len(source) / 1e6:.1f} MB, over the {max_bytes / 1e6:.0f} MB limit; "
                                 "shrink it first")
        image = _opened(bytes(source), name, max_pixels)
    else:
        name = str(source)
        image = _opened(_read(name, timeout, max_bytes, policy), name, max_pixels)
    try:
        return _normalised(image)
    except (OSError, SyntaxError, ValueError) as e:   # a truncated or corrupt file shows only when decoded
        raise _unreadable(name, e) from None


def _read(source: str, timeout: float | None, max_bytes: int, policy: AddressPolicy) -> bytes:
    if source.startswith(("http://", "https://")):
        try:
            return fetch(source, timeout=timeout, max_bytes=max_bytes, policy=policy)
        except FetchError as e:
            raise ImageLoadError(str(e)) from None
    if "://" in source:
        raise ImageLoadError(f"Unsupported URL scheme in {source!r}: use http(s) or a local path.")
    path = Path(source).expanduser()
    if not path.is_file():
        raise ImageLoadError(f"No such image file: {path}")
    if path.stat().st_size > max_bytes:
        raise ImageLoadError(f"{path} is {path.stat().st_size / 1e6:.1f} MB, over the "
                             f"{max_bytes / 1e6:.0f} MB limit; shrink it first")
    return path.read_bytes()


def _opened(data: bytes, name: str, max_pixels: int) -> Image.Image:
    """The image with only its header read, so its size is checked before anything is decoded."""
    try:
        image = Image.open(io.BytesIO(data), formats=[f.upper() for f in FORMATS])
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError) as e:
        raise _unreadable(name, e) from None
    width, height = image.size
    if width * height > max_pixels:
        raise ImageLoadError(f"{name} is {width}x{height} pixels, over the {max_pixels:,}-pixel limit "
                             "(a decompression bomb or a huge scan); resize it first")
    return image


def _unreadable(name: str, error: Exception) -> ImageLoadError:
    return ImageLoadError(f"{name} is not a readable image ({error.__class__.__name__}); "
                          f"pass a {', '.join(FORMATS[:-1])} or {FORMATS[-1]}")


def _normalised(image: Image.Image) -> Image.Image:
    """Upright 8-bit RGB: the one form every loaded image leaves in.

    The EXIF orientation is applied (phones store photos sideways and flag it). Greys deeper than 8 bits are scaled,
    not clipped: integers from 0..65535 and floats from 0..1, or from their own minimum..maximum when they lie
    outside that range. Transparency is composited on white, as a viewer shows it: dropping the alpha channel
    would show whatever colour the transparent pixels happen to hold.
    """
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        image = _grey_8bit(image)
    if image.has_transparency_data:
        image = Image.alpha_composite(Image.new("RGBA", image.size, "white"), image.convert("RGBA"))
    return image.convert("RGB")


def _grey_8bit(image: Image.Image) -> Image.Image:
    pixels = np.asarray(image, dtype=np.float32)
    finite = pixels[np.isfinite(pixels)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    white = 1.0 if image.mode == "F" else 65535.0
    if low < 0 or high > white:
        pixels, white = pixels - low, (high - low) or 1.0
    return Image.fromarray(np.nan_to_num(np.clip(pixels / white * 255, 0, 255)).round().astype(np.uint8))
