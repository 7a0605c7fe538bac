"""Colab, simulated from its own published freeze: each notebook's install cell adds what the notebook imports and
leaves every package Colab ships as it is.

Colab's GPU runtime (googlecolab/backend-info, 2026-08-19, copied in tests/colab/pip-freeze.gpu.txt) runs Python
3.13 with about 700 packages, among them ipywidgets 7.7.1 (the only widgets its frontend shows), torch 2.11 and
transformers 5.15. The slow test builds a Python 3.13 venv with Colab's pip holding every one of those packages as
installed metadata: a dist-info folder is all pip reads to decide what to install and what conflicts, so 20 GB of
wheels would change nothing but the time. A package that vlsteps or a package the install adds requires gets its
real metadata (its requirements and extras, fetched by pip at Colab's version); the rest hold name and version.
Then each notebook's install cell runs its pip commands (the pins from `pip list`, then the install, as pip's dry
run, the checkout's wheel in place of the home URL): the install must succeed without an error, replace none of
Colab's packages but those the notebook names as needing newer, and, once what it would add is written into the
venv as metadata too, leave `pip check` with no complaint that Colab itself did not have. Needs the package index.
"""
import ast
import importlib.metadata
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import types
from dataclasses import replace
from pathlib import Path

import nbformat
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tools import notebooks
from tools.notebooks import Notebook
from vlsteps import paths

try:
    import tomllib
except ImportError:   # Python 3.10: pytest's own dependency
    import tomli as tomllib

FREEZE = Path(__file__).parent / "colab" / "pip-freeze.gpu.txt"
PIP_LINE = re.compile(r'^\s*%pip install .*"(?P<spec>[^"]+)"$', re.M)
MAIN = [nb for nb in notebooks.NOTEBOOKS if nb.kernel == "python3"]
SLOW = pytest.mark.slow


def pyproject() -> dict:
    return tomllib.loads((paths.REPO_ROOT / "pyproject.toml").read_text())["project"]


def colab_freeze() -> dict[str, str]:
    """Colab's packages at their versions (the few installed from a URL are left out: they have no version line)."""
    pins = (line.split("==") for line in FREEZE.read_text().splitlines() if "==" in line and not line.startswith("#"))
    return {canonicalize_name(name): version for name, version in pins}


def colab_python() -> str | None:
    """A Python 3.13 (Colab's minor version), from PATH or pyenv."""
    for found in [shutil.which("python3.13"), *sorted(Path.home().glob(".pyenv/versions/3.13*/bin/python"))]:
        probe = "import sys; sys.exit(sys.version_info[:2] != (3, 13))"
        if found and subprocess.run([found, "-c", probe], capture_output=True).returncode == 0:
            return str(found)
    return None


def write_dist(site: Path, meta: dict) -> None:
    """An installed package as pip and importlib.metadata see it: a dist-info folder, its RECORD naming only
    itself (pip can replace it), replacing any earlier one of the same name."""
    name = canonicalize_name(meta["name"])
    for old in site.glob("*.dist-info"):
        if canonicalize_name(old.name.split("-", 1)[0]) == name:
            shutil.rmtree(old)
    info = site / f"{name.replace('-', '_')}-{meta['version']}.dist-info"
    info.mkdir()
    lines = ["Metadata-Version: 2.1", f"Name: {meta['name']}", f"Version: {meta['version']}"]
    lines += [f"Requires-Python: {meta['requires_python']}"] if meta.get("requires_python") else []
    lines += [f"Provides-Extra: {extra}" for extra in meta.get("provides_extra", [])]
    lines += [f"Requires-Dist: {req}" for req in meta.get("requires_dist", [])]
    files = {"METADATA": "\n".join(lines) + "\n", "INSTALLER": "colab-image\n"}
    for file, text in files.items():
        (info / file).write_text(text)
    (info / "RECORD").write_text("".join(f"{info.name}/{file},,\n" for file in [*files, "RECORD"]))


