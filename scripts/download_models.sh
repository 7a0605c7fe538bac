#!/usr/bin/env bash
# Download the checkpoints in vlsteps/registry.py: download_models.sh [KEY...|all] [--list] [--dest DIR]
root="$(cd "$(dirname "$0")/.." && pwd)"
py="$root/.venv/bin/python"; [ -x "$py" ] || py=python3
PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" exec "$py" -m vlsteps.download "$@"
