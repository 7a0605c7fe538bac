"""An image index in Chroma: one collection per embedding model, content ids, precomputed embeddings.

Why these choices:
- **Precomputed embeddings only** (`embedding_function=None`): Chroma's default embedding function
  downloads an ONNX model on first use; our vectors come from `vlsteps.embed.ClipEmbedder`.
- **Cosine space on L2-normalized vectors**: the similarity is the angle between vectors. `ip` (inner
  product) gives the same ranking *only* if every vector has norm 1; on raw CLIP features it would favour
  images whose feature vector happens to be long, not those that match.
- **Content ids** (hash of the decoded pixels): the same image always gets the same id, so `upsert`
  on a re-run changes nothing and the collection's count stays put.
- **The collection name carries the model** (`images-<key>-<dim>d-<fingerprint>`): vectors from two
  models (or a stand-in and the real CLIP) never share a collection, and a vector of the wrong size
  stops with a clear message instead of a Chroma stack trace.
- **Several kernels, one folder**: the embedded client is not multi-process safe by itself (it loses
  vectors); `vlsteps.chroma_lock` serialises its calls and keeps each process current.
- **Server mode**: with `VLSTEPS_CHROMA_URL=http://host:port` (a `chroma run` server) every helper
  talks to the server instead of the embedded on-disk client, with no other change.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import Sequence
from urllib.parse import urlparse

import numpy as np
from PIL import Image

from ..chroma_lock import LOCK_TIMEOUT_S, locked_client
from ..images import load_image
from ..net import fetch, timeout_s

SPACES = ("cosine", "ip", "l2")
ENV_URL = "VLSTEPS_CHROMA_URL"


class DimensionMismatchError(ValueError):
    """Vectors of one size were sent to a collection built for another size."""


@dataclass
class Hit:
    """One search result: `similarity` is the cosine similarity (1 = same direction)."""
    id: str
    similarity: float
    metadata: dict = field(default_factory=dict)

    @property
    def category(self) -> str:
        return str(self.metadata.get("category", ""))

    def image(self) -> Image.Image:
        """The hit's image, read from the `path` stored in its metadata."""
        path = self.metadata.get("path")
        if not path:
            raise KeyError(f"hit {self.id} has no 'path' in its metadata")
        return load_image(path)


# --- clients -----------------------------------------------------------------------------------------
def _settings():
    from chromadb.config import Settings
    return Settings(anonymized_telemetry=False)


def chroma_client(path=None, url: str | None = None, lock_timeout: float = LOCK_TIMEOUT_S):
    """`HttpClient` for `url` (default: env `VLSTEPS_CHROMA_URL`), else a `PersistentClient` at `path`
    (default: `vlsteps.outputs_dir()/"chroma"`) whose calls hold the folder's inter-process lock, so that
    several kernels can share it (`vlsteps.chroma_lock`); a call waits at most `lock_timeout` s for it.
    A server that does not answer its heartbeat within `vlsteps.net.timeout_s()` fails with one message."""
    import chromadb
    url = url if url is not None else os.environ.get(ENV_URL, "").strip()
    if url:
        parsed = urlparse(url if "://" in url else f"http://{url}")
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"{ENV_URL}={url!r} is not a URL like http://localhost:8000")
        ssl = parsed.scheme == "https"
        port = parsed.port or (443 if ssl else 8000)
        try:
            _heartbeat(parsed.hostname, port, ssl, timeout_s())
            client = chromadb.HttpClient(host=parsed.hostname, port=port, ssl=ssl, settings=_settings())
            # chromadb sends every later request with no timeout at all: bound each phase of each request
            # (connect, every read) so a server that stops answering mid-session fails instead of hanging.
            import httpx
            client._server._session.timeout = httpx.Timeout(timeout_s())
        except Exception as e:   # connection refused, DNS, TLS, no answer: one clear message
            raise ConnectionError(f"No Chroma server answers at {url} ({e.__class__.__name__}: {e}). Start one "
                                  f"with `chroma run --path DIR --port {port}`, or unset {ENV_URL} to use the "
                                  "embedded on-disk index.") from None
        return client
    if path is None:
        from ..paths import outputs_dir
        path = outputs_dir() / "chroma"
    return locked_client(path, _settings(), lock_timeout)


def _heartbeat(host: str, port: int, ssl: bool, seconds: float) -> None:
    """GET the server's heartbeat within `seconds` in all (`vlsteps.net.fetch`): chromadb's HttpClient
    constructor already sends requests, with no timeout."""
    from chromadb.api.base_http_client import BaseHTTPClient
    from chromadb.config import APIVersion
    fetch(BaseHTTPClient.resolve_url(host, ssl, APIVersion.V2.value, port) + "/heartbeat",
          max_bytes=64 * 1024, timeout=seconds)


def describe_client(client) -> str:
    """'server' or 'embedded': which kind of client this is (for printing)."""
    impl = str(client.get_settings().chroma_api_impl)
    return "server" if "fastapi" in impl.lower() else "embedded"


