"""Deliberate copies between notebooks and the package still match their originals (as transformers' check_copies).

A notebook runs on its own, so the package keeps copies of notebook code (and a notebook, now and then, of another
notebook's). Each copy is marked on the line right before its def or class, in a .py file or a notebook cell:

    # Copied from notebooks/blip.ipynb: kosmos_read
    # Copied from notebooks/blip2.ipynb: generate with generate->blip2_generate, processor->blip2_processor,
    #     model->blip2

The original is the one def or class of that name in the named file (the path from the repository root; in a
notebook, any code cell; in a .py file, at any depth). A marker line that ends with a comma goes on in the next
comment line. `with A->B` reads the original's name A as B: variable, argument, function and class names, not
attributes, keywords or strings. Both sides are compared as Python's ast sees them, so comments and layout do not
count; docstrings and all the code do.

    python -m tools.check_copies [--root DIR]

Read-only: it reports each copy that differs, with a diff, and exits 1; which side is right is for a person to
decide (change the original and the copy together).
"""
from __future__ import annotations

import argparse
import ast
import copy
import difflib
import io
import os
import re
import sys
import tokenize
from dataclasses import dataclass, field
from pathlib import Path

from vlsteps.paths import REPO_ROOT

MARKER = re.compile(r"#\s*Copied from\b\s*(?P<rest>.*)$")
TARGET = re.compile(r"(?P<path>[\w./-]+\.(?:py|ipynb)):\s*(?P<name>[A-Za-z_]\w*)(?:\s+with\s+(?P<renames>.+))?")
RENAME = re.compile(r"(?P<old>[A-Za-z_]\w*)->(?P<new>[A-Za-z_]\w*)")
FORMAT = "# Copied from PATH: NAME [with A->B, C->D]"
SKIP_DIRS = {"build", "__pycache__", "node_modules"}
DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


@dataclass(frozen=True)
class Chunk:
    """One piece of Python: a .py file, or one code cell of a notebook (magics turned into Python by IPython)."""
    path: str              # from the root, with forward slashes
    cell: int | None       # the notebook cell's index; None for a .py file
    text: str

    def where(self, line: int) -> str:
        return f"{self.path}:{line}" if self.cell is None else f"{self.path} cell {self.cell} line {line}"


@dataclass(frozen=True)
class Copy:
    where: str             # where the marker is
    source: str            # the original's file, from the root
    name: str              # the original's name there
    renames: dict = field(default_factory=dict)


def chunks(path: Path, root: Path) -> list[Chunk]:
    rel = path.relative_to(root).as_posix()
    if path.suffix == ".py":
        return [Chunk(rel, None, path.read_text(encoding="utf-8"))]
    import nbformat
    from IPython.core.inputtransformer2 import TransformerManager
    python = TransformerManager().transform_cell
    cells = nbformat.read(path, as_version=4).cells
    return [Chunk(rel, i, python(c.source)) for i, c in enumerate(cells) if c.cell_type == "code"]


def _files(root: Path):
    """The .py files and notebooks under root, past hidden folders (.git, .venv) and build outputs."""
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIP_DIRS)
        yield from (Path(folder) / n for n in sorted(names) if n.endswith((".py", ".ipynb")))


def _parse(chunk: Chunk) -> ast.Module:
    try:
        return ast.parse(chunk.text)
    except SyntaxError as e:
        raise ValueError(f"{chunk.where(e.lineno or 0)}: not valid Python ({e.msg})") from None


def _defs(tree: ast.Module) -> list:
    return [n for n in ast.walk(tree) if isinstance(n, DEFS)]


def _start(node) -> int:
    """The first line of a def or class: its first decorator's, if it has any."""
    return min([node.lineno] + [d.lineno for d in node.decorator_list])