def pip(venv: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([venv / "bin/python", "-m", "pip", "--disable-pip-version-check", *args],
                          capture_output=True, text=True, timeout=timeout)


def dry_run(venv: Path, args: list[str], report: Path) -> dict:
    done = pip(venv, *args, "--dry-run", "--report", str(report))
    assert done.returncode == 0 and "ERROR" not in done.stdout + done.stderr, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(report.read_text())


def required_from_colab(report: dict, colab: dict[str, str]) -> set[str]:
    """Colab's packages that vlsteps or a package the install adds requires: pip reads their metadata. (Not a
    local build such as torch's +cu128: no index pip reads here has its metadata; it keeps name and version.)"""
    env = report["environment"]
    needed = set()
    for item in report["install"]:
        extras = item.get("requested_extras") or [""]
        for text in item["metadata"].get("requires_dist", []):
            req = Requirement(text)
            if req.marker is None or any(req.marker.evaluate({**env, "extra": extra}) for extra in extras):
                needed.add(canonicalize_name(req.name))
    return {name for name in needed & set(colab) if "+" not in colab[name]}


def fetch_metadata(venv: Path, names: set[str], colab: dict[str, str], tmp: Path) -> list[dict]:
    """The real metadata of Colab's `names` at Colab's versions, from the package index (pip reads its metadata
    files, not the wheels, where the index has them, as PyPI does)."""
    pins = [f"{name}=={colab[name]}" for name in sorted(names)]
    report = dry_run(venv, ["install", "-q", "--no-deps", "--ignore-installed", *pins], tmp / "metadata.json")
    found = [{**item["metadata"], "version": colab[canonicalize_name(item["metadata"]["name"])]}
             for item in report["install"]]
    assert {canonicalize_name(m["name"]) for m in found} == names
    return found


def pip_check(venv: Path) -> set[str]:
    return set(pip(venv, "check").stdout.splitlines()) - {"No broken requirements found."}


def site_packages(venv: Path) -> Path:
    return next((venv / "lib").glob("python3.*/site-packages"))


def run_cell(cell: str, colab, tmp: Path) -> dict:
    """The install cell's pip commands in this simulated Colab: its `!python -m pip list` line (the pins), then its
    `%pip install` line as pip's dry run, the checkout's wheel in place of the home URL. Returns pip's report."""
    lines = [line.strip().replace(notebooks.PINS, str(tmp / "pins.txt")) for line in cell.splitlines()]
    listing = [line[1:] for line in lines if line.startswith("!python -m pip list")]
    install = [line.removeprefix("%pip ") for line in lines if line.startswith("%pip install")]
    assert len(install) == 1, cell
    colab_path = {**os.environ, "PATH": f"{colab.venv / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    for command in listing:
        subprocess.run(command, shell=True, env=colab_path, check=True, timeout=120)
    args = shlex.split(install[0].replace(f"git+{notebooks.HOME}", colab.wheel.as_uri()))
    assert f"git+{notebooks.HOME}" not in " ".join(args)
    return dry_run(colab.venv, args, tmp / "report.json")


@pytest.fixture(scope="module")
def colab(tmp_path_factory):
    """A Python 3.13 venv with Colab's pip, holding Colab's packages as metadata, and the checkout's wheel."""
    python = colab_python()
    if python is None:
        pytest.skip("COLAB SIMULATION SKIPPED: no Python 3.13 (Colab's) on PATH or in ~/.pyenv")
    tmp = tmp_path_factory.mktemp("colab")
    venv, freeze = tmp / "venv", colab_freeze()
    subprocess.run([python, "-m", "venv", venv], check=True)
    done = pip(venv, "install", "-q", f"pip=={freeze['pip']}")
    assert done.returncode == 0, done.stderr
    site = site_packages(venv)
    for name, version in freeze.items():
        if name != "pip":
            write_dist(site, {"name": name, "version": version})
    # The checkout's sources, copied: a build in place would leave build/lib and egg-info in the repo.
    source = tmp / "vlsteps-src"
    shutil.copytree(paths.REPO_ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv*", "build", "models", "__pycache__", "*.egg-info", ".ipynb_checkpoints"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", tmp / "dist", source],
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr
    colab = types.SimpleNamespace(venv=venv, freeze=freeze, wheel=next((tmp / "dist").glob("vlsteps-*.whl")),
                                  real=set())
    # Real metadata for what the installs read of Colab's packages: every notebook's cell at once (vlsteps[all],
    # what any cell leaves unpinned unpinned), until what they add requires nothing more of Colab's.
    newer = tuple(sorted({name for nb in MAIN for name in nb.newer_than_colab}))
    every = replace(MAIN[0], name="all", newer_than_colab=newer)
    for _ in range(4):
        missing = required_from_colab(run_cell(every.install_cell, colab, tmp), freeze) - colab.real
        if not missing:
            break
        for meta in fetch_metadata(venv, missing, freeze, tmp):
            write_dist(site, meta)
        colab.real |= missing
    colab.broken = pip_check(venv)   # what pip check says of Colab itself, as modelled
    return colab


@SLOW
@pytest.mark.parametrize("nb", MAIN, ids=lambda nb: nb.name)
def test_install_cell_keeps_colabs_packages_and_reports_no_conflict(nb, colab, tmp_path):
    report = run_cell(nb.install_cell, colab, tmp_path)
    added = {canonicalize_name(item["metadata"]["name"]): item["metadata"]["version"] for item in report["install"]}
    replaced = {name: f"{colab.freeze[name]} -> {version}" for name, version in added.items() if name in colab.freeze}
    assert set(replaced) == set(nb.newer_than_colab), f"{nb.name}'s install replaces Colab's {replaced}"
    assert "ipywidgets" not in added and colab.freeze["ipywidgets"] == "7.7.1"
    assert required_from_colab(report, colab.freeze) <= colab.real, "the simulation lacks metadata pip reads"
    # What Colab would hold afterwards, as metadata: pip check must find nothing that Colab did not have before.
    after = tmp_path / "after"
    shutil.copytree(colab.venv, after, symlinks=True)
    for item in report["install"]:
        write_dist(site_packages(after), item["metadata"])
    assert pip_check(after) - colab.broken == set()


@SLOW
def test_vit_installs_vlsteps_alone_on_colab(colab, tmp_path):
    """Colab already holds everything ViT's notebook needs: no chromadb, no diffusers, no widgets 8."""
    report = run_cell(notebooks.get("vit").install_cell, colab, tmp_path)
    assert [item["metadata"]["name"] for item in report["install"]] == ["vlsteps"]


WIDGET_TESTS = ["tests/test_widgets.py", "tests/test_ask_widget.py", "tests/test_chat_widget.py",
                "tests/test_search_widget.py"]


@SLOW
def test_widgets_and_progress_bars_work_with_colabs_ipywidgets_7(tmp_path):
    """The widget tests, and a notebook progress bar, with Colab's ipywidgets 7.7.1 in front of this venv's 8."""
    freeze = colab_freeze()
    wanted = [f"{name}=={freeze[name]}" for name in ("ipywidgets", "widgetsnbextension", "ipython-genutils")]
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", tmp_path, *wanted],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(paths.REPO_ROOT), str(tmp_path)])}
    bar = ("import ipywidgets, tqdm.notebook; bar = tqdm.notebook.tqdm(total=2); bar.update(2); bar.close(); "
           "print(ipywidgets.__version__, type(bar.container).__name__)")
    shown = subprocess.run([sys.executable, "-c", bar], env=env, capture_output=True, text=True, timeout=120)
    assert shown.stdout.splitlines()[-1:] == ["7.7.1 TqdmHBox"], shown.stdout + shown.stderr[-3000:]
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *WIDGET_TESTS],
                           env=env, cwd=paths.REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert tests.returncode == 0, tests.stdout[-3000:]


def test_every_main_notebook_installs_its_own_extra_from_home():
    for nb in MAIN:
        assert PIP_LINE.search(nb.install_cell)["spec"] == f"vlsteps[{nb.name}] @ git+{notebooks.HOME}"
    assert {nb.name for nb in MAIN} <= set(pyproject()["optional-dependencies"])


# --- each notebook's imports work with its extra alone ----------------------------------------------------------

def needed_by(names: set[str]) -> set[str]:
    """`names` and what they require here, transitively (markers of this Python; no extras)."""
    seen, todo = set(), [canonicalize_name(n) for n in names]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for text in requires:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(canonicalize_name(req.name))
    return seen


def absent_modules(nb_name: str) -> set[str]:
    """Top-level modules of the packages that only other notebooks' extras install."""
    project = pyproject()
    names = lambda reqs: {canonicalize_name(Requirement(r).name) for r in reqs}   # noqa: E731
    extras = {name: names(reqs) - {"vlsteps"} for name, reqs in project["optional-dependencies"].items()}
    present = needed_by(names(project["dependencies"]) | extras[nb_name])
    others = set().union(*extras.values()) - present
    return {module for module, dists in importlib.metadata.packages_distributions().items()
            if {canonicalize_name(d) for d in dists} & others}


def imports_and_names(nb) -> tuple[list[str], set[str]]:
    """A notebook's import statements and the `vlsteps.<name>` it uses."""
    from IPython.core.inputtransformer2 import TransformerManager   # magics to Python, as the kernel reads them
    statements, names = [], set()
    for cell in nbformat.read(paths.REPO_ROOT / nb.path, as_version=4).cells:
        if cell.cell_type != "code":
            continue
        tree = ast.parse(TransformerManager().transform_cell(cell.source))
        statements += [ast.unparse(node) for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
        names |= {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)
                  and isinstance(node.value, ast.Name) and node.value.id == "vlsteps"}
    return statements, names


def same_extra() -> list[list[Notebook]]:
    """The main notebooks, grouped by what their extras install (one Python each: importing torch takes seconds)."""
    groups: dict[tuple, list] = {}
    for nb in MAIN:
        groups.setdefault(tuple(sorted(pyproject()["optional-dependencies"][nb.name])), []).append(nb)
    return list(groups.values())


@pytest.mark.parametrize("group", same_extra(), ids=lambda group: "+".join(nb.name for nb in group))
def test_notebook_imports_need_only_its_extra(group):
    """The notebooks' imports and `vlsteps.<name>`s, in a Python where what other extras install cannot be
    imported (sys.modules[name] = None: `import` fails, find_spec answers None, as without the package)."""
    blocked = absent_modules(group[0].name)
    if "vit" in [nb.name for nb in group]:
        assert {"chromadb", "diffusers", "fastapi"} <= blocked
    statements, names = [], set()
    for nb in group:
        more, used = imports_and_names(nb)
        statements, names = statements + more, names | used
    code = "\n".join([f"import sys\nfor m in {sorted(blocked)!r}:\n    sys.modules[m] = None", *statements,
                      "import vlsteps", *(f"vlsteps.{name}" for name in sorted(names))])
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          cwd=paths.REPO_ROOT)
    assert done.returncode == 0, done.stderr[-3000:]


