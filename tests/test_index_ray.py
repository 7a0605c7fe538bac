"""`python -m vlsteps.index build --ray` on a local Ray: the same ids and vectors as the plain run, a rerun embeds
nothing (and starts no Ray), an unreadable file is listed; without Ray, one message that says how to install it."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
from test_index_cli import file_hash, run

from vlsteps import index, world
from vlsteps.index.ray_runner import RayRunner


@pytest.fixture
def big_library(tmp_path):
    """Twenty scenes as PNGs, one copied, one broken file."""
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    for i, scene in enumerate(world.scenes(20, 0, "test")):
        world.draw(scene, size=48).save(folder / f"scene{i:02d}.png")
    shutil.copy(folder / "scene00.png", folder / "sub" / "copy.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    return folder


def descendants() -> set[int]:
    """The ids of this process's children, grandchildren... (a local Ray's raylet, GCS and workers)."""
    rows = [line.split() for line in subprocess.run(["ps", "-eo", "pid=,ppid="], capture_output=True, text=True,
                                                     check=True).stdout.splitlines()]
    found, new = set(), {os.getpid()}
    while new:
        new = {int(pid) for pid, ppid in rows if int(ppid) in new} - found
        found |= new
    return found


def wait_gone(before: set[int], seconds: float = 60) -> set[int]:
    """Bounded wait for the processes started since `before` to exit; those still there."""
    deadline = time.monotonic() + seconds
    while (left := descendants() - before) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


def vectors(db, embedder) -> dict[str, np.ndarray]:
    col = index.image_collection(index.chroma_client(path=db, url=""), embedder)
    got = col.get(include=["embeddings", "metadatas"])
    return {i: (np.asarray(e), m["path"]) for i, e, m in zip(got["ids"], got["embeddings"], got["metadatas"])}


def test_local_ray_gives_the_plain_runs_ids_and_vectors(big_library, tmp_path, capsys, embedder, monkeypatch):
    import ray
    before = descendants()
    code, plain_out, _ = run(capsys, "build", big_library, "--chroma", tmp_path / "plain", "--batch-size", 4)
    assert code == 0
    try:
        code, out, _ = run(capsys, "build", big_library, "--chroma", tmp_path / "ray", "--batch-size", 4,
                           "--ray", "--ray-workers", 2)
        assert not ray.is_initialized()             # shut down at the end of the run
    finally:
        ray.shutdown()
    assert not wait_gone(before), "Ray's processes outlived the run"
    assert code == 0
    assert "22 image file(s): 20 embedded, 1 already in the index (copies), 0 unchanged, 0 vector(s) removed, " \
           "1 could not be read" in out
    assert out == plain_out
    assert f"could not read {big_library / 'broken.jpg'}: " in out
    plain, on_ray = vectors(tmp_path / "plain", embedder), vectors(tmp_path / "ray", embedder)
    assert sorted(on_ray) == sorted(plain) == sorted({file_hash(p) for p in big_library.rglob("*.png")})
    for id_, (vector, path) in plain.items():
        assert np.allclose(on_ray[id_][0], vector, atol=1e-5)
        assert on_ray[id_][1] == path

    (big_library / "broken.jpg").unlink()
    monkeypatch.setattr(RayRunner, "_start", lambda self: pytest.fail("Ray started with nothing to do"))
    code, out, _ = run(capsys, "build", big_library, "--chroma", tmp_path / "ray", "--ray")
    assert code == 0 and "21 image file(s): 0 embedded, 0 already in the index (copies), 21 unchanged" in out


def test_without_ray_one_message_says_how_to_install_it(big_library, tmp_path, capsys, monkeypatch):
    for name in [m for m in sys.modules if m == "ray" or m.startswith("ray.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "ray", None)          # `import ray` raises ImportError
    code, _, err = run(capsys, "build", big_library, "--chroma", tmp_path / "db", "--ray")
    assert code == 2
    assert err == "error: --ray needs Ray Data: pip install 'ray[data]>=2.40' (or pip install 'vlsteps[index]')\n"
    assert not (tmp_path / "db").exists()                 # stopped before the index or the model was opened
