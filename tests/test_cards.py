"""A checkpoint is one card: adding a model is adding its card (plus its notebook cells), and everything the
collection says or does with it (README tables, download list, stand-in, sizes, summary) comes from the card."""
import ast
import json
import re
from dataclasses import replace

import nbformat
import pytest

from tools import notebooks, readme, size_tables
from vlsteps import architectures, checkpoint, download, model_summary, registry, sizes, standins
from vlsteps.paths import REPO_ROOT
from vlsteps.serve import captioners


@pytest.fixture
def new_card(monkeypatch, tmp_path):
    """A model added as nothing but a card: a copy of the vit card under another key and repo, in the vit notebook.
    computed.json is rewritten aside, as `make readme` would rewrite it."""
    card = replace(registry.get("vit"), key="vit-copy", repo_id="someone/vit-copy-patch16-224", download_gb=0.12)
    monkeypatch.setitem(registry.CARDS, card.key, card)
    computed = tmp_path / "computed.json"
    computed.write_text(json.dumps(size_tables.computed_data()))
    monkeypatch.setattr(architectures, "COMPUTED", computed)
    return card


def test_a_new_card_reaches_the_readme_tables(new_card):
    row = next(line for line in size_tables.model_table().splitlines() if "`vit-copy`" in line)
    assert "[someone/vit-copy-patch16-224](https://huggingface.co/someone/vit-copy-patch16-224)" in row
    assert "| 86.6 M | 0.12 GB |" in row and row.endswith("| float32 | vit |")
    nb = notebooks.get("vit")
    assert new_card in nb.models
    assert "`vit-copy`" in next(line for line in readme.notebook_table().splitlines() if nb.path in line)


def test_a_new_card_is_in_the_download_list(new_card, capsys):
    assert download.main(["--list"]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("vit-copy "))
    assert "someone/vit-copy-patch16-224" in line and "0.12 GB" in line and "86.6 M" in line
    assert new_card in download.select(["all"])


def test_a_new_card_builds_its_stand_in_and_resolves(new_card, tmp_path, monkeypatch):
    folder = standins.build(new_card, tmp_path / "built")
    assert folder.name == "vit-copy-patch16-224" and standins.is_standin(folder)
    assert json.loads((folder / standins.MARKER).read_text())["key"] == "vit-copy"
    assert checkpoint.problems(folder, new_card) == []
    monkeypatch.setenv("VLSTEPS_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.delenv("VLSTEPS_STANDINS_DIR", raising=False)
    monkeypatch.setenv("VLSTEPS_STANDINS", "1")
    assert checkpoint.model_dir("vit-copy", banner=False) == tmp_path / "models" / "_standins" / folder.name


def test_a_new_card_has_sizes_and_a_summary(new_card, tmp_path):
    import transformers
    assert sizes.param_count("vit-copy") == sizes.param_count("vit")
    assert sizes.weight_bytes("vit-copy", "float16") == sizes.weight_bytes("vit", "float16")
    assert ("vit-copy",) in sizes.notebook_sets("vit")
    model = transformers.ViTForImageClassification.from_pretrained(standins.build(new_card, tmp_path))
    text = str(model_summary.summary(model, "vit-copy"))
    assert text.startswith("vit-copy = someone/vit-copy-patch16-224")
    assert "encoder" in text and "12 layers x 768" in text and "loaded: stand-in" in text


def _code(nb) -> str:
    cells = [cell.source for cell in nb.cells if cell.cell_type == "code"]
    return "\n".join(re.sub(r"^(\s*)[%!].*$", r"\1pass", source, flags=re.M) for source in cells)


def _strings(node) -> set[str]:
    return {n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def loaded_keys(code: str) -> set[str]:
    """The keys a notebook's code passes to `model_dir`: literals; where it passes a name, the strings the loop
    around the call runs over, or else those the name is assigned or compared with."""
    tree = ast.parse(code)
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    keys = set()
    for call in ast.walk(tree):
        if not (isinstance(call, ast.Call) and getattr(call.func, "attr", getattr(call.func, "id", "")) == "model_dir"):
            continue
        arg = call.args[0]
        if isinstance(arg, ast.Constant):
            keys.add(arg.value)
        elif isinstance(arg, ast.Name):
            keys |= _bound(arg.id, call, parents, tree)
    return keys


def _bound(name: str, call, parents, tree) -> set[str]:
    node = call
    while node in parents:
        node = parents[node]
        loops = node.generators if hasattr(node, "generators") else [node] if isinstance(node, ast.For) else []
        for loop in loops:
            if getattr(loop.target, "id", None) == name:
                return _strings(loop.iter)
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            found |= _strings(node.value)
        elif isinstance(node, ast.Compare) and getattr(node.left, "id", None) == name:
            found |= set().union(*map(_strings, node.comparators))
    return found


def served_keys(code: str) -> set[str]:
    """The served caption models a notebook's requests to the service name (by key or folder in the route); a route
    without one captions with the default model."""
    by_name = {name: card.key for card in registry.CARDS.values() if card.serve for name in (card.key, card.folder)}
    return {by_name[segment] if segment else captioners.DEFAULT
            for segment in re.findall(r"/api/v1/vision/(?:caption|describe)(?:/([\w.-]+))?", code)}


@pytest.mark.parametrize("nb", notebooks.NOTEBOOKS, ids=lambda nb: nb.name)
def test_the_cards_list_exactly_the_models_each_notebook_loads(nb):
    code = _code(nbformat.read(REPO_ROOT / nb.path, as_version=4))
    loads = loaded_keys(code) | served_keys(code)
    assert loads == {card.key for card in nb.models}, (
        f"{nb.path} loads {sorted(loads)}: a card's `notebooks` must name every notebook that loads it, and only those")


def test_the_parser_sees_literal_looped_assigned_and_compared_keys():
    code = """
a = model_dir("vit")
paths = {k: vlsteps.model_dir(k) for k in ["clip", "blip2"]}
KEY = "vilt"
if KEY == "qwen-vl":
    pass
b = model_dir(KEY)
c = "sdxl-turbo"
for k in ("input_ids",):
    pass
"""
    assert loaded_keys(code) == {"vit", "clip", "blip2", "vilt", "qwen-vl"}
    assert served_keys('post("/api/v1/vision/caption")\npost("/api/v1/vision/describe/vit-gpt2-image-captioning")') \
        == {captioners.DEFAULT, "vit-gpt2"}


def test_what_a_notebook_holds_at_once_is_among_its_cards():
    for name, held in sizes.HELD_TOGETHER.items():
        listed = {card.key for card in registry.for_notebook(name)}
        for keys in held:
            assert len(keys) > 1 and set(keys) <= listed, f"HELD_TOGETHER[{name!r}]: {keys} vs the cards {listed}"


def test_the_served_cards_are_the_services_caption_models():
    assert {card.key for card in registry.CARDS.values() if card.serve} == {m.key for m in captioners.MODELS.values()}
