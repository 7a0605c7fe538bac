"""What each process of test_index_stress.py runs. Kept apart so that a spawned process imports only
numpy, PIL and vlsteps.index, not the test modules (torch, transformers): it starts in seconds."""
import hashlib

import numpy as np
from PIL import Image

from vlsteps import index

WRITERS, PER_WRITER, STRIDE, BATCH = 3, 150, 100, 10   # writer k: items k*100 ... k*100+149, 50 shared
UNIQUE = (WRITERS - 1) * STRIDE + PER_WRITER
DIM = 16
SYNC_THRESHOLD = 50         # Chroma saves its HNSW index every 1,000 records; every 50 here, to fail sooner


class RandomEmbedder:
    """A fake embedding model: an image's vector is a random unit vector seeded by its pixels."""
    model_key, dim, fingerprint = "random", DIM, "stress01"

    def images(self, items):
        return np.stack([vector(it.tobytes()) for it in items])


def vector(pixels: bytes) -> np.ndarray:
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(pixels).digest()[:8], "little"))
    v = rng.normal(size=DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def picture(i: int) -> Image.Image:
    return Image.fromarray(np.frombuffer(i.to_bytes(12, "little"), np.uint8).reshape(2, 2, 3).copy())


def client(where: str):
    return index.chroma_client(url=where) if where.startswith("http") else index.chroma_client(path=where, url="")


def create(where: str) -> None:
    """The collection `image_collection` makes, created first with a small `sync_threshold`."""
    emb = RandomEmbedder()
    client(where).create_collection(
        index.collection_name(emb), embedding_function=None,
        metadata={"model_key": emb.model_key, "dim": DIM, "space": "cosine", "fingerprint": emb.fingerprint},
        configuration={"hnsw": {"space": "cosine", "sync_threshold": SYNC_THRESHOLD, "batch_size": BATCH}})


def warm_up(_=None) -> None:
    import time

    import chromadb  # noqa: F401  (the slow import, done before the processes race)
    time.sleep(0.5)     # hold this process so that the next warm-up goes to another one


def write(where: str, k: int) -> list[tuple[int, int]]:
    """Writer k's items (see WRITERS)."""
    return index_items(where, range(k * STRIDE, k * STRIDE + PER_WRITER), k)


def index_items(where: str, items, writer: int = 0) -> list[tuple[int, int]]:
    """Index the pictures of `items` batch by batch; after each batch, (count, hits of a search with
    k = count): a search must find every item that was counted."""
    emb = RandomEmbedder()
    col = index.image_collection(client(where), emb)
    items = list(items)
    seen = []
    for start in range(0, len(items), BATCH):
        batch = items[start:start + BATCH]
        index.index_images(col, emb, [picture(i) for i in batch], [{"item": i, "writer": writer} for i in batch])
        n = col.count()
        seen.append((n, len(index.search_by_vector(col, vector(bytes([writer, start % 256])), k=n))))
    return seen


def read_back(where: str) -> dict:
    """Everything a user can ask the index about its items, after the writers are done."""
    emb = RandomEmbedder()
    col = index.image_collection(client(where), emb)
    n = col.count()
    got = col.get(include=["embeddings", "metadatas"])              # raises if an item's vector is gone
    return {"count": n, "sync_threshold": col.configuration["hnsw"]["sync_threshold"], "ids": got["ids"],
            "embeddings": np.asarray(got["embeddings"]), "items": [m["item"] for m in got["metadatas"]],
            "found": [h.id for h in index.search_by_vector(col, vector(b"any"), k=max(n, 1))]}
