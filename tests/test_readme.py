import re

from vlsteps import models
from vlsteps.tools import notebooks, readme


def test_readme_tables_are_generated_from_the_registry():
    text = readme.README.read_text(encoding="utf-8")
    assert readme.render(text) == text, "README.md is out of date: run `make readme`"


def test_every_colab_badge_points_at_an_existing_notebook():
    text = readme.README.read_text(encoding="utf-8")
    links = re.findall(r"https://colab\.research\.google\.com/github/[^/]+/[^/]+/blob/main/([^)\s]+)", text)
    assert len(links) == len(notebooks.NOTEBOOKS)
    for link in links:
        assert (models.REPO_ROOT / link).is_file(), link


def test_readme_commands_are_the_ones_ci_runs():
    text = readme.README.read_text(encoding="utf-8")
    assert "make test" in text and "make run" in text
    ci = (models.REPO_ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, re.M)
