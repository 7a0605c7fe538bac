"""The Chroma image index, against the embedded client and a real `chroma run` server started here.

The `chroma_server` fixture spawns `<venv>/bin/chroma run --path TMP --port FREE`, waits for its heartbeat
(bounded), yields an HttpClient, and stops the server at the end of the session.
"""
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch
from PIL import Image

import stress_jobs as jobs
from conftest import free_port
from vlsteps import chroma_lock, index
from vlsteps.embed import ClipEmbedder

CHILD_TIMEOUT_S = 120


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


def test_a_clip_with_other_weights_gets_its_own_collection(client, clip_path, embedder, images):
    from transformers import CLIPModel
    col = _index(client, embedder, images)
    torch.manual_seed(123)                                      # same config, other weights
    other = ClipEmbedder(CLIPModel(CLIPModel.from_pretrained(clip_path).config).eval(), embedder.processor)
    col2 = _index(client, other, images)
    assert col2.name != col.name and col2.count() == len(images)
    for m in images:                                            # its vectors, not the other model's
        hit = index.search_by_image(col2, other, m["path"], k=1)[0]
        assert hit.id == index.content_id(m["path"]) and hit.similarity == pytest.approx(1.0, abs=1e-4)


def test_nan_or_inf_vectors_are_refused(client, images):
    col = _index(client, ColorEmbedder(), images[:2])
    for bad in (np.nan, np.inf, -np.inf):
        with pytest.raises(ValueError, match="query vector has NaN or infinite"):
            index.search_by_vector(col, np.array([1.0, bad, 0.0], dtype=np.float32))

    class Overflowing(ColorEmbedder):
        def images(self, items):
            v = super().images(items)
            v[-1] = np.nan                                      # what a float16 overflow gives
            return v
    with pytest.raises(ValueError, match=r"embedder returned NaN .* 1 of 2 .* Nothing was stored.*float32"):
        index.index_images(col, Overflowing(), [m["path"] for m in images[2:4]], images[2:4])
    assert col.count() == 2


class MissesOne:
    """A collection whose approximate (HNSW) search leaves out its last hit, as Chroma's did in two test runs:
    160 items counted, 159 found by a search for 160."""

    def __init__(self, collection):
        self._collection = collection

    def __getattr__(self, name):
        return getattr(self._collection, name)

    def query(self, **kw):
        res = self._collection.query(**kw)
        return {key: [v[0][:-1]] if isinstance(v, list) else v for key, v in res.items()}


def test_a_search_for_every_item_finds_every_item_ranked(client, images):
    emb = ColorEmbedder()
    col = _index(client, emb, images)
    q = emb.texts(["red"])
    every = index.search_by_vector(MissesOne(col), q, k=len(images))
    assert sorted(h.id for h in every) == sorted(index.all_ids(col))
    assert [h.similarity for h in every] == sorted((h.similarity for h in every), reverse=True)
    assert len(index.search_by_vector(MissesOne(col), q, k=len(images) + 5)) == len(images)
    reds = index.search_by_vector(MissesOne(col), q, k=len(images), where={"category": "red"})
    assert [h.id for h in reds] == [h.id for h in every if h.category == "red"]


@pytest.mark.parametrize("space", ["cosine", "ip", "l2"])
def test_the_exact_search_for_all_ranks_as_the_index_does(tmp_path, images, space):
    """k = n ranks every vector exactly; k < n asks Chroma's index: the two agree on order and similarity."""
    col = _index(index.chroma_client(path=tmp_path, url=""), ColorEmbedder(), images, space=space)
    q = np.array([[0.9, 0.3, 0.1]], dtype=np.float32)
    every = index.search_by_vector(col, q, k=len(images))
    some = index.search_by_vector(col, q, k=len(images) - 1)
    assert [h.id for h in some] == [h.id for h in every][:-1]
    assert [h.similarity for h in some] == pytest.approx([h.similarity for h in every][:-1], abs=1e-5)


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
    monkeypatch.setenv(index.ENV_URL, f"http://localhost:{free_port()}")
    with pytest.raises(ConnectionError, match="chroma run"):
        index.chroma_client()
    monkeypatch.setenv(index.ENV_URL, "ftp://nowhere")
    with pytest.raises(ValueError, match="not a URL"):
        index.chroma_client()


