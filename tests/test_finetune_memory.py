"""The fine-tuning memory table (vlsteps.finetune.memory): LoRA counted as peft counts it, the methods ordered as
they must be, the T4 verdicts the notebook relies on, and the README showing the generated table."""
import dataclasses
import re

import pytest

from vlsteps import paths, registry, sizes
from vlsteps.finetune import adapters, memory
from tools import readme


def formula_count(model, r: int, qformer: bool = False) -> int:
    """LoRA's parameters without peft: r x (in + out) for every nn.Linear the target regex matches."""
    import torch
    target = re.compile(adapters.target_modules(qformer))
    return sum(r * (m.in_features + m.out_features) for name, m in model.named_modules()
               if isinstance(m, torch.nn.Linear) and target.fullmatch(name))


@pytest.mark.parametrize("key", adapters.KEYS)
def test_lora_parameters_on_the_meta_device_are_r_times_in_plus_out_of_each_target(key):
    a = memory.arch(key)
    assert a.adapters == formula_count(sizes.build(key), memory.RANK) > 0
    assert a.adapter_bytes == 4 * a.adapters   # peft keeps the adapters in float32 over a 16-bit base


def test_the_qformer_adapters_add_their_own_parameters():
    with_qformer = memory.arch("blip2", qformer=True).adapters
    assert with_qformer == formula_count(sizes.build("blip2"), memory.RANK, True) > memory.arch("blip2").adapters


def test_peft_on_a_real_standin_trains_what_the_formula_counts():
    """The formula the meta-device test checks against is what peft trains on real weights."""
    import peft
    from transformers import Blip2ForConditionalGeneration
    from vlsteps.standins import ensure_standin
    model = Blip2ForConditionalGeneration.from_pretrained(ensure_standin(registry.get("blip2"), paths.standins_dir()))
    expected = formula_count(model, 8)
    lora = peft.get_peft_model(model, adapters.lora_config(8))
    assert sum(p.numel() for p in lora.parameters() if p.requires_grad) == expected > 0


@pytest.mark.parametrize("key", adapters.KEYS)
def test_full_fine_tuning_trains_everything_but_the_vision_tower(key):
    model = sizes.build(key)
    tower = model.vision_model if hasattr(model, "vision_model") else model.model.visual
    full = memory.row(key, "full")
    assert full["trainable"] == sizes.param_count(key) - sum(p.numel() for p in tower.parameters())
    assert full["state_gb"] * sizes.GB == memory.FULL_STATE * full["trainable"]


@pytest.mark.parametrize("key", adapters.KEYS)
def test_qlora_needs_less_than_lora_which_needs_less_than_full(key):
    full, lora, qlora = (memory.row(key, m) for m in memory.METHODS)
    assert qlora["weights_gb"] < lora["weights_gb"] and qlora["total_gb"] < lora["total_gb"] < full["total_gb"]
    assert qlora["weights_gb"] * sizes.GB == sizes.weight_bytes(key, "4-bit") + memory.arch(key).adapter_bytes
    assert qlora["trainable"] == lora["trainable"] < full["trainable"] / 100


def test_the_t4_verdicts():
    assert not memory.row("blip2", "full")["fits_t4"]       # 2.8 B trained parameters at 16 bytes each
    assert memory.row("qwen-vl", "QLoRA")["fits_t4"]
    for row in memory.table():
        assert row["fits_t4"] == (row["total_gb"] <= sizes.T4_GB)
        assert row["fits_24gb"] == (row["total_gb"] <= 24)


def test_activations_scale_with_the_batch_and_qwen_pays_for_its_vocabulary():
    a = memory.arch("qwen-vl")
    assert a.image_tokens == (448 // 14) ** 2 // 4 == 256
    four, eight = (memory.activation_bytes(a, "LoRA", batch, 32) for batch in (4, 8))
    assert eight == 2 * four
    logits = memory.LOGIT_BYTES * 4 * (256 + 32) * 151936
    assert logits > four / 2   # the 152k-word logits are most of Qwen's activations
    assert memory.activation_bytes(a, "LoRA", 4, 64) > four


@pytest.mark.parametrize("key, decodes_the_image", [("instructblip", False), ("blip2", True)])
def test_only_a_decoder_only_model_computes_logits_for_the_image_tokens(key, decodes_the_image):
    """32 more image tokens: Flan-T5 reads them in its encoder only; OPT decodes them, a row of logits each."""
    a = memory.arch(key)
    more = dataclasses.replace(a, image_tokens=a.image_tokens + 32)
    grown = memory.activation_bytes(more, "LoRA", 1, 32) - memory.activation_bytes(a, "LoRA", 1, 32)
    assert (grown > memory.LOGIT_BYTES * 32 * a.vocab) == decodes_the_image


def test_unknown_method_or_model_is_one_clear_error():
    with pytest.raises(ValueError, match="choose one of full, LoRA, QLoRA"):
        memory.row("blip2", "adapter")
    with pytest.raises(ValueError, match="choose one of blip2"):
        memory.arch("vit")


def test_the_readme_shows_the_generated_table():
    text = readme.README.read_text(encoding="utf-8")
    block = re.search(r"<!-- finetune:start -->\n(.*?)\n<!-- finetune:end -->", text, re.S)
    assert block and block.group(1) == memory.readme_table()
    assert "| `blip2` | full |" in block.group(1) and "Computed" in block.group(1)


def test_gradient_checkpointing_is_what_lets_qwen_lora_fit_a_t4():
    rows = memory.table()
    assert all(r["unchecked_activations_gb"] > r["activations_gb"] for r in rows)
    qwen = next(r for r in rows if r["model"] == "qwen-vl" and r["method"] == "LoRA")
    assert qwen["fits_t4"]
    assert qwen["total_gb"] - qwen["activations_gb"] + qwen["unchecked_activations_gb"] > 15.0
