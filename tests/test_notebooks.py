"""What every notebook promises: it exists with its own Colab badge, is committed clean, and re-runs the same."""
import re

import nbformat
import pytest

from vlsteps import paths
from tools import notebooks, size_tables
from tools.runner import CHECK, IGNORE, run_twice, tagged

ALL = notebooks.NOTEBOOKS
MAIN_KERNEL = [nb for nb in ALL if nb.kernel == "python3"]   # the LAVIS one: tools/lavis/smoke.sh


def read(nb):
    return nbformat.read(paths.REPO_ROOT / nb.path, as_version=4)


@pytest.mark.parametrize("nb", ALL, ids=lambda nb: nb.name)
def test_badge_and_install_cell_are_the_generated_ones(nb):
    cells = read(nb).cells
    assert cells[0].cell_type == "markdown"
    assert nb.colab_badge in cells[0].source, f"{nb.path}: first cell must carry {nb.colab_badge} (make sync)"
    assert cells[1].source == nb.install_cell, f"{nb.path}: the install cell differs from the generated one (make sync)"
    text = "\n".join(cell.source for cell in cells)
    for url in re.findall(r"https://colab\.research\.google\.com/github/[^\s)]+", text):
        assert url in {other.colab_url for other in ALL}, f"{nb.path}: {url} is not a generated Colab link"
    for spec in re.findall(r"git\+https://[^\s\"']+", text):
        assert f"vlsteps @ {spec}" == notebooks.PIP_SPEC, f"{nb.path}: installs from {spec}, not {notebooks.HOME}"


@pytest.mark.parametrize("nb", ALL, ids=lambda nb: nb.name)
def test_header_size_table_is_the_generated_one(nb):
    """Sizes in a notebook's first cell are computed and measured (tools.size_tables), never typed by hand."""
    expected = size_tables.notebook_header(nb.name) or None
    assert size_tables.header_block(read(nb).cells[0].source) == expected, (
        f"{nb.path}: the size table in the first cell differs from the generated one (make sync)")


def test_home_url_is_written_once():
    pyproject = (paths.REPO_ROOT / "pyproject.toml").read_text()   # no tomllib on Python 3.10
    assert re.findall(r'^Homepage = "(.*)"$', pyproject, re.M) == [notebooks.HOME]


def test_sync_rewrites_a_stale_badge_and_install_cell():
    nb = notebooks.get("vit")
    node = read(nb)
    node.cells[0].source = node.cells[0].source.replace(notebooks.GITHUB_REPO, "someone/old-fork")
    node.cells[1].source = node.cells[1].source.replace("git+https", "git+http")
    node.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {}}
    synced = nb.sync(node)
    assert nb.colab_badge in synced.cells[0].source and "old-fork" not in synced.cells[0].source
    assert synced.cells[1].source == nb.install_cell
    assert "widgets" not in synced.metadata


@pytest.mark.parametrize("nb", ALL, ids=lambda nb: nb.name)
def test_committed_without_outputs_except_check_cells(nb):
    for i, cell in enumerate(read(nb).cells):
        if cell.cell_type != "code":
            continue
        if tagged(cell, CHECK):
            assert cell.outputs, f"{nb.path} cell {i}: a cell tagged {CHECK} needs its output committed"
        else:
            assert not cell.outputs and cell.execution_count is None, \
                f"{nb.path} cell {i}: commit without outputs (make notebooks)"


@pytest.mark.parametrize("nb", ALL, ids=lambda nb: nb.name)
def test_nbval_markers_are_tags_not_comments_a_learner_reads(nb):
    for i, cell in enumerate(read(nb).cells):
        assert "NBVAL_" not in cell.source, f"{nb.path} cell {i}: tag the cell ({CHECK} / {IGNORE}) instead"


@pytest.mark.parametrize("nb", ALL, ids=lambda nb: nb.name)
def test_committed_without_widget_state(nb):
    # GitHub refuses to render a notebook whose metadata.widgets has no `state`; the runner never writes it.
    assert "widgets" not in read(nb).metadata, f"{nb.path}: metadata.widgets must not be committed (make sync)"


@pytest.mark.parametrize("nb", ALL, ids=lambda nb: nb.name)
def test_never_trusts_remote_code_or_pickles(nb):
    source = "\n".join(cell.source for cell in read(nb).cells)
    assert "trust_remote_code=True" not in source
    assert "use_safetensors=False" not in source


@pytest.mark.parametrize("nb", MAIN_KERNEL, ids=lambda nb: nb.name)
def test_runs_twice_in_one_kernel_with_the_same_results(nb):
    path = paths.REPO_ROOT / nb.path
    (first, second), found = run_twice(path, nb.kernel)
    cells = read(nb).cells
    for i in first:
        if not tagged(cells[i], IGNORE):
            assert second[i] == first[i], f"{nb.path} cell {i} printed something else on the second run"
    assert not found, f"{nb.path}: what a learner would see (tools/output_scan.py):\n" + "\n".join(found)
