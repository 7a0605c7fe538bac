"""Issue 22's resumability check: `python -m vlsteps.index build` killed with SIGKILL at five seeded random moments
of its run, each next run resuming, then run to the end, leaves the same index as one clean run: each image once
(ids = the distinct file contents, one vector each, every file recorded pointing to its vector), vectors equal.

Each run is the CLI's `main` in a process forked from one that imported torch, transformers and chromadb once
(those imports take ~15 s here; forked, a run starts in under a second), so seven runs fit in a test."""
from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from test_index_cli import scene_library

from vlsteps import index
from vlsteps.index import build

BAR = "embedding"             # the progress bar's label: the run has read the index and decides what to embed
WAIT_S = 120                  # bound on any one wait for a run

# Reads "LOG<TAB>ARG<TAB>ARG..." lines; forks a child that runs the CLI with its output in LOG, prints the child's
# pid, waits for it and prints its exit code (negative: the signal that ended it).
ZYGOTE = """
import os, sys
from vlsteps.index import __main__ as cli
from vlsteps import checkpoint, embed
from transformers import CLIPModel, CLIPProcessor
print("ready", flush=True)
for line in sys.stdin:
    log, *argv = line.rstrip("\\n").split("\\t")
    pid = os.fork()
    if pid == 0:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(fd, 1), os.dup2(fd, 2)
        code = 1
        try:
            code = cli.main(argv)
        except SystemExit as e:
            code = e.code
        finally:
            sys.stdout.flush(), sys.stderr.flush()
            os._exit(code or 0)
    print(pid, flush=True)
    print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), flush=True)
"""


class Runs:
    """The CLI, run in forks of one warm process."""

    def __init__(self, cwd: Path):
        self.proc = subprocess.Popen([sys.executable, "-c", ZYGOTE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, env=os.environ, cwd=cwd)
        assert self.proc.stdout.readline().strip() == "ready"

    def start(self, log: Path, *argv) -> int:
        self.proc.stdin.write("\t".join(map(str, [log, *argv])) + "\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline())

    def exit_code(self) -> int:
        return int(self.proc.stdout.readline())

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=WAIT_S)


def wait_for_bar(log: Path, pid: int) -> None:
    deadline = time.monotonic() + WAIT_S
    while BAR not in (log.read_text(errors="replace") if log.exists() else ""):
        assert time.monotonic() < deadline, f"no progress bar after {WAIT_S} s: {log.read_text()[-2000:]}"
        time.sleep(0.01)


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:32]


def vectors(db: Path, embedder) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """id -> vector of the index, and path -> recorded image id of its file records."""
    client = index.chroma_client(path=db, url="")
    col = index.image_collection(client, embedder)
    got = col.get(include=["embeddings"])
    assert len(got["ids"]) == col.count()
    recs = build.records_collection(client, col).get(include=["metadatas"])
    return (dict(zip(got["ids"], np.asarray(got["embeddings"]))),
            {path: meta["image"] for path, meta in zip(recs["ids"], recs["metadatas"])})


@pytest.fixture
def library(tmp_path):
    """60 scenes as PNGs and a copy of one of them."""
    return scene_library(tmp_path / "photos", 60, seed=22, size=96, copied=7)


def test_five_kills_at_random_moments_then_a_full_run_equal_one_clean_run(library, tmp_path, embedder):
    files = sorted(library.rglob("*.png"))
    contents = {str(p): file_hash(p) for p in files}
    total = len(set(contents.values()))
    assert (len(files), total) == (61, 60)
    argv = ["build", library, "--batch-size", 2, "--workers", 2]
    runs = Runs(tmp_path)
    try:
        clean = tmp_path / "clean"
        pid = runs.start(tmp_path / "clean.log", *argv, "--chroma", clean)
        wait_for_bar(tmp_path / "clean.log", pid)
        started = time.monotonic()
        assert runs.exit_code() == 0, (tmp_path / "clean.log").read_text()[-2000:]
        phase = time.monotonic() - started          # how long embedding the whole library takes here

        db, rng, counts, codes = tmp_path / "db", random.Random(22), [], []
        for k in range(5):
            log = tmp_path / f"killed{k}.log"
            left = total - (counts[-1] if counts else 0)
            pid = runs.start(log, *argv, "--chroma", db)
            wait_for_bar(log, pid)
            time.sleep(rng.uniform(0.1, 0.5) * phase * left / total)
            os.kill(pid, signal.SIGKILL)            # no-op on a run that has finished (a zombie until reaped)
            codes.append(runs.exit_code())
            assert codes[-1] in (-signal.SIGKILL, 0), log.read_text()[-2000:]
            counts.append(len(vectors(db, embedder)[0]))
        pid = runs.start(tmp_path / "last.log", *argv, "--chroma", db)
        assert runs.exit_code() == 0, (tmp_path / "last.log").read_text()[-2000:]
    finally:
        runs.close()

    # Not vacuous: some run was killed while it embedded (it added vectors and left some for the next run).
    assert any(c == -signal.SIGKILL and before < n < total
               for c, before, n in zip(codes, [0, *counts], counts)), (codes, counts)
    got, records = vectors(db, embedder)
    want, want_records = vectors(clean, embedder)
    assert sorted(got) == sorted(set(contents.values())) == sorted(want)       # each content once, nothing else
    assert records == contents == want_records       # every file recorded, pointing to its own content's vector
    for id_ in want:
        np.testing.assert_allclose(got[id_], want[id_], atol=1e-5)
