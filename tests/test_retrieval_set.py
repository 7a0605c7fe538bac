"""The generated-test-image cache: seeded, saved with metadata, skipped when present, same pixels again."""
import io
import json

import numpy as np
import pytest
from PIL import Image

from vlsteps import retrieval_set

PROMPTS = {"cat": "a photo of a cat", "dog": "a photo of a dog"}


class FakeGenerator:
    """Pixels from the seed alone (like a seeded diffusion pipeline); records every call."""
    def __init__(self):
        self.calls = []

    def __call__(self, prompts, seeds):
        self.calls.append(list(seeds))
        return [Image.fromarray(np.random.default_rng(s).integers(0, 255, (16, 16, 3), dtype=np.uint8))
                for s in seeds]


def _plan(**kw):
    return retrieval_set.plan(PROMPTS, 3, model="fake", size=16, **kw)


def test_seeds_depend_on_the_image_not_its_position():
    a = {(s.category, s.index): s.seed for s in _plan()}
    b = {(s.category, s.index): s.seed for s in retrieval_set.plan({"dog": "x", "cat": "y", "car": "z"}, 4,
                                                                 model="fake", size=16)}
    assert all(b[key] == seed for key, seed in a.items())
    assert len(set(a.values())) == len(a)
    assert {s.seed for s in _plan(base_seed=1)}.isdisjoint(a.values())


def test_generates_once_with_metadata_then_skips(tmp_path):
    gen = FakeGenerator()
    specs = _plan()
    records = retrieval_set.generate(specs, gen, tmp_path, batch_size=2, progress=False)
    assert len(records) == 6 and sum(len(c) for c in gen.calls) == 6 and max(map(len, gen.calls)) == 2
    meta = json.loads((tmp_path / "cat" / "cat_001.json").read_text())["settings"]
    assert meta["prompt"] == "a photo of a cat" and meta["seed"] == specs[1].seed and meta["model"] == "fake"
    assert meta["steps"] == 1 and meta["guidance_scale"] == 0.0
    assert records[1]["path"].endswith("cat/cat_001.png") and records[1]["category"] == "cat"
    gen.calls.clear()
    assert retrieval_set.generate(specs, gen, tmp_path, batch_size=2, progress=False) == records
    assert gen.calls == []                               # all present: nothing generated
    assert retrieval_set.load_records(tmp_path) == sorted(records, key=lambda r: r["path"])


def test_a_missing_image_regenerates_its_whole_batch_with_the_same_pixels(tmp_path):
    gen = FakeGenerator()
    specs = _plan()
    retrieval_set.generate(specs, gen, tmp_path, batch_size=2, progress=False)
    before = (tmp_path / "cat" / "cat_001.png").read_bytes()
    (tmp_path / "cat" / "cat_001.png").unlink()
    gen.calls.clear()
    retrieval_set.generate(specs, gen, tmp_path, batch_size=2, progress=False)
    assert gen.calls == [[specs[0].seed, specs[1].seed]]  # the fixed batch plan, not just the missing one
    assert (tmp_path / "cat" / "cat_001.png").read_bytes() == before


def test_changed_settings_regenerate(tmp_path):
    gen = FakeGenerator()
    retrieval_set.generate(_plan(), gen, tmp_path, batch_size=3, progress=False)
    gen.calls.clear()
    retrieval_set.generate(_plan(steps=4), gen, tmp_path, batch_size=3, progress=False)
    assert sum(len(c) for c in gen.calls) == 6
    assert json.loads((tmp_path / "dog" / "dog_000.json").read_text())["settings"]["steps"] == 4


def test_bad_plans_and_generators_are_refused(tmp_path):
    with pytest.raises(ValueError, match="multiples of 8"):
        retrieval_set.plan(PROMPTS, 1, model="m", size=100)
    with pytest.raises(ValueError, match="plain name"):
        retrieval_set.plan({"../x": "p"}, 1, model="m", size=16)
    with pytest.raises(ValueError):
        retrieval_set.plan(PROMPTS, 0, model="m", size=16)
    with pytest.raises(RuntimeError, match="returned 1 images for 2"):
        retrieval_set.generate(_plan(), lambda p, s: [Image.new("RGB", (16, 16))], tmp_path, batch_size=2,
                            progress=False)


GOOD_SETTINGS = _plan()[1].settings()   # cat_001


