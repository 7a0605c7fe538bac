"""A tiny in-process stand-in for the Hugging Face Hub: just the endpoints `snapshot_download` uses.

- GET  /api/models/<repo>[/revision/<rev>]    model info with siblings and their sizes
- GET  /api/models/<repo>/tree/<rev>          recursive file listing
- HEAD /<repo>/resolve/<rev>/<file>           ETag, X-Repo-Commit and Content-Length
- GET  /<repo>/resolve/<rev>/<file>           the bytes, honouring `Range: bytes=N-`

Gated repos answer file requests with 401 (no token) or 403 (token) and `X-Error-Code: GatedRepo`, as the
Hub does; unknown repos answer 404 with `X-Error-Code: RepoNotFound`. Every request is logged, so tests
can count what was actually transferred.
"""
from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class FakeHub:
    def __init__(self, repos: dict[str, dict[str, bytes]], gated: tuple[str, ...] = ()):
        self.repos = repos
        self.gated = set(gated)
        self.log: list[tuple[str, str, str | None]] = []  # (method, path, Range header)
        self.cut_next_get: dict[str, int] = {}  # filename -> bytes to send before dropping the connection
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_port}"

    def __enter__(self) -> FakeHub:
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def content_gets(self, filename: str | None = None) -> list[tuple[str, str, str | None]]:
        """GET requests for file content (optionally of one file)."""
        return [entry for entry in self.log if entry[0] == "GET" and "/resolve/" in entry[1]
                and (filename is None or entry[1].endswith("/" + filename))]


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
                                       "siblings": [{"rfilename": n, "size": len(b)} for n, b in files.items()]})
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
                return self._file(hub.repos[repo][filename], filename, body)
            self._error(404, "EntryNotFound")

        def _file(self, data: bytes, filename: str, body: bool) -> None:
            start = int(self.headers["Range"].split("=")[1].split("-")[0]) if self.headers.get("Range") else 0
            self.send_response(206 if start else 200)
            self.send_header("ETag", f'"{_sha(data)}"')
            self.send_header("X-Repo-Commit", COMMIT)
            self.send_header("Content-Length", str(len(data) - start))
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.end_headers()
            if not body:
                return
            with hub._lock:
                cut = hub.cut_next_get.pop(filename, None)
            self.wfile.write(data[start:] if cut is None else data[start:start + cut])
            if cut is not None:  # promised Content-Length, delivered less: a dropped connection
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


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
