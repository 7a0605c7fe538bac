import base64
import contextlib
import io
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from vlsteps.serve.loadtest import free_port

# Unit tests and notebooks must never reach a hub or a real checkpoint by accident.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")


@pytest.fixture(scope="module")
def clip_path():
    """The CLIP stand-in, shared by the embedding and index tests."""
    from vlsteps import paths, registry
    from vlsteps.standins import ensure_standin
    return ensure_standin(registry.get("clip"), paths.standins_dir())


@pytest.fixture(scope="module")
def embedder(clip_path):
    import torch
    from vlsteps.embed import ClipEmbedder
    return ClipEmbedder.from_pretrained(clip_path, device="cpu", dtype=torch.float32, batch_size=4)


SERVER_START_TIMEOUT_S = 120


@pytest.fixture(scope="session")
def chroma_server_url(tmp_path_factory):
    exe = Path(sys.executable).parent / "chroma"
    assert exe.exists(), f"no chroma executable next to {sys.executable} (pip install chromadb)"
    data = tmp_path_factory.mktemp("chroma-server")
    log_path = data.parent / "chroma-server.log"
    port = free_port()
    url = f"http://localhost:{port}"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([str(exe), "run", "--path", str(data), "--port", str(port)], stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"chroma run exited with {proc.returncode}:\n{log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"chroma run gave no heartbeat within {SERVER_START_TIMEOUT_S} s:\n"
                            f"{log_path.read_text()[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- the vision service (vlsteps.serve), shared by test_serve.py and test_serve_contract.py -----------------------
SERVE_SETTINGS = dict(max_new_tokens=6, max_wait_ms=30, max_batch=16)


def jpeg(name="chelsea", size=(96, 72), crop=0) -> bytes:
    """A sample photo as JPEG bytes, cropped by `crop` pixels on each side and resized."""
    from vlsteps import sample_photo
    image = sample_photo(name)
    image = image.crop((crop, crop, image.width - crop, image.height - crop)).resize(size)
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def data_url(data: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(data).decode()


@contextlib.contextmanager
def serving(app):
    """`app` under uvicorn on 127.0.0.1, in this process; yields its base URL."""
    import threading

    import uvicorn
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The service (its models are the embedder the tests compare with), with a Chroma index of its own, refusing
    private addresses: (app, base URL)."""
    from vlsteps.net import AddressPolicy
    from vlsteps.serve.app import create_app
    from vlsteps.serve.settings import Settings
    app = create_app(Settings(**SERVE_SETTINGS, policy=AddressPolicy(allow_private=False),
                              chroma_path=str(tmp_path_factory.mktemp("serve-chroma"))))
    with serving(app) as url:
        yield app, url


@pytest.fixture(scope="module")
def client(server):
    """An httpx client of `server`."""
    import httpx
    with httpx.Client(base_url=server[1], timeout=120) as c:
        yield c
