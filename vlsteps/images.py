"""Images in: real sample photos that ship inside installed packages, and guarded loading of user images."""
from __future__ import annotations

import io
import os
import re
import struct
import zlib
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageCms

from .net import AddressPolicy, FetchError, fetch

MAX_BYTES = 20 * 1024 * 1024    # a photo, not a dataset
MAX_PIXELS = 40_000_000         # ~ 8000 x 5000; past that it is a decompression bomb or a scan
# The formats decoded, and the ones the error message offers: Image.open tries no other plugin (EPS would run
# Ghostscript). MPO, the multi-picture JPEG of some cameras, opens as JPEG.
FORMATS = ("JPEG", "PNG", "WebP", "GIF", "BMP")
# EXIF orientation -> the transpose that shows the photo upright (ImageOps.exif_transpose's table: that function also
# writes the EXIF back, and fails on tags of another type than the standard's, which real cameras write: Pillow
# issues 6799 and 8965; the loaded image keeps no EXIF).
_UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
            5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
            8: Image.Transpose.ROTATE_90}
# What a broken or hostile file makes PIL raise, opening or decoding: its own errors (OSError, SyntaxError and EOFError
# for a corrupt or cut-off file, ValueError for a text chunk that inflates past PngImagePlugin.MAX_TEXT_CHUNK) and
# those of the parsers under it (struct.error, zlib.error). Its pixel cap, checked in Image.open and inside some
# plugins (a GIF frame larger than its screen), raises DecompressionBombError (and DecompressionBombWarning where
# warnings are errors): those say the image is too large.
_DECODE_ERRORS = (OSError, SyntaxError, EOFError, ValueError, struct.error, zlib.error)


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
               policy: AddressPolicy = AddressPolicy(), draft: int | None = None) -> Image.Image:
    """An upright 8-bit sRGB PIL image from a PIL image, a path, an http(s) URL or the bytes of an image file (an
    upload), with size limits and clear errors.

    `timeout` caps a whole download (default: VLSTEPS_TIMEOUT, else 30 s). `policy` says which addresses a URL may
    reach: all by default; code that loads URLs other people send passes `AddressPolicy.from_env()`. `draft`: a
    JPEG is decoded at the smallest of libjpeg's scales (1/2, 1/4, 1/8) that keeps both sides at least that many
    pixels, which is several times faster for a photo that a model shrinks anyway.
    """
    name = "The image"
    if isinstance(source, Image.Image):
        image = source
    elif isinstance(source, (bytes, bytearray)):
        if len(source) > max_bytes:
            raise ImageLoadError(f"{name} is {len(source) / 1e6:.1f} MB, over the {max_bytes / 1e6:.0f} MB limit; "
                                 "shrink it first")
        image = _opened(bytes(source), name, max_pixels)
    elif isinstance(source, (str, os.PathLike)):
        name = str(source)
        image = _opened(_read(name, timeout, max_bytes, policy), name, max_pixels)
    else:
        raise ImageLoadError(f"load_image takes a PIL image, a path, an http(s) URL or the bytes of an image file, "
                             f"not {_type_name(source)} (for pixels in an array: Image.fromarray(array))")
    if draft and image.format == "JPEG":
        image.draft(None, (draft, draft))
    with _decoding(name, max_pixels):   # a truncated or corrupt file shows only when decoded
        return _normalised(image)


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
    with _decoding(name, max_pixels):
        image = Image.open(io.BytesIO(data), formats=[f.upper() for f in FORMATS])
    width, height = image.size
    if width * height > max_pixels:
        raise _too_large(name, f"{width}x{height}", max_pixels)
    return image


@contextmanager
def _decoding(name: str, max_pixels: int):
    """PIL's errors on a broken or hostile file, as one ImageLoadError that says what to do."""
    try:
        yield
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        # PIL's cap (MAX_IMAGE_PIXELS, 2x that for the error) went off before ours could; it says the pixel count.
        count = re.search(r"\((\d+) pixels\)", str(e))
        raise _too_large(name, f"{int(count[1]):,}" if count else "too many",
                         min(max_pixels, Image.MAX_IMAGE_PIXELS)) from None
    except _DECODE_ERRORS as e:
        raise ImageLoadError(f"{name} is not a readable image ({_type_name(e)}); "
                             f"pass a {', '.join(FORMATS[:-1])} or {FORMATS[-1]}") from None


def _type_name(value) -> str:
    """`OSError`, `numpy.ndarray`, `zlib.error` (not a bare `error`)."""
    kind = type(value)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def _too_large(name: str, size: str, limit: int) -> ImageLoadError:
    return ImageLoadError(f"{name} is too large: {size} pixels, over the {limit:,}-pixel limit (a decompression "
                          "bomb or a huge scan); resize it first")


def _normalised(image: Image.Image) -> Image.Image:
    """Upright 8-bit RGB: the one form every loaded image leaves in.

    The EXIF orientation is applied (phones store photos sideways and flag it) and an ICC profile's colours converted
    to sRGB (`_srgb`). Greys deeper than 8 bits are scaled, not clipped: integers from 0..65535 and floats from 0..1,
    or from their own minimum..maximum when they lie outside that range. Transparency is composited on white, as a
    viewer shows it: dropping the alpha channel would show whatever colour the transparent pixels happen to hold.
    """
    upright = _UPRIGHT.get(image.getexif().get(ExifTags.Base.Orientation))
    image = _srgb(image.transpose(upright) if upright is not None else image)
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        image = _grey_8bit(image)
    if image.has_transparency_data:
        image = Image.alpha_composite(Image.new("RGBA", image.size, "white"), image.convert("RGBA"))
    return image.convert("RGB")


def _srgb(image: Image.Image) -> Image.Image:
    """The image converted to sRGB when it carries an ICC profile: phone photos are Display P3, and read as sRGB
    their colours come out dull. A profile LittleCMS cannot read, or one for other pixels than the image's (an RGB
    profile on a grey image), is ignored: the pixels are then taken as sRGB, as a browser does."""
    profile = image.info.get("icc_profile")
    if not profile or image.mode not in ("RGB", "RGBA", "CMYK", "L"):
        return image
    try:
        return ImageCms.profileToProfile(image, io.BytesIO(profile), ImageCms.createProfile("sRGB"),
                                         outputMode="RGBA" if image.mode == "RGBA" else "RGB")
    except ImageCms.PyCMSError:
        return image


def _grey_8bit(image: Image.Image) -> Image.Image:
    pixels = np.asarray(image, dtype=np.float32)
    finite = pixels[np.isfinite(pixels)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    white = 1.0 if image.mode == "F" else 65535.0
    if low < 0 or high > white:
        pixels, white = pixels - low, (high - low) or 1.0
    return Image.fromarray(np.nan_to_num(np.clip(pixels / white * 255, 0, 255)).round().astype(np.uint8))
