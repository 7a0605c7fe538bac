"""Which folder a notebook loads for a registry key (`model_dir`): the real checkpoint when complete, else (when
allowed) a tiny stand-in; and whether a model folder is a complete checkpoint, and if not, what is missing.

"config.json exists" is not enough: with missing or truncated weights the notebook dies later inside
`from_pretrained` with an error that never says to re-run the download, and without a tokenizer transformers
quietly builds one of the special tokens only. A download by `vlsteps.download` ends by writing MANIFEST (every
file with the Hub's size and hash), so its folder is complete when every listed file has its size. A folder
put there by hand (`hf download`) is checked by its structure instead: the registry's `required` files are
present, and every safetensors file is whole (the data length its header declares matches the file size).
Pickled weights never count: they are never loaded.
"""
from __future__ import annotations

import json
from pathlib import Path

from . import registry
from .cards.card import Card
from .files import atomic_write
from .paths import models_dir, standins_allowed, standins_dir
from .standins import ensure_standin
from .widgets import standin_banner

MANIFEST = "vlsteps_download.json"
PICKLES = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl")


class ModelNotFoundError(FileNotFoundError):
    """A model folder is missing and stand-ins are not allowed."""


class IncompleteModelError(ModelNotFoundError):
    """A model folder is there but incomplete (an interrupted download, missing or truncated files)."""


def model_dir(key: str, banner: bool = True) -> Path:
    """The folder to pass to `from_pretrained`: real if complete, else the stand-in if allowed.

    An incomplete real folder raises IncompleteModelError naming what is missing and the download command
    (which resumes it); with stand-ins allowed the notebook runs on the stand-in instead, and the banner says
    the real download is incomplete and how to finish it, so a half-finished download is never silent.
    """
    spec = registry.get(key)
    folder = real_dir(spec)
    found = problems(folder, spec) if folder.exists() else None
    if found == []:
        return folder
    incomplete = f"{folder} is incomplete: {'; '.join(found)}." if found else None
    if not standins_allowed():
        if incomplete:
            raise IncompleteModelError(
                f"Model '{key}' ({spec.repo_id}) in {incomplete} Finish the download with: "
                f"{spec.download_command}   (or set VLSTEPS_STANDINS=1 to run on tiny stand-ins)")
        raise ModelNotFoundError(
            f"Model '{key}' ({spec.repo_id}, ~{spec.download_gb:g} GB) is not in {folder}. "
            f"Download it with: {spec.download_command}   "
            f"(or set VLSTEPS_STANDINS=1 to run on tiny stand-ins)")
    path = ensure_standin(spec, standins_dir())
    if banner:
        standin_banner(spec, path, incomplete)
    return path


def real_dir(spec: Card) -> Path:
    return models_dir() / spec.folder


def is_real(key: str) -> bool:
    """A real checkpoint counts only when its folder is complete."""
    spec = registry.get(key)
    return not problems(real_dir(spec), spec)


def write_manifest(folder: Path, spec: Card, revision: str, files: dict[str, dict]) -> None:
    """Record a finished download ({name: {"size": ..., hash: ...}}); call it last, once every file is in place."""
    atomic_write(Path(folder) / MANIFEST, json.dumps(
        {"repo_id": spec.repo_id, "revision": revision, "files": files}, indent=1, sort_keys=True) + "\n")


def problems(folder: Path, spec: Card) -> list[str]:
    """What keeps `folder` from being a complete `spec` checkpoint, one phrase each; [] when complete."""
    folder = Path(folder)
    if not folder.is_dir():
        return [f"{folder} does not exist"]
    listed = recorded(folder)
    if listed is not None:
        return [problem for name, entry in listed.items() if (problem := _size_problem(folder, name, entry["size"]))]
    return [problem for entry in spec.required if (problem := _required_problem(folder, entry))]


def recorded(folder: Path) -> dict[str, dict] | None:
    """The manifest's {name: {"size": ..., hash: ...}}, or None where there is none or it is unreadable (then the
    structure is checked instead)."""
    try:
        files = json.loads((Path(folder) / MANIFEST).read_text())["files"]
        return {str(name): {**entry, "size": int(entry["size"])} for name, entry in files.items()}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None


def _size_problem(folder: Path, name: str, size: int) -> str | None:
    try:
        actual = (folder / name).stat().st_size
    except OSError:
        return f"{name} is missing"
    return None if actual == size else f"{name} has {actual} bytes, not the {size} it was downloaded with"


def _required_problem(folder: Path, entry: str) -> str | None:
    names = [name.strip() for name in entry.split("|")]
    if len(names) == 1 and names[0].endswith(".safetensors"):
        return _weights_problem(folder, names[0])
    if any((folder / name).is_file() for name in names):
        return None
    return f"{names[0]} is missing" if len(names) == 1 else f"none of {', '.join(names)} is there"


def _weights_problem(folder: Path, name: str) -> str | None:
    """X.safetensors, or the shards its index X.safetensors.index.json names, all present and whole."""
    index = folder / f"{name}.index.json"
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return f"{index.relative_to(folder).as_posix()} is not a valid index (no weight_map)"
        parent = Path(name).parent
        found = [problem for shard in shards if (problem := _safetensors_problem(folder, (parent / shard).as_posix()))]
        return "; ".join(found) or None
    if (folder / name).is_file():
        return _safetensors_problem(folder, name)
    where = (folder / name).parent
    pickles = sorted(p.relative_to(folder).as_posix() for pattern in PICKLES for p in where.glob(pattern))
    if pickles:
        return (f"{name} is missing and {', '.join(pickles)} holds pickled weights, which are never loaded "
                f"(safetensors only)")
    return f"{name} is missing"


def _safetensors_problem(folder: Path, name: str) -> str | None:
    from safetensors import SafetensorError, safe_open   # here: the LAVIS venv imports this module without it
    try:
        with safe_open(folder / name, framework="np"):  # reads the header, checks its data length against the size
            return None
    except FileNotFoundError:
        return f"{name} is missing"
    except (SafetensorError, OSError) as err:
        return f"{name} is truncated or damaged ({err})"
