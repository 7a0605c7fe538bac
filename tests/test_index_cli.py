"""`python -m vlsteps.index build | search` on the CLIP stand-in and a few procedural-world scenes: a copy embedded
once, a rerun embeds nothing, deleted files leave the index, a corrupt file is reported, a run killed with SIGKILL
and run again holds each image exactly once."""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vlsteps import index, world
from vlsteps.index import __main__ as cli
from vlsteps.serve.loadtest import free_port

HIT = re.compile(r"^(-?\d\.\d{4})  (.+)$")     # a cosine: -1 to 1


def scene_library(folder: Path, n: int, seed: int = 0, size: int = 48, copied: int = 0) -> Path:
    """n held-out world scenes as folder/scene<i>.png, and scene `copied` again as folder/sub/copy.png."""
    (folder / "sub").mkdir(parents=True)
    for i, scene in enumerate(world.scenes(n, seed, "test")):
        world.draw(scene, size=size).save(folder / f"scene{i}.png")
    shutil.copy(folder / f"scene{copied}.png", folder / "sub" / "copy.png")
    return folder


@pytest.fixture
def library(tmp_path):
    """Six scenes as PNGs, one of them copied into a subfolder."""
    return scene_library(tmp_path / "photos", 6)


def run(capsys, *argv) -> tuple[int, str, str]:
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def stored(db: Path, embedder) -> dict[str, str]:
    """id -> path of every vector in the index."""
    col = index.image_collection(index.chroma_client(path=db, url=""), embedder)
    got = col.get(include=["metadatas"])
    return {i: m["path"] for i, m in zip(got["ids"], got["metadatas"])}


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:32]


def test_a_copy_is_embedded_once_and_a_rerun_embeds_nothing(library, tmp_path, capsys, embedder):
    db = tmp_path / "db"
    code, out, _ = run(capsys, "build", library, "--chroma", db, "--batch-size", 4)
    assert code == 0
    assert "7 image file(s): 6 embedded, 1 already in the index (copies), 0 unchanged" in out
    ids = stored(db, embedder)
    assert sorted(ids) == sorted({file_hash(p) for p in library.rglob("*.png")})
    code, out, _ = run(capsys, "build", library, "--chroma", db)
    assert code == 0 and "7 image file(s): 0 embedded, 0 already in the index (copies), 7 unchanged" in out
    assert stored(db, embedder) == ids


def test_search_prints_scores_and_paths_and_forgets_deleted_files(library, tmp_path, capsys, embedder):
    db = tmp_path / "db"
    run(capsys, "build", library, "--chroma", db)
    code, out, _ = run(capsys, "search", "--image", library / "scene3.png", "-k", 3, "--chroma", db)
    hits = [HIT.match(line).groups() for line in out.splitlines()]
    assert code == 0 and len(hits) == 3
    assert hits[0] == ("1.0000", str(library / "scene3.png"))
    code, out, _ = run(capsys, "search", "a red circle", "-k", 2, "--chroma", db)
    assert code == 0 and all(HIT.match(line) and Path(HIT.match(line)[2]).is_file() for line in out.splitlines())
    assert len(out.splitlines()) == 2

    (library / "scene3.png").unlink()
    (library / "scene0.png").unlink()                  # its copy in sub/ stays, so does its vector
    code, out, _ = run(capsys, "build", library, "--chroma", db)
    assert code == 0 and "1 vector(s) removed" in out
    paths = stored(db, embedder)
    assert sorted(paths.values()) == sorted(str(p) for p in library.rglob("*.png"))
    _, out, _ = run(capsys, "search", "--image", library / "sub" / "copy.png", "-k", 10, "--chroma", db)
    found = [HIT.match(line)[2] for line in out.splitlines()]
    assert found[0] == str(library / "sub" / "copy.png") and str(library / "scene3.png") not in found
    assert len(found) == 5


