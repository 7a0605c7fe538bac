"""The trained weights of the stand-ins that learned the procedural world, committed beside this module.

`learned/<key>.safetensors` holds the weights in float16 (half the bytes; a stand-in is measured with them as
stored), `learned/<key>.json` the run that made them: steps, seconds, scores and the structure they fit. A
stand-in is built by its card as before, then takes these weights; `python -m tools.learn KEY` remakes both files.
A model folder's weights are its `model.safetensors`; a pipeline's are every component's file, each tensor named
"<file's path in the folder>:<tensor>" in the one committed file.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

FOLDER = Path(__file__).resolve().parent / "learned"
WEIGHTS = "model.safetensors"


def weights_path(key: str) -> Path:
    return FOLDER / f"{key}.safetensors"


def record(key: str) -> dict | None:
    """The committed record of key's training run, or None when it has no learned weights."""
    path = FOLDER / f"{key}.json"
    return json.loads(path.read_text()) if path.exists() and weights_path(key).exists() else None


def structure(folder: Path) -> str:
    """What learned weights must fit: every tensor's name and shape, and every tokenizer's vocabulary (the same
    shapes over another vocabulary would map words to the wrong rows). Version-independent: no config text."""
    from safetensors import safe_open
    h = hashlib.sha256()
    for path, prefix in _weight_files(folder):
        with safe_open(str(path), "pt") as f:
            for name in sorted(f.keys()):
                h.update(f"{prefix}{name}{list(f.get_slice(name).get_shape())};".encode())
    for path in sorted(Path(folder).rglob("tokenizer.json")):
        data = json.loads(path.read_text())
        vocab = data["model"].get("vocab")
        added = sorted((t["id"], t["content"]) for t in data.get("added_tokens", []))
        h.update(json.dumps([str(path.relative_to(folder)), vocab, added], sort_keys=True).encode())
    return h.hexdigest()[:16]


def apply(key: str, folder: Path) -> bool:
    """Put key's learned weights into the stand-in just built in folder; False when it has none."""
    rec = record(key)
    if rec is None:
        return False
    if rec["structure"] != structure(folder):
        raise RuntimeError(f"The learned weights of stand-in {key!r} were trained for another structure (its card's "
                           f"builder or tokenizer changed since). Retrain them: python -m tools.learn {key}")
    from safetensors.torch import load_file
    learned = load_file(str(weights_path(key)))
    _write(folder, {name: learned[name].to(t.dtype) for name, t in _read(folder).items()})
    return True


def save(key: str, folder: Path, facts: dict) -> Path:
    """Commit-ready: the trained stand-in's weights in float16 and the record of the run."""
    from safetensors.torch import save_file
    FOLDER.mkdir(parents=True, exist_ok=True)
    tensors = {name: t.half() if t.is_floating_point() else t for name, t in _read(folder).items()}
    save_file(tensors, str(weights_path(key)), metadata={"format": "pt"})
    (FOLDER / f"{key}.json").write_text(json.dumps({**facts, "structure": structure(folder)}, indent=1) + "\n")
    return weights_path(key)


def load_as_stored(folder: Path) -> None:
    """Round the weights in folder through float16, as `save` stores them: scores are measured on what ships."""
    _write(folder, {name: t.half().to(t.dtype) if t.is_floating_point() else t for name, t in _read(folder).items()})


def _weight_files(folder: Path) -> list[tuple[Path, str]]:
    """Each weight file of folder and the prefix of its tensors' names: none for a model folder's one file."""
    folder = Path(folder)
    if (folder / WEIGHTS).is_file():
        return [(folder / WEIGHTS, "")]
    return [(path, f"{path.relative_to(folder).as_posix()}:") for path in sorted(folder.rglob("*.safetensors"))]


def _read(folder: Path) -> dict:
    from safetensors.torch import load_file
    return {prefix + name: t for path, prefix in _weight_files(folder) for name, t in load_file(str(path)).items()}


def _write(folder: Path, tensors: dict) -> None:
    """Each weight file of folder rewritten with its tensors from `tensors` (named as `_read` names them)."""
    from safetensors import safe_open
    from safetensors.torch import save_file
    for path, prefix in _weight_files(folder):
        with safe_open(str(path), "pt") as f:
            names = list(f.keys())
        save_file({name: tensors[prefix + name] for name in names}, str(path), metadata={"format": "pt"})
