"""Training the captioner for real: a short run on shape scenes beats the image-blind baseline by far on held-out
images; the run folder holds every artefact; resume continues exactly where a run stopped; the trained model
captions photo folders, uploads and the demo box."""
import io
import json
import os
import re

import pytest
import torch
from PIL import Image

from vlsteps import model_dir, world
from vlsteps.captioner import data, metrics, predict, runs
from vlsteps.captioner.train import Config, format_results, main, train
from vlsteps.images import ImageLoadError
from vlsteps.standins import is_learned
from vlsteps.standins.wording import TRAINED_HERE

# A shortened version of the notebook's run (~30-60 s on 2 CPU cores).
SHORT = dict(n_train=1500, epochs=4, embed_dim=64, ff_dim=128, batch_size=32, seq_length=16, threads=1,
             samples=4, log_every=5)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("runs") / "shapes"
    train(Config(artifact_dir=str(folder), **SHORT), echo=lambda *_: None)
    return runs.Run(folder)


def test_a_short_training_beats_the_image_blind_baseline_by_far_on_held_out_images(trained):
    results = trained.results()
    for split in ("test", "compositional"):
        model, blind = results[split]["beam 3"], results[split]["image-blind baseline"]
        assert model["BLEU-4"] > blind["BLEU-4"] + 0.2, (split, model, blind)
        assert model["CIDEr"] > blind["CIDEr"] + 1.0, (split, model, blind)
        assert model["colour acc"] > blind["colour acc"] + 0.3, (split, model, blind)
    test, blind = results["test"]["greedy"], results["test"]["image-blind baseline"]
    assert test["exact match"] > blind["exact match"] + 0.15, (test, blind)
    assert results["baseline caption"] == metrics.blind_baseline(data.shapes_splits(SHORT["n_train"])["train"])
    assert "image-blind baseline" in format_results(results)


def test_the_run_folder_holds_every_artefact(trained):
    for name in runs.FILES:
        assert trained.path(name).is_file(), name
    config = trained.config()
    assert config["embed_dim"] == SHORT["embed_dim"] and config["lr"] == 0.001 and config["enc_heads"] == 2
    steps = [r for r in trained.metrics() if "loss" in r]
    epochs = [r for r in trained.metrics() if "val_acc" in r]
    assert len(epochs) == SHORT["epochs"] and [r["step"] for r in steps] == sorted(r["step"] for r in steps)
    assert steps[-1]["loss"] < steps[0]["loss"] and all(r["samples_per_s"] > 0 for r in steps)
    for epoch in range(1, SHORT["epochs"] + 1):
        shown = json.loads((trained.samples / f"epoch_{epoch:03d}.json").read_text())
        assert len(shown) == SHORT["samples"] and all(s["references"] for s in shown)
        assert Image.open(trained.samples / f"epoch_{epoch:03d}.png").size[0] > 200
    best = max(epochs, key=lambda r: r["val_acc"])
    assert trained.results()["best val acc"] == best["val_acc"]
    assert not list(trained.folder.glob("*.tmp*"))


def test_a_checkpoint_write_that_fails_leaves_the_old_checkpoint_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "last.safetensors"
    runs.save_checkpoint(path, {"w": torch.zeros(2)}, {"step": 1})

    def disk_full(*_):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(OSError, match="No space left"):
        runs.save_checkpoint(path, {"w": torch.ones(2)}, {"step": 2})
    assert [p.name for p in tmp_path.iterdir()] == ["last.safetensors"]
    assert runs.read_progress(path) == {"step": 1}


def test_a_finished_run_is_not_trained_again_and_a_different_one_is_refused(trained):
    said = []
    before = trained.path("last.safetensors").read_bytes()
    train(Config(artifact_dir=str(trained.folder), resume=True, **SHORT), echo=said.append)
    assert "nothing to train" in said[0] and trained.path("last.safetensors").read_bytes() == before
    with pytest.raises(FileExistsError, match="--resume"):
        train(Config(artifact_dir=str(trained.folder), **SHORT))
    with pytest.raises(ValueError, match="embed_dim: 64 there, 32 now"):
        train(Config(artifact_dir=str(trained.folder), resume=True, **{**SHORT, "embed_dim": 32}))


TINY = dict(n_train=120, epochs=2, embed_dim=32, ff_dim=64, batch_size=16, seq_length=16, threads=1, samples=2,
            log_every=2)


