"""The package that Colab installs holds only what the notebooks and the service use; repository tooling (runner,
README generator, benchmarks, dry runs, pytest plugin) lives in tools/, outside it."""
import ast
import re

import nbformat

from tools import notebooks
from vlsteps.paths import REPO_ROOT

PACKAGE = REPO_ROOT / "vlsteps"
SERVICE = "vlsteps.serve.__main__"


def module_name(path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path) -> set[str]:
    """Every module and name that the file's import statements reach, top level or inside a function."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package if node.level else ""
            base = ".".join(part for part in (base, node.module) if part)
            found |= {base} | {f"{base}.{alias.name}" for alias in node.names}
    return found


def notebook_roots() -> set[str]:
    """What the notebooks' code cells import or run with `python -m`, and the names `vlsteps` hands on lazily."""
    roots = set()
    for nb in notebooks.NOTEBOOKS:
        for cell in nbformat.read(REPO_ROOT / nb.path, as_version=4).cells:
            if cell.cell_type != "code":
                continue
            roots |= set(re.findall(r"python -m (vlsteps[\w.]*)", cell.source))
            python = re.sub(r"^(\s*)[%!].*$", r"\1pass", cell.source, flags=re.M)   # IPython's magics and shell lines
            for node in ast.walk(ast.parse(python)):
                if isinstance(node, ast.Import):
                    roots |= {alias.name for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module:
                    roots |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    lazy = ast.literal_eval(re.search(r"_EXPORTS = (\{.*?\n\})", (PACKAGE / "__init__.py").read_text(), re.S)[1])
    return roots | {f"vlsteps.{module}" for module in lazy} | {SERVICE}


def test_every_module_of_the_package_is_used_by_a_notebook_or_the_service():
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    reached, todo = set(), [name for name in notebook_roots() if name in modules]
    while todo:
        name = todo.pop()
        if name in reached:
            continue
        reached.add(name)
        parents = [name.rsplit(".", i)[0] for i in range(1, name.count("."))]          # importing a.b.c runs a.b
        main = [f"{name}.__main__"] if modules[name].name == "__init__.py" else []    # `python -m` of a package
        todo += [m for m in (*imported(modules[name]), *parents, *main) if m in modules]
    unused = sorted(set(modules) - reached)
    assert not unused, f"in the shipped package but used by no notebook and not by the service: {unused}"


def test_the_package_imports_nothing_from_the_repository_tooling():
    for path in PACKAGE.rglob("*.py"):
        assert not {m for m in imported(path) if m == "tools" or m.startswith("tools.")}, path
