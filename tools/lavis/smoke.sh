#!/usr/bin/env bash
# Offline smoke test of the LAVIS route: notebooks/blip2_lavis.ipynb on tiny stand-ins, in the vlsteps-lavis kernel.
#
#   tools/lavis/smoke.sh          (after tools/lavis/env.sh; `make test` runs both)
#
# 1. builds the LAVIS stand-ins twice and checks that the two builds are byte-identical;
# 2. executes the notebook top to bottom, twice in one kernel, with the main venv's nbclient in the
#    "vlsteps-lavis" kernel (.venv-lavis), offline and with empty Hugging Face / torch hub caches, so the
#    notebook must pick the stand-ins;
# 3. checks: no cell raised, the kernel really was the LAVIS environment, every cell tagged nbval-check-output printed
#    what is committed in the notebook (nbval's rule for the other notebooks), and a second run in the same
#    kernel printed the same (tests/test_notebooks.py's rule).
#
# Environment: LAVIS_VENV (default <repo>/.venv-lavis), MAIN_PY (default <repo>/.venv/bin/python),
# VLSTEPS_MODELS_DIR / VLSTEPS_OUTPUTS_DIR (default build/test-models, build/test-outputs, as `make test`).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
LAVIS_VENV=${LAVIS_VENV:-$ROOT/.venv-lavis}
MAIN_PY=${MAIN_PY:-$ROOT/.venv/bin/python}
NOTEBOOK=$ROOT/notebooks/blip2_lavis.ipynb
KERNEL_DIR=$LAVIS_VENV/jupyter-kernel/share/jupyter

if ! [ -x "$LAVIS_VENV/bin/python" ] || ! [ -d "$KERNEL_DIR/kernels/vlsteps-lavis" ]; then
    if ! "$ROOT/tools/lavis/env.sh" --has-python; then
        echo "lavis-smoke: SKIPPED: no Python 3.11 on PATH, so there is no LAVIS environment to test." \
             "To turn it on: LAVIS_PYTHON=/path/to/python3.11 make lavis-env"
        exit 0
    fi
    echo "lavis-smoke: no LAVIS environment at $LAVIS_VENV: run \`make lavis-env\` (tools/lavis/env.sh) first" >&2
    exit 1
fi
start=$(date +%s)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# 1. deterministic stand-ins
"$LAVIS_VENV/bin/python" -W ignore "$ROOT/tools/lavis/make_standins.py" "$TMP/a" >/dev/null
"$LAVIS_VENV/bin/python" -W ignore "$ROOT/tools/lavis/make_standins.py" "$TMP/b" >/dev/null
if ! diff -r "$TMP/a" "$TMP/b" >/dev/null; then
    echo "lavis-smoke: FAILED: two builds of the LAVIS stand-ins differ" >&2
    exit 1
fi
size=$(du -sk "$TMP/a" | cut -f1)
echo "lavis-smoke: stand-ins byte-identical across builds (${size} KB) [$(( $(date +%s) - start )) s]"

# 2 + 3. the notebook, offline, with caches that hold nothing real
export VLSTEPS_STANDINS=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 MPLBACKEND=Agg PYTHONHASHSEED=0
export ANONYMIZED_TELEMETRY=False PYTHONWARNINGS=ignore
export VLSTEPS_MODELS_DIR=${VLSTEPS_MODELS_DIR:-$ROOT/build/test-models}
export VLSTEPS_OUTPUTS_DIR=${VLSTEPS_OUTPUTS_DIR:-$ROOT/build/test-outputs}
export HF_HOME=$TMP/empty-hf TORCH_HOME=$TMP/empty-torch
export JUPYTER_PATH=$KERNEL_DIR${JUPYTER_PATH:+:$JUPYTER_PATH}
"$MAIN_PY" - "$NOTEBOOK" <<'PYEOF'
import sys
from pathlib import Path

import nbformat
from nbclient.exceptions import CellExecutionError

from tools.runner import CHECK, IGNORE, run_twice, tagged, text_outputs as text

path = Path(sys.argv[1])
committed = nbformat.read(path, as_version=4)
try:
    runs, found = run_twice(path, "vlsteps-lavis", timeout=900)   # top to bottom twice in one kernel
except CellExecutionError as error:
    sys.exit(f"lavis-smoke: FAILED: the notebook raised:\n{str(error)[-4000:]}")
failures, checks = [], 0
for i, cell in enumerate(committed.cells):
    if cell.cell_type != "code":
        continue
    if tagged(cell, CHECK):
        checks += 1
        if runs[0][i] != text(cell):
            failures.append(f"cell {i}: committed {text(cell)!r}, printed {runs[0][i]!r}")
    if not tagged(cell, IGNORE) and runs[1][i] != runs[0][i]:
        failures.append(f"cell {i}: printed something else on the second run: {runs[0][i]!r} / {runs[1][i]!r}")
everything = "".join(runs[0].values())
if "salesforce-lavis 1.0.2" not in everything:
    failures.append("the kernel was not the LAVIS environment (no 'salesforce-lavis 1.0.2' in the outputs)")
if "STAND-IN" not in everything:
    failures.append("the notebook did not pick the stand-ins")
if checks == 0:
    failures.append(f"no cells tagged {CHECK} found")
failures += found   # the output scan: warnings, progress bars, blank output a learner would see
if failures:
    sys.exit("lavis-smoke: FAILED:\n  " + "\n  ".join(failures))
print(f"lavis-smoke: ran twice in the vlsteps-lavis kernel with the same outputs; {checks} check cells match")
PYEOF
echo "lavis-smoke: OK in $(( $(date +%s) - start )) s"
