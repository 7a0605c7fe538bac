"""Hostile and odd images for fuzz tests: uploads crafted to crash or stall a decoder, and the odd modes of real ones.

`hostile_image_bytes()` is a hypothesis strategy of image files as an upload sends them: every mode each loaded
format stores, with text-chunk bombs, ICC profiles (Display P3, broken), EXIF orientations (valid or not), huge
declared sizes, truncation at a random offset or bytes overwritten. `odd_mode_images()` gives in-memory PIL images
in the modes a caller may hand over. The service's fuzz tests reuse both.
"""
from __future__ import annotations

import functools
import io
import struct
import zlib

import numpy as np
from hypothesis import strategies as st
from PIL import Image

# What each format loaded by vlsteps.load_image stores, mode by mode (a YCbCr JPEG is one Adobe writes).
FORMAT_MODES = {
    "PNG": ("1", "L", "LA", "P", "I;16", "I;16B", "RGB", "RGBA"),
    "JPEG": ("L", "RGB", "CMYK", "YCbCr"),
    "WEBP": ("RGB", "RGBA"),
    "GIF": ("L", "P"),
    "BMP": ("1", "L", "P", "RGB", "RGBA"),
}
ODD_MODES = ("1", "L", "LA", "P", "PA", "I;16", "I;16B", "I", "F", "CMYK", "YCbCr", "RGB", "RGBA", "RGBX")


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _xyz(x: float, y: float, z: float) -> bytes:
    return b"XYZ \0\0\0\0" + _s15(x) + _s15(y) + _s15(z)


def display_p3_profile() -> bytes:
    """An ICC v4 Display P3 profile (the one iPhone photos carry): P3 primaries adapted to D50, as in Apple's
    profile, with the sRGB tone curve. Built here because Pillow can only create sRGB, LAB and XYZ profiles."""
    text = "Display P3 (vlsteps test)".encode("utf-16-be")
    srgb_curve = (2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045)   # parametric curve type 3
    tags = {
        b"desc": b"mluc\0\0\0\0" + struct.pack(">II2s2sII", 1, 12, b"en", b"US", len(text), 28) + text,
        b"wtpt": _xyz(0.9642, 1.0, 0.8249),
        b"rXYZ": _xyz(0.515102, 0.241182, -0.001050),
        b"gXYZ": _xyz(0.291965, 0.692236, 0.041882),
        b"bXYZ": _xyz(0.157153, 0.066582, 0.784378),
        b"rTRC": b"para\0\0\0\0" + struct.pack(">HH", 3, 0) + b"".join(map(_s15, srgb_curve)),
    }
    tags[b"gTRC"] = tags[b"bTRC"] = tags[b"rTRC"]
    table, data, start = b"", b"", 128 + 4 + 12 * len(tags)
    for signature, body in tags.items():
        body += b"\0" * (-len(body) % 4)
        table += signature + struct.pack(">II", start + len(data), len(body))
        data += body
    header = struct.pack(">I4sI4s4s4s12s4s", start + len(data), b"", 0x04300000, b"mntr", b"RGB ", b"XYZ ",
                         b"\0" * 12, b"acsp")
    header = header.ljust(68, b"\0") + _s15(0.9642) + _s15(1.0) + _s15(0.8249)
    return header.ljust(128, b"\0") + struct.pack(">I", len(tags)) + table + data


