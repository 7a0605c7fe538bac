"""Where the collection keeps things on disk: model folders, stand-ins and what notebooks write.

Imported by images, answers, the index and the downloader, none of which needs to resolve a checkpoint."""
from __future__ import annotations

import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def on_colab() -> bool:
    """In a Colab notebook, and in the commands it starts (`!python -m vlsteps.download`), which import no
    google.colab but inherit Colab's environment."""
    return "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ


def _folder(variable: str, in_checkout: str, name: str) -> Path:
    """The one rule for where vlsteps keeps `name`: the same answer from any working folder, so a download lands
    where `model_dir` looks. `variable`, else /content/<name> on Colab, else <checkout>/<in_checkout> in a
    checkout, else ~/vlsteps/<name> for an installed package."""
    if os.environ.get(variable):
        return Path(os.environ[variable]).expanduser().resolve()
    if on_colab():
        return Path("/content") / name
    if (REPO_ROOT / "pyproject.toml").exists():
        return REPO_ROOT / in_checkout
    return Path.home() / "vlsteps" / name


def models_dir() -> Path:
    """`VLSTEPS_MODELS_DIR`, else /content/models on Colab, else models/ at the repo root, else ~/vlsteps/models."""
    return _folder("VLSTEPS_MODELS_DIR", "models", "models")


def outputs_dir() -> Path:
    """What notebooks write (generated images, the Chroma index, saved answers): `VLSTEPS_OUTPUTS_DIR`, else
    /content/outputs on Colab, else build/outputs at the repo root, else ~/vlsteps/outputs. Kept out of
    notebooks/ and apart from models."""
    path = _folder("VLSTEPS_OUTPUTS_DIR", "build/outputs", "outputs")
    path.mkdir(parents=True, exist_ok=True)
    return path


def standins_dir() -> Path:
    """Stand-ins live apart from real checkpoints, so one can never be taken for the other."""
    return Path(os.environ.get("VLSTEPS_STANDINS_DIR") or models_dir() / "_standins")


def standins_allowed() -> bool:
    return os.environ.get("VLSTEPS_STANDINS", "") == "1"
