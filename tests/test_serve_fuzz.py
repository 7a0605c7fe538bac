"""Bounded fuzz runs of the service (on stand-ins): whatever a request sends, no 5xx. A schemathesis run over the
OpenAPI schema; hypothesis-made hostile images (text-chunk bombs, odd modes, strips, lying headers, truncations,
flipped bytes) on every route that reads an image; and JSON no schema describes (Infinity, NaN, 1e400, lone
surrogates, numbers past int conversion) in every field of every JSON route."""
import base64
import io
import json
import tempfile

import numpy as np
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, PngImagePlugin
from schemathesis.checks import not_a_server_error

from vlsteps.captioner.train import Config, train
from vlsteps.net import AddressPolicy
from vlsteps.serve import captioners
from vlsteps.serve.app import create_app
from vlsteps.serve.settings import Settings

CHROMA = tempfile.mkdtemp(prefix="vlsteps-serve-fuzz-")     # /search reads an index of its own
CAPTIONER_RUN = f"{tempfile.mkdtemp(prefix='vlsteps-serve-fuzz-')}/captioner"   # POST /caption's, one step trained
APP = create_app(Settings(max_new_tokens=4, policy=AddressPolicy(allow_private=False), fetch_timeout_s=2,
                          chroma_path=CHROMA, captioner_run=CAPTIONER_RUN))
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)
FUZZ = dict(deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


@pytest.fixture(scope="module", autouse=True)
def loaded_models():
    """Loaded before the run, so that a first load is not taken for a hang by the transport's read timeout."""
    APP.state.pool.labeler()
    train(Config(artifact_dir=CAPTIONER_RUN, n_train=64, epochs=1, max_steps=1, embed_dim=32, ff_dim=64,
                 batch_size=16, seq_length=16, threads=1, samples=1), echo=lambda *_: None)


@pytest.fixture(scope="module")
def client():
    with TestClient(APP, raise_server_exceptions=False) as c:
        yield c


@schema.parametrize()
@settings(max_examples=6, **FUZZ)
def test_no_server_errors(case):
    case.call_and_validate(checks=[not_a_server_error], timeout=60)


def test_every_route_is_in_the_schema():
    paths = set(APP.openapi()["paths"])
    assert {"/api/v1/vision/caption", "/api/v1/vision/caption/{model}", "/api/v1/vision/labels",
            "/api/v1/vision/labels/{model}", "/api/v1/vision/describe",
            "/api/v1/vision/describe/kosmos-2/patch14-224", "/api/v1/vision/describe/vit-gpt2-image-captioning",
            "/api/v1/vision/describe/blip-image-captioning-large", "/text-embeddings", "/image-embeddings",
            "/search", "/caption", "/health", "/api/v1/status"} <= paths


def answered(r) -> None:
    """Not a 5xx; a refusal says why in the service's shape."""
    assert r.status_code < 500, (r.request.method, r.request.url.path, r.text[:300])
    if r.status_code >= 400:
        assert isinstance(r.json()["error"], str) and r.json()["error"] and "Traceback" not in r.text


# --- hostile images ----------------------------------------------------------------------------------
# (mode, format) pairs Pillow writes: palettes, greys of 1, 8 and 16 bits, alpha, CMYK and YCbCr JPEGs, and TIFF,
# which the service does not decode
SAVED = [("1", "PNG"), ("1", "BMP"), ("L", "PNG"), ("L", "JPEG"), ("L", "GIF"), ("LA", "PNG"), ("P", "PNG"),
         ("P", "GIF"), ("P", "BMP"), ("RGB", "PNG"), ("RGB", "JPEG"), ("RGB", "WEBP"), ("RGBA", "PNG"),
         ("RGBA", "WEBP"), ("RGBA", "BMP"), ("CMYK", "JPEG"), ("YCbCr", "JPEG"), ("I;16", "PNG"), ("F", "TIFF")]
SIZES = st.tuples(st.integers(1, 40), st.integers(1, 40)) | st.sampled_from([(1, 200), (201, 1), (3, 700)])


@st.composite
def hostile_images(draw) -> bytes:
    """The bytes of an image file a client might send: an odd mode or shape, maybe an animation, an EXIF
    orientation out of range, a PNG text chunk that inflates past Pillow's cap, a BMP header that claims
    60000x60000 pixels, a truncation, flipped bytes."""
    mode, fmt = draw(st.sampled_from(SAVED))
    size = draw(SIZES)
    noise = np.random.default_rng(draw(st.integers(0, 2**16))).integers(0, 256, (size[1], size[0], 3), np.uint8)
    image = Image.fromarray(noise).convert("RGB" if mode == "I;16" else mode)
    image = image.convert("I").convert("I;16") if mode == "I;16" else image
    options = {}
    if fmt in ("GIF", "WEBP", "PNG") and draw(st.booleans()):
        options.update(save_all=True, append_images=[image.transpose(Image.Transpose.ROTATE_180)])
    if fmt in ("JPEG", "PNG", "WEBP") and draw(st.booleans()):
        exif = Image.Exif()
        exif[0x0112] = draw(st.integers(0, 9))      # orientation: 1-8 are defined
        options["exif"] = exif
    if fmt == "PNG" and draw(st.booleans()):
        options["pnginfo"] = PngImagePlugin.PngInfo()
        options["pnginfo"].add_text("comment", "a" * (PngImagePlugin.MAX_TEXT_CHUNK + 1), zip=True)
    buf = io.BytesIO()
    image.save(buf, fmt, **options)
    data = bytearray(buf.getvalue())
    if fmt == "BMP" and draw(st.booleans()):
        data[18:26] = (60000).to_bytes(4, "little") * 2
    damage = draw(st.sampled_from(["none", "none", "truncated", "flipped"]))
    if damage == "flipped":
        for _ in range(draw(st.integers(1, 3))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data[:draw(st.integers(1, len(data) - 1))] if damage == "truncated" else data)


@given(image=hostile_images(), model=st.sampled_from(sorted(captioners.MODELS)))
@settings(max_examples=25, **FUZZ)
def test_no_image_reaches_a_500(client, image, model):
    url = "data:image/png;base64," + base64.b64encode(image).decode()
    upload = [("file", ("x.png", image, "image/png"))]
    for r in (client.post(f"/api/v1/vision/caption/{model}", json={"images": [url]}),
              client.post("/api/v1/vision/labels", json={"url": url}),
              client.post("/api/v1/vision/describe", json={"url": url}),
              client.post("/search", json={"image": url}),
              client.post("/image-embeddings", files=upload),
              client.post("/caption", files=upload)):
        answered(r)


# --- JSON no schema describes ------------------------------------------------------------------------
def png_url() -> str:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


IMAGE = png_url()
BODIES = {"/api/v1/vision/caption/vit-gpt2": {"id": "a", "model": "", "prompt": "", "url": "", "images": [IMAGE],
                                              "options": {"num_predict": 3}, "system": "", "format": ""},
          "/api/v1/vision/labels": {"id": "a", "model": "clip", "images": [IMAGE], "options": {"num_predict": 3}},
          "/api/v1/vision/describe": {"url": IMAGE, "model": "", "id": "a"},
          "/text-embeddings": {"texts": ["a cat", "a dog"]},
          "/search": {"text": "a cat", "k": 2}}
HOSTILE = ["Infinity", "-Infinity", "NaN", "1e400", "-1e400", "1" * 5000, '"\\ud800"', '"a\\udfff b"',
           '["\\udbff"]', '["a", "\\udc00"]', '{"num_predict": NaN}', '{"num_predict": 1e400}',
           '{"max_output_tokens": -Infinity}', '"http://\\ud800.example/x.jpg"', '["https://\\udfff/x"]',
           '"data:image/png;base64,\\ud800"', "null", "[]", "{}", "true", "-1", "0"]


@pytest.mark.parametrize("path", BODIES)
def test_no_json_value_reaches_a_500(client, path):
    """Every value above in every field of the route's valid body: all of them, not a sample (a handful fail)."""
    for key in BODIES[path]:
        for value in HOSTILE:
            body = json.dumps({**BODIES[path], key: "@@"}).replace('"@@"', value)
            answered(client.post(path, content=body.encode(), headers={"Content-Type": "application/json"}))


pytestmark = pytest.mark.filterwarnings("ignore")