def _comments(chunk: Chunk) -> list[tuple[int, str]]:
    """(line, text) of every comment: a marker inside a string is not a marker."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(chunk.text).readline))
    except (tokenize.TokenError, SyntaxError) as e:
        raise ValueError(f"{chunk.where(0)}: cannot be read as Python ({e})") from None
    return [(t.start[0], t.string) for t in tokens if t.type == tokenize.COMMENT]


def _markers(chunk: Chunk) -> list[tuple[int, int, str]]:
    """(marker's first line, its last line, its text after `Copied from`), continuation lines joined."""
    comments = _comments(chunk)
    text_at = dict(comments)
    found = []
    for line, text in comments:
        m = MARKER.match(text)
        if not m:
            continue
        rest, last = m["rest"].strip(), line
        while rest.endswith(",") and (last + 1) in text_at:
            last += 1
            rest += " " + text_at[last].lstrip("#").strip()
        found.append((line, last, rest))
    return found


def _renames(text: str | None, where: str) -> dict:
    if not text:
        return {}
    pairs = [p.strip() for p in text.split(",")]
    matched = [RENAME.fullmatch(p) for p in pairs]
    if not all(matched):
        bad = next(p for p, m in zip(pairs, matched) if not m)
        raise ValueError(f"{where}: {bad!r} is not a rename; write them as `with A->B, C->D` ({FORMAT})")
    return {m["old"]: m["new"] for m in matched}


def _normalised(node, renames: dict) -> str:
    node = copy.deepcopy(node)
    for n in ast.walk(node):
        if isinstance(n, ast.Name):
            n.id = renames.get(n.id, n.id)
        elif isinstance(n, ast.arg):
            n.arg = renames.get(n.arg, n.arg)
        elif isinstance(n, DEFS):
            n.name = renames.get(n.name, n.name)
    return ast.unparse(node)


class Repository:
    """The files under a root, each parsed once."""

    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self._chunks: dict[str, list[Chunk]] = {}

    def chunks(self, path: Path) -> list[Chunk]:
        rel = path.relative_to(self.root).as_posix()
        if rel not in self._chunks:
            self._chunks[rel] = chunks(path, self.root)
        return self._chunks[rel]

    def original(self, source: str, name: str, where: str):
        path = self.root / source
        if not path.is_file():
            raise ValueError(f"{where}: the original's file {source} does not exist (paths are from the "
                             "repository root)")
        found = [n for c in self.chunks(path) for n in _defs(_parse(c)) if n.name == name]
        if len(found) != 1:
            raise ValueError(f"{where}: {source} defines {name!r} {len(found)} times; a marker names exactly one "
                             "def or class")
        return found[0]

    def check(self) -> tuple[list[Copy], list[str]]:
        """Every marked copy under the root, and one problem (a message, with a diff where the code differs) per
        copy that does not match or marker that cannot be followed."""
        copies, problems = [], []
        for path in _files(self.root):
            try:
                for chunk in self.chunks(path):
                    for found in self._check_chunk(chunk, problems):
                        copies.append(found)
            except ValueError as e:
                problems.append(str(e))
        return copies, problems

    def _check_chunk(self, chunk: Chunk, problems: list[str]):
        markers = _markers(chunk)
        if not markers:
            return
        tree = _parse(chunk)
        by_start = {_start(n): n for n in _defs(tree)}
        for first, last, rest in markers:
            where = chunk.where(first)
            try:
                target = TARGET.fullmatch(rest)
                if not target:
                    raise ValueError(f"{where}: a marker reads `{FORMAT}`, not `# Copied from {rest}`")
                node = by_start.get(last + 1)
                if node is None:
                    raise ValueError(f"{where}: a marker stands on the line right before the def or class it "
                                     "marks (its decorators included)")
                found = Copy(where, target["path"], target["name"], _renames(target["renames"], where))
                original = self.original(found.source, found.name, where)
                expected, actual = _normalised(original, found.renames), _normalised(node, {})
                if expected != actual:
                    diff = difflib.unified_diff(expected.splitlines(), actual.splitlines(), lineterm="",
                                                fromfile=f"{found.source}: {found.name} (the original)",
                                                tofile=f"{where}: {node.name} (the copy)")
                    problems.append(f"{where}: {node.name} differs from {found.source}: {found.name}\n"
                                    + "\n".join(diff))
                yield found
            except ValueError as e:
                problems.append(str(e))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.check_copies", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=REPO_ROOT,
                        help="the repository to check (default: this checkout)")
    args = parser.parse_args(argv)
    if not args.root.is_dir():
        parser.error(f"--root {args.root} is not a folder")
    copies, problems = Repository(args.root).check()
    for problem in problems:
        print(problem + "\n", file=sys.stderr)
    print(f"{len(copies)} marked copies; {len(problems)} problems" if problems else
          f"{len(copies)} marked copies, each the same as its original")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