# --- collections -------------------------------------------------------------------------------------
def collection_name(embedder, prefix: str = "images") -> str:
    """`images-<model_key>-<dim>d-<fingerprint>`, sanitized to Chroma's naming rules."""
    tag = getattr(embedder, "collection_tag", None) or f"{embedder.model_key}-{embedder.dim}d"
    name = "".join(c if c.isalnum() or c in "-_." else "-" for c in f"{prefix}-{tag}")
    return name.strip("-_.")[:512]


def image_collection(client, embedder, space: str = "cosine", prefix: str = "images"):
    """The collection for `embedder`'s vectors (created on first use). `embedder` is a
    `ClipEmbedder` or anything with `model_key`, `dim` (and optionally `fingerprint`)."""
    if space not in SPACES:
        raise ValueError(f"space must be one of {SPACES}, got {space!r}")
    name = collection_name(embedder, prefix)
    meta = {"model_key": str(embedder.model_key), "dim": int(embedder.dim), "space": space,
            "fingerprint": str(getattr(embedder, "fingerprint", ""))}
    col = client.get_or_create_collection(name=name, embedding_function=None, metadata=meta,
                                          configuration={"hnsw": {"space": space}})
    have = col.metadata or {}
    if int(have.get("dim", embedder.dim)) != int(embedder.dim) or have.get("space", space) != space:
        raise DimensionMismatchError(
            f"Collection {name!r} holds {have.get('dim')}-d vectors in space {have.get('space')!r}, but this "
            f"embedder makes {embedder.dim}-d vectors for space {space!r}. Delete the collection "
            f"(client.delete_collection({name!r})) or use another prefix.")
    return col


def collection_dim(collection) -> int | None:
    meta = collection.metadata or {}
    return int(meta["dim"]) if "dim" in meta else None


def check_dim(collection, vectors: np.ndarray) -> None:
    dim = collection_dim(collection)
    if vectors.ndim != 2:
        raise DimensionMismatchError(f"expected a 2-D array (n, dim) of vectors, got shape {vectors.shape}")
    if dim is not None and vectors.shape[1] != dim:
        raise DimensionMismatchError(
            f"Collection {collection.name!r} stores {dim}-d vectors but got {vectors.shape[1]}-d ones: these come "
            f"from a different embedding model. Use image_collection(client, embedder) for that model's own "
            "collection.")


def check_finite(vectors: np.ndarray, what: str, advice: str) -> None:
    """NaN or inf would be stored or searched as is, and every similarity would come back NaN."""
    bad = ~np.isfinite(vectors).all(axis=1)
    if bad.any():
        raise ValueError(f"{what} NaN or infinite values in {int(bad.sum())} of {len(vectors)} vector(s). "
                         f"{advice}")


# --- ids and metadata ---------------------------------------------------------------------------------
def content_id(image) -> str:
    """sha256 of the decoded pixels (size, mode, bytes): the same picture always gets the same id,
    whether it comes from a PNG file, a JPEG decoded the same way or an in-memory PIL image."""
    image = load_image(image)
    h = hashlib.sha256(f"{image.width}x{image.height}:RGB:".encode())
    h.update(image.tobytes())
    return h.hexdigest()[:32]


def _clean_meta(meta: dict | None) -> dict:
    """Chroma metadata values must be str/int/float/bool: Paths become str, None is dropped."""
    out = {}
    for k, v in (meta or {}).items():
        if v is None:
            continue
        if isinstance(v, (np.integer,)):
            v = int(v)
        elif isinstance(v, (np.floating,)):
            v = float(v)
        elif not isinstance(v, (str, int, float, bool)):
            v = str(v)
        out[str(k)] = v
    return out


def _with_vectors(collection, ids: list[str]) -> set[str]:
    """The ids among `ids` that are stored *with* their vector. An index damaged by processes that wrote
    to it at once before vlsteps locked it has ids whose vector is gone ("Error finding id"): those are
    embedded again, which repairs it."""
    from chromadb.errors import InternalError
    try:
        return set(collection.get(ids=ids, include=["embeddings"])["ids"])
    except InternalError:
        return set()


def index_images(collection, embedder, images: Sequence, metadatas: Sequence[dict] | None = None) -> list[str]:
    """Embed and upsert images (PIL images or paths); returns their ids in input order.

    Only images whose vector is not yet in the collection are embedded (a re-run costs a lookup, not a
    forward pass); their metadata is upserted either way. NaN or inf vectors are refused, storing nothing.
    `metadatas[i]` typically holds `path`, `category`, `prompt`; the embedder's `model_key` is added."""
    images = list(images)
    metadatas = list(metadatas) if metadatas is not None else [{} for _ in images]
    if len(metadatas) != len(images):
        raise ValueError(f"{len(images)} images but {len(metadatas)} metadata dicts")
    if collection_dim(collection) not in (None, embedder.dim):
        raise DimensionMismatchError(
            f"Collection {collection.name!r} stores {collection_dim(collection)}-d vectors; this embedder "
            f"({embedder.model_key}) makes {embedder.dim}-d ones. Use image_collection(client, embedder).")
    images = [load_image(im) for im in images]   # decoded once: for the ids and, if new, the embedding
    ids = [content_id(im) for im in images]
    first: dict[str, int] = {}
    for i, id_ in enumerate(ids):
        first.setdefault(id_, i)          # the same picture twice in one call: keep the first
    uniq = list(first.items())
    if not uniq:
        return ids
    present = _with_vectors(collection, [u for u, _ in uniq])
    metas = {u: _clean_meta({**metadatas[i], "model_key": embedder.model_key}) for u, i in uniq}
    new = [(u, i) for u, i in uniq if u not in present]
    if new:
        vectors = embedder.images([images[i] for _, i in new])
        check_dim(collection, vectors)
        check_finite(vectors, "the embedder returned", "Nothing was stored. Load the model in float32 or "
                     "bfloat16 (float16 can overflow), and check that the images decode.")
        collection.upsert(ids=[u for u, _ in new], embeddings=vectors, metadatas=[metas[u] for u, _ in new])
    old = [u for u, _ in uniq if u in present]
    if old:
        collection.update(ids=old, metadatas=[metas[u] for u in old])
    return ids