# --- where downloads land ---------------------------------------------------------------------------------------

def test_download_lands_where_model_dir_looks_on_colab(monkeypatch, tmp_path):
    """`!python -m vlsteps.download` runs in a process that imported no google.colab, after any `%cd`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VLSTEPS_")}
    env.update(COLAB_RELEASE_TAG="release-colab-test", PYTHONPATH=str(paths.REPO_ROOT))
    ask = "from vlsteps import paths; print(paths.models_dir())"
    there = subprocess.run([sys.executable, "-c", ask], cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=120)
    assert there.returncode == 0, there.stderr
    for name in [n for n in list(os.environ) if n.startswith("VLSTEPS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    assert Path(there.stdout.strip()) == paths.models_dir() == Path("/content/models")


def test_installed_package_keeps_models_apart_from_the_working_folder(monkeypatch, tmp_path):
    monkeypatch.setattr(paths, "REPO_ROOT", tmp_path / "site-packages")    # no pyproject.toml: an installed copy
    monkeypatch.delenv("VLSTEPS_MODELS_DIR", raising=False)
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    seen = set()
    for folder in (tmp_path, tmp_path / "home"):
        monkeypatch.chdir(folder.mkdir(exist_ok=True) or folder)
        seen.add(paths.models_dir())
    assert seen == {tmp_path / "home" / "vlsteps" / "models"}


# --- the LAVIS notebook on Colab ----------------------------------------------------------------------------------

def test_lavis_notebook_stops_at_its_install_cell_on_colabs_python():
    """On Colab's Python 3.13 the cell raises (Run all stops there) and IPython shows one message, no traceback.
    (An IPython shell of its own: a shell left behind would make later tests take pytest for a notebook.)"""
    script = f"""
import collections, sys, types
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
sys.modules["google.colab"] = types.ModuleType("google.colab")
sys.version_info = collections.namedtuple("v", "major minor micro releaselevel serial")(3, 13, 15, "final", 0)
result = shell.run_cell({notebooks.get("blip2_lavis").install_cell!r})
print("SUCCESS" if result.success else "FAILED:" + type(result.error_in_exec).__name__, file=sys.stderr)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.stderr.strip() == "FAILED:CannotRunHere", done.stderr[-3000:]
    assert done.stdout.count("\n") == 1 and "Traceback" not in done.stdout, done.stdout
    message = done.stdout.strip()
    assert "Python 3.13" in message and "Python 3.11" in message and notebooks.LAVIS_HINT in message
