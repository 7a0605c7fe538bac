"""The real architectures kept as data: every registry entry has one, and built on the meta device (no memory)
each has the parameter count its authors or the Hub publish."""
import json

import pytest
import torch

from vlsteps import architectures, registry, sizes

# Published parameter counts, each with its source. Tolerance: 2 %.
PUBLISHED = {
    "vit": 86e6,            # ViT paper (Dosovitskiy et al. 2020), Table 1: ViT-Base 86 M
    "clip": 428e6,          # OpenCLIP's pretrained-model table, ViT-L-14 (OpenAI weights): 427.6 M
    "vilt": 117.5e6,        # Hub: 0.47 GB of float32 safetensors (refs/pr/9) = 117.5 M
    # BLIP's decoders: the Hub's float32 files (1.88 GB, 1.54 GB) store the LM head as a second copy of the
    # 30,524 x 768 word embeddings (23.4 M), which from_pretrained ties: 470 M - 23.4 M, 385 M - 23.4 M.
    "blip-caption": 446.6e6,
    "blip-vqa": 361.6e6,
    "blip-itm": 450e6,      # Hub: 1.8 GB of float32 safetensors (no decoder) = 450 M
    "vit-gpt2": 239e6,      # Hub: 0.98 GB of float32, less GPT-2's 24 stored 1024² one-byte causal masks (25 MB), / 4
    "kosmos-2": 1.675e9,    # Hub: 6.7 GB of float32 safetensors = 1.675 B (the paper rounds to 1.6 B)
    "blip2": 3.8e9,         # BLIP-2 paper (Li et al. 2023), Table 2: ViT-g OPT-2.7B, 3.8 B total
    "instructblip": 4.0e9,  # Hub: 16.0 GB of float32 safetensors = 4.0 B
    "instructblip-vicuna": 7.95e9,  # Hub: 31.8 GB of float32 safetensors = 7.95 B
    "qwen-vl": 3.75e9,      # Qwen2.5-VL-3B-Instruct on the Hub: 3.75 B
    "sdxl-turbo": 3.5e9,    # SDXL paper (Podell et al. 2023): a 3.5 B base model (2.6 B UNet + 817 M text encoders)
}
SDXL_COMPONENTS = {
    "unet": 2.6e9,                             # SDXL paper: 2.6 B UNet
    "text_encoder": 123e6,                     # CLIP ViT-L/14's text tower (OpenCLIP's table: 123.7 M)
    "text_encoder_2": 694e6,                   # SDXL paper: 817 M for both text encoders, so 817 - 123 M
    "vae": 83.7e6,                             # the Stable Diffusion autoencoder (KL-f8): 83.7 M
}


def test_every_registry_entry_has_its_architecture():
    assert set(PUBLISHED) == set(registry.CARDS)
    for key in registry.CARDS:
        assert isinstance(architectures.config(key), dict) and architectures.processor(key)


@pytest.mark.parametrize("key", list(registry.CARDS))
def test_parameter_count_on_the_meta_device_matches_the_published_one(key):
    count = sizes.param_count(key)
    assert abs(count - PUBLISHED[key]) / PUBLISHED[key] < 0.02, f"{key}: {count:,} vs published {PUBLISHED[key]:,.0f}"


@pytest.mark.parametrize("component", list(SDXL_COMPONENTS))
def test_sdxl_components_match_the_paper(component):
    count = sizes.component_param_counts("sdxl-turbo")[component]
    assert abs(count - SDXL_COMPONENTS[component]) / SDXL_COMPONENTS[component] < 0.02, f"{component}: {count:,}"


def test_meta_build_holds_no_memory_and_ties_what_from_pretrained_ties():
    model = sizes.build("qwen-vl")
    assert {p.device.type for p in model.parameters()} == {"meta"}
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight   # tie_word_embeddings
    t5 = sizes.build("instructblip")   # Flan-T5 keeps its own output head (saved with tie_word_embeddings false)
    assert t5.get_output_embeddings().weight is not t5.get_input_embeddings().weight


def test_a_pipeline_is_its_components():
    config = architectures.config("sdxl-turbo")
    assert set(config) == {"unet", "vae", "text_encoder", "text_encoder_2", "scheduler"}
    assert config["unet"]["cross_attention_dim"] == (config["text_encoder"]["hidden_size"]
                                                     + config["text_encoder_2"]["hidden_size"])
    assert sizes.param_count("sdxl-turbo") == sum(sizes.component_param_counts("sdxl-turbo").values())
    with pytest.raises(ValueError, match="pipeline"):
        sizes.build("sdxl-turbo")


def _vision(config):
    return config.get("vision_config") or config.get("encoder") or config


@pytest.mark.parametrize("key", [k for k in registry.CARDS if "patch_size" in architectures.processor(k)])
def test_processor_facts_agree_with_the_model_config(key):
    config, proc = architectures.config(key), architectures.processor(key)
    assert proc["patch_size"] == _vision(config)["patch_size"]
    if "image_size" in proc:
        assert proc["image_size"] == _vision(config)["image_size"]
    if "num_query_tokens" in proc:
        assert proc["num_query_tokens"] == config["num_query_tokens"]
    text = config.get("text_config") or config.get("decoder") or config
    if "vocab_size" in proc and "vocab_size" in text:
        assert proc["vocab_size"] == text["vocab_size"]
    for name in ("image_mean", "image_std"):
        assert len(proc[name]) == 3 and all(0 < v < 1 for v in proc[name])


def test_the_interface_sizes_the_notebooks_quote():
    assert architectures.config("clip")["projection_dim"] == 768
    assert architectures.config("vilt")["num_labels"] == 3129
    assert architectures.config("vit")["num_labels"] == 1000
    assert architectures.processor("qwen-vl")["min_pixels"] == 56 * 56
    assert architectures.processor("qwen-vl")["max_pixels"] == 16384 * 28 * 28


def test_unknown_key_names_the_known_ones():
    with pytest.raises(KeyError, match="Known: .*vit"):
        architectures.config("no-such-model")


def test_unconfirmed_values_are_said_and_comments_never_reach_the_config():
    assert architectures.comments("sdxl-turbo")   # e.g. the Turbo UNet's sample_size
    for key in registry.CARDS:
        assert "_comment" not in json.dumps(architectures.config(key))
        assert "_comment" not in json.dumps(architectures.processor(key))


def test_weights_of_the_built_model_are_the_counted_ones():
    model = sizes.build("vit", device="meta", dtype=torch.float16)
    assert sum(p.numel() * p.element_size() for p in model.parameters()) == sizes.weight_bytes("vit", "float16")


@pytest.mark.parametrize("key, published", [("blip2", 107e6),         # BLIP-2 paper, Table 2: 107 M trainable
                                            ("instructblip", 188e6)])  # InstructBLIP paper: 188 M trainable
def test_the_trained_share_is_the_published_one(key, published):
    model = sizes.build(key)
    trained = sum(p.numel() for name, p in model.named_parameters()
                  if name.startswith(("qformer.", "query_tokens", "language_projection.")))
    assert abs(trained - published) / published < 0.02
