#!/usr/bin/env bash
# Prove that one Python version works: a fresh venv from the pinned files, the unit tests and every notebook of
# the main kernel under nbval on stand-ins. Nothing is shared with .venv; the venv is removed afterwards.
#
#   tools/check_python.sh 3.13            (`make check-python V=3.13`; CI runs the newest supported one)
#   tools/check_python.sh 3.13 --notebooks-after PID
#                                         (the notebooks only once process PID has ended: .ci/run runs two checks'
#                                          installs and unit tests side by side, and their notebooks one after the other)
#
# The interpreter is `python3.13` on PATH, else pyenv's. Exit 0 when everything passed; the last line is the
# summary the README's Python table is made of.
set -uo pipefail
ver=${1:?usage: tools/check_python.sh VERSION [--notebooks-after PID] (e.g. 3.13)}
after=""
if [ "${2:-}" = "--notebooks-after" ]; then
    after=${3:?--notebooks-after needs a process id}
elif [ -n "${2:-}" ]; then
    echo "usage: tools/check_python.sh VERSION [--notebooks-after PID]" >&2
    exit 2
fi
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$ROOT/build/python-$ver
py=""
for candidate in "$(command -v "python$ver" 2>/dev/null)" "$HOME"/.pyenv/versions/"$ver"*/bin/python"$ver"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ] && \
       [ "$("$candidate" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" = "$ver" ]; then
        py=$candidate; break
    fi
done
if [ -z "$py" ]; then
    echo "check-python $ver: no Python $ver found (on PATH as python$ver, or under ~/.pyenv/versions)" >&2
    exit 2
fi
start=$(date +%s)
minutes() { awk "BEGIN { printf \"%.1f\", ($(date +%s) - $1) / 60 }"; }
free_gb() { df -Pk "$WORK" | awk 'NR == 2 { printf "%.1f", $4 / 1048576 }'; }
rm -rf "$WORK"; mkdir -p "$WORK"
echo "check-python $ver: $("$py" -V 2>&1) from $py; venv in $WORK/venv; $(free_gb) GB free on its disk"
"$py" -m venv "$WORK/venv"
VPY=$WORK/venv/bin/python
# No pip cache: the venv is thrown away, and cached CUDA wheels would hold gigabytes of the disk after it.
if ! { "$VPY" -m pip install -q --no-cache-dir --upgrade pip &&
       "$VPY" -m pip install -q --no-cache-dir -r "$ROOT/requirements-dev.txt" &&
       "$VPY" "$ROOT/tools/checkout_on_path.py"; } > "$WORK/install.log" 2>&1; then
    grep -v "^WARNING: Location" "$WORK/install.log" | tail -n 15 | cut -c1-400
    if grep -q "No space left on device" "$WORK/install.log"; then
        echo "check-python $ver: the disk filled up: the venv holds a CUDA build of torch (about 6 GB, measured)" \
             "and pip needs its wheels beside it while installing; free some space and run it again"
    fi
    rm -rf "$WORK/venv"
    echo "check-python $ver: installs: NO (pip failed, see above; log in $WORK/install.log) after $(minutes "$start") min"
    exit 1
fi
installed=$(minutes "$start")
venv_gb=$(du -sk "$WORK/venv" | awk '{ printf "%.1f", $1 / 1048576 }')
echo "check-python $ver: installed in $installed min ($venv_gb GB): $("$VPY" -c 'import torch, transformers, chromadb
print(f"torch {torch.__version__}, transformers {transformers.__version__}, chromadb {chromadb.__version__}")')"

export VLSTEPS_STANDINS=1 VLSTEPS_MODELS_DIR=$WORK/test-models VLSTEPS_OUTPUTS_DIR=$WORK/test-outputs
export HF_HUB_OFFLINE=1 ANONYMIZED_TELEMETRY=False PYTHONHASHSEED=0
cd "$ROOT"
# Unit tests: everything but the whole-notebook runs, the browser and the Colab-install test (they need .venv's
# JupyterLab or build venvs of their own), the index's Ray run and five-kills run (a minute each; `make test` runs
# them, and test_index_cli's shorter runs cover the same code on this Python), and the ViT's retraining (over three
# minutes; `make test` runs it, and every learned stand-in is still held to its scores here); then every notebook
# cell by cell, once (the LAVIS one has its own venv).
"$VPY" -m pytest tests -q -p no:cacheprovider --ignore=tests/test_notebooks.py --ignore=tests/test_browser.py \
    --ignore=tests/test_colab_install.py --ignore=tests/test_index_ray.py --ignore=tests/test_index_kills.py \
    --deselect tests/test_learned.py::test_retraining_the_vit_from_the_script_gets_the_same_behaviour \
    2>&1 | tee "$WORK/unit.log" | tail -n 5
unit=${PIPESTATUS[0]}
# Two notebook kernels side by side took 25 min each against 5 alone (2026-12-07: their torch threads on two cores).
if [ -n "$after" ] && kill -0 "$after" 2>/dev/null; then
    echo "check-python $ver: unit tests done at $(minutes "$start") min; the notebooks wait for process $after"
    while kill -0 "$after" 2>/dev/null; do sleep 5; done
fi
"$VPY" -m pytest notebooks --ignore=notebooks/blip2_lavis.ipynb --nbval-lax --nbval-current-env -q -p no:cacheprovider \
    2>&1 | tee "$WORK/notebooks.log" | tail -n 3
nbs=${PIPESTATUS[0]}
summary() { grep -Eo '[0-9]+ (passed|failed|skipped|errors?)' "$1" | paste -sd, - | sed 's/,/, /g'; }
rm -rf "$WORK/venv"
echo "check-python $ver: installs yes ($installed min); unit tests: $(summary "$WORK/unit.log");" \
     "notebooks: $(summary "$WORK/notebooks.log"); total $(minutes "$start") min"
[ "$unit" -eq 0 ] && [ "$nbs" -eq 0 ]
