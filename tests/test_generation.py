from vlsteps import models, standin_note, token_budget
from vlsteps.generation import STANDIN_TOKENS


def test_a_standin_writes_a_few_tokens_and_a_real_folder_its_full_budget(tmp_path):
    standin = models.model_dir("vit")          # the tests run on stand-ins
    assert token_budget(standin, 30) == STANDIN_TOKENS < 30
    assert token_budget(standin, 4) == 4
    assert token_budget(tmp_path, 30) == 30, "a folder without the stand-in marker is a real checkpoint"


def test_the_note_names_the_standins_once_and_says_nothing_alarming_for_real_ones(tmp_path):
    standin = models.model_dir("vit")
    note = standin_note(standin, tmp_path)
    assert "STAND-IN" in note and standin.name in note and tmp_path.name not in note
    assert "STAND-IN" not in standin_note(tmp_path)
