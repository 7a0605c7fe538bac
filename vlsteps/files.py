"""Writing a file so that a crash never leaves half of one: write a temporary sibling, then rename it.

A writer killed outright (SIGKILL, the kernel's OOM killer, a restarted kernel) cannot clean up, so each
temporary is named after its writer (`.NAME.HOST-PID.RANDOM.tmp`) and the next write to the same path removes
the ones whose writer has died on this machine. A live writer's temporary, or one from another machine sharing
the folder, is never touched.
"""
from __future__ import annotations

import hashlib
import os
import re
import socket
import tempfile
from pathlib import Path

_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]   # fixed length, safe in a file name


def _alive(pid: int) -> bool:
    if os.name != "posix":   # on Windows, os.kill(pid, 0) would terminate the process: assume alive, keep the file
        return True
    try:
        os.kill(pid, 0)      # signal 0 only checks that the process exists
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):   # another user's process; or no pid at all: not ours to judge
        pass
    return True


def _remove_orphans(path: Path) -> None:
    """Delete the temporaries of `path` left by writers on this machine that no longer run."""
    owned = re.compile(rf"\.{re.escape(path.name)}\.{_HOST}-(\d+)\.[^.]+\.tmp")
    for sibling in path.parent.iterdir():
        match = owned.fullmatch(sibling.name)
        if match and not _alive(int(match.group(1))):
            sibling.unlink(missing_ok=True)


def atomic_write(path, data: bytes | str) -> Path:
    """Write data (str as UTF-8) to path; readers see the old file or the new one, never a torn one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_orphans(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{_HOST}-{os.getpid()}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.chmod(tmp, 0o644)   # mkstemp makes 0600; outputs are meant to be shared like any other file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
