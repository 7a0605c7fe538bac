"""Fill the index from folders of photos: `python -m vlsteps.index build PATH...` (see `__main__`).

How a run stays correct when it is killed at any moment and started again:
- **Ids hash the file's bytes**, not the decoded pixels (`store.content_id`): a copy of a file gets the same id
  without being decoded, and an unchanged file is recognised by a hash, never by a decode plus a forward pass.
  Two encodings of one picture (a PNG and its re-saved JPEG) are two ids: for a photo library, the files are
  what the user sees and deletes.
- **A record per file** (path -> size, mtime, id) lives in a second collection next to the vectors, so an
  unchanged file is skipped without being read, with the embedded client and with a Chroma server alike.
- **Vectors first, records after**: a batch's vectors are upserted (by id: a second upsert changes nothing), then
  its files are recorded. Killed in between, the next run hashes those files again, finds their vectors and
  records them without a forward pass. A file is never recorded without its vector.
- **Vectors no record points to are deleted at the end** (files deleted or changed since the last run, or a
  run killed after its records changed): an id that another path still uses stays.

Decoding runs in a thread pool while the model runs the previous batch, through a bounded window of futures.
"""
from __future__ import annotations

import hashlib
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from PIL import Image

from ..images import ImageLoadError, load_image
from . import store

SOURCE = "index-build"      # the metadata mark of the vectors this command owns (and may delete)
_PAGE = 5000                # records read per request


@dataclass
class Summary:
    """What one run did: counts, and the files it could not read (path, reason)."""
    files: int = 0
    unchanged: int = 0
    embedded: int = 0
    reused: int = 0           # new or changed files whose content was already embedded (a copy, a run killed)
    removed: int = 0          # vectors deleted: no file points to them any more
    failed: list[tuple[str, str]] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"{self.files} image file(s): {self.embedded} embedded, {self.reused} already in the index "
               f"(copies), {self.unchanged} unchanged, {self.removed} vector(s) removed, {len(self.failed)} "
               "could not be read"]
        out += [f"  could not read {path}: {why}" for path, why in self.failed]
        return out


@dataclass
class _Item:
    path: str
    size: int
    mtime_ns: int
    id: str
    pixels: torch.Tensor | None    # None: the id is known, nothing to embed


