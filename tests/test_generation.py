from vlsteps import model_dir, token_budget
from vlsteps.generation import STANDIN_TOKENS


def test_a_standin_writes_a_few_tokens_and_a_real_folder_its_full_budget(tmp_path):
    standin = model_dir("vit", banner=False)          # the tests run on stand-ins
    assert token_budget(standin, 30) == STANDIN_TOKENS < 30
    assert token_budget(standin, 4) == 4
    assert token_budget(tmp_path, 30) == 30, "a folder without the stand-in marker is a real checkpoint"

