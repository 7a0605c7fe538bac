"""Colab's install, simulated: the notebooks' install cell must keep the torch/torchvision that Colab ships.

Colab's image already holds a CUDA torch/torchvision pair that is not the one requirements.txt pins. The test
builds a venv (Python 3.12 like Colab where there is one) holding such a pair, runs the install cell's own pip
command with the local checkout in place of the home URL, and checks that pip kept the pair and that the
package's command-line tool runs. The pair is installed as distribution metadata only: pip decides whether to
replace a package from its installed metadata alone, and `python -m vlsteps.download --list` imports no torch,
so a 5 GB CUDA build would change nothing here but the time.
"""
import re
import shutil
import subprocess
import sys
from pathlib import Path


from vlsteps import paths
from tools import notebooks

COLAB_PAIR = {"torch": "2.9.0+cu126", "torchvision": "0.24.0+cu126"}   # older than the pins, as on Colab
PIP_LINE = re.compile(r'^\s*%pip install -q "(?P<spec>[^"]+)"$', re.M)


def colab_python() -> str:
    found = shutil.which("python3.12")
    if found and subprocess.run([found, "-c", "import sys; sys.exit(sys.version_info[:2] != (3, 12))"]).returncode == 0:
        return found
    return sys.executable


def add_metadata_only(venv: Path, name: str, version: str, requires: list[str]) -> None:
    site = Path(subprocess.check_output([venv / "bin/python", "-c", "import site; print(site.getsitepackages()[0])"],
                                        text=True).strip())
    info = site / f"{name}-{version}.dist-info"
    info.mkdir()
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}",
             *[f"Requires-Dist: {r}" for r in requires]]
    (info / "METADATA").write_text("\n".join(lines) + "\n")
    (info / "INSTALLER").write_text("colab-image\n")
    (info / "RECORD").write_text("")


def installed(venv: Path, name: str) -> str:
    return subprocess.check_output([venv / "bin/python", "-c",
                                    f"import importlib.metadata as m; print(m.version({name!r}))"], text=True).strip()


def test_every_main_notebook_installs_with_the_same_command():
    specs = {PIP_LINE.search(nb.install_cell)["spec"] for nb in notebooks.NOTEBOOKS if nb.kernel == "python3"}
    assert specs == {notebooks.PIP_SPEC}


def test_install_cell_keeps_colabs_torch_and_the_cli_runs(tmp_path):
    venv = tmp_path / "colab"
    subprocess.run([colab_python(), "-m", "venv", venv], check=True)
    add_metadata_only(venv, "torch", COLAB_PAIR["torch"], [])
    add_metadata_only(venv, "torchvision", COLAB_PAIR["torchvision"], [f"torch=={COLAB_PAIR['torch']}"])
    spec = PIP_LINE.search(notebooks.get("clip").install_cell)["spec"]
    # The checkout's sources, copied: a build in place would leave build/lib and egg-info in the repo.
    source = tmp_path / "vlsteps-src"
    shutil.copytree(paths.REPO_ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv*", "build", "models", "__pycache__", "*.egg-info", ".ipynb_checkpoints"))
    local = spec.replace(f"git+{notebooks.HOME}", source.as_uri())
    assert local != spec
    done = subprocess.run([venv / "bin/python", "-m", "pip", "install", "-q", "--disable-pip-version-check", local],
                          capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Uninstalling torch" not in done.stdout + done.stderr
    assert {name: installed(venv, name) for name in COLAB_PAIR} == COLAB_PAIR
    listing = subprocess.run([venv / "bin/python", "-m", "vlsteps.download", "--list"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=120)
    assert listing.returncode == 0, listing.stderr
    assert "Total for `all`" in listing.stdout and "openai/clip-vit-large-patch14" in listing.stdout
