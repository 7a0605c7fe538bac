"""The embedded Chroma client, safe for several processes (notebooks, kernels) on one folder.

chromadb's `PersistentClient` (1.5, Rust core) keeps each collection's HNSW index in the memory of every
process that opened it, and the sqlite file holds a log of writes plus the metadata. A process replays the
log into its own index only when it writes (a read replays it once, on first use), and every 1,000 records
(`sync_threshold`) it saves *its* index over the shared files and deletes the log up to its last record.
Records that other processes logged meanwhile are then in sqlite (`count()`, `get(ids)`) but in no saved
index (`query` misses them, `get(include=["embeddings"])` fails with "Error finding id"), for good.

So every call on a client from `locked_client()` holds one lock on `vlsteps.lock` in the folder (`flock`:
the system releases it when its holder dies), and a process restarts its Rust core before a call
(`server.stop(); server.start()`: reload the saved index, replay the log) if another process has written
since its own last call; a token in `vlsteps.generation`, renewed before every write, tells. Cost: ~0.3 ms
a call, ~0.8 ms a write, and 20-150 ms for the first call after another process wrote.

Under the same lock, `vlsteps.chroma_safe` keeps the vector files whole: a save that could not complete is
replaced by the last complete one before and after every call, a write that the disk has no room for is
refused before anything is written, and a call that fails on a full disk raises `DiskFullError`.
"""
from __future__ import annotations

import os
import weakref
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .chroma_safe import SafeCopies

LOCK_FILE = "vlsteps.lock"
TOKEN_FILE = "vlsteps.generation"
LOCK_TIMEOUT_S = 60.0

# Calls that change nothing on disk. Anything else, including calls a later chromadb adds, counts as a write.
READS = frozenset({"count", "get", "peek", "query", "search", "heartbeat", "list_collections",
                   "count_collections", "get_collection", "get_collection_by_id", "get_settings", "get_version",
                   "get_max_batch_size", "get_user_identity", "get_indexing_status"})


class _Folder:
    """One process's lock on one index folder, and the token each of its Rust cores last saw."""

    def __init__(self, path: Path):
        from filelock import FileLock
        self.path = path
        self.lock = FileLock(path / LOCK_FILE)     # one descriptor per thread: threads wait for each other too
        self.seen: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self.safe = SafeCopies(path)

    def run(self, server, call: Callable[[], Any], write: bool, timeout: float, payload: int = 0):
        """`call()` under the lock, on a `server` (RustBindingsAPI) that has seen every other process's writes,
        with the folder's vector files whole before and after (`vlsteps.chroma_safe`)."""
        from filelock import Timeout
        try:
            self.lock.acquire(timeout=timeout)
        except Timeout:
            raise TimeoutError(
                f"The Chroma index {self.path} stayed locked for {timeout:g} s: another process (a second "
                f"notebook or kernel) is using it. Wait for it to finish and retry, or stop that kernel; a lock "
                f"held by a process that died is released by the system.") from None
        try:
            token = self._token()
            if self._repair(server, strict=True):
                token = self._renew()
            elif server is not None and self.seen.get(server) != token:
                server.stop()
                server.start()
            need = self.safe.needed(payload) if write else 0
            if write:      # refused while nothing is written; the token is renewed *before* the call: a process
                if self.safe.free() < need:     # killed halfway still makes the others reload
                    raise self.safe.disk_full(need, "this write")
                token = self._renew()
            try:
                result = call()
            except Exception as e:
                from chromadb.errors import InternalError
                if self._repair(server, strict=False):
                    self._renew()
                need = need or self.safe.needed(payload)      # bad input fails as before, whatever the disk
                if isinstance(e, (InternalError, OSError)) and ("disk is full" in str(e) or self.safe.free() < need):
                    raise self.safe.disk_full(need, "this write" if write else "this call") from e
                raise
            self._repair(server, strict=False)          # copies a save this call made
            if server is not None:
                self.seen[server] = token
            return result
        finally:
            self.lock.release()

    def _repair(self, server, strict: bool) -> bool:
        """`SafeCopies.check()`; a core stopped to replace files it holds is started again (it reloads them)."""
        stopped = []

        def stop():
            if server is not None and not stopped:
                server.stop()
                stopped.append(server)
        try:
            return self.safe.check(stop, strict)
        finally:
            if stopped:
                server.start()

    def _token(self) -> str:
        path = self.path / TOKEN_FILE
        return path.read_text() if path.exists() else ""

    def _renew(self) -> str:
        """A new token, written whole or not at all (a full disk must not leave it empty)."""
        token = os.urandom(8).hex()
        tmp = self.path / f"{TOKEN_FILE}.tmp"
        try:
            tmp.write_text(token)
            os.replace(tmp, self.path / TOKEN_FILE)
        except OSError as e:
            raise self.safe.disk_full(self.safe.needed(0), "a write") from e
        return token


_folders: dict[Path, _Folder] = {}


def locked_client(path, settings, timeout: float = LOCK_TIMEOUT_S) -> "LockedClient":
    """A `chromadb.PersistentClient` at `path` whose every call holds the folder's lock."""
    import chromadb
    path = Path(path).resolve()       # one spelling per folder: chromadb shares one core per path string
    path.mkdir(parents=True, exist_ok=True)
    folder = _folders.get(path) or _folders.setdefault(path, _Folder(path))
    client = folder.run(None, lambda: chromadb.PersistentClient(path=str(path), settings=settings), False, timeout)
    return LockedClient(client, folder, client._server, timeout)


def _payload(kwargs) -> int:
    """Bytes of the vectors a call carries (the keyword `embeddings`, as vlsteps passes them)."""
    vectors = kwargs.get("embeddings")
    return 0 if vectors is None else 4 * int(np.size(vectors))


class _Locked:
    """Forwards attribute access to a chromadb object; its methods run under the folder's lock."""

    def __init__(self, target, folder: _Folder, server, timeout: float):
        self._target, self._folder, self._server, self._timeout = target, folder, server, timeout

    def __getattr__(self, name: str):
        if name.startswith("_"):      # chromadb's internals (and copy/pickle probes) stay out of reach
            raise AttributeError(name)
        attr = getattr(self._target, name)
        if not callable(attr):
            return attr

        def locked(*args, **kwargs):
            result = self._folder.run(self._server, lambda: attr(*args, **kwargs), name not in READS,
                                      self._timeout, _payload(kwargs))
            return self._wrap(result)
        return locked

    def _wrap(self, result):
        from chromadb.api.models.Collection import Collection
        if isinstance(result, Collection):
            return LockedCollection(result, self._folder, self._server, self._timeout)
        if isinstance(result, list) and result and all(isinstance(r, Collection) for r in result):
            return [self._wrap(r) for r in result]
        return result

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._target!r}, folder={str(self._folder.path)!r})"


class LockedClient(_Locked):
    """A chromadb client: `get_or_create_collection`, `list_collections`, ... as usual."""


class LockedCollection(_Locked):
    """A chromadb collection: `count`, `get`, `query`, `upsert`, ... as usual; `name`, `metadata` as is."""
