"""`python -m tools.bench library`'s photo library: photo-like JPEGs, made once, a lost one made again identically.
(The benchmark itself is run by hand: end to end it takes minutes, on a real-size CLIP.)"""
from __future__ import annotations

from PIL import Image

from tools.bench import library


def test_the_library_is_photo_like_and_made_once(tmp_path):
    paths = library.make_library(tmp_path, 4, workers=2)
    sizes = [Image.open(p).size for p in paths]
    assert all(1.0e6 * 0.99 <= w * h <= 4.0e6 and Image.open(p).format == "JPEG" for p, (w, h) in zip(paths, sizes))
    assert len({round(w / h, 2) for w, h in sizes} | {w * h for w, h in sizes}) > 2       # not one size
    kept, lost = paths[0].stat().st_mtime_ns, paths[2].read_bytes()
    paths[2].unlink()
    (paths[2].parent / f".{paths[2].name}.killed.tmp").write_bytes(b"half a jpeg")       # a killed writer's
    assert library.make_library(tmp_path, 4, workers=2) == paths
    assert paths[0].stat().st_mtime_ns == kept and paths[2].read_bytes() == lost