def test_a_corrupt_file_is_listed_and_the_rest_indexed(library, tmp_path, capsys, embedder):
    db = tmp_path / "db"
    (library / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    (library / "scene5.png").write_bytes((library / "scene5.png").read_bytes()[:100])      # truncated
    code, out, _ = run(capsys, "build", library, "--chroma", db)
    assert code == 0
    assert "1 already in the index (copies), 0 unchanged, 0 vector(s) removed, 2 could not be read" in out
    assert f"could not read {library / 'broken.jpg'}: " in out and f"could not read {library / 'scene5.png'}: " in out
    assert len(stored(db, embedder)) == 5

    (library / "scene4.png").write_bytes(b"overwritten")     # indexed, then broken: its vector goes
    code, out, _ = run(capsys, "build", library, "--chroma", db)
    assert code == 0 and "1 vector(s) removed, 3 could not be read" in out
    assert str(library / "scene4.png") not in stored(db, embedder).values() and len(stored(db, embedder)) == 4


KILLED_AT_SECOND_RECORD = """
import os, signal, sys
from vlsteps.index import __main__ as cli, build
real, calls = build.records_collection, []
class Dying:
    '''The file records: the process dies (SIGKILL) just before it records the second batch's files.'''
    def __init__(self, records): self.records = records
    def __getattr__(self, name): return getattr(self.records, name)
    def upsert(self, **kw):
        calls.append(1)
        if len(calls) == 2: os.kill(os.getpid(), signal.SIGKILL)
        return self.records.upsert(**kw)
build.records_collection = lambda client, col: Dying(real(client, col))
cli.main(sys.argv[1:])
"""


def test_a_run_killed_midway_then_rerun_holds_each_image_exactly_once(library, tmp_path, capsys, embedder):
    db = tmp_path / "db"
    (library / "sub" / "copy.png").unlink()
    proc = subprocess.run([sys.executable, "-c", KILLED_AT_SECOND_RECORD, "build", str(library), "--chroma", str(db),
                           "--batch-size", "2", "--workers", "1"], env=os.environ, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert len(stored(db, embedder)) == 4          # two batches' vectors in, only the first batch's files recorded
    code, out, _ = run(capsys, "build", library, "--chroma", db, "--batch-size", 2)
    assert code == 0 and "6 image file(s): 2 embedded, 2 already in the index (copies), 2 unchanged" in out
    col = index.image_collection(index.chroma_client(path=db, url=""), embedder)
    got = col.get(include=["embeddings"])
    assert sorted(got["ids"]) == sorted(file_hash(p) for p in library.rglob("*.png"))
    assert len(got["embeddings"]) == 6


def test_bad_arguments_get_one_clear_message(tmp_path, capsys):
    code, _, err = run(capsys, "build", tmp_path / "nowhere", "--chroma", tmp_path / "db")
    assert code == 2 and f"{tmp_path / 'nowhere'} does not exist: pass folders or image files to index" in err
    code, _, err = run(capsys, "build", tmp_path, "--model", "vit")
    assert code == 2 and "argument --model: invalid choice: 'vit' (choose from 'clip')" in err
    code, _, err = run(capsys, "search", "a cat", "--image", "x.png")
    assert code == 2 and "give either a TEXT to look for or --image FILE" in err
    code, _, err = run(capsys, "search", "a cat", "--chroma", tmp_path / "empty")
    assert code == 1 and "is empty: fill it with python -m vlsteps.index build PATH" in err
    code, _, err = run(capsys, "build", tmp_path, "--chroma", f"http://127.0.0.1:{free_port()}")
    assert code == 2 and err.startswith("error: No Chroma server answers at http://127.0.0.1:") and "\n" == err[-1]


def test_a_search_image_that_cannot_be_read_gets_one_message(library, tmp_path, capsys):
    run(capsys, "build", library, "--chroma", tmp_path / "db")
    code, _, err = run(capsys, "search", "--image", tmp_path / "missing.png", "--chroma", tmp_path / "db")
    assert code == 2 and f"error: No such image file: {tmp_path / 'missing.png'}" in err and "Traceback" not in err
