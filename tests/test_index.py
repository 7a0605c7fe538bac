"""The Chroma image index, against the embedded client and a real `chroma run` server started here.

The `chroma_server` fixture spawns `<venv>/bin/chroma run --path TMP --port FREE`, waits for its heartbeat
(bounded), yields an HttpClient, and stops the server at the end of the session.
"""
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vlsteps import index
from vlsteps.embed import ClipEmbedder

SERVER_START_TIMEOUT_S = 120


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def chroma_server_url(tmp_path_factory):
    exe = Path(sys.executable).parent / "chroma"
    assert exe.exists(), f"no chroma executable next to {sys.executable} (pip install chromadb)"
    data = tmp_path_factory.mktemp("chroma-server")
    log_path = data.parent / "chroma-server.log"
    port = _free_port()
    url = f"http://localhost:{port}"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([str(exe), "run", "--path", str(data), "--port", str(port)], stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"chroma run exited with {proc.returncode}:\n{log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"chroma run gave no heartbeat within {SERVER_START_TIMEOUT_S} s:\n"
                            f"{log_path.read_text()[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def chroma_server(chroma_server_url):
    """An HttpClient talking to the `chroma run` server of this test session."""
    return index.chroma_client(url=chroma_server_url)


@pytest.fixture(params=["embedded", "server"])
def client(request, tmp_path):
    if request.param == "embedded":
        yield index.chroma_client(path=tmp_path / "chroma", url="")
    else:
        server = request.getfixturevalue("chroma_server")
        for col in server.list_collections():        # each test starts from an empty server
            server.delete_collection(col.name)
        yield server


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Eight distinct pictures saved as PNG, with a category each."""
    folder = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    out = []
    for i in range(8):
        arr = rng.integers(0, 255, (96 + 8 * i, 128, 3), dtype=np.uint8)
        arr[:, :, i % 3] = 255 - 20 * i                  # a dominant channel per category
        path = folder / f"img{i}.png"
        Image.fromarray(arr).save(path)
        out.append({"path": str(path), "category": ["red", "green", "blue"][i % 3], "prompt": f"image {i}"})
    return out


def _index(client, embedder, images, **kw):
    col = index.image_collection(client, embedder, **kw)
    index.index_images(col, embedder, [m["path"] for m in images], images)
    return col


class ColorEmbedder:
    """A fake embedding model: an image is its mean colour, 'red'/'green'/'blue' are the axes."""
    model_key, dim, fingerprint = "color", 3, "fake0001"

    def images(self, items):
        out = []
        for it in items:
            im = it if isinstance(it, Image.Image) else Image.open(it)
            out.append(np.asarray(im.convert("RGB"), dtype=np.float32).mean(axis=(0, 1)))
        v = np.array(out, dtype=np.float32).reshape(-1, 3)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    def texts(self, texts):
        return np.array([np.eye(3)[["red", "green", "blue"].index(t.split()[-1])] for t in texts], dtype=np.float32)


# --- retrieval, against both clients ---------------------------------------------------------------------
def test_reindexing_adds_nothing(client, embedder, images):
    col = _index(client, embedder, images)
    assert col.count() == len(images)
    ids = index.index_images(col, embedder, [m["path"] for m in images], images)
    again = index.image_collection(client, embedder)            # re-opened, like a second notebook run
    assert again.count() == len(images) and sorted(ids) == sorted(index.all_ids(again))


def test_an_indexed_image_finds_itself_first(client, embedder, images):
    col = _index(client, embedder, images)
    for m in images[:3]:
        hit = index.search_by_image(col, embedder, m["path"], k=3)[0]
        assert hit.id == index.content_id(m["path"])
        assert hit.similarity == pytest.approx(1.0, abs=1e-4)
        assert hit.metadata["path"] == m["path"] and hit.metadata["category"] == m["category"]


def test_text_search_returns_cosine_similarities_best_first(client, embedder, images):
    col = _index(client, embedder, images)
    hits = index.search_by_text(col, embedder, "a photo of a cat", k=5)
    assert len(hits) == 5
    sims = [h.similarity for h in hits]
    assert sims == sorted(sims, reverse=True)
    q = embedder.texts(["a photo of a cat"])[0]
    by_path = {m["path"]: v for m, v in zip(images, embedder.images([m["path"] for m in images]))}
    for h in hits:
        assert h.similarity == pytest.approx(float(by_path[h.metadata["path"]] @ q), abs=1e-4)
    assert len(index.search_by_text(col, embedder, "a cat", k=100)) == len(images)   # k past the count
    with pytest.raises(ValueError, match="empty"):
        index.search_by_text(col, embedder, "  ")


def test_switching_the_model_uses_another_collection(client, clip_path, embedder, images):
    from transformers import CLIPModel
    col = _index(client, embedder, images)
    cfg = CLIPModel.from_pretrained(clip_path).config
    cfg.vision_config.num_hidden_layers = 1                     # same dim, another model
    torch.manual_seed(1)
    other = ClipEmbedder(CLIPModel(cfg).eval(), embedder.processor, model_key="clip")
    assert other.dim == embedder.dim and other.fingerprint != embedder.fingerprint
    col2 = _index(client, other, images[:3])
    assert col2.name != col.name
    assert col.count() == len(images) and col2.count() == 3
    smaller = ColorEmbedder()
    col3 = _index(client, smaller, images[:2])
    assert len({col.name, col2.name, col3.name}) == 3 and col3.count() == 2


def test_a_dimension_mismatch_stops_with_a_clear_message(client, embedder, images):
    col = _index(client, embedder, images[:2])
    with pytest.raises(index.DimensionMismatchError, match=f"{embedder.dim}-d"):
        index.search_by_vector(col, np.ones(embedder.dim + 3, dtype=np.float32))
    with pytest.raises(index.DimensionMismatchError, match="different embedding model|makes 3-d"):
        index.index_images(col, ColorEmbedder(), [images[0]["path"]], [{}])


def test_content_ids_metadata_and_no_embedding_function(client, embedder, images):
    col = index.image_collection(client, embedder)
    pil = Image.open(images[0]["path"])
    ids = index.index_images(col, embedder, [images[0]["path"], pil, images[1]["path"]],
                             [images[0], {"category": "dup"}, {**images[1], "extra": None, "n": np.int64(3)}])
    assert ids[0] == ids[1] == index.content_id(pil) and ids[2] != ids[0]
    assert col.count() == 2                                      # the same picture twice counts once
    meta = {m["id"]: m for m in index.metadatas(col)}
    assert meta[ids[0]]["category"] == "red" and meta[ids[0]]["model_key"] == "clip"
    assert meta[ids[2]]["n"] == 3 and "extra" not in meta[ids[2]]
    assert col.metadata["dim"] == embedder.dim and col.metadata["space"] == "cosine"
    assert col.configuration.get("embedding_function") is None
    assert col.name == f"images-clip-{embedder.dim}d-{embedder.fingerprint}"


def test_precision_at_k_with_a_model_that_knows_the_categories(client, images):
    col = _index(client, ColorEmbedder(), images)
    p = index.precision_at_k(col, ColorEmbedder(), {c: f"a photo of {c}" for c in ("red", "green", "blue")}, k=2)
    assert p == {"red": 1.0, "green": 1.0, "blue": 1.0}


# --- embedded-only or server-only details --------------------------------------------------------------
@pytest.mark.parametrize("space", ["cosine", "ip", "l2"])
def test_every_space_reports_the_cosine_on_unit_vectors(tmp_path, images, space):
    client = index.chroma_client(path=tmp_path, url="")
    emb = ColorEmbedder()
    col = _index(client, emb, images, space=space)
    q = emb.texts(["red"])
    hits = index.search_by_vector(col, q, k=len(images))
    vecs = dict(zip([index.content_id(m["path"]) for m in images], emb.images([m["path"] for m in images])))
    for h in hits:
        assert h.similarity == pytest.approx(float(vecs[h.id] @ q[0]), abs=1e-4)
    with pytest.raises(index.DimensionMismatchError, match="space"):
        index.image_collection(client, emb, space="cosine" if space != "cosine" else "ip")


def test_the_env_url_selects_the_server(monkeypatch, chroma_server_url, tmp_path):
    monkeypatch.setenv(index.ENV_URL, chroma_server_url)
    assert index.describe_client(index.chroma_client()) == "server"
    monkeypatch.delenv(index.ENV_URL)
    assert index.describe_client(index.chroma_client(path=tmp_path)) == "embedded"


def test_an_unreachable_server_fails_with_one_clear_message(monkeypatch):
    monkeypatch.setenv(index.ENV_URL, f"http://localhost:{_free_port()}")
    with pytest.raises(ConnectionError, match="chroma run"):
        index.chroma_client()
    monkeypatch.setenv(index.ENV_URL, "ftp://nowhere")
    with pytest.raises(ValueError, match="not a URL"):
        index.chroma_client()
