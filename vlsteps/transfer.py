"""One file from the Hub into its model folder: resumable across runs, stopped by one Ctrl-C.

huggingface_hub downloads each file to a name unique to the process and deletes it on failure, so an
interrupted multi-GB download starts again from byte 0; and snapshot_download's worker threads finish the
current file before a Ctrl-C takes effect. Here the bytes go to <folder>/.partial/<name>, in the calling thread,
through the Hub's own HTTP session and headers (token, user agent); the next run continues that file with a
Range request, and it moves into place only once its size and hash match what the Hub lists.

A response that ends before the file does (a dropped connection, an empty or short body) is retried after a pause
that doubles while no new byte arrives; RETRIES such responses in a row, the deadline, or a second answer that
ignores the Range stop the transfer with a message that says whose fault it is and whether a re-run can help.
"""
from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status, tqdm

PARTIAL_DIR = ".partial"
RETRIES = 5  # responses in a row that end before the file and bring no new byte, before giving up
BACKOFF_S = 0.5  # the pause before asking again; it doubles with each of those responses...
BACKOFF_MAX_S = 4.0  # ...up to this
RESUME = "re-run the same command to resume"


class TransferError(Exception):
    """A transfer that stopped; its message is one line that ends with what to do."""


@dataclass(frozen=True)
class RemoteFile:
    """A file as the Hub lists it: LFS files (the weights) with the sha256 of their content, others with their
    git blob id."""
    name: str
    size: int
    sha256: str | None = None
    git_oid: str | None = None

    @property
    def record(self) -> dict:
        """What the manifest keeps of it."""
        hashes = {"sha256": self.sha256} if self.sha256 else {"git_oid": self.git_oid} if self.git_oid else {}
        return {"size": self.size, **hashes}

    def new_hash(self):
        if self.sha256:
            return hashlib.sha256()
        if self.git_oid:
            h = hashlib.sha1()  # git's blob id: what the Hub lists for files outside LFS
            h.update(b"blob %d\0" % self.size)
            return h
        return None

    def matches(self, h) -> bool:
        return h is None or h.hexdigest() == (self.sha256 or self.git_oid)


def partial_path(folder: Path, name: str) -> Path:
    return Path(folder) / PARTIAL_DIR / name


def partial_size(folder: Path, remote: RemoteFile) -> int:
    """Bytes of `remote` an interrupted run left behind (0 if none, or more than the file can hold)."""
    try:
        size = partial_path(folder, remote.name).stat().st_size
    except OSError:
        return 0
    return size if size <= remote.size else 0


def holds(path: Path, remote: RemoteFile) -> bool:
    """Whether the file at `path` is `remote`: its size and, where the Hub lists one, its hash."""
    if path.stat().st_size != remote.size:
        return False
    h = remote.new_hash()
    if h is not None:
        _hash_file(path, h)
    return remote.matches(h)


def fetch(url: str, folder: Path, remote: RemoteFile, *, stall_s: float, stop_at: float) -> None:
    """Fetch `remote` from `url` into folder/<name>, continuing an earlier partial file.

    Stops with TransferError when no byte arrives for `stall_s` seconds, `time.monotonic()` passes `stop_at`, or
    the retries run out (the partial file stays for the next run), and when the bytes do not match the Hub's hash
    (it is removed).
    """
    part = partial_path(folder, remote.name)
    part.parent.mkdir(parents=True, exist_ok=True)
    if part.is_file() and not partial_size(folder, remote):
        part.unlink()
    with _Partial(part, remote) as partial, tqdm(total=remote.size, initial=partial.size, unit="B",
                                                  unit_scale=True, desc=remote.name, disable=None) as bar:
        _fill(url, partial, bar, stall_s, stop_at)
        intact = remote.matches(partial.hash)
    if not intact:
        part.unlink()
        raise TransferError(f"{remote.name}: the bytes that arrived do not match the Hub's "
                            f"{'sha256' if remote.sha256 else 'git blob id'}, so they were discarded; "
                            f"re-run the same command to fetch it again")
    target = Path(folder) / remote.name
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(part, target)


