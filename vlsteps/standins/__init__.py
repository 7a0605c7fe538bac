"""Tiny random-weight stand-ins for every registry entry, built offline.

Each stand-in uses the real checkpoint's model and processor classes and its folder name, so a
notebook's own `from_pretrained(folder)` calls run unchanged on them. Builders live in one module
per family (`vlsteps.standins.<family>`), each exposing `build(spec, out)`.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from .. import architectures, registry

MARKER = "vlsteps_standin.json"
_HERE = Path(__file__).resolve().parent


def builder_version(spec: registry.ModelSpec) -> str:
    """Hash of the builder's sources and of the real architecture it copies interface sizes from: a stand-in
    built by older code or from older data is rebuilt, never reused."""
    h = hashlib.sha256()
    for name in ("__init__.py", "common.py", "tiny_tokenizers.py", f"{spec.family}.py"):
        h.update((_HERE / name).read_bytes())
    folder = architectures.HERE / spec.key
    for path in sorted(folder.rglob("*.json")):
        h.update(str(path.relative_to(folder)).encode() + path.read_bytes())
    return h.hexdigest()[:16]


def is_standin(folder: Path) -> bool:
    return (Path(folder) / MARKER).exists()


@contextmanager
def _quiet():
    """No "Writing model shards" bars: a stand-in is often built inside a notebook cell, whose output they clutter."""
    from transformers.utils import logging
    enabled = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            logging.enable_progress_bar()


def build(spec: registry.ModelSpec, dest: Path) -> Path:
    """Build one stand-in into dest/<folder>, atomically: a crash leaves no half-written folder."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    final = dest / spec.folder
    tmp = Path(tempfile.mkdtemp(prefix=f".{spec.folder}.", dir=dest))
    try:
        with _quiet():
            importlib.import_module(f"{__name__}.{spec.family}").build(spec, tmp)
        (tmp / MARKER).write_text(json.dumps(
            {"key": spec.key, "repo_id": spec.repo_id, "builder": builder_version(spec)}, indent=1) + "\n")
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def ensure_standin(spec: registry.ModelSpec, dest: Path) -> Path:
    """The stand-in folder for spec, built (or rebuilt after a builder change) only when needed."""
    folder = Path(dest) / spec.folder
    try:
        if json.loads((folder / MARKER).read_text())["builder"] == builder_version(spec):
            return folder
    except (OSError, ValueError, KeyError):
        pass
    return build(spec, dest)
