"""Put this checkout on the running venv's import path with a .pth file: `VENV/bin/python tools/checkout_on_path.py`.

Every venv of the project (.venv, .venv-lavis, check_python.sh's) uses this instead of `pip install -e .`: pip's
editable build prints a setuptools warning in every mode, and in .venv-lavis vlsteps' declared dependencies
(transformers 5) would make pip report conflicts.
"""
import site
from pathlib import Path

Path(site.getsitepackages()[0], "vlsteps-repo.pth").write_text(f"{Path(__file__).resolve().parents[1]}\n")
