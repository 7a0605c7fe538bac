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
    from vlsteps import models
    from vlsteps.standins import ensure_standin
    return ensure_standin("clip", models.standins_dir())


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
