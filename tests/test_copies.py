"""Deliberate copies between notebooks and the package (a def or class marked `# Copied from PATH: NAME`) still
match their originals, and a copy that drifted, or a marker that cannot be followed, is reported."""
import shutil
import subprocess
import sys
import textwrap

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from vlsteps.paths import REPO_ROOT
from tools.check_copies import Repository

# The copies the project keeps on purpose: (the original's file, its name) -> the copy's file.
KEPT = {("notebooks/captioner.ipynb", "causal_mask"): "vlsteps/captioner/model.py",
        ("notebooks/captioner.ipynb", "TransformerEncoderBlock"): "vlsteps/captioner/model.py",
        ("notebooks/captioner.ipynb", "TransformerDecoderBlock"): "vlsteps/captioner/model.py",
        ("notebooks/captioner.ipynb", "greedy"): "vlsteps/captioner/decode.py",
        ("notebooks/captioner.ipynb", "beam"): "vlsteps/captioner/decode.py",
        ("notebooks/blip.ipynb", "kosmos_read"): "vlsteps/cards/kosmos2.py",
        ("notebooks/blip2.ipynb", "generate"): "notebooks/instructblip.ipynb",
        ("vlsteps/model_summary.py", "_fmt_bytes"): "notebooks/blip2.ipynb"}


def write(root, path, text):
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    (root / path).write_text(textwrap.dedent(text).lstrip("\n"))


def notebook(root, path, *sources):
    cells = [new_markdown_cell("# A notebook")] + [new_code_cell(textwrap.dedent(s).strip("\n")) for s in sources]
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(new_notebook(cells=cells), root / path)


def check(root):
    copies, problems = Repository(root).check()
    return copies, problems