def encode(image: Image.Image, format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def with_png_chunk(png: bytes, kind: bytes, data: bytes) -> bytes:
    """The PNG with one more chunk (its CRC right) just before the first IDAT, where PIL reads it on open."""
    chunk = struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    at = png.index(b"IDAT") - 4
    return png[:at] + chunk + png[at:]


@functools.cache   # 64 MB to compress: once a run
def text_chunk_bomb(kind: bytes = b"zTXt", inflated: int = 64 * 1024 * 1024) -> bytes:
    """A 4x4 PNG with a compressed text chunk that inflates to `inflated` bytes (a few KB on disk per MB)."""
    text = zlib.compress(b"\0" * inflated, 9)
    data = b"Comment\0" + (b"\0" + text if kind == b"zTXt" else b"\1\0" + b"\0\0" + text)   # iTXt: lang, keyword
    return with_png_chunk(encode(Image.new("RGB", (4, 4), "red"), "PNG"), kind, data)


def with_size(data: bytes, format: str, width: int, height: int) -> bytes:
    """A PNG or JPEG whose header declares width x height pixels: a pixel bomb, a few hundred bytes long."""
    if format == "PNG":
        ihdr = data.index(b"IHDR")
        fields = struct.pack(">II", width, height) + data[ihdr + 12:ihdr + 17]
        return data[:ihdr + 4] + fields + struct.pack(">I", zlib.crc32(b"IHDR" + fields)) + data[ihdr + 21:]
    sof = data.index(b"\xff\xc0")               # baseline frame header: length, precision, height, width
    return data[:sof + 5] + struct.pack(">HH", height, width) + data[sof + 9:]


def exif_block(*entries: tuple[int, int, int, bytes]) -> bytes:
    """EXIF as a file stores it: (tag, TIFF type, count, 4 bytes of value or offset) entries, types unchecked."""
    ifd = struct.pack(">H", len(entries)) + b"".join(struct.pack(">HHI4s", *entry) for entry in entries)
    return b"Exif\0\0MM\0*" + struct.pack(">I", 8) + ifd + b"\0\0\0\0"


@st.composite
def exif_blocks(draw) -> bytes:
    """An orientation of any TIFF type and count, valid or not, and a tag of a type the standard does not give it
    (SHORT MaxSampleValue as text: PIL reads it, then cannot write it back)."""
    entry = st.tuples(st.integers(1, 12), st.integers(0, 3), st.binary(min_size=4, max_size=4))
    orientation = (0x0112, *draw(entry))
    odd = draw(st.sampled_from([(0x0119, 2, 4, b"cam\0"), (draw(st.integers(0, 65535)), *draw(entry))]))
    return exif_block(*draw(st.permutations([orientation, odd])))


def _pixels(draw, mode: str, size: tuple[int, int]) -> Image.Image:
    """Random pixels in `mode` (any of ODD_MODES), with a palette and transparency where the mode has them."""
    width, height = size
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if mode in ("I", "F", "I;16", "I;16B"):
        dtype = {"I": "<i4", "F": "<f4", "I;16": "<u2", "I;16B": ">u2"}[mode]
        values = rng.normal(0, 10.0 ** draw(st.integers(0, 9)), (height, width)) if mode == "F" else \
            rng.integers(*((-2**31, 2**31 - 1) if mode == "I" else (0, 65535)), (height, width), endpoint=True)
        if mode == "F" and draw(st.booleans()):
            values.flat[rng.integers(0, values.size)] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
        return Image.fromarray(values.astype(dtype))
    bands = len(Image.new(mode, (1, 1)).getbands())
    noise = Image.frombytes(mode, size, rng.integers(0, 256, width * height * bands, dtype=np.uint8).tobytes()) \
        if mode != "1" else Image.fromarray(rng.integers(0, 2, (height, width), dtype=np.uint8) * 255).convert("1")
    if mode in ("P", "PA"):
        noise.putpalette(rng.integers(0, 256, 3 * draw(st.integers(1, 256)), dtype=np.uint8).tobytes())
        if draw(st.booleans()):
            noise.info["transparency"] = draw(st.integers(0, 255))
    return noise


@st.composite
def odd_mode_images(draw, modes=ODD_MODES) -> Image.Image:
    """An in-memory PIL image in one of `modes`, 1 to 24 pixels a side."""
    mode = draw(st.sampled_from(modes))
    return _pixels(draw, mode, (draw(st.integers(1, 24)), draw(st.integers(1, 24))))


@st.composite
def image_files(draw) -> bytes:
    """A well-formed file of a loaded format in any mode the format stores, some with an ICC profile or EXIF
    orientation (valid, out of range, or a broken profile)."""
    format = draw(st.sampled_from(list(FORMAT_MODES)))
    image = draw(odd_mode_images(FORMAT_MODES[format]))
    options = {}
    if format in ("PNG", "JPEG", "WEBP") and draw(st.booleans()):
        profile = display_p3_profile()
        options["icc_profile"] = draw(st.sampled_from([profile, profile[:draw(st.integers(0, len(profile) - 1))],
                                                        draw(st.binary(min_size=1, max_size=200))]))
    if format in ("PNG", "JPEG", "WEBP") and draw(st.booleans()):
        exif = Image.Exif()
        exif[0x0112] = draw(st.integers(0, 65535))     # orientation: 1..8 are defined
        options["exif"] = draw(st.sampled_from([exif, draw(exif_blocks())]))
    return encode(image, format, **options)


@st.composite
def hostile_image_bytes(draw) -> bytes:
    """An upload crafted to break a decoder: a text-chunk bomb, a huge declared size, a file cut off at a random
    offset or with bytes overwritten, or a well-formed file of an odd mode (`image_files`)."""
    kind = draw(st.sampled_from(["file", "text bomb", "huge", "truncated", "overwritten"]))
    if kind == "text bomb":
        return text_chunk_bomb(draw(st.sampled_from([b"zTXt", b"iTXt"])), draw(st.sampled_from([2, 64])) * 2**20)
    if kind == "huge":
        format = draw(st.sampled_from(["PNG", "JPEG"]))
        return with_size(encode(Image.new("RGB", (8, 8)), format), format, draw(st.integers(1, 65500)),
                         draw(st.integers(1, 65500)))
    data = draw(image_files())
    if kind == "truncated":
        return data[:draw(st.integers(0, len(data) - 1))]
    if kind == "overwritten":
        data = bytearray(data)
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        return bytes(data)
    return data
