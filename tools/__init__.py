"""Repository tooling, never shipped (`pip install` takes `vlsteps` alone): the notebook runner, the README
generator, the pytest plugin that scans notebook output, the benchmarks, the full-size dry runs, and the shell
scripts for downloads, venvs, Chromium, other Pythons and the LAVIS route (tools/lavis/).

Run from the checkout, e.g. `python -m tools.runner`: every venv of the project has the checkout on its path
(tools/checkout_on_path.py). Nothing here is imported by a notebook or the service; `vlsteps` imports nothing here.
"""
