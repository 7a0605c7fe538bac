"""Where a notebook finds its model folder: the real checkpoint, or (when allowed) a tiny stand-in."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from . import checkpoint, registry

REPO_ROOT = Path(__file__).resolve().parents[1]


class ModelNotFoundError(FileNotFoundError):
    """A model folder is missing and stand-ins are not allowed."""


class IncompleteModelError(ModelNotFoundError):
    """A model folder is there but incomplete (an interrupted download, missing or truncated files)."""


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


def real_dir(key: str) -> Path:
    return models_dir() / registry.get(key).folder


def is_real(key: str) -> bool:
    """A real checkpoint counts only when its folder is complete (see `vlsteps.checkpoint`)."""
    return not checkpoint.problems(real_dir(key), registry.get(key))


def model_dir(key: str, banner: bool = True) -> Path:
    """The folder to pass to `from_pretrained`: real if complete, else the stand-in if allowed.

    An incomplete real folder raises IncompleteModelError naming what is missing and the download command
    (which resumes it); with stand-ins allowed the notebook runs on the stand-in instead, and the banner says
    the real download is incomplete and how to finish it, so a half-finished download is never silent.
    """
    spec = registry.get(key)
    folder = real_dir(key)
    problems = checkpoint.problems(folder, spec) if folder.exists() else None
    if problems == []:
        return folder
    incomplete = f"{folder} is incomplete: {'; '.join(problems)}." if problems else None
    if not standins_allowed():
        if incomplete:
            raise IncompleteModelError(
                f"Model '{key}' ({spec.repo_id}) in {incomplete} Finish the download with: "
                f"{spec.download_command}   (or set VLSTEPS_STANDINS=1 to run on tiny random-weight stand-ins)")
        raise ModelNotFoundError(
            f"Model '{key}' ({spec.repo_id}, ~{spec.download_gb:g} GB) is not in {folder}. "
            f"Download it with: {spec.download_command}   "
            f"(or set VLSTEPS_STANDINS=1 to run on tiny random-weight stand-ins)")
    from .standins import ensure_standin
    path = ensure_standin(key, standins_dir())
    if banner:
        _show_standin_banner(spec, incomplete)
    return path


_EXPLAINED = False


def _show_standin_banner(spec: registry.ModelSpec, incomplete: str | None = None) -> None:
    advice = (f"The real download in {incomplete} Finish it with: {spec.download_command}" if incomplete
              else f"For real results: {spec.download_command}")
    global _EXPLAINED
    from .generation import STANDIN_TOKENS
    text = f"STAND-IN: '{spec.key}' is a tiny random-weight copy of {spec.repo_id}"
    if _EXPLAINED:      # what a stand-in means is said once a session; a notebook may load six
        text += f": its outputs are noise. {advice}"
    else:
        text += (f". Shapes and by-hand checks hold, but its text, labels, scores and maps are noise (generated text "
                 f"is cut to {STANDIN_TOKENS} new tokens); the notes 'With the real checkpoint' say what the real "
                 f"model shows. {advice}")
        _EXPLAINED = True
    try:
        from IPython import get_ipython
        from IPython.display import HTML, display
        if get_ipython() is not None:
            from .widgets import ERROR, escape
            display(HTML(f'<div style="background:{ERROR};color:white;padding:8px;font-weight:bold">'
                         f'{escape(text)}</div>'))
            return
    except ImportError:
        pass
    print(f"\n!!! {text}\n", file=sys.stderr)
