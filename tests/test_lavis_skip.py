"""Without Python 3.11 the LAVIS route is skipped with one line, and `make run`/`make test` still pass."""
import os
import subprocess
from pathlib import Path

import pytest

from vlsteps import paths
from tools import notebooks, runner

ROOT = paths.REPO_ROOT
PY312 = Path.home() / ".pyenv/versions/3.12.1/bin/python3.12"


@pytest.fixture
def path_without_311(tmp_path):
    """A PATH holding every command of /usr/bin and /bin except any Python 3.11 (python3 is 3.12 if there is one)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for folder in ("/usr/local/bin", "/usr/bin", "/bin"):
        for entry in sorted(Path(folder).iterdir()) if Path(folder).is_dir() else []:
            if entry.name.startswith("python") or (bin_dir / entry.name).exists():
                continue
            (bin_dir / entry.name).symlink_to(entry)
    if PY312.exists():
        (bin_dir / "python3").symlink_to(PY312)
    env = {k: v for k, v in os.environ.items() if k not in ("LAVIS_PYTHON", "PYENV_VERSION")}
    env.update(PATH=str(bin_dir), LAVIS_VENV=str(tmp_path / "venv-lavis"), MAIN_VENV=str(tmp_path / "no-venv"))
    probe = subprocess.run(["bash", "-c", "command -v python3.11 || true"], env=env, capture_output=True, text=True)
    assert probe.stdout == "", "the test PATH still has a python3.11"
    return env


def run(script, env, *args):
    return subprocess.run(["bash", str(ROOT / "tools" / "lavis" / script), *args], env=env, capture_output=True,
                          text=True, timeout=120)


def test_lavis_env_is_skipped_with_one_line_that_says_how_to_turn_it_on(path_without_311, tmp_path):
    done = run("env.sh", path_without_311)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1 and "SKIPPED" in lines[0] and "LAVIS_PYTHON=/path/to/python3.11 make lavis-env" in lines[0]
    assert not (tmp_path / "venv-lavis").exists()


def test_lavis_smoke_is_skipped_too(path_without_311):
    done = run("smoke.sh", path_without_311)
    assert done.returncode == 0, done.stderr
    assert "SKIPPED" in done.stdout and "LAVIS_PYTHON=" in done.stdout


@pytest.mark.skipif(not PY312.exists(), reason="needs pyenv's Python 3.12 to stand in for a wrong interpreter")
def test_an_explicit_interpreter_that_is_not_311_is_an_error(path_without_311):
    done = run("env.sh", {**path_without_311, "LAVIS_PYTHON": str(PY312)})
    assert done.returncode == 1
    assert "needs Python 3.11" in done.stderr and "Python 3.12" in done.stderr


def test_make_run_reports_a_notebook_without_its_kernel_as_skipped(tmp_path, capsys):
    absent = notebooks.Notebook("blip2_lavis", "LAVIS", kernel="vlsteps-kernel-that-is-not-installed")
    assert runner.run([absent], tmp_path) == 0
    out = capsys.readouterr().out
    assert "blip2_lavis: SKIPPED" in out and notebooks.LAVIS_HINT in out
    assert not list(tmp_path.iterdir())


def test_make_run_says_what_the_lavis_notebook_runs_on(tmp_path, monkeypatch):
    lavis = notebooks.get("blip2_lavis")
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("VLSTEPS_STANDINS", "1")
    assert runner.models_used(lavis) == {runner.LAVIS: False}, "empty caches: LAVIS's random stand-ins"
    for repo in ("google/flan-t5-xl", "bert-base-uncased"):
        (tmp_path / "hf" / "hub" / f"models--{repo.replace('/', '--')}").mkdir(parents=True)
    (tmp_path / "torch" / "hub" / "checkpoints").mkdir(parents=True)
    for name in ("eva_vit_g.pth", "blip2_caption_flant5xl.pth"):
        (tmp_path / "torch" / "hub" / "checkpoints" / name).write_bytes(b"")
    assert runner.models_used(lavis) == {runner.LAVIS: None}, "LAVIS's caches hold the real pieces"


def test_make_runs_model_line_tells_learned_from_random_stand_ins():
    assert (runner._model_report({"vit": True, "vilt": False, "clip": None})
            == "vit=STAND-IN (learned), vilt=STAND-IN (random), clip=real")
    assert runner._model_report({}) == "none"
