# Every notebook cell nbval runs is also scanned for what a learner should not see (vlsteps/tools/nbval_scan.py).
from vlsteps.tools.nbval_scan import pytest_configure, pytest_runtest_makereport  # noqa: F401
