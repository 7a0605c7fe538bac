"""A pytest plugin for nbval runs: a notebook cell that passes but shows a learner junk fails.

notebooks/conftest.py loads it, so `make test` scans every cell of every notebook on stand-ins.
"""
from __future__ import annotations

import os

import pytest

from .output_scan import QUIET_ENV, problems


def pytest_configure(config):
    os.environ.update(QUIET_ENV)   # the kernels nbval starts inherit it


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    outputs = getattr(item, "test_outputs", None)
    if call.when != "call" or not report.passed or outputs is None:
        return
    found = problems(outputs)
    if found:
        report.outcome = "failed"
        report.longrepr = (f"{item.nodeid}: the cell ran, but a learner would see this (fix it, or allow it with a "
                           "reason in vlsteps/tools/output_scan.py ALLOWED):\n  " + "\n  ".join(found))
