import json

import nbformat
import pytest

from vlsteps import ModelNotFoundError, model_dir, models, registry
from vlsteps.standins import MARKER, is_standin


@pytest.fixture
def empty_models(tmp_path, monkeypatch):
    monkeypatch.setenv("VLSTEPS_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.delenv("VLSTEPS_STANDINS_DIR", raising=False)
    return tmp_path / "models"


def test_missing_model_names_the_exact_download_command(empty_models, monkeypatch):
    monkeypatch.delenv("VLSTEPS_STANDINS", raising=False)
    with pytest.raises(ModelNotFoundError) as err:
        model_dir("clip")
    message = str(err.value)
    assert "scripts/download_models.sh clip" in message
    assert "openai/clip-vit-large-patch14" in message and "1.7 GB" in message
    assert str(empty_models / "clip-vit-large-patch14") in message


def test_unknown_key_lists_the_known_ones():
    with pytest.raises(KeyError, match="vit, clip"):
        model_dir("clip-huge")


def test_real_folder_wins_over_stand_ins(empty_models, monkeypatch):
    monkeypatch.setenv("VLSTEPS_STANDINS", "1")
    real = empty_models / "vit-base-patch16-224"
    real.mkdir(parents=True)
    (real / "config.json").write_text("{}")
    assert model_dir("vit") == real


def test_stand_in_is_built_once_marked_and_announced(empty_models, monkeypatch, capsys):
    monkeypatch.setenv("VLSTEPS_STANDINS", "1")
    path = model_dir("vit")
    assert path == empty_models / "_standins" / "vit-base-patch16-224"
    assert is_standin(path) and not models.is_real("vit")
    assert "STAND-IN" in capsys.readouterr().err
    weights = path / "model.safetensors"
    stamp = weights.stat().st_mtime_ns
    assert model_dir("vit", banner=False) == path
    assert weights.stat().st_mtime_ns == stamp, "an up-to-date stand-in is reused, not rebuilt"


def test_stand_in_from_an_older_builder_is_rebuilt(empty_models, monkeypatch):
    monkeypatch.setenv("VLSTEPS_STANDINS", "1")
    path = model_dir("vit", banner=False)
    marker = json.loads((path / MARKER).read_text())
    (path / MARKER).write_text(json.dumps({**marker, "builder": "old"}))
    assert model_dir("vit", banner=False) == path
    assert json.loads((path / MARKER).read_text())["builder"] == marker["builder"]


def test_a_notebook_without_its_model_stops_with_the_download_command(empty_models, monkeypatch):
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
    monkeypatch.delenv("VLSTEPS_STANDINS", raising=False)
    path = models.REPO_ROOT / "notebooks" / "vit.ipynb"
    book = nbformat.read(path, as_version=4)
    client = NotebookClient(book, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    with pytest.raises(CellExecutionError, match="scripts/download_models.sh vit"):
        client.execute()


def test_registry_entries_are_consistent():
    from vlsteps import notebooks
    folders = [m.folder for m in registry.MODELS.values()]
    assert len(set(folders)) == len(folders), "two keys would share a model folder"
    names = {nb.name for nb in notebooks.NOTEBOOKS}
    for m in registry.MODELS.values():
        assert set(m.notebooks) <= names, f"{m.key} names an unknown notebook"
        assert (models.REPO_ROOT / "vlsteps" / "standins" / f"{m.family}.py").exists(), m.key
        weights = [f for f in m.files if "safetensors" in f or f.endswith((".bin", ".pt", ".pth", ".ckpt"))]
        assert weights and all(f.endswith(".safetensors") for f in weights), f"{m.key}: safetensors only"
