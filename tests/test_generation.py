from vlsteps import models, token_budget
from vlsteps.generation import STANDIN_TOKENS


def test_a_standin_writes_a_few_tokens_and_a_real_folder_its_full_budget(tmp_path):
    standin = models.model_dir("vit", banner=False)          # the tests run on stand-ins
    assert token_budget(standin, 30) == STANDIN_TOKENS < 30
    assert token_budget(standin, 4) == 4
    assert token_budget(tmp_path, 30) == 30, "a folder without the stand-in marker is a real checkpoint"


def test_the_banner_says_once_per_model_that_its_output_is_noise_and_how_to_get_the_real_one(capsys):
    models._show_standin_banner(models.registry.get("vit"))
    banner = capsys.readouterr().err
    assert "STAND-IN" in banner and "noise" in banner and f"{STANDIN_TOKENS} new tokens" in banner
    assert "scripts/download_models.sh vit" in banner and "With the real checkpoint" in banner
