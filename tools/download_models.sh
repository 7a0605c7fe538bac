#!/usr/bin/env bash
# Download the checkpoints in vlsteps/registry.py: download_models.sh [KEY...|all] [--list] [--dest DIR]
root="$(cd "$(dirname "$0")/.." && pwd)"
# The active virtual environment's Python, else the project's .venv, else python3.
py="${VIRTUAL_ENV:+$VIRTUAL_ENV/bin/python}"
[ -n "$py" ] && [ -x "$py" ] || py="$root/.venv/bin/python"
[ -x "$py" ] || py=python3
PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" exec "$py" -m vlsteps.download "$@"