# --- search ------------------------------------------------------------------------------------------
def _similarity(distance: float, space: str) -> float:
    """Chroma returns distances; for unit vectors all three spaces map back to the cosine."""
    if space == "l2":
        return 1.0 - distance / 2.0      # squared L2 of unit vectors = 2 - 2 cos
    return 1.0 - distance                # cosine: 1 - cos; ip: 1 - dot (= 1 - cos for unit vectors)


def _distances(query: np.ndarray, vectors: np.ndarray, space: str) -> np.ndarray:
    """Chroma's distances, computed exactly: cosine = 1 - cos, ip = 1 - dot, l2 = squared L2."""
    if space == "l2":
        return ((vectors - query) ** 2).sum(axis=1)
    if space == "cosine":
        query = query / max(float(np.linalg.norm(query)), 1e-30)
        vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-30)
    return 1.0 - vectors @ query


def search_by_vector(collection, vector, k: int = 8, where: dict | None = None) -> list[Hit]:
    """The k nearest stored items to one (or the first of several) query vectors.

    Asked for as many items as the collection holds, it ranks them all exactly: Chroma's HNSW index is
    approximate and, asked for all n, has been seen to leave out one it could not reach."""
    vector = np.asarray(vector, dtype=np.float32)
    if vector.ndim == 1:
        vector = vector[None]
    check_dim(collection, vector)
    check_finite(vector[:1], "the query vector has", "Check how it was computed (a float16 model can "
                 "overflow: load it in float32 or bfloat16).")
    n = collection.count()
    if n == 0 or k < 1:
        return []
    space = (collection.metadata or {}).get("space", "cosine")
    if k >= n:
        res = collection.get(where=where, include=["embeddings", "metadatas"])
        if not res["ids"]:
            return []
        dist = _distances(vector[0], np.asarray(res["embeddings"], dtype=np.float32), space)
        order = np.argsort(dist, kind="stable")[:int(k)]
        ids, dists, metas = ([res["ids"][i] for i in order], dist[order], [res["metadatas"][i] for i in order])
    else:
        res = collection.query(query_embeddings=vector[:1], n_results=int(k), where=where,
                               include=["metadatas", "distances"])
        ids, dists, metas = res["ids"][0], res["distances"][0], res["metadatas"][0]
    return [Hit(id=i, similarity=_similarity(float(d), space), metadata=dict(m or {}))
            for i, d, m in zip(ids, dists, metas)]


def search_by_text(collection, embedder, query: str, k: int = 8, where: dict | None = None) -> list[Hit]:
    """Images nearest to a text query (CLIP's shared space makes text and images comparable)."""
    if not isinstance(query, str):
        raise TypeError(f"the text query must be a string, got {type(query).__name__} {query!r:.80}: pass the "
                        "words you are looking for, e.g. 'a photo of a cat'")
    if not query.strip():
        raise ValueError("the text query is empty: type what you are looking for, e.g. 'a photo of a cat'")
    return search_by_vector(collection, embedder.texts([query.strip()]), k, where)


def search_by_image(collection, embedder, image, k: int = 8, where: dict | None = None) -> list[Hit]:
    """Images nearest to an image (a PIL image or a path)."""
    return search_by_vector(collection, embedder.images([image]), k, where)


def precision_at_k(collection, embedder, queries: dict[str, str], k: int = 5,
                   key: str = "category") -> dict[str, float]:
    """For each category, the fraction of the top-k hits for its text query whose metadata[key] is that
    category. Meaningful with real weights, and offline with the learned stand-in on world scenes."""
    return {cat: float(np.mean([h.metadata.get(key) == cat for h in search_by_text(collection, embedder, q, k)]
                               or [0.0]))
            for cat, q in queries.items()}


def all_ids(collection) -> list[str]:
    return list(collection.get(include=[])["ids"])


def metadatas(collection, where: dict | None = None) -> list[dict]:
    """Every item's metadata (sorted by id so the order is stable across runs)."""
    res = collection.get(where=where, include=["metadatas"])
    return [dict(m or {}, id=i) for i, m in sorted(zip(res["ids"], res["metadatas"]))]
