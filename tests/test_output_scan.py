import subprocess
import sys

import nbformat
from nbformat.v4 import new_code_cell, new_notebook, new_output

from tools.output_scan import WIDGET_VIEW, problems


def stream(text, name="stdout"):
    return new_output("stream", name=name, text=text)


def test_a_clean_cell_has_no_problems():
    assert problems([stream("pixel_values (1, 3, 224, 224)\n"), stream("a\n\nb\n")]) == []
    # Two writes the reader sees as one block: the second's leading newline is a paragraph break, not a gap.
    assert problems([stream("images (6, 768)\n"), stream("\nbare class names: accuracy 0.17\n")]) == []


def test_warnings_progress_bars_and_blank_streams_are_each_reported():
    bar = "Loading weights:   0%|          | 0/12 [00:00<?, ?it/s]"
    tqdm_widget = new_output("display_data", data={WIDGET_VIEW: {"model_id": "x"}, "text/plain": bar})
    found = problems([
        stream("/x/diffusers/pipe.py:12: FutureWarning: `torch_dtype` is deprecated\n  warnings.warn(\n", "stderr"),
        tqdm_widget,
        stream("Writing model shards: 100%|██████████| 3/3 [00:00<00:00, 12.1it/s]\n"),
    ])
    assert any("FutureWarning" in p for p in found)
    assert any("progress-bar widget" in p for p in found)
    assert any("progress bar in text" in p for p in found)
    assert any("empty stdout stream" in p for p in problems([stream("\n")]))
    assert any("stray blank lines" in p for p in problems([stream("\nresult\n")]))
    assert any("stray blank lines" in p for p in problems([stream("a\n"), stream("\n\nb\n")])), "two blank lines"


def test_nbval_fails_a_cell_that_runs_but_warns(tmp_path):
    """The plugin is wired into nbval: a passing cell that prints a warning fails, a clean one passes."""
    nb = new_notebook(cells=[new_code_cell("print('clean')"),
                             new_code_cell("import warnings\nwarnings.warn('use the other argument')")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "probe.ipynb"
    nbformat.write(nb, path)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "tools.nbval_scan", str(path), "--nbval-lax",
                           "--nbval-current-env", "-p", "no:cacheprovider", "-q"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert "1 failed, 1 passed" in proc.stdout, proc.stdout[-3000:]
    assert "use the other argument" in proc.stdout


def test_the_scan_is_on_in_the_projects_own_test_runs(request):
    """`make test` scans the notebooks because pyproject.toml loads the plugin for every run from the checkout."""
    assert request.config.pluginmanager.has_plugin("tools.nbval_scan")


def test_the_allowed_library_warning_passes_and_nothing_else_rides_on_it():
    allowed = ("/v/lib/python3.10/site-packages/torch/jit/_script.py:1491: FutureWarning: `torch.jit.script` is "
               "deprecated. Please switch to `torch.compile` or `torch.export`.\n  warnings.warn(\n")
    assert problems([stream(allowed, "stderr")]) == []
    other = "/v/x.py:3: FutureWarning: `torch_dtype` is deprecated\n  warnings.warn(\n"
    assert problems([stream(other, "stderr")]) == ["stderr: /v/x.py:3: FutureWarning: `torch_dtype` is deprecated"]