@pytest.mark.parametrize("sidecar", [
    [1, 2],                                                          # a list, not a dict
    "just text", None, {"file": "cat_001.png"},                      # no settings
    {"settings": [1, 2]},                                            # settings of the wrong type
    {"settings": {"category": "cat", "index": 1}},                   # missing keys
    {"settings": {**GOOD_SETTINGS, "sampler": "euler"}},             # an extra key (another schema)
    {"settings": {**GOOD_SETTINGS, "index": "one"}},                 # wrong types
    {"settings": {**GOOD_SETTINGS, "steps": "1"}},
    {"settings": {**GOOD_SETTINGS, "width": True}},
    {"settings": {**GOOD_SETTINGS, "guidance_scale": None}},
    {"settings": {**GOOD_SETTINGS, "category": "../outside"}},       # a category that leaves the folder
    {"settings": {**GOOD_SETTINGS, "category": "dog", "index": 7}},  # describes another image
])
def test_a_sidecar_of_another_schema_is_skipped_then_regenerated(tmp_path, sidecar):
    gen = FakeGenerator()
    specs = _plan()
    records = retrieval_set.generate(specs, gen, tmp_path, batch_size=2, progress=False)
    (tmp_path / "cat" / "cat_001.json").write_text(json.dumps(sidecar))
    assert retrieval_set.load_records(tmp_path) == [r for r in sorted(records, key=lambda r: r["path"])
                                                 if not r["path"].endswith("cat_001.png")]
    assert not retrieval_set.is_present(tmp_path, specs[1])
    gen.calls.clear()
    assert retrieval_set.generate(specs, gen, tmp_path, batch_size=2, progress=False) == records
    assert gen.calls == [[specs[0].seed, specs[1].seed]]             # its batch, regenerated
    assert len(retrieval_set.load_records(tmp_path)) == 6


def test_a_sidecar_that_is_not_json_text_is_skipped(tmp_path):
    specs = _plan()
    retrieval_set.generate(specs, FakeGenerator(), tmp_path, batch_size=2, progress=False)
    (tmp_path / "cat" / "cat_001.json").write_bytes(b"\xff\xfe\x00garbage")
    (tmp_path / "cat" / "cat_002.json").write_text("[" * 100000)    # deeper than the JSON decoder goes
    assert len(retrieval_set.load_records(tmp_path)) == 4
    assert not retrieval_set.is_present(tmp_path, specs[1]) and not retrieval_set.is_present(tmp_path, specs[2])


@pytest.mark.parametrize("size", [(7, 7), (16, 8), (32, 32)])
def test_an_image_of_another_size_than_planned_is_refused_not_saved(tmp_path, size):
    specs = _plan()
    with pytest.raises(ValueError, match=rf"cat/cat_000 is {size[0]}x{size[1]}, the plan says 16x16: make the "
                                         "generation call pass the plan's width and height"):
        retrieval_set.generate(specs, lambda prompts, seeds: [Image.new("RGB", size) for _ in prompts], tmp_path,
                               batch_size=2, progress=False)
    assert not list(tmp_path.rglob("*.*")) and retrieval_set.load_records(tmp_path) == []


def png_bytes(size):
    buffer = io.BytesIO()
    Image.new("RGB", size).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("damage", [lambda whole: b"", lambda whole: b"not a png",
                                    lambda whole: whole[:len(whole) // 2], lambda whole: whole[:60],
                                    lambda whole: png_bytes((7, 7))],
                         ids=["empty", "not-a-png", "torn", "header-only", "another-size"])
def test_a_png_that_does_not_decode_at_its_size_counts_as_missing_and_is_regenerated(tmp_path, damage):
    gen = FakeGenerator()
    specs = _plan()
    records = retrieval_set.generate(specs, gen, tmp_path, batch_size=2, progress=False)
    png = tmp_path / "cat" / "cat_001.png"
    whole = png.read_bytes()
    png.write_bytes(damage(whole))
    assert not retrieval_set.is_present(tmp_path, specs[1])
    assert [r["path"] for r in retrieval_set.load_records(tmp_path)] == sorted(r["path"] for r in records
                                                                              if r["path"] != str(png))
    gen.calls.clear()
    assert retrieval_set.generate(specs, gen, tmp_path, batch_size=2, progress=False) == records
    assert gen.calls == [[specs[0].seed, specs[1].seed]]             # its batch, regenerated
    assert png.read_bytes() == whole and len(retrieval_set.load_records(tmp_path)) == 6
