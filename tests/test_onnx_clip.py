"""`--runtime onnx`: CLIP's towers on ONNX Runtime give torch's vectors, are exported once per folder and weights (never
half-written, redone when the weights change), and the service's flag, variable, status and messages say so."""
import io
import shutil
import sys

import numpy as np
import pytest
import torch
from conftest import SERVE_SETTINGS, jpeg
from fastapi.testclient import TestClient
from PIL import Image

from vlsteps import onnx_clip, sample_photos
from vlsteps.embed import ClipEmbedder
from vlsteps.onnx_clip import OnnxClipEmbedder
from vlsteps.serve import __main__ as serve_main
from vlsteps.serve import photofield
from vlsteps.serve import threads
from vlsteps.serve.app import create_app, service_status
from vlsteps.serve.settings import Settings

QUERIES = ["a cat", "a cup of coffee", "an astronaut", "a red bus"]


@pytest.fixture(scope="module")
def photos():
    return list(sample_photos().values())


@pytest.fixture(scope="module")
def onnx_embedder(clip_path):
    return OnnxClipEmbedder.from_pretrained(clip_path, batch_size=4, threads=1)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_same_vectors_and_top_results_as_torch(embedder, onnx_embedder, photos):
    theirs, ours = embedder.images(photos), onnx_embedder.images(photos)
    assert ours.dtype == np.float32 and ours.shape == theirs.shape
    assert _cosines(ours, theirs).min() >= 0.9999
    texts = QUERIES + ["a much longer query about a small dog running on the grass in the park"]
    assert _cosines(onnx_embedder.texts(texts), embedder.texts(texts)).min() >= 0.9999
    top = (onnx_embedder.texts(QUERIES) @ ours.T).argmax(1)
    assert np.array_equal(top, (embedder.texts(QUERIES) @ theirs.T).argmax(1))
    assert onnx_embedder.collection_tag == embedder.collection_tag          # one Chroma collection for both
    assert onnx_embedder.logit_scale == pytest.approx(embedder.logit_scale)


def test_photofield_ais_text_tower_takes_77_tokens(embedder, tmp_path):
    """photofield-ai loads a text tower only with the input [batch, 77] (cliponnx/models.py:116 at 379ad6e,
    TextualModel) and pads every text to 77; the service's own export pads to the longest text of a batch."""
    ort = onnx_clip.require()
    for name in ("fixed", "free"):
        (tmp_path / name).mkdir()
    fixed = onnx_clip.export(embedder.model, tmp_path / "fixed", text_length=77)[1]
    free = onnx_clip.export(embedder.model, tmp_path / "free")[1]
    shapes = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).get_inputs()[0].shape
              for p in (fixed, free)]
    assert shapes == [["batch", 77], ["batch", "tokens"]]
    tok = embedder.processor.tokenizer(QUERIES, padding="max_length", max_length=77, return_tensors="np")
    session = ort.InferenceSession(str(fixed), providers=["CPUExecutionProvider"])
    vectors = session.run(None, {"input": tok["input_ids"].astype(np.int64)})[0]
    assert _cosines(vectors, embedder.texts(QUERIES)).min() >= 0.9999


def test_exported_once_and_again_when_the_weights_change(clip_path, tmp_path, photos, monkeypatch):
    monkeypatch.setenv("VLSTEPS_OUTPUTS_DIR", str(tmp_path / "outputs"))
    folder = tmp_path / "clip"
    shutil.copytree(clip_path, folder)
    first = OnnxClipEmbedder.from_pretrained(folder, threads=1)
    exports = list(folder.parent.glob("outputs/onnx/*/*"))
    assert exports == [first.export_dir] and (first.export_dir / "visual.onnx").is_file()
    assert OnnxClipEmbedder.from_pretrained(folder, threads=1).export_dir == first.export_dir     # reused

    torch_model = ClipEmbedder.from_pretrained(folder, device="cpu", dtype=torch.float32).model
    with torch.no_grad():
        torch_model.visual_projection.weight.mul_(-1).add_(0.01)
    torch_model.save_pretrained(folder)
    second = OnnxClipEmbedder.from_pretrained(folder, threads=1)
    retrained = ClipEmbedder.from_pretrained(folder, device="cpu", dtype=torch.float32)
    assert second.export_dir != first.export_dir and not first.export_dir.exists()    # the stale one is gone
    assert _cosines(second.images(photos), retrained.images(photos)).min() >= 0.9999
    assert _cosines(second.images(photos), first.images(photos)).max() < 0.99


