"""Execute the notebooks: `make run` (executed copies + HTML in build/) and `make notebooks` (refresh in place).

    python -m tools.runner --out build [NAME ...]
    python -m tools.runner --refresh [NAME ...]
    python -m tools.runner --sync [NAME ...]     badge and install cell only, nothing executed
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from pathlib import Path

import nbformat

from vlsteps import checkpoint, paths
from vlsteps.standins import learned
from vlsteps.standins.wording import summary
from . import notebooks
from .output_scan import QUIET_ENV, problems

# nbval's cell tags: in metadata, so a learner never reads them (a "# NBVAL_..." first line means nothing to one).
CHECK = "nbval-check-output"
IGNORE = "nbval-ignore-output"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def tagged(cell, tag: str) -> bool:
    return tag in cell.get("metadata", {}).get("tags", [])


def _client(nb, path: Path, kernel_name: str, timeout: int):
    """An nbclient for `nb` with notebooks/ as the working directory. The kernel talks over IPC sockets in
    Jupyter's runtime dir: over TCP ipykernel 7 warns on every start that the traffic is unencrypted."""
    from jupyter_core.paths import jupyter_runtime_dir
    from nbclient import NotebookClient
    from traitlets.config import Config
    os.environ.update(QUIET_ENV)   # no progress bars in a copy executed for reading; the kernel inherits it
    runtime = Path(jupyter_runtime_dir())
    runtime.mkdir(parents=True, exist_ok=True)
    # An absolute socket prefix of its own: the kernel runs in notebooks/, and two kernels must not share one.
    sockets = runtime / f"vlsteps-{uuid.uuid4().hex[:12]}-ipc"
    config = Config({"KernelManager": {"transport": "ipc", "ip": str(sockets)}})
    return NotebookClient(nb, timeout=timeout, kernel_name=kernel_name, config=config,
                          resources={"metadata": {"path": str(path.parent)}})


def execute(path: Path, kernel_name: str = "python3", timeout: int = 1800):
    """Run a notebook top to bottom in a fresh kernel."""
    nb = nbformat.read(path, as_version=4)
    _client(nb, path, kernel_name, timeout).execute()
    return nb


def text_outputs(cell) -> str:
    """What a reader reads: stdout and text/plain results (stderr carries timings and progress bars)."""
    texts = []
    for out in cell.get("outputs", []):
        if out.output_type == "stream" and out.name == "stdout":
            texts.append(out.text)
        elif out.output_type in ("execute_result", "display_data") and "text/plain" in out.get("data", {}):
            # "<Figure size ...>" says nothing, and a widget's text (a tqdm bar) is a snapshot of live state.
            if not {"image/png", WIDGET_VIEW} & set(out.data):
                texts.append(out.data["text/plain"])
        elif out.output_type == "error":
            texts.append(f"{out.ename}: {out.evalue}")
    return "".join(texts)


def run_twice(path: Path, kernel_name: str = "python3",
              timeout: int = 1800) -> tuple[list[dict[int, str]], list[str]]:
    """Run a notebook top to bottom twice in one kernel: per run, the text of each code cell; and what the output
    scan finds in either run (a warning may come only on the second, when the caches are warm)."""
    nb = nbformat.read(path, as_version=4)
    client = _client(nb, path, kernel_name, timeout)
    runs, found = [], []
    with client.setup_kernel():
        for run in (1, 2):
            outputs = {}
            for i, cell in enumerate(nb.cells):
                if cell.cell_type == "code":
                    client.execute_cell(cell, i)
                    outputs[i] = text_outputs(cell)
                    found += [f"run {run}, cell {i}: {p}" for p in problems(cell.outputs)]
            runs.append(outputs)
    return runs, found


def strip_outputs(nb, keep_checks: bool = True):
    """Outputs go only where nbval compares them: cells tagged nbval-check-output."""
    count = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        cell.metadata.pop("execution", None)
        if keep_checks and tagged(cell, CHECK):
            count += 1   # nbval refuses a reference output whose cell has no execution count
            cell.execution_count = count
            for out in cell.outputs:
                if "execution_count" in out:
                    out.execution_count = count
        else:
            cell.outputs = []
            cell.execution_count = None
    return nb


LAVIS = "LAVIS's BLIP-2"    # the LAVIS notebook's models, outside the registry


