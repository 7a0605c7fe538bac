"""Tiny random-weight stand-ins for every registry entry, built offline.

Each stand-in uses the real checkpoint's model and processor classes and its folder name, so a
notebook's own `from_pretrained(folder)` calls run unchanged on them. Each card's `standin` builds its
files (`vlsteps.cards.<family>`, with what the builders share in `cards.common` and `cards.tiny_tokenizers`);
this package builds them atomically, marks them, and rebuilds them when their builder changed. A card with
`training` then puts in the weights it learned on the procedural world (`learned.py`); the others stay random.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from .. import architectures
from . import learned
from ..cards.card import Card

MARKER = "vlsteps_standin.json"
_HERE = Path(__file__).resolve().parent
_CARDS = _HERE.parent / "cards"


def builder_version(spec: Card) -> str:
    """Hash of the builder's sources and of the real architecture it copies interface sizes from: a stand-in
    built by older code or from older data is rebuilt, never reused."""
    h = hashlib.sha256()
    for path in (_HERE / "__init__.py", _CARDS / "common.py", _CARDS / "tiny_tokenizers.py",
                 Path(inspect.getfile(spec.standin)), learned.weights_path(spec.key)):
        if path.exists():
            h.update(path.read_bytes())
    folder = architectures.HERE / spec.architecture
    for path in sorted(folder.rglob("*.json")):
        h.update(str(path.relative_to(folder)).encode() + path.read_bytes())
    return h.hexdigest()[:16]


def is_standin(folder: Path) -> bool:
    return (Path(folder) / MARKER).exists()


def is_learned(folder: Path) -> bool:
    """A stand-in that learned the procedural world (its outputs mean something on world scenes)."""
    try:
        return bool(json.loads((Path(folder) / MARKER).read_text()).get("learned"))
    except (OSError, ValueError):
        return False


@contextmanager
def quiet():
    """No "Writing model shards" bars: a stand-in is often built inside a notebook cell, whose output they clutter."""
    from transformers.utils import logging
    enabled = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            logging.enable_progress_bar()


def build(spec: Card, dest: Path, trained: bool = True) -> Path:
    """Build one stand-in into dest/<folder>, atomically: a crash leaves no half-written folder. trained=False
    keeps the random weights (what `tools.learn` starts from)."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    final = dest / spec.folder
    tmp = Path(tempfile.mkdtemp(prefix=f".{spec.folder}.", dir=dest))
    try:
        with quiet():
            spec.standin(spec, tmp)
        trained = trained and learned.apply(spec.key, tmp)
        (tmp / MARKER).write_text(json.dumps(
            {"key": spec.key, "repo_id": spec.repo_id, "builder": builder_version(spec), "learned": trained},
            indent=1) + "\n")
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def ensure_standin(spec: Card, dest: Path) -> Path:
    """The stand-in folder for spec, built (or rebuilt after a builder change) only when needed."""
    folder = Path(dest) / spec.folder
    try:
        marker = json.loads((folder / MARKER).read_text())
        if marker["builder"] == builder_version(spec) and marker["learned"] == (learned.record(spec.key) is not None):
            return folder
    except (OSError, ValueError, KeyError):
        pass
    return build(spec, dest)