def _fill(url: str, partial: _Partial, bar, stall_s: float, stop_at: float) -> None:
    """GET the rest of the file until the partial file holds all the Hub lists, retrying responses that end early.

    A response that brought a new byte resets the count of failures; a server that ignores Range gets the file
    started over from byte 0 once.
    """
    remote, host = partial.remote, urlsplit(url).netloc
    reached, failures, dropped = partial.size, 0, None
    while partial.size < remote.size:
        try:
            _receive(url, partial, bar, stall_s, stop_at)
            dropped = None
        except _RangeIgnored:
            raise TransferError(f"{remote.name}: {host} ignores Range requests (HTTP 200 from byte 0, not 206 "
                                f"from byte {partial.size}): the file started over once and stopped again at "
                                f"{partial.size} of the {remote.size} bytes; {_hint(dropped, restart=True)}") from None
        except Exception as err:
            if is_timeout(err):
                raise TransferError(f"{remote.name}: no data for {stall_s:g} s; {RESUME} (--timeout or "
                                    f"VLSTEPS_TIMEOUT waits longer)") from None
            if not _is(err, "TransportError"):
                raise
            dropped = type(err).__name__
        if partial.size >= remote.size:
            break
        failures = 0 if partial.size > reached else failures + 1
        reached = max(reached, partial.size)
        if failures >= RETRIES:
            raise TransferError(f"{remote.name}: {host} sends {reached} of the {remote.size} bytes the Hub lists "
                                f"({RETRIES} tries in a row brought no more); {_hint(dropped, restart=False)}")
        pause = min(BACKOFF_S * 2 ** failures, BACKOFF_MAX_S)
        if time.monotonic() + pause > stop_at:
            raise _past_deadline(partial)
        time.sleep(pause)


def _hint(dropped: str | None, *, restart: bool) -> str:
    """What to do when a file stops short: a dropped connection is worth another run, a short answer is not."""
    if dropped:
        return f"the connection keeps dropping ({dropped}): {'re-running starts it over' if restart else RESUME}"
    return ("the server ends the file there, so re-running will not help (the listing and the file served "
            "disagree): set HF_ENDPOINT to another mirror, or report it to the repo's owners")


class _RangeIgnored(Exception):
    """The server answered a Range request with the whole file, and the file was started over once already."""


def _receive(url: str, partial: _Partial, bar, stall_s: float, stop_at: float) -> None:
    """One GET from where the partial file ends; bytes are written as they arrive.

    A server that ignores the Range and sends the file from byte 0 starts the partial file over, once (then
    _RangeIgnored). A 416 (the server's file ends before the Range starts) brings nothing, like an empty body.
    """
    headers = build_hf_headers()
    if partial.size:
        headers["Range"] = f"bytes={partial.size}-"
    with get_session().stream("GET", url, headers=headers, timeout=stall_s) as response:
        if response.status_code == 416:
            return
        if response.status_code >= 400:
            hf_raise_for_status(response)
        if partial.size and response.status_code != 206:
            if partial.restarted:
                raise _RangeIgnored
            partial.restart()
            bar.reset(total=partial.remote.size)
        for chunk in response.iter_bytes():
            partial.write(chunk)
            bar.update(len(chunk))
            if time.monotonic() > stop_at:
                raise _past_deadline(partial)


def _past_deadline(partial: _Partial) -> TransferError:
    return TransferError(f"{partial.remote.name}: stopped at the total deadline (--deadline) with {partial.size} "
                         f"of {partial.remote.size} bytes; {RESUME}")


class _Partial:
    """The partial file, open for appending, and the running hash of what it holds."""

    def __init__(self, path: Path, remote: RemoteFile):
        self.path, self.remote = path, remote
        self.restarted = False  # from byte 0, during this run
        self.hash = remote.new_hash()
        if self.hash is not None and path.is_file():
            _hash_file(path, self.hash)
        self.file = open(path, "ab")  # closed by __exit__

    @property
    def size(self) -> int:
        return self.file.tell()

    def write(self, chunk: bytes) -> None:
        if self.size + len(chunk) > self.remote.size:
            self.restart()
            raise TransferError(f"{self.remote.name}: the Hub sent more than the {self.remote.size} bytes it lists; "
                                f"re-run the same command to fetch it again")
        self.file.write(chunk)
        if self.hash is not None:
            self.hash.update(chunk)

    def restart(self) -> None:
        self.restarted = True
        self.file.seek(0)
        self.file.truncate()
        self.hash = self.remote.new_hash()

    def __enter__(self) -> _Partial:
        return self

    def __exit__(self, *exc) -> None:
        self.file.close()


def _hash_file(path: Path, h) -> None:
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)


def is_timeout(err: BaseException) -> bool:
    """A connect or read timeout of the HTTP client."""
    return _is(err, "TimeoutException")


def _is(err: BaseException, name: str) -> bool:
    """huggingface_hub 1.x talks through httpx, 2.x through httpx2: the same exception names in two modules."""
    return any(cls.__name__ == name for cls in type(err).__mro__)
