"""model_summary: the loaded model's facts beside the real checkpoint's, each column labelled for what it is."""
import pytest
import torch
import transformers as tf

from vlsteps import model_summary, registry, sizes
from vlsteps.cards.card import Shape
from vlsteps.standins import build

H, LAYERS, FF, IMAGE, PATCH, LABELS = 8, 1, 16, 32, 16, 3


def tiny_vit():
    torch.manual_seed(0)
    config = tf.ViTConfig(hidden_size=H, num_hidden_layers=LAYERS, num_attention_heads=2, intermediate_size=FF,
                          image_size=IMAGE, patch_size=PATCH, num_labels=LABELS)
    return tf.ViTForImageClassification(config).eval()


def tiny_vit_params() -> int:
    """Counted by hand: patch conv, [CLS], positions, per layer (2 norms, q/k/v/out, MLP), final norm, head."""
    tokens = (IMAGE // PATCH) ** 2 + 1
    embeddings = 3 * PATCH * PATCH * H + H + H + tokens * H
    layer = 2 * 2 * H + 4 * (H * H + H) + (H * FF + FF) + (FF * H + H)
    return embeddings + LAYERS * layer + 2 * H + (H * LABELS + LABELS)


def test_loaded_facts_count_a_small_model_by_hand_and_measure_its_bytes_as_loaded():
    model = tiny_vit()
    facts = model_summary.loaded_facts(model, "vit")
    assert facts["parameters"] == tiny_vit_params()
    assert facts["encoder"] == Shape(LAYERS, H)
    assert facts["image tokens (patches + [CLS])"] == (IMAGE // PATCH) ** 2 + 1
    assert facts["classes"] == LABELS
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    assert facts["weights as loaded (float32; measured)"] == 4 * tiny_vit_params() + buffers
    half = model_summary.loaded_facts(model.half(), "vit")
    assert half["weights as loaded (float16; measured)"] == 2 * tiny_vit_params() + buffers


def test_real_column_is_the_architectures_computed_sizes():
    real = model_summary.real_facts("vit")
    assert real["parameters"] == sizes.param_count("vit")
    assert real["weights in float32"] == sizes.weight_bytes("vit", "float32")
    assert real["weights in float16/bfloat16"] == sizes.weight_bytes("vit", "bfloat16")
    assert real["weights in 4-bit"] == sizes.weight_bytes("vit", "4-bit")
    assert real["encoder"] == Shape(12, 768)                       # ViT-B
    assert real["image tokens (patches + [CLS])"] == 197 and real["classes"] == 1000


def test_blip2_real_trained_share_counts_the_q_former_queries_and_projection():
    real = model_summary.real_facts("blip2")
    trained, total = real["trained: Q-Former, queries, projection"]
    meta = sizes.build("blip2")
    by_name = sum(p.numel() for name, p in meta.named_parameters()
                  if name.split(".")[0] in model_summary.BLIP2_TRAINED)
    assert (trained, total) == (by_name, sizes.param_count("blip2"))
    assert 0.01 < trained / total < 0.05          # "only a few percent of the parameters are trained"
    assert str(real["language model (opt)"]) == "32 layers x 2,560" and real["query tokens"] == 32


def test_table_labels_a_stand_in_and_a_real_checkpoint_for_what_they_are(tmp_path):
    standin = tf.ViTForImageClassification.from_pretrained(build(registry.get("vit"), tmp_path / "standins"))
    text = str(model_summary.summary(standin, "vit"))
    assert "vit = google/vit-base-patch16-224;" in text and "real (computed)" in text and "loaded: stand-in" in text
    assert max(len(line) for line in text.splitlines()) <= 100, "fits a notebook's output without wrapping"
    assert "Stand-in: trained on shapes, the real classes" in text, "the vit stand-in learned the world"
    loaded = model_summary.loaded_facts(standin, "vit")["parameters"]
    assert f"{sizes.param_count('vit'):,}" in text and f"{loaded:,}" in text
    tiny_vit().save_pretrained(tmp_path / "checkpoint")
    real = tf.ViTForImageClassification.from_pretrained(tmp_path / "checkpoint")
    text = str(model_summary.summary(real, "vit"))
    assert text.splitlines()[1].split()[-1] == "loaded" and "stand-in" not in text, "the loaded column's header"


def test_a_pipeline_is_summed_over_its_components(tmp_path):
    from diffusers import AutoPipelineForText2Image
    pipe = AutoPipelineForText2Image.from_pretrained(build(registry.get("sdxl-turbo"), tmp_path), variant="fp16",
                                                     dtype=torch.float32)
    s = model_summary.summary(pipe, "sdxl-turbo")
    parts = [pipe.unet, pipe.vae, pipe.text_encoder, pipe.text_encoder_2]
    assert s.loaded["parameters"] == sum(p.numel() for m in parts for p in m.parameters())
    assert s.real["parameters"] == sum(s.real[f"  of which {c}"] for c in sizes.module_components("sdxl-turbo"))
    assert s.standin and s.learned and "Stand-in: trained on shapes" in str(s)


def test_a_stand_in_without_its_learned_weights_says_it_is_random(tmp_path):
    folder = build(registry.get("vit"), tmp_path, trained=False)
    s = model_summary.summary(tf.ViTForImageClassification.from_pretrained(folder), "vit")
    assert s.standin and not s.learned and "Stand-in: tiny and random" in str(s)


def test_an_unknown_key_names_the_known_ones():
    with pytest.raises(KeyError, match="Known keys: .*vit"):
        model_summary.summary(tiny_vit(), "nope")


def test_a_quantized_model_says_its_count_is_of_stored_values():
    # bitsandbytes packs two 4-bit weights per stored value: numel() then counts storage, not parameters.
    model = tiny_vit()
    model.hf_quantizer = object()        # what from_pretrained(quantization_config=...) sets
    facts = model_summary.loaded_facts(model, "vit")
    assert facts["parameters"] == f"{tiny_vit_params():,} stored (quantized)"
