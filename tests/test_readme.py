import re

from vlsteps import paths
from tools import notebooks, readme


def test_readme_tables_are_generated_from_the_registry():
    text = readme.README.read_text(encoding="utf-8")
    assert readme.render(text) == text, "README.md is out of date: run `make readme`"


def test_every_colab_badge_points_at_an_existing_notebook():
    text = readme.README.read_text(encoding="utf-8")
    links = re.findall(r"https://colab\.research\.google\.com/github/[^/]+/[^/]+/blob/main/([^)\s]+)", text)
    assert len(links) == len(notebooks.NOTEBOOKS)
    for link in links:
        assert (paths.REPO_ROOT / link).is_file(), link


def test_readme_commands_are_the_ones_ci_runs():
    text = readme.README.read_text(encoding="utf-8")
    assert "make test" in text and "make run" in text
    ci = (paths.REPO_ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, re.M)


def test_every_notebook_row_fills_every_column_and_names_the_optional_model():
    rows = readme.notebook_table().splitlines()[2:]
    assert len(rows) == len(notebooks.NOTEBOOKS)
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert all(cells), f"an empty column: {row[:120]}"
    instructblip = next(r for r in rows if "instructblip.ipynb" in r)
    assert "`instructblip-vicuna` (optional" in instructblip
    assert "except the optional `instructblip-vicuna`" in readme.size_tables.model_table()


def test_the_readme_types_no_test_counts():
    """A count of tests typed into the README is stale once a test is added: it says what passed, and when."""
    text = readme.README.read_text(encoding="utf-8")
    assert not re.findall(r"\b\d+ (?:passed|failed|tests\b)", text), "drop the counts: say what passed, and the date"


def test_a_score_under_its_goal_never_reads_as_reaching_it():
    assert readme._score(0.7975, 0.8) == "0.7975"       # two decimals would say 0.80, the goal
    assert readme._score(0.8271, 0.85) == "0.83" and readme._score(0.8, 0.8) == "0.80"
    assert readme._score(0.3346, "< 0.99") == "0.33"
