"""The real checkpoints' architectures, kept as data, so sizes are computed rather than typed.

One folder per architecture (a card's `architecture`, by default its registry key) holds the checkpoint's model
config (for a diffusers pipeline, one sub-folder per component, as the Hub repo lays them out) and `processor.json`,
the processor facts the notebooks rely on. A learner on stand-ins sees the real model's numbers from these;
`vlsteps.sizes` builds the models from them on the meta device. SOURCES.md says where each value comes from;
`_comment` keys say what could not be confirmed.
"""
from __future__ import annotations

import json
from functools import cache
from pathlib import Path

HERE = Path(__file__).resolve().parent
MEASURED = HERE / "measured.json"   # the full-size dry runs (`make sizes`), one entry per machine
# vlsteps.sizes' results, kept so that `download_models.sh --list` needs neither torch nor the seconds it takes to
# build every model on the meta device; `make readme` rewrites it, a test checks it.
COMPUTED = HERE / "computed.json"


def _without_comments(value):
    if isinstance(value, dict):
        return {k: _without_comments(v) for k, v in value.items() if not k.startswith("_comment")}
    return value


@cache
def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _folder(name: str) -> Path:
    folder = HERE / name
    if not folder.is_dir():
        known = sorted(p.name for p in HERE.iterdir() if p.is_dir() and not p.name.startswith("_"))
        raise KeyError(f"No architecture {name!r} in {HERE}. Known: {', '.join(known)}")
    return folder


def components(key: str) -> list[str]:
    """A pipeline's component names (diffusers), or [] for a single model."""
    folder = _folder(key)
    if (folder / "config.json").exists():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and any(p.glob("*.json")))


def _component_file(key: str, name: str) -> Path:
    files = sorted((_folder(key) / name).glob("*.json"))
    if len(files) != 1:
        raise FileNotFoundError(f"{_folder(key) / name}: expected one config file, found {len(files)}")
    return files[0]


def config(key: str) -> dict:
    """The checkpoint's model config as a dict; for a pipeline, component name -> config dict."""
    names = components(key)
    if not names:
        return _without_comments(_load(_folder(key) / "config.json"))
    return {name: _without_comments(_load(_component_file(key, name))) for name in names}


def processor(key: str) -> dict:
    """Processor facts of the checkpoint: image size, patch size, mean/std, token counts, vocabulary size..."""
    return _without_comments(_load(_folder(key) / "processor.json"))


def comments(key: str) -> dict[str, str]:
    """What could not be confirmed, per file (relative path -> comment)."""
    folder = _folder(key)
    return {str(p.relative_to(folder)): _load(p)["_comment"]
            for p in sorted(folder.rglob("*.json")) if "_comment" in _load(p)}


def computed(key: str) -> dict:
    """{"params": int, "weight_bytes": {dtype: int}} of registry key `key`'s real checkpoint, as vlsteps.sizes
    computed them."""
    try:
        return _load(COMPUTED)[key]
    except KeyError:
        raise KeyError(f"{key!r} is not in {COMPUTED}: run `make readme` to compute its sizes") from None