def test_resume_continues_from_the_same_step_with_the_same_state(tmp_path):
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    steps_per_epoch = -(-sum(len(s.captions) for s in data.shapes_splits(120)["train"].sources) // 16)
    stop = steps_per_epoch + 3                                    # in the middle of the second epoch
    train(Config(artifact_dir=str(straight), max_steps=stop + 4, **TINY), echo=lambda *_: None)
    said = []
    train(Config(artifact_dir=str(stopped), max_steps=stop, **TINY), echo=said.append)
    assert f"stopped at step {stop}" in said[-1]
    train(Config(artifact_dir=str(stopped), max_steps=stop + 4, resume=True, **TINY), echo=said.append)
    assert f"resuming {stopped} at step {stop} (epoch 2)" in said
    a, progress_a = runs.load_checkpoint(straight / "last.safetensors")
    b, progress_b = runs.load_checkpoint(stopped / "last.safetensors")
    assert progress_a == {**progress_b, "train_seconds": progress_a["train_seconds"]}
    assert progress_b["step"] == stop + 4 and a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ from an uninterrupted run's"
    from safetensors import safe_open
    with safe_open(str(straight / "last.safetensors"), "pt") as fa, safe_open(str(stopped / "last.safetensors"),
                                                                                "pt") as fb:
        moments = [k for k in fa.keys() if k.startswith("optimizer.")]
        assert moments and all(torch.equal(fa.get_tensor(k), fb.get_tensor(k)) for k in moments)
    strip = lambda rs: [{k: v for k, v in r.items() if k != "samples_per_s"} for r in rs]   # noqa: E731
    assert strip(runs.Run(stopped).metrics()) == strip(runs.Run(straight).metrics())


def test_a_photo_folder_trains_with_a_vocabulary_from_its_training_images_only(tmp_path, capsys):
    from test_captioner_data import make_folder
    captions = make_folder(tmp_path / "photos", n=12)
    splits = data.folder_splits(tmp_path / "photos", seed=0)
    zebra_split = next(k for k, s in splits.items() for p in s.sources if p.name == "000.jpg")
    folder = tmp_path / "run"
    main(["--data", str(tmp_path / "photos"), "--encoder", "cnn", "--artifact_dir", str(folder), "--epochs", "1",
          "--embed_dim", "32", "--ff_dim", "64", "--batch_size", "8", "--threads", "1", "--samples", "2"])
    words = data.Vocabulary.from_json((folder / "vocab.json").read_text()).words
    assert ("zebra" in words) == (zebra_split == "train")
    assert set(words[4:]) == {w for caps in splits["train"].captions for c in caps for w in data.tokenize(c)}
    assert f"test: {len(splits['test'])} held-out images" in capsys.readouterr().out
    assert "compositional" not in runs.Run(folder).results()        # only shape scenes have that split
    assert sum(len(s) for s in splits.values()) == len(captions)


def test_uploads_are_captioned_from_memory_and_bad_ones_refused(trained, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    scene = world.scenes(1, 5, "test")[0]
    buf = io.BytesIO()
    world.draw(scene, 64).save(buf, format="PNG")
    caption = predict.caption_bytes(trained.folder, buf.getvalue())
    assert world.parse(caption) is not None, caption                 # a sentence of the grammar it learned
    assert caption == predict.caption_image(predict.load(trained.folder), world.draw(scene, 64))
    assert list(tmp_path.iterdir()) == []                             # nothing written for the upload
    with pytest.raises(ImageLoadError, match="not a readable image"):
        predict.caption_bytes(trained.folder, b"%PDF-1.4 not an image")
    with pytest.raises(FileNotFoundError, match="train first"):
        predict.caption_bytes(tmp_path, buf.getvalue())


def test_the_demo_box_captions_a_scene_and_a_photo_and_reports_errors(trained):
    from vlsteps.captioner.widget import SCENE, CaptionWidget
    shown = []
    box = CaptionWidget({"short": trained.folder}, photos={"grey": Image.new("RGB", (80, 60), "grey")},
                        render=lambda image, text: shown.append((image.size, text)))
    box.image.value, box.scene_seed.value, box.decoding.value = SCENE, 3, "greedy"
    text = box.caption()
    assert world.parse(text) is not None and "drawn as:" in box.status.value and shown[-1] == ((128, 128), text)
    box.image.value = "grey"
    assert box.caption() is not None and shown[-1][0] == (80, 60)
    trained_last = box.checkpoints["short (last)"]
    box.checkpoints["short (last)"] = trained_last.replace("last", "missing")
    box.checkpoint.value = "short (last)"
    assert box.caption() is None and "FileNotFoundError" in box.status.value
    box.checkpoints["short (last)"] = trained_last


def test_the_document_encoder_and_the_collection_towers_plug_in(tmp_path):
    from vlsteps.captioner.model import Captioner, imagenet_weights_file
    net = Captioner(10, "efficientnet_b1", seq_length=8, embed_dim=32, ff_dim=32)
    assert net.image_size == 240 and net.encode(torch.zeros(1, 3, 240, 240, dtype=torch.uint8)).shape == (1, 64, 32)
    if not imagenet_weights_file().is_file():
        assert "RANDOM" in net.features.note and not net.features.frozen
    clip = Captioner(10, "clip", seq_length=8, embed_dim=32, ff_dim=32)
    size = clip.image_size
    memory = clip.encode(torch.zeros(2, 3, size, size, dtype=torch.uint8))
    assert memory.shape[0] == 2 and memory.shape[2] == 32
    assert clip.features.frozen and not any(p.requires_grad for p in clip.features.parameters())
    assert not any(k.startswith("features.") for k in clip.saved_state())      # the tower reloads from its folder
    vit = Captioner(10, "vit", seq_length=8, embed_dim=32, ff_dim=32)
    assert (TRAINED_HERE in vit.features.note) == is_learned(model_dir("vit", banner=False)), vit.features.note


def test_the_service_captions_an_upload_with_the_trained_run_and_never_writes_it(trained, tmp_path, monkeypatch):
    """The document's `POST /caption` (multipart file), served from the run folder; a file name that is a path
    is never used as one, and a missing run or a non-image gets one clear 4xx/503 message."""
    from fastapi.testclient import TestClient

    from vlsteps.serve.app import create_app
    from vlsteps.serve.settings import Settings
    monkeypatch.chdir(tmp_path)
    scene = world.scenes(1, 7, "test")[0]
    buf = io.BytesIO()
    world.draw(scene, 64).save(buf, format="PNG")
    with TestClient(create_app(Settings(captioner_run=str(trained.folder)))) as client:
        answer = client.post("/caption", files={"file": ("../../escape/cat.png", buf.getvalue(), "image/png")})
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"caption": predict.caption_bytes(trained.folder, buf.getvalue()),
                                 "checkpoint": f"{trained.folder.name}/best.safetensors"}
        refused = client.post("/caption", files={"file": ("notes.pdf", b"%PDF-1.4", "application/pdf")})
        assert refused.status_code == 422 and "not a readable image" in refused.json()["error"]
    assert list(tmp_path.iterdir()) == [] and not (tmp_path.parent.parent / "escape").exists()
    with TestClient(create_app(Settings(captioner_run=str(tmp_path / "none")))) as client:
        missing = client.post("/caption", files={"file": ("cat.png", buf.getvalue(), "image/png")})
    assert missing.status_code == 503 and "make train-captioner" in missing.json()["error"]


def test_the_results_table_keeps_every_header_apart_and_above_its_numbers():
    scores = {"BLEU-4": 0.5, "exact match": 0.25, "shape acc": 0.75, "relation acc": 1.0}
    part = {"images": 300, "greedy": scores, "beam 3": scores, "image-blind baseline": scores, "examples": []}
    results = {"baseline caption": "a red circle", "test": part, "compositional": part, "steps": 3,
               "train seconds": 1.0, "train samples/s": 2.0, "device": "cpu"}
    lines = format_results(results).splitlines()
    headers = [i for i, line in enumerate(lines) if line.rstrip().endswith("image-blind baseline")]
    assert len(headers) == 2
    for i in headers:
        names = [(m.group(), m.end()) for m in re.finditer(r"\S+(?: \S+)*", lines[i])]
        assert [n for n, _ in names] == ["greedy", "beam 3", "image-blind baseline"], lines[i]
        for row, score in zip(lines[i + 1:], scores):
            assert row.startswith(score + " ")
            numbers = [m.end() for m in re.finditer(r"\d\.\d{3}", row)]
            assert numbers == [end for _, end in names], (lines[i], row)
