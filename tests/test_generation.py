import json

import pytest

from vlsteps import registry, standins, token_budget, widgets
from vlsteps.generation import STANDIN_TOKENS


def test_a_random_standin_writes_a_few_tokens_and_a_real_folder_its_full_budget(tmp_path):
    standin = tmp_path / "random"
    standin.mkdir()
    (standin / standins.MARKER).write_text(json.dumps({"key": "vilt", "learned": False}))
    assert token_budget(standin, 30) == STANDIN_TOKENS < 30
    assert token_budget(standin, 4) == 4
    assert token_budget(tmp_path, 30) == 30, "a folder without the stand-in marker is a real checkpoint"


@pytest.mark.parametrize("key", ["blip-caption", "vit-gpt2"])
def test_a_learned_standin_writes_whole_answers_and_captions(key, tmp_path):
    """A two-shape caption is 10 tokens: cut to STANDIN_TOKENS, every learned caption would end mid-sentence."""
    folder = standins.build(registry.get(key), tmp_path)
    assert standins.is_learned(folder)
    assert token_budget(folder, 30) == 30


def test_the_banner_explains_stand_ins_once_then_names_each_one_and_its_download(capsys, monkeypatch):
    monkeypatch.setattr(widgets, "_EXPLAINED", False)
    widgets.standin_banner(registry.get("vit"))
    first = capsys.readouterr().err
    assert "STAND-IN" in first and "noise" in first and f"{STANDIN_TOKENS} new tokens" in first
    assert "tools/download_models.sh vit" in first and "With the real checkpoint" in first
    widgets.standin_banner(registry.get("vilt"))
    second = capsys.readouterr().err
    assert "'vilt'" in second and "noise" in second and "tools/download_models.sh vilt" in second
    assert "With the real checkpoint" not in second and len(second) < len(first)
