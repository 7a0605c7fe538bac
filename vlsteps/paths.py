"""Where the collection keeps things on disk: model folders, stand-ins and what notebooks write.

Imported by images, answers, the index and the downloader, none of which needs to resolve a checkpoint."""
from __future__ import annotations

import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


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
