"""vlsteps serve --adapter KEY=PATH: a LoRA adapter saved by peft merged into a served caption model when the service
starts (vlsteps.finetune.merge), the model then answering as the adapted one did before the merge; every folder that
cannot be merged stops the start with one message saying what to do. On the BLIP-2 and Qwen-VL stand-ins."""
import json
import os
import shutil

import pytest
import torch
from conftest import SERVE_SETTINGS, data_url, jpeg
from fastapi.testclient import TestClient

from vlsteps import checkpoint, registry
from vlsteps.finetune.adapters import lora_config
from vlsteps.finetune.merge import AdapterError, merge
from vlsteps.generation import token_budget
from vlsteps.serve import captioners
from vlsteps.serve.__main__ import main
from vlsteps.serve.app import create_app
from vlsteps.serve.settings import Settings

PROMPT = "Question: what colour is the circle? Answer:"


def photo():
    """The photo the service is sent, as it decodes it."""
    from vlsteps.images import load_image
    return load_image(jpeg())


def served_parts(key: str) -> dict:
    """Registry model key's captioner parts as the service loads them, on the CPU in float32."""
    parts = registry.get(key).serve(checkpoint.model_dir(key, banner=False), torch.float32, torch.device("cpu"))
    parts.pop("image_processor", None)
    return parts


def logits(model, inputs: dict) -> torch.Tensor:
    with torch.inference_mode():
        return model(**inputs).logits.float()


def adapt(key: str, folder):
    """A LoRA adapter (r=4) on key's stand-in with random, non-zero lora_B (a fresh one changes nothing), saved to
    `folder` as peft saves it: (the adapted model, unmerged, and the parts it was served with)."""
    from peft import get_peft_model
    parts = served_parts(key)
    model = get_peft_model(parts["model"], lora_config(r=4))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    model.eval().save_pretrained(folder)
    return model, parts


@pytest.fixture(scope="module")
def adapted(tmp_path_factory):
    """BLIP-2's adapter: (its folder, the adapted model's logits and caption before any merge, their inputs)."""
    folder = tmp_path_factory.mktemp("adapter") / "blip2-shapes"
    model, parts = adapt("blip2", folder)
    inputs = parts["prepare"](photo(), PROMPT)
    budget = token_budget(checkpoint.model_dir("blip2", banner=False), SERVE_SETTINGS["max_new_tokens"])
    caption = captioners.Captioner(**{**parts, "model": model}, max_new_tokens=budget).caption([(photo(), PROMPT)])
    return folder, logits(model, inputs), caption[0][0], inputs


@pytest.fixture(scope="module")
def client(adapted):
    with TestClient(create_app(Settings(**SERVE_SETTINGS, adapters={"blip2": str(adapted[0])}))) as c:
        yield c


def caption(client, name: str) -> str:
    request = {"model": name, "images": [data_url(jpeg())], "prompt": PROMPT}
    r = client.post(f"/api/v1/vision/caption/{name}", json=request)
    assert r.status_code == 200, r.text
    return r.json()["result"]["caption"]["text"]


def test_served_model_answers_as_the_adapted_one(client, adapted):
    """Merged: the served model's logits are the adapted model's (float rounding apart), not the base's, and so is
    its caption through the API."""
    folder, want, want_caption, inputs = adapted
    served = client.app.state.pool.captioner("blip2")
    got = logits(served.model, inputs)
    base = logits(captioners.load("blip2", checkpoint.model_dir("blip2", banner=False)).model, inputs)
    assert not any("lora" in name for name, _ in served.model.named_modules()), "merged: no LoRA layer left"
    assert torch.allclose(got, want, atol=1e-4), float((got - want).abs().max())
    assert (base - want).abs().max() > 0.1, "the adapter changed nothing: the test could not fail"
    assert caption(client, "blip2") == want_caption
    base_client = TestClient(create_app(Settings(**SERVE_SETTINGS)))
    assert caption(base_client, "blip2") != want_caption


def test_qwen_merged_answers_as_the_adapted_one(tmp_path):
    """The same merge on Qwen2.5-VL (its language model's q/k/v/o_proj), called as the notebook calls it."""
    model, parts = adapt("qwen-vl", tmp_path / "qwen-shapes")
    inputs = parts["prepare"](photo(), "What colour is the circle?")
    want, base = logits(model, inputs), logits(served_parts("qwen-vl")["model"], inputs)
    got = logits(merge(served_parts("qwen-vl")["model"], tmp_path / "qwen-shapes", "qwen-vl"), inputs)
    assert torch.allclose(got, want, atol=1e-4), float((got - want).abs().max())
    assert (base - want).abs().max() > 0.1, "the adapter changed nothing: the test could not fail"