def test_an_unanswering_server_fails_within_the_deadline(monkeypatch):
    """A socket that accepts connections (the kernel does, from the backlog) and never answers."""
    monkeypatch.setenv("VLSTEPS_TIMEOUT", "2")
    outcome = []
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"

        def connect():
            try:
                index.chroma_client(url=url)
            except Exception as e:
                outcome.append(e)
        worker = threading.Thread(target=connect, daemon=True)
        start = time.monotonic()
        worker.start()
        worker.join(30)                                         # generous: the deadline is 2 s
        assert not worker.is_alive(), "chroma_client() still waits for a server that never answers"
    assert time.monotonic() - start < 15
    assert isinstance(outcome[0], ConnectionError) and "chroma run" in str(outcome[0])
    assert "2 s" in str(outcome[0]) and "VLSTEPS_TIMEOUT" in str(outcome[0])


# --- several processes on one embedded index ------------------------------------------------------------
def _in_another_process(fn, *args):
    """`fn(*args)` in a fresh (spawned) Python, like a second notebook kernel; bounded."""
    with multiprocessing.get_context("spawn").Pool(1) as other:
        return other.apply_async(fn, args).get(CHILD_TIMEOUT_S)


def test_another_process_writing_the_folder_loses_nothing(tmp_path):
    """Kernel A indexes, kernel B indexes more (its Chroma saves the HNSW index, and trims the log, every
    50 records here), A indexes again: A must neither lose B's items nor overwrite them."""
    where = str(tmp_path / "chroma")
    jobs.create(where)
    jobs.index_items(where, range(0, 30))
    _in_another_process(jobs.index_items, where, range(30, 150), 1)
    seen = jobs.index_items(where, range(150, 160))
    back = _in_another_process(jobs.read_back, where)           # a third kernel, opened afterwards
    assert seen == [(160, 160)]
    assert back["count"] == len(back["ids"]) == len(back["found"]) == 160
    assert sorted(back["items"]) == list(range(160))


def test_reindexing_repairs_an_index_that_lost_vectors(tmp_path):
    """Damage an index the way unlocked kernels did (two Chroma cores on one folder), then re-index."""
    import chromadb
    where = tmp_path / "chroma"
    jobs.create(str(where))
    emb = jobs.RandomEmbedder()
    items = list(range(160))
    cores = [chromadb.PersistentClient(path=spelling, settings=index._settings())
             for spelling in (str(where), f"{where}/")]         # two spellings: chromadb opens two cores
    for core, part in [(0, items[:30]), (1, items[30:150]), (0, items[150:])]:
        col = cores[core].get_collection(index.collection_name(emb), embedding_function=None)
        for start in range(0, len(part), jobs.BATCH):
            batch = part[start:start + jobs.BATCH]
            col.upsert(ids=[index.content_id(jobs.picture(i)) for i in batch],
                       embeddings=emb.images([jobs.picture(i) for i in batch]))
    for core in cores:
        core.close()
    col = index.image_collection(index.chroma_client(path=where, url=""), emb)
    with pytest.raises(Exception, match="Error finding id|Error getting embedding"):
        col.get(include=["embeddings"])                         # the damage: counted, but vectors gone

    index.index_images(col, emb, [jobs.picture(i) for i in items], [{"item": i} for i in items])
    assert col.count() == len(col.get(include=["embeddings"])["ids"]) == len(items)
    assert len(index.search_by_vector(col, jobs.vector(b"q"), k=len(items))) == len(items)


def test_a_held_lock_times_out_naming_the_folder_and_a_killed_holder_releases_it(tmp_path):
    where = tmp_path / "chroma"
    col = index.image_collection(index.chroma_client(path=where, url="", lock_timeout=1), ColorEmbedder())
    held = tmp_path / "held"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from filelock import FileLock; lock = FileLock(sys.argv[1]); lock.acquire(); "
        "open(sys.argv[2], 'w').close(); time.sleep(120)"), str(where / chroma_lock.LOCK_FILE), str(held)])
    try:
        deadline = time.monotonic() + CHILD_TIMEOUT_S
        while not held.exists():
            assert holder.poll() is None and time.monotonic() < deadline, "the lock holder did not start"
            time.sleep(0.05)
        start = time.monotonic()
        with pytest.raises(TimeoutError, match=f"{where}.* stayed locked for 1 s: another process"):
            col.count()
        assert time.monotonic() - start < 10
    finally:
        os.kill(holder.pid, signal.SIGKILL)                     # dies holding the lock
        holder.wait(CHILD_TIMEOUT_S)
    assert col.count() == 0                                     # the system released it