def test_every_marked_copy_in_the_repository_matches_its_original():
    run = subprocess.run([sys.executable, "-m", "tools.check_copies", "--root", str(REPO_ROOT)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    copies, problems = check(REPO_ROOT)
    assert not problems
    found = {(c.source, c.name): c.where.split(":")[0].split(" cell ")[0] for c in copies}
    assert KEPT.items() <= found.items(), set(KEPT.items()) - set(found.items())
    assert f"{len(copies)} marked copies, each the same as its original" in run.stdout


@pytest.mark.parametrize("altered, side", [("vlsteps/captioner/model.py", "copy"),
                                           ("notebooks/captioner.ipynb", "original")])
def test_a_deliberately_altered_copy_is_caught(tmp_path, altered, side):
    """The captioner's causal mask, changed on one side only (the diagonal itself forbidden too)."""
    for path in ("vlsteps/captioner/model.py", "notebooks/captioner.ipynb"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO_ROOT / path, tmp_path / path)
    assert check(tmp_path)[1] == []
    text = (tmp_path / altered).read_text()
    assert text.count("diagonal=1)") == 1
    (tmp_path / altered).write_text(text.replace("diagonal=1)", "diagonal=0)"))
    copies, problems = check(tmp_path)
    assert len(copies) == 3 and len(problems) == 1, problems
    assert problems[0].startswith("vlsteps/captioner/model.py:")
    assert "causal_mask differs from notebooks/captioner.ipynb: causal_mask" in problems[0]
    minus, plus = ("diagonal=1", "diagonal=0") if side == "copy" else ("diagonal=0", "diagonal=1")
    line = "    return torch.triu(torch.ones(length, length, dtype=torch.bool, device=device), {})"
    assert "-" + line.format(minus) in problems[0] and "+" + line.format(plus) in problems[0]
    run = subprocess.run([sys.executable, "-m", "tools.check_copies", "--root", str(tmp_path)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 1 and "causal_mask differs" in run.stderr and "1 problems" in run.stdout


def test_comments_and_layout_do_not_count_but_docstrings_and_code_do(tmp_path):
    notebook(tmp_path, "notebooks/a.ipynb", '''
        %pip install nothing
        def scale(x, by=2):
            """Twice x."""
            return x * by   # a comment the copy need not have
        ''')
    write(tmp_path, "pkg/same.py", '''
        # Copied from notebooks/a.ipynb: scale
        def scale(x,
                  by=2):
            """Twice x."""

            return (x * by)
        ''')
    assert check(tmp_path)[1] == []
    write(tmp_path, "pkg/same.py", '''
        # Copied from notebooks/a.ipynb: scale
        def scale(x, by=2):
            """Two times x."""
            return x * by
        ''')
    problems = check(tmp_path)[1]
    assert len(problems) == 1 and '-    """Twice x."""' in problems[0] and '+    """Two times x."""' in problems[0]


def test_renames_read_names_only_and_may_go_on_in_the_next_comment_line(tmp_path):
    notebook(tmp_path, "notebooks/a.ipynb", '''
        def generate(image, prompt=None):
            """Text for one image."""
            out = model.generate(**processor(images=image, text=prompt))
            return processor.decode(out, skip="generate")
        ''')
    copy = '''
        # Copied from notebooks/a.ipynb: generate with generate->blip2_generate,
        #     processor->blip2_processor, model->blip2
        def blip2_generate(image, prompt=None):
            """Text for one image."""
            out = blip2.generate(**blip2_processor(images=image, text=prompt))
            return blip2_processor.decode(out, skip="generate")
        '''
    notebook(tmp_path, "notebooks/b.ipynb", copy)
    copies, problems = check(tmp_path)
    assert problems == [] and copies[0].renames == {"generate": "blip2_generate", "processor": "blip2_processor",
                                                    "model": "blip2"}
    # Without the renames the names differ; an attribute or a string is never renamed.
    notebook(tmp_path, "notebooks/b.ipynb", copy.replace(", model->blip2", ""))
    assert "-    out = model.generate(" in check(tmp_path)[1][0]
    notebook(tmp_path, "notebooks/b.ipynb", copy.replace("blip2.generate(", "blip2.blip2_generate("))
    assert "+    out = blip2.blip2_generate(" in check(tmp_path)[1][0]


def test_a_marker_inside_a_string_is_not_a_marker(tmp_path):
    write(tmp_path, "pkg/doc.py", '''
        """How to mark a copy:

        # Copied from notebooks/missing.ipynb: anything
        def anything(): ...
        """
        ''')
    assert check(tmp_path) == ([], [])


@pytest.mark.parametrize("marker, said", [
    ("# Copied from notebooks/a.ipynb scale", "a marker reads `# Copied from PATH: NAME [with A->B, C->D]`"),
    ("# Copied from notebooks/gone.ipynb: scale", "the original's file notebooks/gone.ipynb does not exist"),
    ("# Copied from notebooks/a.ipynb: shift", "notebooks/a.ipynb defines 'shift' 0 times"),
    ("# Copied from notebooks/a.ipynb: twice", "notebooks/a.ipynb defines 'twice' 2 times"),
    ("# Copied from notebooks/a.ipynb: scale with scale=>double", "'scale=>double' is not a rename"),
    ("# Copied from notebooks/a.ipynb: scale\n", "a marker stands on the line right before the def or class"),
])
def test_a_marker_that_cannot_be_followed_gets_one_message_saying_what_to_write(tmp_path, marker, said):
    notebook(tmp_path, "notebooks/a.ipynb", "def scale(x):\n    return 2 * x", "def twice(x):\n    return 2 * x",
             "def twice(x):\n    return x + x")
    write(tmp_path, "pkg/copy.py", f"{marker}\ndef scale(x):\n    return 2 * x\n")
    copies, problems = check(tmp_path)
    assert len(problems) == 1 and problems[0].startswith("pkg/copy.py:1: ") and said in problems[0], problems


def test_a_copy_in_a_notebook_cell_is_named_by_its_cell_and_line(tmp_path):
    write(tmp_path, "pkg/orig.py", "def scale(x):\n    return 2 * x\n")
    notebook(tmp_path, "notebooks/a.ipynb", "import math", "x = 1\n# Copied from pkg/orig.py: scale\n"
                                                           "def scale(x):\n    return 3 * x")
    copies, problems = check(tmp_path)
    assert copies[0].where == "notebooks/a.ipynb cell 2 line 2"
    assert problems[0].startswith("notebooks/a.ipynb cell 2 line 2: scale differs from pkg/orig.py: scale")


def test_the_command_line_refuses_a_root_that_is_no_folder(tmp_path):
    run = subprocess.run([sys.executable, "-m", "tools.check_copies", "--root", str(tmp_path / "none")],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 2 and "is not a folder" in run.stderr and "Traceback" not in run.stderr
