import json

import nbformat
import pytest

from vlsteps import ModelNotFoundError, checkpoint, model_dir, paths, registry
from vlsteps.standins import MARKER, build, is_standin


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
    assert "tools/download_models.sh clip" in message
    assert "openai/clip-vit-large-patch14" in message and "1.7 GB" in message
    assert str(empty_models / "clip-vit-large-patch14") in message


def test_unknown_key_lists_the_known_ones():
    with pytest.raises(KeyError, match="vit, clip"):
        model_dir("clip-huge")


def hand_made(key, models_dir):
    """A complete folder without a manifest, as if put there by hand: the stand-in, built where the real one goes."""
    folder = build(registry.get(key), models_dir)
    (folder / MARKER).unlink()
    return folder


def truncate(path, n_bytes=1000):
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size - n_bytes)


def model_dir_error(key):
    with pytest.raises(ModelNotFoundError) as err:
        model_dir(key)
    return str(err.value)


@pytest.mark.parametrize("key", list(registry.CARDS))
def test_every_stand_in_layout_counts_as_complete(key, tmp_path):
    """The registry's required files are what the notebooks' loaders read: the stand-ins, built to load
    like the real checkpoints, hold them all."""
    folder = build(registry.get(key), tmp_path)
    assert checkpoint.problems(folder, registry.get(key)) == []


def test_complete_folder_wins_over_stand_ins(empty_models, monkeypatch):
    monkeypatch.setenv("VLSTEPS_STANDINS", "1")
    real = hand_made("vit", empty_models)
    assert checkpoint.is_real("vit")
    assert model_dir("vit") == real


@pytest.mark.parametrize("damage", ["truncated", "missing"])
def test_config_without_whole_weights_is_no_download(empty_models, monkeypatch, damage):
    monkeypatch.delenv("VLSTEPS_STANDINS", raising=False)
    folder = hand_made("vit", empty_models)
    weights = folder / "model.safetensors"
    if damage == "truncated":
        truncate(weights)
    else:
        weights.unlink()
    assert not checkpoint.is_real("vit")
    message = model_dir_error("vit")
    assert str(folder) in message and "model.safetensors" in message and damage in message
    assert "tools/download_models.sh vit" in message and "\n" not in message


def test_incomplete_download_falls_back_to_the_stand_in_and_says_how_to_finish(empty_models, monkeypatch, capsys):
    monkeypatch.setenv("VLSTEPS_STANDINS", "1")
    folder = hand_made("vit", empty_models)
    truncate(folder / "model.safetensors")
    assert model_dir("vit") == empty_models / "_standins" / folder.name
    banner = capsys.readouterr().err
    assert "STAND-IN" in banner and "incomplete" in banner and str(folder) in banner
    assert "model.safetensors" in banner and "tools/download_models.sh vit" in banner


def test_folder_without_a_tokenizer_is_incomplete(empty_models, monkeypatch):
    monkeypatch.delenv("VLSTEPS_STANDINS", raising=False)
    folder = hand_made("blip-vqa", empty_models)
    (folder / "tokenizer.json").unlink()  # transformers would load a vocabulary of the special tokens only
    assert not checkpoint.is_real("blip-vqa")
    assert "tokenizer.json" in model_dir_error("blip-vqa")


def test_pickled_weights_are_never_taken_for_a_checkpoint(empty_models, monkeypatch):
    monkeypatch.delenv("VLSTEPS_STANDINS", raising=False)
    folder = hand_made("vit", empty_models)
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    message = model_dir_error("vit")
    assert "pytorch_model.bin" in message and "never loaded" in message
    assert "tools/download_models.sh vit" in message


def test_sharded_weights_are_checked_shard_by_shard(empty_models, monkeypatch):
    from safetensors.numpy import load_file, save_file
    monkeypatch.delenv("VLSTEPS_STANDINS", raising=False)
    folder = hand_made("vit", empty_models)
    tensors = load_file(folder / "model.safetensors")
    names = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    for shard, keys in shards.items():
        save_file({k: tensors[k] for k in keys}, folder / shard)
    (folder / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {}, "weight_map": {k: shard for shard, keys in shards.items() for k in keys}}))
    (folder / "model.safetensors").unlink()
    assert checkpoint.is_real("vit")
    truncate(folder / "model-00002-of-00002.safetensors")
    assert "model-00002-of-00002.safetensors" in model_dir_error("vit")


def test_sdxl_needs_every_fp16_component_and_both_tokenizers(empty_models, monkeypatch):
    monkeypatch.delenv("VLSTEPS_STANDINS", raising=False)
    folder = hand_made("sdxl-turbo", empty_models)
    # The Hub's SDXL tokenizers are vocab.json + merges.txt, which transformers turns into the same tokenizer.
    vocab = json.loads((folder / "tokenizer" / "tokenizer.json").read_text())["model"]
    (folder / "tokenizer" / "vocab.json").write_text(json.dumps(vocab["vocab"]))
    (folder / "tokenizer" / "merges.txt").write_text(
        "#version: 0.2\n" + "".join((m if isinstance(m, str) else " ".join(m)) + "\n" for m in vocab["merges"]))
    (folder / "tokenizer" / "tokenizer.json").unlink()
    assert checkpoint.is_real("sdxl-turbo")
    unet = folder / "unet" / "diffusion_pytorch_model.fp16.safetensors"
    truncate(unet)
    assert "unet/diffusion_pytorch_model.fp16.safetensors" in model_dir_error("sdxl-turbo")
    unet.rename(folder / "unet" / "diffusion_pytorch_model.safetensors")  # fp32 only: the notebook loads fp16
    assert "unet/diffusion_pytorch_model.fp16.safetensors" in model_dir_error("sdxl-turbo")
    (folder / "tokenizer_2" / "tokenizer.json").unlink()
    assert "tokenizer_2/" in model_dir_error("sdxl-turbo")


def test_stand_in_is_built_once_marked_and_announced(empty_models, monkeypatch, capsys):
    monkeypatch.setenv("VLSTEPS_STANDINS", "1")
    path = model_dir("vit")
    assert path == empty_models / "_standins" / "vit-base-patch16-224"
    assert is_standin(path) and not checkpoint.is_real("vit")
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
    path = paths.REPO_ROOT / "notebooks" / "vit.ipynb"
    book = nbformat.read(path, as_version=4)
    client = NotebookClient(book, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    with pytest.raises(CellExecutionError, match="tools/download_models.sh vit"):
        client.execute()


def test_registry_entries_are_consistent():
    from tools import notebooks
    folders = [m.folder for m in registry.CARDS.values()]
    assert len(set(folders)) == len(folders), "two keys would share a model folder"
    names = {nb.name for nb in notebooks.NOTEBOOKS}
    for m in registry.CARDS.values():
        assert set(m.notebooks) <= names, f"{m.key} names an unknown notebook"
        weights = [f for f in m.files if "safetensors" in f or f.endswith((".bin", ".pt", ".pth", ".ckpt"))]
        assert weights and all(f.endswith(".safetensors") for f in weights), f"{m.key}: safetensors only"
