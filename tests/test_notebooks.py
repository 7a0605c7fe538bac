"""What every notebook promises: it exists with its own Colab badge, is committed clean, and re-runs the same."""
import nbformat
import pytest

from vlsteps import models, notebooks
from vlsteps.runner import CHECK, IGNORE, first_line, run_twice

ALL = notebooks.NOTEBOOKS
MAIN_KERNEL = [nb for nb in ALL if nb.kernel == "python3"]   # the LAVIS one: scripts/lavis_smoke.sh


def read(nb):
    return nbformat.read(models.REPO_ROOT / nb.path, as_version=4)


@pytest.mark.parametrize("nb", ALL, ids=lambda nb: nb.name)
def test_notebook_exists_with_its_own_colab_badge(nb):
    first = read(nb).cells[0]
    assert first.cell_type == "markdown"
    assert nb.colab_url in first.source, f"{nb.path}: first cell must carry {nb.colab_badge}"


@pytest.mark.parametrize("nb", ALL, ids=lambda nb: nb.name)
def test_committed_without_outputs_except_check_cells(nb):
    for i, cell in enumerate(read(nb).cells):
        if cell.cell_type != "code":
            continue
        if first_line(cell) == CHECK:
            assert cell.outputs, f"{nb.path} cell {i}: NBVAL_CHECK_OUTPUT cell needs its output committed"
        else:
            assert not cell.outputs and cell.execution_count is None, \
                f"{nb.path} cell {i}: commit without outputs (make notebooks)"


@pytest.mark.parametrize("nb", ALL, ids=lambda nb: nb.name)
def test_never_trusts_remote_code_or_pickles(nb):
    source = "\n".join(cell.source for cell in read(nb).cells)
    assert "trust_remote_code=True" not in source
    assert "use_safetensors=False" not in source


@pytest.mark.parametrize("nb", MAIN_KERNEL, ids=lambda nb: nb.name)
def test_runs_twice_in_one_kernel_with_the_same_results(nb):
    path = models.REPO_ROOT / nb.path
    first, second = run_twice(path, nb.kernel)
    cells = read(nb).cells
    for i in first:
        if first_line(cells[i]) != IGNORE:
            assert second[i] == first[i], f"{nb.path} cell {i} printed something else on the second run"
