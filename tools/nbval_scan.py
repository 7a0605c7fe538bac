"""A pytest plugin for nbval runs: a notebook cell that passes but shows a learner junk fails.

pyproject.toml's addopts load it, so `make test` scans every cell of every notebook on stand-ins. (Not a
notebooks/conftest.py: two conftest modules clash when one pytest run collects tests/ and notebooks/.)
"""
from __future__ import annotations

import os

import pytest

from .output_scan import QUIET_ENV, problems


def _is_notebook_cell(item) -> bool:
    return type(item).__module__.startswith("nbval")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    if _is_notebook_cell(item):
        os.environ.update(QUIET_ENV)   # before nbval starts the notebook's kernel, which inherits it


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    outputs = getattr(item, "test_outputs", None)
    if call.when != "call" or not report.passed or not _is_notebook_cell(item) or outputs is None:
        return
    found = problems(outputs)
    if found:
        report.outcome = "failed"
        report.longrepr = (f"{item.nodeid}: the cell ran, but a learner would see this (fix it, or allow it with a "
                           "reason in tools/output_scan.py ALLOWED):\n  " + "\n  ".join(found))
