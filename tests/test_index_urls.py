"""`python -m vlsteps.index build --urls FILE` against a local HTTP server: images indexed by URL, failures listed with
their reasons, a rerun fetches nothing, a URL dropped from the list leaves the index, loopback refused unless
VLSTEPS_ALLOW_HOSTS allows it."""
from __future__ import annotations

import hashlib
import io
import threading
from collections import Counter
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from test_index_cli import run, stored

from vlsteps import world


@contextmanager
def image_server(files: dict[str, bytes]):
    """An HTTP server on 127.0.0.1 serving `files` (path -> body; others 404): yields (base URL, requests per path)."""
    requests = Counter()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            requests[self.path] += 1
            body = files.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def scene_files(n: int, split: str = "test") -> dict[str, bytes]:
    """`n` procedural-world scenes as PNG bodies at /scene<i>.png, and a text file at /notes.txt."""
    files = {"/notes.txt": b"not an image at all"}
    for i, scene in enumerate(world.scenes(n, 0, split)):
        buffer = io.BytesIO()
        world.draw(scene, size=48).save(buffer, format="PNG")
        files[f"/scene{i}.png"] = buffer.getvalue()
    return files


def url_list(path, base: str, names) -> str:
    path.write_text("# test images\n\n" + "".join(f"{base}{name}\n" for name in names))
    return str(path)


@pytest.fixture
def served():
    files = scene_files(3)
    with image_server(files) as (base, requests):
        yield base, requests, files


def test_urls_are_indexed_failures_listed_and_a_rerun_fetches_nothing(served, tmp_path, capsys, embedder,
                                                                      monkeypatch):
    base, requests, files = served
    monkeypatch.setenv("VLSTEPS_ALLOW_HOSTS", "127.0.0.1")
    names = ["/scene0.png", "/scene1.png", "/scene2.png", "/notes.txt", "/missing.png"]
    urls, db = url_list(tmp_path / "urls.txt", base, names), tmp_path / "db"
    code, out, _ = run(capsys, "build", "--urls", urls, "--chroma", db, "--batch-size", 2)
    assert code == 0
    assert "5 image file(s): 3 embedded, 0 already in the index (copies), 0 unchanged, 0 vector(s) removed, " \
           "2 could not be read" in out
    assert f"could not read {base}/missing.png: Could not fetch {base}/missing.png: HTTP 404 Not Found" in out
    assert f"could not read {base}/notes.txt: The image is not a readable image" in out
    want = {hashlib.sha256(files[n]).hexdigest()[:32]: base + n for n in names[:3]}
    assert stored(db, embedder) == want
    assert all(requests[n] == 1 for n in names)

    code, out, _ = run(capsys, "build", "--urls", urls, "--chroma", db)
    assert code == 0 and "5 image file(s): 0 embedded, 0 already in the index (copies), 3 unchanged" in out
    assert all(requests[n] == 1 for n in names[:3])           # recorded: not fetched again
    assert requests["/notes.txt"] == 2                        # failed: tried again

    url_list(tmp_path / "urls.txt", base, names[1:3])
    code, out, _ = run(capsys, "build", "--urls", urls, "--chroma", db)
    assert code == 0 and "2 image file(s): 0 embedded, 0 already in the index (copies), 2 unchanged, " \
                         "1 vector(s) removed, 0 could not be read" in out
    assert stored(db, embedder) == {k: v for k, v in want.items() if v != base + "/scene0.png"}


def test_files_and_urls_share_the_index_and_a_run_without_urls_keeps_them(served, tmp_path, capsys, embedder,
                                                                          monkeypatch):
    base, requests, files = served
    monkeypatch.setenv("VLSTEPS_ALLOW_HOSTS", "127.0.0.1")
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.png").write_bytes(files["/scene0.png"])                    # the same bytes as a URL: one vector
    urls, db = url_list(tmp_path / "urls.txt", base, ["/scene0.png", "/scene1.png"]), tmp_path / "db"
    code, out, _ = run(capsys, "build", photos, "--urls", urls, "--chroma", db, "--workers", 0)
    assert code == 0 and "3 image file(s): 2 embedded, 1 already in the index (copies), 0 unchanged" in out
    assert len(stored(db, embedder)) == 2
    code, out, _ = run(capsys, "build", photos, "--chroma", db)
    assert code == 0 and "1 image file(s): 0 embedded, 0 already in the index (copies), 1 unchanged, " \
                         "0 vector(s) removed" in out
    assert sorted(stored(db, embedder).values()) == [str(photos / "a.png"), base + "/scene1.png"]


def test_a_loopback_url_is_refused_unless_allowed(served, tmp_path, capsys, embedder, monkeypatch):
    base, requests, _ = served
    monkeypatch.delenv("VLSTEPS_ALLOW_HOSTS", raising=False)
    urls, db = url_list(tmp_path / "urls.txt", base, ["/scene0.png"]), tmp_path / "db"
    code, out, _ = run(capsys, "build", "--urls", urls, "--chroma", db)
    assert code == 0 and "1 image file(s): 0 embedded" in out and "1 could not be read" in out
    assert f"could not read {base}/scene0.png: Refused to fetch {base}/scene0.png: 127.0.0.1 is a loopback " \
           "address" in out and "VLSTEPS_ALLOW_HOSTS" in out
    assert not requests and stored(db, embedder) == {}


def test_bad_url_lists_get_one_clear_message(tmp_path, capsys, monkeypatch):
    code, _, err = run(capsys, "build", "--urls", tmp_path / "none.txt", "--chroma", tmp_path / "db")
    assert code == 2 and f"--urls {tmp_path / 'none.txt'} cannot be read" in err
    code, _, err = run(capsys, "build", "--chroma", tmp_path / "db")
    assert code == 2 and "give folders or image files to index, or --urls FILE" in err
    monkeypatch.setenv("VLSTEPS_ALLOW_HOSTS", "http://images.internal/")
    (tmp_path / "urls.txt").write_text("http://example.org/a.png\n")
    code, _, err = run(capsys, "build", "--urls", tmp_path / "urls.txt", "--chroma", tmp_path / "db")
    assert code == 2 and "VLSTEPS_ALLOW_HOSTS" in err and "neither a host name" in err