def image_files(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Every file under `paths` (folders walked, files taken as they are) whose suffix Pillow opens, absolute,
    sorted. A path that does not exist raises FileNotFoundError naming it."""
    suffixes = {s.lower() for s in Image.registered_extensions()}
    found = set()
    for p in paths:
        p = Path(p).expanduser().absolute()
        if p.is_file():
            found.add(p)
        elif p.is_dir():
            found.update(f for f in p.rglob("*") if f.suffix.lower() in suffixes and f.is_file())
        else:
            raise FileNotFoundError(f"{p} does not exist: pass folders or image files to index")
    return sorted(found)


def file_id(data: bytes) -> str:
    """32 hex chars of the sha256 of a file's bytes (the length of `store.content_id`)."""
    return hashlib.sha256(data).hexdigest()[:32]


def records_collection(client, collection):
    """The collection of file records for `collection`: id = absolute path, metadata = size, mtime_ns, image id.
    Chroma keeps a vector with every record; these carry a constant 1-d one."""
    return client.get_or_create_collection(name=f"files-{collection.name}"[:512], embedding_function=None,
                                           metadata={"records_for": collection.name})


def _all(collection, where: dict | None = None, include=("metadatas",)) -> tuple[list[str], list[dict]]:
    ids, metas, offset = [], [], 0
    while True:
        got = collection.get(where=where, include=list(include), limit=_PAGE, offset=offset)
        ids += got["ids"]
        metas += got.get("metadatas") or [{} for _ in got["ids"]]
        if len(got["ids"]) < _PAGE:
            return ids, metas
        offset += _PAGE


def _under(path: str, roots: Sequence[Path]) -> bool:
    return any(path == str(r) or path.startswith(str(r) + os.sep) for r in roots)


def build(client, embedder, paths: Sequence[str | os.PathLike], batch_size: int | None = None, workers: int = 4,
          progress: Callable[[int], object] | None = None) -> Summary:
    """Index every image under `paths` into `embedder`'s collection (see the module docstring).
    `progress(total)` returns a bar with `update(n)` and `close()` (tqdm's), or None."""
    files = image_files(paths)
    roots = [Path(p).expanduser().absolute() for p in paths]
    collection = store.image_collection(client, embedder)
    records = records_collection(client, collection)
    rec_ids, rec_metas = _all(records)
    recorded = dict(zip(rec_ids, rec_metas))
    summary = Summary(files=len(files))

    todo = []
    for f in files:
        try:
            st = f.stat()
        except OSError as e:           # gone or unreadable since the walk
            summary.failed.append((str(f), e.strerror or str(e)))
            continue
        have = recorded.get(str(f))
        if have and have.get("size") == st.st_size and have.get("mtime_ns") == str(st.st_mtime_ns):
            summary.unchanged += 1
        else:
            todo.append((f, st))
    known = {m["image"] for m in recorded.values()}     # ids whose vectors were stored: no decode for those

    def prepare(f: Path, st) -> _Item | None:
        try:
            data = f.read_bytes()
            id_ = file_id(data)
            pixels = None if id_ in known else embedder.pixels(load_image(data))
        except (ImageLoadError, OSError) as e:
            summary.failed.append((str(f), str(e).replace(f"{f}: ", "")))
            return None
        return _Item(str(f), st.st_size, st.st_mtime_ns, id_, pixels)

    batch_size = batch_size or embedder.batch_size
    bar = progress(len(todo)) if progress else None
    batch: list[_Item] = []

    def take(future, final: bool = False) -> None:
        nonlocal batch
        item = future.result()
        if item is not None:
            batch.append(item)
        if bar is not None:
            bar.update(1)
        if batch and (len(batch) >= batch_size or final):
            _store(collection, records, embedder, batch, summary, known)
            batch = []

    with ThreadPoolExecutor(max_workers=workers) as pool:
        window: deque = deque()        # bounded: at most two batches decoded ahead of the model
        for f, st in todo:
            window.append(pool.submit(prepare, f, st))
            while len(window) >= 2 * batch_size:
                take(window.popleft())
        while window:
            take(window.popleft(), final=not window)
    if bar is not None:
        bar.close()

    # A file that is gone, or no longer reads, no longer holds the content recorded for it.
    present = {str(f) for f in files} - {path for path, _ in summary.failed}
    gone = [p for p in recorded if _under(p, roots) and p not in present]
    if gone:
        records.delete(ids=gone)
    summary.removed = _remove_orphans(collection, records)
    summary.failed.sort()           # the decoding threads append in the order they finish
    return summary


def _store(collection, records, embedder, batch: list[_Item], summary: Summary, known: set[str]) -> None:
    """Embed the batch's new contents, upsert their vectors, then record its files (in that order)."""
    new: dict[str, _Item] = {}
    for item in batch:
        if item.pixels is not None and item.id not in known:
            new.setdefault(item.id, item)
    present = store._with_vectors(collection, list(new)) if new else set()
    embed = [item for id_, item in new.items() if id_ not in present]
    if embed:
        vectors = embedder.image_features(torch.stack([item.pixels for item in embed])).cpu().numpy()
        vectors = vectors.astype(np.float32, copy=False)
        store.check_dim(collection, vectors)
        store.check_finite(vectors, "the embedder returned", "Nothing was stored. Load the model in float32 or "
                           "bfloat16 (float16 can overflow).")
        collection.upsert(ids=[i.id for i in embed], embeddings=vectors,
                          metadatas=[{"path": i.path, "model_key": embedder.model_key, "source": SOURCE}
                                     for i in embed])
    summary.embedded += len(embed)
    summary.reused += len(batch) - len(embed)
    known.update(item.id for item in batch)
    records.upsert(ids=[i.path for i in batch], embeddings=[[1.0]] * len(batch),
                   metadatas=[{"size": i.size, "mtime_ns": str(i.mtime_ns), "image": i.id} for i in batch])


def _remove_orphans(collection, records) -> int:
    """Delete this command's vectors that no file record points to, and point a vector whose stored path is gone
    to a file that still has its content. Returns how many vectors were deleted."""
    paths: dict[str, set[str]] = {}
    for path, meta in zip(*_all(records)):
        paths.setdefault(meta["image"], set()).add(path)
    ids, metas = _all(collection, where={"source": SOURCE})
    orphans = [i for i in ids if i not in paths]
    if orphans:
        collection.delete(ids=orphans)
    moved = [(i, m) for i, m in zip(ids, metas) if i in paths and m.get("path") not in paths[i]]
    if moved:
        collection.update(ids=[i for i, _ in moved], metadatas=[{**m, "path": min(paths[i])} for i, m in moved])
    return len(orphans)
