import os

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
