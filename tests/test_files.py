import os
import select
import signal
import subprocess
import sys

import pytest

from vlsteps.files import atomic_write


def test_writes_text_and_bytes_and_replaces_whole(tmp_path):
    path = tmp_path / "sub" / "a.json"
    atomic_write(path, "é\n")
    assert path.read_bytes() == "é\n".encode()
    atomic_write(path, b"\x89PNG")
    assert path.read_bytes() == b"\x89PNG" and os.listdir(path.parent) == ["a.json"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "a.json"
    atomic_write(path, "old")
    with pytest.raises(TypeError):
        atomic_write(path, object())       # not str or bytes: fails while writing
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["a.json"]


# A writer that stops just before its rename (the temporary file is complete, the target not yet replaced),
# says so on stdout, and goes on only when told to on stdin: a kill then lands mid-write, deterministically.
STALLED_WRITER = """
import os, sys
from vlsteps.files import atomic_write
rename = os.replace
def stalled(src, dst):
    print("writing", flush=True)
    sys.stdin.readline()
    rename(src, dst)
os.replace = stalled
atomic_write(sys.argv[1], b"x" * 5_000_000)
"""


def _stalled_writer(path):
    proc = subprocess.Popen([sys.executable, "-c", STALLED_WRITER, str(path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    ready = select.select([proc.stdout], [], [], 30)[0]    # bounded: a broken child fails the test, not hangs it
    if not ready or proc.stdout.readline() != "writing\n":
        proc.kill()
        pytest.fail("the writer subprocess never started writing")
    return proc


def _temporaries(folder):
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_the_next_write_removes_the_temporary_of_a_killed_writer(tmp_path):
    path = tmp_path / "big.bin"
    proc = _stalled_writer(path)
    os.kill(proc.pid, signal.SIGKILL)        # cannot be caught: the writer leaves its temporary behind
    proc.wait(timeout=30)
    assert len(_temporaries(tmp_path)) == 1 and not path.exists()
    atomic_write(path, b"y" * 1000)
    assert _temporaries(tmp_path) == [] and path.read_bytes() == b"y" * 1000


def test_a_live_writers_temporary_is_never_removed(tmp_path):
    path = tmp_path / "big.bin"
    proc = _stalled_writer(path)
    try:
        atomic_write(path, b"y" * 1000)        # another writer to the same path meanwhile
        assert len(_temporaries(tmp_path)) == 1 and path.read_bytes() == b"y" * 1000
        proc.communicate("go on\n", timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0 and _temporaries(tmp_path) == []
    assert path.read_bytes() == b"x" * 5_000_000    # the live writer finished, last writer wins
