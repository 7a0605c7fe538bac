"""An embedded Chroma folder that a save which cannot complete (a full disk, a killed process) does not break.

chromadb (1.5) keeps each vector twice: in the write log inside `chroma.sqlite3` and in the collection's HNSW
files (a folder named after its vector segment). Every `sync_threshold` records it saves those files in place
(`index_metadata.pickle` last), then trims the log up to that save. A save that stops halfway leaves the files
half-written (a 0-byte pickle or `link_lists.bin`), after which every call on the folder fails ("Error
deserializing pickle file"), and the log no longer holds what the earlier saves held.

So `SafeCopies` keeps a copy of each segment's files as of its last complete save, in `vlsteps.safe/`, and
`check()` (run under the folder lock before and after every call, `vlsteps.chroma_lock`) compares:
- files unchanged since that copy (a few `stat`s): nothing to do;
- a complete new save (its pickle, written last, changed and parses): copy it, the copy follows;
- anything else (a save that failed or was killed halfway): put the copy back. chromadb trims the log only
  after a save succeeds, so the log holds every record since that copy; Chroma replays them on its next
  start and every acknowledged vector is back.
Cost (measured on a busy 2-core machine): ~0.15 ms a call; the disk for one more copy of the vector files, and
copying them after each save (45 MB for 20,000 512-d vectors: 0.1 s, every 1,000 records).
"""
from __future__ import annotations

import contextlib
import errno
import json
import logging
import math
import os
import pickle
import shutil
import sqlite3
import uuid
from pathlib import Path
from typing import Callable

SAFE_DIR = "vlsteps.safe"
STATE = "vlsteps.files.json"        # the live files' (size, mtime) as of the copy, so a change shows by `stat`
PICKLE = "index_metadata.pickle"
HNSW_FILES = ("header.bin", "data_level0.bin", "length.bin", "link_lists.bin", PICKLE)   # PICKLE last
MARGIN = 1 << 20                     # the log's and sqlite's own growth on a write, besides the vectors

log = logging.getLogger(__name__)


class DiskFullError(OSError):
    """The disk holding the index has too little free space for a write (errno ENOSPC)."""


def _mb(n: int, up: bool = False) -> str:
    return f"{(math.ceil if up else math.floor)(n / 1e5) / 10:.1f} MB"


def _signature(folder: Path) -> dict[str, list[int]]:
    out = {}
    for name in HNSW_FILES:
        try:
            st = os.stat(os.path.join(folder, name))        # not pathlib: this runs twice a call
        except FileNotFoundError:
            continue
        out[name] = [st.st_size, st.st_mtime_ns]
    return out