def test_a_failed_export_leaves_nothing_to_load(clip_path, tmp_path, monkeypatch):
    monkeypatch.setenv("VLSTEPS_OUTPUTS_DIR", str(tmp_path))
    real_export = onnx_clip.export

    def half_written(model, folder):
        (folder / "visual.onnx").write_bytes(b"half")
        raise RuntimeError("disk full")

    monkeypatch.setattr(onnx_clip, "export", half_written)
    with pytest.raises(RuntimeError, match="disk full"):
        OnnxClipEmbedder.from_pretrained(clip_path, threads=1)
    assert [p for p in tmp_path.glob("onnx/*/*")] == []
    monkeypatch.setattr(onnx_clip, "export", real_export)
    assert OnnxClipEmbedder.from_pretrained(clip_path, threads=1).texts(["a cat"]).shape[0] == 1


def test_threads_follow_the_service(clip_path, monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert OnnxClipEmbedder.from_pretrained(clip_path).threads == 2


def test_the_service_on_onnx_answers_torch_vectors_and_says_so(embedder):
    app = create_app(Settings(**SERVE_SETTINGS, runtime="onnx"))
    with TestClient(app) as client:
        status = client.get("/api/v1/status").json()
        assert status["models"]["clip"]["runtime"] == "onnx" and status["models"]["kosmos-2"]["runtime"] == "torch"
        image = jpeg("coffee")
        answer = client.post("/image-embeddings", files=[("image0", ("0.jpg", image, "image/jpeg"))])
        assert answer.status_code == 200, answer.text
        vector = photofield.decode(answer.json()["images"][0]["embedding_f16_b64"], 0)[0][None]
        assert type(app.state.pool.embedder()) is OnnxClipEmbedder
        assert _cosines(vector, embedder.images([Image.open(io.BytesIO(image))])) >= 0.999    # float16 on the wire
    with TestClient(create_app(Settings(**SERVE_SETTINGS, runtime="torch"))) as client:
        assert client.get("/api/v1/status").json()["models"]["clip"]["runtime"] == "torch"


@pytest.mark.parametrize("cuda,installed,expected", [(False, True, "onnx"), (True, True, "torch"),
                                                     (False, False, "torch")])
def test_auto_runtime_is_onnx_on_a_cpu_and_torch_on_cuda(monkeypatch, cuda, installed, expected):
    """The default: ONNX Runtime where it is the faster path (a CPU, README Serving), torch on a GPU, and torch
    where onnxruntime is missing (said why); the status and the pool follow the choice."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    if not installed:
        monkeypatch.setattr(threads.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(threads, "cores", lambda: 2)
    chosen = threads.choose(0, Settings().runtime)
    assert Settings().runtime == "auto" and chosen["runtime"] == expected
    why = chosen["runtime_chosen_by"]
    assert why.startswith("auto") and ("onnxruntime" in why) != installed
    assert chosen["clip_threads"] == (2 if expected == "onnx" else 1) and chosen["torch_threads"] == 1
    if not cuda:            # the app, on this CPU machine
        app = create_app(Settings(**SERVE_SETTINGS))
        assert app.state.threads == chosen and app.state.pool.settings.runtime == expected
        assert service_status(app)["models"]["clip"]["runtime"] == expected
        if expected == "onnx":
            assert app.state.pool.embedder().threads == 2          # ONNX Runtime on every core, torch on one


def test_runtime_from_the_environment(monkeypatch):
    assert Settings.from_env().runtime == "auto"
    monkeypatch.setenv("VLSTEPS_SERVE_RUNTIME", "onnx")
    assert Settings.from_env().runtime == "onnx"
    monkeypatch.setenv("VLSTEPS_SERVE_RUNTIME", "tensorrt")
    with pytest.raises(ValueError, match="'tensorrt' is not a runtime: use one of auto, torch, onnx"):
        Settings.from_env()


def test_bad_flag_and_missing_onnxruntime_get_one_message(monkeypatch, capsys):
    with pytest.raises(SystemExit):
        serve_main.main(["--runtime", "tensorrt"])
    assert "invalid choice: 'tensorrt' (choose from auto, torch, onnx)" in capsys.readouterr().err.replace(
        "'auto', 'torch', 'onnx'", "auto, torch, onnx")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(SystemExit):
        serve_main.main(["--runtime", "onnx"])
    err = capsys.readouterr().err
    assert "pip install onnxruntime 'onnx<1.23'" in err and "Traceback" not in err
    with pytest.raises(ImportError, match="pip install onnxruntime 'onnx<1.23'"):
        create_app(Settings(runtime="onnx"))
    monkeypatch.delitem(sys.modules, "onnxruntime")
    monkeypatch.setitem(sys.modules, "onnx", None)                  # the export needs it
    with pytest.raises(ImportError, match="pip install onnxruntime 'onnx<1.23'"):
        onnx_clip.require()
