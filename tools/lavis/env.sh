#!/usr/bin/env bash
# Create or refresh the LAVIS virtualenv (.venv-lavis) and register its Jupyter kernel "vlsteps-lavis".
#
#   tools/lavis/env.sh            (what `make lavis-env` runs)
#
# salesforce-lavis 1.0.2 needs transformers<4.27 and NumPy 1.x, so it gets its own environment; nothing is
# installed into the main .venv. Idempotent: a stamp holding the hash of the requirements, the constraints and
# this script skips the install when nothing changed (the kernel is registered again either way: seconds).
#
# The kernel spec is written to two places:
#   $LAVIS_VENV/jupyter-kernel/share/jupyter/kernels/vlsteps-lavis   only this kernel: safe to put on JUPYTER_PATH
#                                                                      (tools/lavis/smoke.sh does)
#   $MAIN_VENV/share/jupyter/kernels/vlsteps-lavis                     when the main venv exists: its jupyter lab
#                                                                      and nbclient then list the kernel as is
# Environment:
#   LAVIS_PYTHON    interpreter that creates the venv (default python3.11, else python3 if it is 3.11; must
#                   be 3.11: transformers 4.26 needs tokenizers 0.13, which has no wheels for newer Pythons).
#                   Without LAVIS_PYTHON and without a Python 3.11 on PATH the LAVIS route is skipped (exit 0, one
#                   line that says how to turn it on); an explicit LAVIS_PYTHON that is not 3.11 is an error.
#   LAVIS_VENV      where the venv goes (default <repo>/.venv-lavis)
#   MAIN_VENV       the main venv that also gets the kernel spec (default <repo>/.venv; skipped if missing)
#   KERNEL_NAME     default vlsteps-lavis (notebooks/blip2_lavis.ipynb names this kernel)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
is_311() { "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; }
if [ -z "${LAVIS_PYTHON:-}" ]; then
    for candidate in python3.11 python3; do
        if command -v "$candidate" >/dev/null && is_311 "$candidate"; then
            LAVIS_PYTHON=$(command -v "$candidate"); break
        fi
    done
fi
# `env.sh --has-python`: whether there is an interpreter to build the environment with (smoke.sh).
if [ "${1:-}" = "--has-python" ]; then [ -n "${LAVIS_PYTHON:-}" ]; exit; fi
LAVIS_VENV=${LAVIS_VENV:-$ROOT/.venv-lavis}
MAIN_VENV=${MAIN_VENV:-$ROOT/.venv}
KERNEL_NAME=${KERNEL_NAME:-vlsteps-lavis}
REQ=$ROOT/tools/lavis/requirements-lavis.txt
CON=$ROOT/tools/lavis/constraints-lavis.txt
STAMP=$LAVIS_VENV/.vlsteps-installed
PY=$LAVIS_VENV/bin/python

want=$(cat "$REQ" "$CON" "$0" | sha256sum | cut -c1-16)
start=$(date +%s)

if [ -x "$PY" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$want" ]; then
    echo "lavis-env: $LAVIS_VENV is up to date"
else
    if ! [ -x "$PY" ]; then
        if [ -z "${LAVIS_PYTHON:-}" ]; then
            echo "lavis-env: SKIPPED: the LAVIS route (notebooks/blip2_lavis.ipynb) needs Python 3.11 and there is" \
                 "none on PATH; everything else runs. To turn it on: LAVIS_PYTHON=/path/to/python3.11 make lavis-env"
            exit 0
        fi
        if ! is_311 "$LAVIS_PYTHON"; then
            echo "lavis-env: needs Python 3.11 (LAVIS pins transformers 4.26 / tokenizers 0.13), got" \
                 "$("$LAVIS_PYTHON" -V 2>&1) from $LAVIS_PYTHON; set LAVIS_PYTHON=/path/to/python3.11" >&2
            exit 1
        fi
        echo "lavis-env: creating $LAVIS_VENV with $("$LAVIS_PYTHON" -V 2>&1)"
        "$LAVIS_PYTHON" -m venv "$LAVIS_VENV"
    fi
    rm -f "$STAMP"
    "$PY" -m pip install -q --upgrade pip
    # --no-compile: no bytecode for the ~20,000 installed modules up front (minutes of CPU); Python compiles
    # what is actually imported, once, on first use.
    "$PY" -m pip install -q --no-compile -r "$REQ" -c "$CON"
    # vlsteps itself (sample photos, prompts, answers) goes on the path through a .pth file, not pip.
    "$PY" "$ROOT/tools/checkout_on_path.py"
    # Proof that the LAVIS API imports, with the versions that matter.
    "$PY" - <<'PYEOF'
import warnings
warnings.filterwarnings("ignore")
import cv2, numpy, torch, torchvision, transformers
from lavis.models import load_model_and_preprocess  # noqa: F401
import vlsteps  # noqa: F401
ops = "load" if hasattr(torch.ops.torchvision, "nms") else "MISSING"
print(f"lavis-env: torch {torch.__version__}, torchvision {torchvision.__version__} (C++ ops {ops}), "
      f"transformers {transformers.__version__}, numpy {numpy.__version__}, opencv {cv2.__version__}")
PYEOF
    echo "$want" > "$STAMP"
    echo "lavis-env: installed in $(( $(date +%s) - start )) s"
fi

"$PY" -m ipykernel install --prefix "$LAVIS_VENV/jupyter-kernel" --name "$KERNEL_NAME" \
    --display-name "Python (vlsteps-lavis)" >/dev/null 2>&1
where="$LAVIS_VENV/jupyter-kernel/share/jupyter"
if [ -x "$MAIN_VENV/bin/python" ]; then
    "$PY" -m ipykernel install --prefix "$MAIN_VENV" --name "$KERNEL_NAME" \
        --display-name "Python (vlsteps-lavis)" >/dev/null 2>&1
    where="$where and $MAIN_VENV"
fi
echo "lavis-env: kernel '$KERNEL_NAME' registered in $where"
