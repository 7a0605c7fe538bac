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

A URL (`urls=`) is a file whose record key is the URL itself: a URL already recorded is not fetched again, and
one no longer in the list is removed like a deleted file (only by a run that was given a list). Fetches go through
`vlsteps.net.fetch` under `AddressPolicy.from_env()`: private and loopback addresses only where VLSTEPS_ALLOW_HOSTS
allows them.

`build` plans (what changed), stores (vectors, records) and removes orphans; a runner only turns the pending list
into items: `Local` decodes in a thread pool while the model runs the previous batch, through a bounded window of
futures; `ray_runner.RayRunner` runs the same `read` and the same model on Ray Data.
"""
from __future__ import annotations

import hashlib
import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
from PIL import Image

from ..images import MAX_BYTES, ImageLoadError
from ..net import AddressPolicy, FetchError, fetch
from . import store

SOURCE = "index-build"      # the metadata mark of the vectors this command owns (and may delete)
_PAGE = 5000                # records read per request
URL_SCHEMES = ("http://", "https://")


@dataclass
class Summary:
    """What one run did: counts, and the files (or URLs) it could not read (key, reason)."""
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


@dataclass(frozen=True)
class Pending:
    """A file or URL to read: `key` is its absolute path or its URL (the record's id)."""
    key: str
    size: int = 0
    mtime_ns: str = ""        # "" for a URL


@dataclass
class Item:
    """A file read and hashed: `pixels` (the plain path) or `vector` (Ray) is None when its id was known."""
    key: str
    size: int
    mtime_ns: str
    id: str
    pixels: torch.Tensor | None = None
    vector: np.ndarray | None = None


def is_url(key: str) -> bool:
    return key.startswith(URL_SCHEMES)


def read_urls(path: str | os.PathLike) -> list[str]:
    """The URLs in a text file, one a line, in order, each once; blank lines and `#` comments are skipped."""
    lines = (line.strip() for line in Path(path).read_text().splitlines())
    return list(dict.fromkeys(line for line in lines if line and not line.startswith("#")))


def load_embedder(key: str, batch_size: int):
    """The registry model `key` as a ClipEmbedder (what the CLI and each Ray actor load)."""
    from .. import checkpoint
    from ..embed import ClipEmbedder
    return ClipEmbedder.from_pretrained(checkpoint.model_dir(key, banner=False), model_key=key,
                                        batch_size=batch_size)


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


def read(entry: Pending, known: set[str], pixels: Callable) -> Item | tuple[str, str]:
    """Read, hash and (unless its id is `known`) decode one file or URL: the Item, or (key, why not). Never raises
    for a bad file, a refused address, a timeout or an HTTP error."""
    try:
        data = (fetch(entry.key, max_bytes=MAX_BYTES, policy=AddressPolicy.from_env()) if is_url(entry.key)
                else Path(entry.key).read_bytes())
        id_ = file_id(data)
        tensor = None if id_ in known else pixels(data, draft=True)
    except (ImageLoadError, OSError, FetchError) as e:
        return entry.key, str(e).removeprefix(f"{entry.key}: ") or type(e).__name__
    return Item(entry.key, len(data) if is_url(entry.key) else entry.size, entry.mtime_ns, id_, tensor)


class _Inline:
    """A pool of no threads: `submit` runs the call at once (`workers=0`: decoding in the model's own thread)."""

    def submit(self, fn, *args) -> Future:
        future = Future()
        future.set_result(fn(*args))
        return future

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None


class Local:
    """The plain path: `read` in `workers` threads (0: in this thread, no overlap) while the model, in this process,
    runs the previous batch; at most two batches are read ahead."""

    def __init__(self, embedder, workers: int = 4):
        self.embedder, self.workers = embedder, workers

    def run(self, todo: Sequence[Pending], known: set[str], batch_size: int) -> Iterator[Item | tuple[str, str]]:
        with ThreadPoolExecutor(max_workers=self.workers) if self.workers else _Inline() as pool:
            window: deque = deque()
            for entry in todo:
                window.append(pool.submit(read, entry, known, self.embedder.preprocess))
                while len(window) >= 2 * batch_size:
                    yield window.popleft().result()
            while window:
                yield window.popleft().result()

    def vectors(self, items: Sequence[Item]) -> np.ndarray:
        return self.embedder.image_features(torch.stack([item.pixels for item in items])).cpu().numpy()


def build(client, embedder, paths: Sequence[str | os.PathLike], batch_size: int | None = None, workers: int = 4,
          progress: Callable[[int], object] | None = None, urls: Sequence[str] | None = None,
          runner=None) -> Summary:
    """Index every image under `paths` and at `urls` into `embedder`'s collection (see the module docstring).
    `progress(total)` returns a bar with `update(n)` and `close()` (tqdm's), or None. `runner` reads and embeds
    (default: `Local(embedder, workers)`); `urls=None` leaves recorded URLs alone, a list removes the others."""
    files = image_files(paths)
    roots = [Path(p).expanduser().absolute() for p in paths]
    collection = store.image_collection(client, embedder)
    records = records_collection(client, collection)
    rec_ids, rec_metas = _all(records)
    recorded = dict(zip(rec_ids, rec_metas))
    summary = Summary(files=len(files) + len(urls or ()))

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
            todo.append(Pending(str(f), st.st_size, str(st.st_mtime_ns)))
    for url in urls or ():
        if url in recorded:            # a URL is fetched once: its record is its content
            summary.unchanged += 1
        else:
            todo.append(Pending(url))
    known = {m["image"] for m in recorded.values()}     # ids whose vectors were stored: no decode for those

    runner = runner or Local(embedder, workers)
    batch_size = batch_size or embedder.batch_size
    bar = progress(len(todo)) if progress else None
    batch: list[Item] = []
    try:
        for got in runner.run(todo, known, batch_size):
            if isinstance(got, Item):
                batch.append(got)
            else:
                summary.failed.append(got)
            if bar is not None:
                bar.update(1)
            if len(batch) >= batch_size:
                _store(collection, records, embedder.model_key, runner.vectors, batch, summary, known)
                batch = []
        if batch:
            _store(collection, records, embedder.model_key, runner.vectors, batch, summary, known)
    finally:                        # an error message starts on a line of its own
        if bar is not None:
            bar.close()

    # A file that is gone, or no longer reads, no longer holds the content recorded for it; so with a URL list,
    # a URL that left it or failed.
    present = {str(f) for f in files} | set(urls or ())
    present -= {key for key, _ in summary.failed}
    gone = [k for k in recorded if k not in present and (is_url(k) and urls is not None or _under(k, roots))]
    if gone:
        records.delete(ids=gone)
    summary.removed = _remove_orphans(collection, records)
    summary.failed.sort()           # the decoding threads append in the order they finish
    return summary


def _store(collection, records, model_key: str, vectors: Callable[[Sequence[Item]], np.ndarray],
           batch: list[Item], summary: Summary, known: set[str]) -> None:
    """Embed the batch's new contents (`vectors`: the runner's), upsert their vectors, then record its files."""
    new: dict[str, Item] = {}
    for item in batch:
        if item.id not in known:
            new.setdefault(item.id, item)
    present = store._with_vectors(collection, list(new)) if new else set()
    embed = [item for id_, item in new.items() if id_ not in present]
    if embed:
        found = vectors(embed).astype(np.float32, copy=False)
        store.check_dim(collection, found)
        store.check_finite(found, "the embedder returned", "Nothing was stored. Load the model in float32 or "
                           "bfloat16 (float16 can overflow).")
        collection.upsert(ids=[i.id for i in embed], embeddings=found,
                          metadatas=[{"path": i.key, "model_key": model_key, "source": SOURCE} for i in embed])
    summary.embedded += len(embed)
    summary.reused += len(batch) - len(embed)
    known.update(item.id for item in batch)
    records.upsert(ids=[i.key for i in batch], embeddings=[[1.0]] * len(batch),
                   metadatas=[{"size": i.size, "mtime_ns": i.mtime_ns, "image": i.id} for i in batch])


def _remove_orphans(collection, records) -> int:
    """Delete this command's vectors that no file record points to, and point every vector to the first (sorted)
    file or URL that has its content: the same path whichever run, thread or Ray worker stored it first. Returns
    how many vectors were deleted."""
    paths: dict[str, set[str]] = {}
    for path, meta in zip(*_all(records)):
        paths.setdefault(meta["image"], set()).add(path)
    ids, metas = _all(collection, where={"source": SOURCE})
    orphans = [i for i in ids if i not in paths]
    if orphans:
        collection.delete(ids=orphans)
    moved = [(i, m) for i, m in zip(ids, metas) if i in paths and m.get("path") != min(paths[i])]
    if moved:
        collection.update(ids=[i for i, _ in moved], metadatas=[{**m, "path": min(paths[i])} for i, m in moved])
    return len(orphans)
