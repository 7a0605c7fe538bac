"""A full disk, or a save cut short, must not cost the Chroma index a single acknowledged vector.

The disk is a real one the tests make: a small tmpfs mounted for the test (root only; elsewhere those tests skip,
saying so). Items are tiny pictures and the fake embedder turns each into a random unit vector of CLIP's size
(512) seeded by its pixels, so no model runs and every vector can be checked afterwards. The collection saves
its vector files every 100 records instead of 1,000. Every read-back runs in a fresh process, the way the next
notebook opens the index.
"""
import errno
import hashlib
import logging
import multiprocessing
import os
import re
import shutil
import subprocess
import uuid

import numpy as np
import pytest
from PIL import Image

from vlsteps import chroma_lock, chroma_safe, index

DIM, BATCH, SYNC_THRESHOLD = 512, 20, 100
CHILD_TIMEOUT_S = 120


class BigEmbedder:
    """A fake 512-d embedding model: an image's vector is a random unit vector seeded by its pixels."""
    model_key, dim, fingerprint = "big", DIM, "diskfull"

    def images(self, items):
        return np.stack([vector(it) for it in items])


def vector(image: Image.Image) -> np.ndarray:
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(image.tobytes()).digest()[:8], "little"))
    v = rng.normal(size=DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def picture(i: int) -> Image.Image:
    return Image.fromarray(np.frombuffer(i.to_bytes(12, "little"), np.uint8).reshape(2, 2, 3).copy())


def create(client) -> None:
    """The collection `image_collection` makes, created first with a small `sync_threshold`."""
    emb = BigEmbedder()
    client.create_collection(
        index.collection_name(emb), embedding_function=None,
        metadata={"model_key": emb.model_key, "dim": DIM, "space": "cosine", "fingerprint": emb.fingerprint},
        configuration={"hnsw": {"space": "cosine", "sync_threshold": SYNC_THRESHOLD, "batch_size": BATCH}})


def index_until_it_fails(col, batches, then=lambda: None) -> tuple[list[int], list[int], Exception | None]:
    """Index batch after batch, calling `then()` after each; (the items of the batches that succeeded, those of
    the failed one, its error)."""
    done = []
    for batch in batches:
        try:
            index.index_images(col, BigEmbedder(), [picture(i) for i in batch], [{"item": i} for i in batch])
        except Exception as e:
            return done, list(batch), e
        done += batch
        then()
    return done, [], None


def batches(start: int, stop: int):
    return [list(range(s, s + BATCH)) for s in range(start, stop, BATCH)]


def read_back(where: str) -> dict:
    """What a user can ask the index in a fresh process: the count, every vector, and a search for all."""
    col = index.image_collection(index.chroma_client(path=where, url=""), BigEmbedder())
    n = col.count()
    got = col.get(include=["embeddings", "metadatas"])
    return {"count": n, "vectors": {m["item"]: e for m, e in zip(got["metadatas"], np.asarray(got["embeddings"]))},
            "found": len(index.search_by_vector(col, vector(picture(0)), k=max(n, 1)))}


def write_unguarded(where: str, items: int) -> None:
    """What vlsteps wrote before it kept safe copies: plain chromadb."""
    import chromadb
    client = chromadb.PersistentClient(path=where, settings=index._settings())
    create(client)
    col = client.get_collection(index.collection_name(BigEmbedder()), embedding_function=None)
    for batch in batches(0, items):
        col.upsert(ids=[index.content_id(picture(i)) for i in batch], metadatas=[{"item": i} for i in batch],
                   embeddings=BigEmbedder().images([picture(i) for i in batch]))


def fill(disk, free: int) -> None:
    """Grow the disk's filler file until only `free` bytes are left."""
    with open(os.path.join(disk, "filler"), "ab") as f:
        try:
            f.write(b"\0" * max(shutil.disk_usage(disk).free - free, 0))
        except OSError:             # tmpfs counts whole pages: the last one may not fit
            pass


def in_another_process(fn, *args):
    """`fn(*args)` in a fresh (spawned) Python, like the next notebook kernel; bounded."""
    with multiprocessing.get_context("spawn").Pool(1) as other:
        return other.apply_async(fn, args).get(CHILD_TIMEOUT_S)


def assert_every_item_back(back: dict, acked: list[int], failed: list[int]) -> None:
    """Every acknowledged item with its vector; the batch whose write failed may be there too, whole."""
    assert set(acked) <= set(back["vectors"]) <= set(acked) | set(failed)
    for item, v in back["vectors"].items():
        np.testing.assert_allclose(v, vector(picture(item)), atol=1e-6)
    assert back["count"] == back["found"] == len(back["vectors"])


@pytest.fixture
def small_disk(tmp_path):
    """A 6 MB tmpfs of its own, unmounted at the end."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(disk)], capture_output=True,
                             text=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a small tmpfs to fill up here (root only): {mounted.stderr.strip()}; "
                    "test_a_save_cut_short_is_restored_from_its_safe_copy still covers the repair")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=True)


@pytest.fixture
def restores(caplog):
    """The warnings `chroma_safe` logs when it puts a safe copy back."""
    caplog.set_level(logging.WARNING, logger=chroma_safe.__name__)
    return lambda: [r.getMessage() for r in caplog.records if "did not complete" in r.getMessage()]


def test_a_full_disk_says_so_and_loses_nothing(small_disk):
    where = str(small_disk / "chroma")
    client = index.chroma_client(path=where, url="")
    create(client)
    col = index.image_collection(client, BigEmbedder())
    fill(small_disk, 1_500_000)
    acked, failed, error = index_until_it_fails(col, batches(0, 2000))
    assert isinstance(error, chroma_safe.DiskFullError) and acked, error
    message = str(error)
    assert message.startswith(f"[Errno 28] Disk full: the Chroma index {where} needs about"), message
    need, free, short = map(float, re.search(r"needs about ([\d.]+) MB free for this write, and its disk has "
                                             r"([\d.]+) MB free\. Free at least ([\d.]+) MB there", message).groups())
    assert 0 <= free < need and short >= 0.1

    (small_disk / "filler").unlink()
    assert_every_item_back(in_another_process(read_back, where), acked, failed)


def test_a_save_that_fills_the_disk_halfway_is_undone(small_disk, monkeypatch, restores):
    """Another program fills the disk just after the free-space check, while Chroma saves its vector files:
    the save stops halfway, over files that a save of the first 100 records had already written (the log
    no longer holds those records, so rebuilding from it would lose them)."""
    where = str(small_disk / "chroma")
    client = index.chroma_client(path=where, url="")
    create(client)
    col = index.image_collection(client, BigEmbedder())
    acked, _, error = index_until_it_fails(col, batches(0, 160))
    segment = next(p for p in (small_disk / "chroma").iterdir() if p.is_dir() and _is_uuid(p.name))
    assert error is None and chroma_safe.SafeCopies(small_disk / "chroma")._trimmed(segment.name)

    renew = chroma_lock._Folder._renew

    def renew_then_fill(folder):             # runs after the free-space check, right before the write
        token = renew(folder)
        fill(small_disk, 192 * 1024)          # room for the log, not for the save
        return token
    monkeypatch.setattr(chroma_lock._Folder, "_renew", renew_then_fill)
    more, failed, error = index_until_it_fails(col, batches(160, 400),      # that program frees its space
                                               then=lambda: (small_disk / "filler").unlink())   # after each write
    monkeypatch.undo()
    assert isinstance(error, chroma_safe.DiskFullError) and "every item stored before this call is kept" in str(error)
    assert "save that did not complete: restored from the safe copy" in restores()[0]

    (small_disk / "filler").unlink()
    back = in_another_process(read_back, where)
    assert_every_item_back(back, acked + more, failed)
    assert col.count() == back["count"]                         # this process sees it too


def test_an_index_broken_before_vlsteps_kept_safe_copies_is_repaired_when_opened(tmp_path):
    """The folder of the report: plain chromadb's first save stopped by a full disk left a 0-byte pickle and
    link list, and every call failed ("Error deserializing pickle file"). It has no safe copy, but no save
    completed, so the log still holds every record."""
    where = str(tmp_path / "chroma")
    in_another_process(write_unguarded, where, 80)
    segment = next(p for p in (tmp_path / "chroma").iterdir() if p.is_dir() and _is_uuid(p.name))
    for name in (chroma_safe.PICKLE, "link_lists.bin"):
        (segment / name).write_bytes(b"")

    assert_every_item_back(in_another_process(read_back, where), list(range(80)), [])


def test_a_save_cut_short_is_restored_from_its_safe_copy(tmp_path):
    """What a save stopped by a full disk or a kill leaves (no disk of its own needed): a 0-byte pickle and
    link list after three complete saves. The next process to open the index finds every vector."""
    where = str(tmp_path / "chroma")
    client = index.chroma_client(path=where, url="")
    create(client)
    col = index.image_collection(client, BigEmbedder())
    acked, _, error = index_until_it_fails(col, batches(0, 340))
    assert error is None
    segment = next(p for p in (tmp_path / "chroma").iterdir() if p.is_dir() and _is_uuid(p.name))
    for name in (chroma_safe.PICKLE, "link_lists.bin"):
        (segment / name).write_bytes(b"")

    assert_every_item_back(in_another_process(read_back, where), acked, [])
    assert col.count() == len(acked)


def test_no_room_for_the_safe_copy_stops_the_next_call_until_there_is(tmp_path, monkeypatch):
    """A save that succeeded but left no room to copy it: the next call, which could save again over the only
    good files, is refused (injected: the copy fails with ENOSPC); once it fits, the copy is made."""
    where = tmp_path / "chroma"
    client = index.chroma_client(path=where, url="")
    create(client)
    col = index.image_collection(client, BigEmbedder())
    acked, _, error = index_until_it_fails(col, batches(0, 80))

    def no_room(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(chroma_safe.shutil, "copyfile", no_room)
    more, _, error = index_until_it_fails(col, batches(80, 100))          # the 100th record: Chroma saves
    assert error is None and not list((where / chroma_safe.SAFE_DIR).glob("*"))
    with pytest.raises(chroma_safe.DiskFullError, match=f"{where} needs about .* for a safe copy"):
        col.count()
    monkeypatch.undo()
    assert col.count() == 100 and len(list((where / chroma_safe.SAFE_DIR).glob("*"))) == 1
    assert_every_item_back(in_another_process(read_back, str(where)), acked + more, [])


def _is_uuid(name: str) -> bool:
    try:
        return bool(uuid.UUID(name))
    except ValueError:
        return False


def test_a_text_query_that_is_not_a_string_says_so(tmp_path):
    col = index.image_collection(index.chroma_client(path=tmp_path, url=""), BigEmbedder())
    with pytest.raises(TypeError, match=r"must be a string, got int 123"):
        index.search_by_text(col, BigEmbedder(), 123)
    with pytest.raises(ValueError, match="empty"):
        index.search_by_text(col, BigEmbedder(), "  ")
