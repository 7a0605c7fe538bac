"""`python -m tools.bench library` end to end on a tiny library: the photo-like JPEGs (made once, a lost one made
again identically), every measurement it prints (the Ray ones wherever the command has --ray) and the paper model."""
from __future__ import annotations

import os

import pytest
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


@pytest.mark.slow
def test_the_benchmark_measures_every_variant_the_command_offers(tmp_path, capsys):
    res = library.bench_library(n_images=8, sample=4, rounds=1, batch=4, root=tmp_path)
    out = capsys.readouterr().out
    assert res["rates"]["a"][0] > 0 and res["cli"]["b"][0]["raw_img_s"] > 0 and res["library"]["raw_img_s"] > 0
    assert "b/a = " in out and "whole library, (b) on 8 images: " in out and "10^7 in " in out
    assert "load average after: " in out
    if library.ray_offered(dict(os.environ)):
        assert not res["errors"] and set(res["ratios"]) == {"b/a", "b/c", "d/b", "e/d"}, res["errors"]
    else:                                                  # before the Ray pipeline: said so, not a crash
        assert "(d) vlsteps index build, --ray, 1 embedding actor: not measured: this checkout's command has no " \
               "--ray" in out