class _NoObjects(pickle.Unpickler):
    """chromadb writes the pickle with plain dicts, lists and numbers: refuse anything that builds objects."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"{module}.{name} is not plain data")


def _complete(path: Path) -> bool:
    """A pickle that parses to its end was written to its end (a cut-off one lacks its STOP opcode)."""
    try:
        with open(path, "rb") as f:
            _NoObjects(f).load()
            return f.read(1) == b""
    except Exception:
        return False


class SafeCopies:
    """The safe copy of every vector segment in one embedded Chroma folder."""

    def __init__(self, path: Path):
        self.path = path
        self.safe = path / SAFE_DIR

    def _segments(self) -> dict[str, Path]:
        out = {}
        for entry in os.scandir(self.path):
            try:
                uuid.UUID(entry.name)
            except ValueError:
                continue
            if entry.is_dir():
                out[entry.name] = Path(entry.path)
        return out

    def _kept(self, name: str) -> dict | None:
        try:
            with open(os.path.join(self.safe, name, STATE)) as f:
                return json.load(f)
        except (FileNotFoundError, ValueError):
            return None

    def check(self, stop_core: Callable[[], None], strict: bool) -> bool:
        """Copy each new complete save, put the copy back over each broken one; True if one was put back
        (every process must then reload). `stop_core()` runs before files are replaced. A copy that finds too
        little disk raises `DiskFullError` if `strict`, else waits for the next check."""
        live = self._segments()
        if self.safe.is_dir():
            for entry in os.scandir(self.safe):          # collections deleted since, and copies cut short
                if entry.name not in live:
                    shutil.rmtree(entry.path, ignore_errors=True)
        restored = False
        for name, folder in live.items():
            now = _signature(folder)
            kept = self._kept(name)
            files = kept["files"] if kept else {}
            if now == files or (PICKLE not in now and PICKLE not in files):
                continue              # unchanged, or never saved (then Chroma builds it from the log)
            if PICKLE in now and now[PICKLE] != files.get(PICKLE) and _complete(folder / PICKLE):
                try:
                    self._copy(folder, name, now)
                except OSError as e:
                    if strict:
                        raise self.disk_full(self.size(), "a safe copy of the index's vector files") from e
                continue
            stop_core()
            self._restore(folder, name, kept)
            restored = True
        return restored

    def _copy(self, folder: Path, name: str, now: dict) -> None:
        tmp = self.safe / f"{name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            tmp.mkdir(parents=True)
            for file in now:
                shutil.copyfile(folder / file, tmp / file)
            (tmp / STATE).write_text(json.dumps({"files": now}))
            shutil.rmtree(self.safe / name, ignore_errors=True)
            os.replace(tmp, self.safe / name)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def _restore(self, folder: Path, name: str, kept: dict | None) -> None:
        """The broken files go first (their space is needed), the pickle comes back last: cut short, this
        leaves no pickle, which the next check restores again."""
        for file in HNSW_FILES:
            (folder / file).unlink(missing_ok=True)
        if kept is None:          # broken before vlsteps kept copies: what the log still holds is all there is
            log.warning("The vector files of %s were broken by a save that did not complete, and no safe copy "
                        "existed yet: Chroma rebuilds them from its write log%s.", folder,
                        ", which lost the records of the saves before: those items still count but their vectors "
                        "are gone; run the indexing again (index_images embeds them anew)" if self._trimmed(name)
                        else ", which holds every record")
            return
        try:
            for file in HNSW_FILES:
                if file in kept["files"]:
                    shutil.copyfile(self.safe / name / file, folder / file)
            tmp = self.safe / name / f"{STATE}.tmp"
            tmp.write_text(json.dumps({"files": _signature(folder)}))
            os.replace(tmp, self.safe / name / STATE)
        except OSError as e:
            raise self.disk_full(self.size(), "putting back the safe copy of a save that did not complete") from e
        log.warning("The vector files of %s were broken by a save that did not complete: restored from the "
                    "safe copy; Chroma replays its write log on top.", folder)

    def _trimmed(self, segment: str) -> bool:
        """Whether chromadb has deleted records from the log after a complete save of `segment`."""
        with contextlib.closing(sqlite3.connect(f"file:{self.path / 'chroma.sqlite3'}?mode=ro", uri=True)) as db:
            row = db.execute("SELECT seq_id FROM max_seq_id WHERE segment_id = ?", (segment,)).fetchone()
        return bool(row and row[0])

    def size(self) -> int:
        """Bytes of the largest segment's vector files: what one more safe copy takes."""
        sizes = [sum(s for s, _ in _signature(folder).values()) for folder in self._segments().values()]
        return max(sizes, default=0)

    def needed(self, payload: int) -> int:
        """Free bytes a write of `payload` vector bytes needs: its vectors in the log and in the HNSW files,
        their growth, and a new safe copy if Chroma saves during this write."""
        return self.size() + 3 * payload + MARGIN

    def free(self) -> int:
        return shutil.disk_usage(self.path).free

    def disk_full(self, need: int, what: str) -> DiskFullError:
        free = self.free()
        return DiskFullError(errno.ENOSPC, (
            f"Disk full: the Chroma index {self.path} needs about {_mb(need, up=True)} free for {what}, and its "
            f"disk has {_mb(free)} free. Free at least {_mb(max(need - free, 100_000), up=True)} there (or point "
            "VLSTEPS_OUTPUTS_DIR at a larger disk) and run it again: every item stored before this call is kept."))