def test_status_names_the_adapter(client, adapted):
    models = client.get("/api/v1/status").json()["models"]
    assert models["blip2"]["adapter"] == adapted[0].name and models["blip2"]["loaded"]
    assert models["qwen-vl"]["adapter"] is None and models["clip"]["adapter"] is None


def copy(adapted, tmp_path, config=None, drop=None, add=None):
    """A copy of the adapter folder with its config changed, a file dropped, or one added."""
    folder = tmp_path / "adapter"
    shutil.copytree(adapted[0], folder)
    if config:
        path = folder / "adapter_config.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), **config}))
    if drop:
        (folder / drop).unlink()
    if add:
        (folder / add).write_bytes(b"\x80\x04pickle")
    return folder


def refused(key: str, path) -> str:
    with pytest.raises(AdapterError) as e:
        create_app(Settings(**SERVE_SETTINGS, adapters={key: str(path)}))
    return str(e.value)


QWEN = registry.get("qwen-vl")


@pytest.mark.parametrize("case,key,expected", [
    ("missing", "blip2", "does not exist: give the folder the adapter was saved to"),
    ("file", "blip2", "is not a folder"),
    ("no config", "blip2", "holds no adapter_config.json, so it is no peft adapter folder"),
    ("pickle", "blip2", "holds its weights as a pickle (adapter_model.bin), which is never loaded here"),
    ("no weights", "blip2", "holds no adapter_model.safetensors: save the adapter again"),
    ("not lora", "blip2", "is no LoRA adapter (peft_type 'IA3'), and only LoRA adapters merge"),
    ("bad json", "blip2", "adapter_config.json is not readable JSON"),
    ("other base", "qwen-vl", "was trained on "),
    ("other modules", "qwen-vl", "of its weights name no module of this model"),
    ("no module matches", "blip2", "does not fit 'blip2'"),
    ("other shapes", "blip2", "size mismatch for base_model.model.language_model"),
    ("not served", "instructblip", "'instructblip' is not a served caption model; adapters merge into kosmos-2"),
    ("not served", "clip", "'clip' is not a served caption model"),
])
def test_bad_adapter_stops_the_start_with_one_message(adapted, tmp_path, case, key, expected):
    path = {"missing": lambda: tmp_path / "nowhere",
            "file": lambda: adapted[0] / "adapter_config.json",
            "no config": lambda: copy(adapted, tmp_path, drop="adapter_config.json"),
            "pickle": lambda: copy(adapted, tmp_path, drop="adapter_model.safetensors", add="adapter_model.bin"),
            "no weights": lambda: copy(adapted, tmp_path, drop="adapter_model.safetensors"),
            "not lora": lambda: copy(adapted, tmp_path, config={"peft_type": "IA3"}),
            "bad json": lambda: copy(adapted, tmp_path, add="adapter_config.json"),
            "other base": lambda: adapted[0],
            # relabelled for Qwen: its language model's q/k/v/o get LoRA layers, but the weights name BLIP-2's OPT
            "other modules": lambda: copy(adapted, tmp_path, config={"base_model_name_or_path": QWEN.repo_id}),
            "no module matches": lambda: copy(adapted, tmp_path, config={"target_modules": r".*no_such_module"}),
            "other shapes": lambda: copy(adapted, tmp_path, config={"r": 8}),     # the weights are r=4
            "not served": lambda: adapted[0]}[case]()
    message = refused(key, path)
    assert expected in message and "\n" not in message and "Traceback" not in message, message
    assert len(message) < 600, message
    if case in ("no module matches", "other shapes"):
        assert "train one on 'blip2'" in message, message


def test_flag_and_environment_parse(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("VLSTEPS_SERVE_ADAPTERS", f"blip2={tmp_path / 'a'}{os.pathsep} qwen-vl = {tmp_path / 'b'} ")
    assert Settings.from_env().adapters == {"blip2": str(tmp_path / "a"), "qwen-vl": str(tmp_path / "b")}
    assert Settings().adapters == {}
    monkeypatch.setenv("VLSTEPS_SERVE_ADAPTERS", "blip2")
    with pytest.raises(ValueError, match="VLSTEPS_SERVE_ADAPTERS: adapter 'blip2' is not KEY=PATH"):
        Settings.from_env()
    monkeypatch.delenv("VLSTEPS_SERVE_ADAPTERS")
    for argv, said in [(["--adapter", "blip2"], "adapter 'blip2' is not KEY=PATH"),
                       (["--adapter", "=x"], "is not KEY=PATH"),
                       # parsed, repeatable, and reaching the start: the folder is checked before anything serves
                       (["--adapter", f"blip2={tmp_path}/a", "--adapter", f"vit-gpt2={tmp_path}/b"],
                        f"The adapter for 'blip2' at {tmp_path}/a does not exist")]:
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2
        assert said in capsys.readouterr().err
