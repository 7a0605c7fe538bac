"""`python -m vlsteps.index build --ray` on a local Ray: the same ids and vectors as the plain run, URLs fetched on
the workers, a rerun embeds nothing (and starts no Ray), an unreadable file or URL is listed; without Ray, one
message that says how to install it."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from test_index_cli import file_hash, run, scene_library
from test_index_urls import image_server, scene_files, url_list

from vlsteps import index
from vlsteps.index.ray_runner import RayRunner


@pytest.fixture
def big_library(tmp_path):
    """Twenty scenes as PNGs, one copied, one broken file."""
    folder = scene_library(tmp_path / "photos", 20)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    return folder


def descendants() -> set[int]:
    """The ids of this process's children, grandchildren... (a local Ray's raylet, GCS and workers), from /proc."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):      # gone meanwhile
            continue
    found, new = set(), {os.getpid()}
    while new:
        new = {pid for pid, ppid in parents.items() if ppid in new} - found
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
    monkeypatch.setenv("VLSTEPS_ALLOW_HOSTS", "127.0.0.1")             # the workers fetch under the driver's policy
    with image_server(scene_files(2, "val")) as (base, requests):
        urls = url_list(tmp_path / "urls.txt", base, ["/scene1.png", "/notes.txt"])
        common = [big_library, "--urls", urls, "--batch-size", 4]
        code, plain_out, _ = run(capsys, "build", *common, "--chroma", tmp_path / "plain")
        assert code == 0
        try:
            code, out, _ = run(capsys, "build", *common, "--chroma", tmp_path / "ray", "--ray", "--ray-workers", 2)
            assert not ray.is_initialized()             # shut down at the end of the run
        finally:
            ray.shutdown()
        assert requests["/scene1.png"] == 2                               # once per index
    assert not wait_gone(before), "Ray's processes outlived the run"
    assert code == 0
    assert "24 image file(s): 21 embedded, 1 already in the index (copies), 0 unchanged, 0 vector(s) removed, " \
           "2 could not be read" in out
    assert out == plain_out
    assert f"could not read {big_library / 'broken.jpg'}: " in out and f"could not read {base}/notes.txt: " in out
    plain, on_ray = vectors(tmp_path / "plain", embedder), vectors(tmp_path / "ray", embedder)
    assert len(on_ray) == 21 and sorted(on_ray) == sorted(plain)
    assert {file_hash(p) for p in big_library.rglob("*.png")} < set(on_ray)
    for id_, (vector, path) in plain.items():
        assert np.allclose(on_ray[id_][0], vector, atol=1e-5)
        assert on_ray[id_][1] == path

    (big_library / "broken.jpg").unlink()
    url_list(tmp_path / "urls.txt", base, ["/scene1.png"])
    monkeypatch.setattr(RayRunner, "_start", lambda self: pytest.fail("Ray started with nothing to do"))
    code, out, _ = run(capsys, "build", big_library, "--urls", urls, "--chroma", tmp_path / "ray", "--ray")
    assert code == 0 and "22 image file(s): 0 embedded, 0 already in the index (copies), 22 unchanged" in out


def test_without_ray_one_message_says_how_to_install_it(big_library, tmp_path, capsys, monkeypatch):
    for name in [m for m in sys.modules if m == "ray" or m.startswith("ray.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "ray", None)          # `import ray` raises ImportError
    code, _, err = run(capsys, "build", big_library, "--chroma", tmp_path / "db", "--ray")
    assert code == 2
    assert err == "error: --ray needs Ray Data: pip install 'ray[data]>=2.40' (or pip install 'vlsteps[index]')\n"
    assert not (tmp_path / "db").exists()                 # stopped before the index or the model was opened


def test_a_cluster_that_does_not_answer_gets_one_message(big_library, tmp_path, capsys, monkeypatch):
    import ray

    def no_cluster(*args, **kwargs):                       # what ray.init(address="auto") says with no cluster
        raise ConnectionError("Could not find any running Ray instance.")

    monkeypatch.setattr(ray, "init", no_cluster)
    code, _, err = run(capsys, "build", big_library, "--chroma", tmp_path / "db", "--ray-address", "auto")
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and "Traceback" not in err
    assert errors[0].startswith("error: Could not join the Ray cluster at auto (ConnectionError: Could not find any "
                                "running Ray instance.). Check the address")
