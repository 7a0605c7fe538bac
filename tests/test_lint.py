"""The linter (ruff, configured in pyproject.toml, pinned in requirements-dev.txt) is part of the test run, so
`make test` and CI fail on what it finds: an undefined or unused name, a syntax error, a line over 120."""
import subprocess
import sys

from vlsteps.paths import REPO_ROOT


def test_ruff_finds_nothing():
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise", "."],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:] + "\n(ruff comes from requirements-dev.txt)"
