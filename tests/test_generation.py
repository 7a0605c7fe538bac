import json

import pytest

from vlsteps import registry, standins, token_budget
from vlsteps.generation import STANDIN_TOKENS


def test_a_random_standin_writes_a_few_tokens_and_a_real_folder_its_full_budget(tmp_path):
    standin = tmp_path / "random"
    standin.mkdir()
    (standin / standins.MARKER).write_text(json.dumps({"key": "vilt", "learned": False}))
    assert token_budget(standin, 30) == STANDIN_TOKENS < 30
    assert token_budget(standin, 4) == 4
    assert token_budget(tmp_path, 30) == 30, "a folder without the stand-in marker is a real checkpoint"


@pytest.mark.parametrize("key", ["blip2", "instructblip", "blip-caption", "vit-gpt2"])
def test_a_learned_standin_writes_whole_answers_and_captions(key, tmp_path):
    """A two-shape caption is 10 tokens: cut to STANDIN_TOKENS, every learned caption would end mid-sentence."""
    folder = standins.build(registry.get(key), tmp_path)
    assert standins.is_learned(folder)
    assert token_budget(folder, 30) == 30