def models_used(nb: notebooks.Notebook) -> dict[str, bool | None]:
    """What a notebook runs on, by model: None for the real checkpoint, else whether its stand-in learned the
    shapes world. Optional models are opt-in inside the notebook and not counted."""
    if nb.kernel != "python3":   # the LAVIS route: real where LAVIS's caches hold its pieces, else random stand-ins
        from .lavis import make_standins
        return {LAVIS: None if make_standins.real_cached() or not paths.standins_allowed() else False}
    return {m.key: None if checkpoint.is_real(m.key) else learned.record(m.key) is not None
            for m in nb.models if not m.optional}


def _model_report(used: dict[str, bool | None]) -> str:
    return ", ".join(f"{name}={'real' if was is None else 'STAND-IN (learned)' if was else 'STAND-IN (random)'}"
                     for name, was in used.items()) or "none"


def missing_kernel(nb: notebooks.Notebook) -> bool:
    """Whether the notebook's own kernel is not installed (the LAVIS one, where there is no Python 3.11)."""
    if nb.kernel == "python3":
        return False
    from jupyter_client.kernelspec import KernelSpecManager
    return nb.kernel not in KernelSpecManager().find_kernel_specs()


def _skip_line(nb: notebooks.Notebook) -> str:
    return (f"{nb.name}: SKIPPED: its kernel '{nb.kernel}' is not installed (the LAVIS route needs Python 3.11); "
            f"to turn it on: {notebooks.LAVIS_HINT}")


def run(selected: list[notebooks.Notebook], out: Path) -> int:
    from nbconvert import HTMLExporter
    out.mkdir(parents=True, exist_ok=True)
    failed, standins = [], {}
    for nb in selected:
        if missing_kernel(nb):
            print(_skip_line(nb), flush=True)
            continue
        used = models_used(nb)
        standins.update((name, was) for name, was in used.items() if was is not None)
        print(f"{nb.name}: models {_model_report(used)}", flush=True)
        start = time.perf_counter()
        try:
            executed = execute(paths.REPO_ROOT / nb.path, nb.kernel)
        except Exception as e:  # report every notebook, then fail
            failed.append(nb.name)
            print(f"{nb.name}: FAILED after {time.perf_counter() - start:.1f} s: {str(e)[-2000:]}", flush=True)
            continue
        for i, cell in enumerate(executed.cells):
            for problem in problems(cell.get("outputs", [])):
                print(f"{nb.name}: cell {i}: {problem}", flush=True)
        nbformat.write(executed, out / f"{nb.name}.ipynb")
        html, _ = HTMLExporter().from_notebook_node(executed)
        (out / f"{nb.name}.html").write_text(html, encoding="utf-8")
        print(f"{nb.name}: ok in {time.perf_counter() - start:.1f} s -> {out / nb.name}.ipynb/.html", flush=True)
    if standins:
        print(f"NOTE: stand-ins were used where a model is not downloaded: {summary(standins)} Download real "
              "checkpoints with tools/download_models.sh KEY.")
    if failed:
        print(f"FAILED: {', '.join(failed)}")
    return 1 if failed else 0


def refresh(selected: list[notebooks.Notebook], execute_cells: bool = True) -> int:
    """Rewrite notebooks/ in place: generated cells synced, and (unless `execute_cells` is False) re-executed on
    stand-ins keeping only the outputs of cells tagged nbval-check-output."""
    for nb in selected:
        path = paths.REPO_ROOT / nb.path
        if execute_cells and missing_kernel(nb):
            print(_skip_line(nb), flush=True)
            continue
        node = strip_outputs(execute(path, nb.kernel)) if execute_cells else nbformat.read(path, as_version=4)
        nbformat.write(nb.sync(node), path)
        print(f"{'refreshed' if execute_cells else 'synced'} {path}")
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.runner", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="notebook names (default: all)")
    parser.add_argument("--out", type=Path, default=Path("build"))
    parser.add_argument("--refresh", action="store_true",
                        help="execute on stand-ins and rewrite notebooks/ keeping only nbval-check-output outputs")
    parser.add_argument("--sync", action="store_true",
                        help="only rewrite each notebook's badge and install cell (tools.notebooks; no run)")
    args = parser.parse_args()
    selected = [notebooks.get(n) for n in args.names] if args.names else notebooks.NOTEBOOKS
    if args.refresh or args.sync:
        sys.exit(refresh(selected, execute_cells=not args.sync))
    sys.exit(run(selected, args.out))


if __name__ == "__main__":
    main()
