"""A tiny in-process stand-in for the Hugging Face Hub: just the endpoints `vlsteps.download` uses.

- GET  /api/models/<repo>[/revision/<rev>]    model info with siblings, their sizes and hashes (as with
                                              `files_metadata=True`: `blobId`, and `lfs.sha256` for weights)
- GET  /api/models/<repo>/tree/<rev>          recursive file listing
- HEAD /<repo>/resolve/<rev>/<file>           ETag, X-Repo-Commit and Content-Length
- GET  /<repo>/resolve/<rev>/<file>           the bytes, honouring `Range: bytes=N-` (416 past the end)

Gated repos answer file requests with 401 (no token) or 403 (token) and `X-Error-Code: GatedRepo`, as the
Hub does; unknown repos answer 404 with `X-Error-Code: RepoNotFound`. Every request is logged, so tests
can count what was actually transferred. A file can be served slowly (`slow`), cut short once (`cut_next_get`)
or every time (`cut_every_get`), stalled after some bytes (`stall_next_get`), or damaged (`corrupt`); a
misbehaving server can answer with no bytes (`empty`), hold less of a file than the listing says (`short`), or
ignore `Range` (`ignore_range`).
`silent_server()` accepts connections and never answers.
"""
from __future__ import annotations

import hashlib
import json
import socket
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

COMMIT = "0123456789abcdef0123456789abcdef01234567"
CHUNK = 64 * 1024
LFS_SUFFIXES = (".safetensors", ".bin", ".h5")  # what the Hub stores in LFS (here: what gets an lfs.sha256)
MAX_STALL_S = 60  # a stalled response ends at the latest after this, or when the hub closes


class FakeHub:
    def __init__(self, repos: dict[str, dict[str, bytes]], gated: tuple[str, ...] = ()):
        self.repos = repos
        self.gated = set(gated)
        self.log: list[tuple[str, str, str | None]] = []  # (method, path, Range header)
        self.cut_next_get: dict[str, int] = {}  # filename -> bytes to send before dropping the connection
        self.cut_every_get: dict[str, int] = {}  # the same, for every GET
        self.stall_next_get: dict[str, int] = {}  # filename -> bytes to send before going silent
        self.slow: dict[str, float] = {}  # filename -> seconds to wait before each 64 KiB chunk
        self.corrupt: set[str] = set()  # filenames served with their first byte flipped (same size, wrong hash)
        self.empty: set[str] = set()  # filenames whose every GET is answered 200/206 with Content-Length 0
        self.short: dict[str, int] = {}  # filename -> the bytes of it the server holds (the listing says more)
        self.ignore_range: set[str] = set()  # filenames always answered 200 from byte 0, whatever Range asks
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_port}"

    def __enter__(self) -> FakeHub:
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()

    def content_gets(self, filename: str | None = None) -> list[tuple[str, str, str | None]]:
        """GET requests for file content (optionally of one file)."""
        return [entry for entry in self.log if entry[0] == "GET" and "/resolve/" in entry[1]
                and (filename is None or entry[1].endswith("/" + filename))]


@contextmanager
def silent_server():
    """The URL of a server that accepts connections (the kernel completes the handshake) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep test output quiet
            pass

        def do_HEAD(self) -> None:
            self._serve(body=False)

        def do_GET(self) -> None:
            self._serve(body=True)

        def _serve(self, body: bool) -> None:
            path = unquote(urlsplit(self.path).path)
            with hub._lock:
                hub.log.append((self.command, path, self.headers.get("Range")))
            parts = path.strip("/").split("/")
            if parts[:2] == ["api", "models"] and len(parts) >= 4:
                repo, kind = "/".join(parts[2:4]), (parts[4:] or ["revision"])[0]
                if repo not in hub.repos:
                    return self._error(404, "RepoNotFound")
                files = hub.repos[repo]
                if kind == "revision":
                    return self._json({"id": repo, "sha": COMMIT, "private": False,
                                       "gated": "manual" if repo in hub.gated else False,
                                       "siblings": [_sibling(n, b) for n, b in files.items()]})
                if kind == "tree":
                    return self._json([{"type": "file", "path": n, "size": len(b), "oid": _sha(b)[:40]}
                                       for n, b in files.items()])
            if len(parts) >= 5 and parts[2] == "resolve":
                repo, filename = "/".join(parts[:2]), "/".join(parts[4:])
                if repo not in hub.repos:
                    return self._error(404, "RepoNotFound")
                if repo in hub.gated:
                    return self._error(403 if self.headers.get("Authorization") else 401, "GatedRepo")
                if filename not in hub.repos[repo]:
                    return self._error(404, "EntryNotFound")
                data = hub.repos[repo][filename]
                if filename in hub.corrupt:
                    data = bytes([data[0] ^ 0xFF]) + data[1:]
                data = data[:hub.short.get(filename, len(data))]
                return self._file(data, filename, body)
            self._error(404, "EntryNotFound")

        def _file(self, data: bytes, filename: str, body: bool) -> None:
            asked = self.headers.get("Range") and filename not in hub.ignore_range
            start = int(self.headers["Range"].split("=")[1].split("-")[0]) if asked else 0
            if start and start >= len(data):  # as S3 and the Hub's CDN answer a Range past the end
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                return self.end_headers()
            self.send_response(206 if start else 200)
            self.send_header("ETag", f'"{_sha(data)}"')
            self.send_header("X-Repo-Commit", COMMIT)
            if filename in hub.empty:
                self.send_header("Content-Length", "0")
                return self.end_headers()
            self.send_header("Content-Length", str(len(data) - start))
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.end_headers()
            if not body:
                return
            with hub._lock:
                cut = hub.cut_next_get.pop(filename, hub.cut_every_get.get(filename))
                stall = hub.stall_next_get.pop(filename, None)
            end = len(data) if cut is None and stall is None else start + min(x for x in (cut, stall) if x is not None)
            try:
                for pos in range(start, end, CHUNK):
                    if hub._closing.wait(hub.slow.get(filename, 0)):
                        return
                    self.wfile.write(data[pos:min(pos + CHUNK, end)])
                    self.wfile.flush()
            except OSError:  # the client went away (an interrupted download)
                return
            if stall is not None:
                hub._closing.wait(MAX_STALL_S)
            if end < len(data):  # promised Content-Length, delivered less: a dropped connection
                self.close_connection = True

        def _json(self, payload) -> None:
            raw = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def _error(self, status: int, code: str) -> None:
            self.send_response(status)
            self.send_header("X-Error-Code", code)
            self.send_header("X-Error-Message", code)
            self.send_header("Content-Length", "0")
            self.end_headers()

    return Handler


def _sibling(name: str, data: bytes) -> dict:
    """A sibling as the Hub lists it with blobs=true: the git blob id (of the LFS pointer, for LFS files) and the
    sha256 of an LFS file's content."""
    if not name.endswith(LFS_SUFFIXES):
        return {"rfilename": name, "size": len(data), "blobId": git_blob_id(data)}
    pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{_sha(data)}\nsize {len(data)}\n".encode()
    return {"rfilename": name, "size": len(data), "blobId": git_blob_id(pointer),
            "lfs": {"sha256": _sha(data), "size": len(data), "pointerSize": len(pointer)}}


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
