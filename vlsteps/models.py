"""Where a notebook finds its model folder: the real checkpoint, or (when allowed) a tiny stand-in."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from . import registry

REPO_ROOT = Path(__file__).resolve().parents[1]


class ModelNotFoundError(FileNotFoundError):
    """A model folder is missing and stand-ins are not allowed."""


def models_dir() -> Path:
    """`VLSTEPS_MODELS_DIR`, else /content/models on Colab, else models/ at the repo root."""
    if os.environ.get("VLSTEPS_MODELS_DIR"):
        return Path(os.environ["VLSTEPS_MODELS_DIR"]).expanduser().resolve()
    if "google.colab" in sys.modules:
        return Path("/content/models")
    if (REPO_ROOT / "pyproject.toml").exists():
        return REPO_ROOT / "models"
    return Path.cwd() / "models"


def outputs_dir() -> Path:
    """What notebooks write (generated images, the Chroma index, saved answers): `VLSTEPS_OUTPUTS_DIR`,
    else build/outputs at the repo root, else ./outputs. Kept out of notebooks/ and apart from models."""
    if os.environ.get("VLSTEPS_OUTPUTS_DIR"):
        path = Path(os.environ["VLSTEPS_OUTPUTS_DIR"]).expanduser().resolve()
    elif "google.colab" in sys.modules:
        path = Path("/content/outputs")
    elif (REPO_ROOT / "pyproject.toml").exists():
        path = REPO_ROOT / "build" / "outputs"
    else:
        path = Path.cwd() / "outputs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def standins_dir() -> Path:
    """Stand-ins live apart from real checkpoints, so one can never be taken for the other."""
    return Path(os.environ.get("VLSTEPS_STANDINS_DIR") or models_dir() / "_standins")


def standins_allowed() -> bool:
    return os.environ.get("VLSTEPS_STANDINS", "") == "1"


def real_dir(key: str) -> Path:
    return models_dir() / registry.get(key).folder


def is_real(key: str) -> bool:
    """A real checkpoint counts as present once its config is there (download_models.sh writes it)."""
    folder = real_dir(key)
    return (folder / "config.json").exists() or (folder / "model_index.json").exists()


def model_dir(key: str, banner: bool = True) -> Path:
    """The folder to pass to `from_pretrained`: real if downloaded, else the stand-in if allowed."""
    spec = registry.get(key)
    if is_real(key):
        return real_dir(key)
    if not standins_allowed():
        raise ModelNotFoundError(
            f"Model '{key}' ({spec.repo_id}, ~{spec.download_gb:g} GB) is not in {real_dir(key)}. "
            f"Download it with: {spec.download_command}   "
            f"(or set VLSTEPS_STANDINS=1 to run on tiny random-weight stand-ins)")
    from .standins import ensure_standin
    path = ensure_standin(key, standins_dir())
    if banner:
        _show_standin_banner(spec)
    return path


def _show_standin_banner(spec: registry.ModelSpec) -> None:
    text = (f"STAND-IN: '{spec.key}' is a tiny random-weight copy of {spec.repo_id}. "
            f"Outputs below are gibberish by design. For real results: {spec.download_command}")
    try:
        from IPython import get_ipython
        from IPython.display import HTML, display
        if get_ipython() is not None:
            display(HTML(f'<div style="background:#b00020;color:white;padding:8px;font-weight:bold">'
                         f'{text}</div>'))
            return
    except ImportError:
        pass
    print(f"\n!!! {text}\n", file=sys.stderr)
