"""Qwen2.5-VL: Qwen/Qwen2.5-VL-3B-Instruct, a chat model that sees (notebooks/qwen_vl.ipynb; served).

Its stand-in has the real classes, chat template, special tokens and image processor.

What the notebook teaches depends on the image processor (14 px patches merged 2x2, and the real
min_pixels/max_pixels defaults decide the number of visual tokens), so those are the real values;
only the transformer sizes are tiny. The vision tower keeps the real layout in miniature: windowed
attention blocks with one full-attention block, 112 px windows, and an M-RoPE split of the text
head_dim like the real [16, 24, 24] of 128 (here [2, 3, 3] of 16).
"""
from __future__ import annotations

import json
from pathlib import Path

from .. import architectures
from .card import VISION_TEXT, Card, Shape, Workload, generate, random_ids, random_pixels
from .common import harden_lm_head, seeded

SERVE_PROMPT = "Describe this image in one sentence."   # a served caption request without a prompt
SERVE_IMAGE_SIZE = {"shortest_edge": 56 * 56, "longest_edge": 256 * 28 * 28}   # at most 256 visual tokens

# The real checkpoint's chat template (Qwen2.5-VL ships the same one as Qwen2-VL).
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}"
    "<|im_end|>\n{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: "
    "{% endif %}<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video {{ video_count.value }}: "
    "{% endif %}<|vision_start|><|video_pad|><|vision_end|>{% elif 'text' in content %}{{ content['text'] }}"
    "{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% endif %}"
)

# The real preprocessor_config.json: 14 px patches, 2x2 merge, 2 frames per temporal patch, CLIP mean/std,
# and min/max pixels 56*56 .. 28*28*16384 (so visual tokens range from 4 to 16384 per image).
MIN_PIXELS = 56 * 56
MAX_PIXELS = 28 * 28 * 16384
PREPROCESSOR_CONFIG = {
    "min_pixels": MIN_PIXELS, "max_pixels": MAX_PIXELS, "patch_size": 14, "temporal_patch_size": 2, "merge_size": 2,
    "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
    "image_processor_type": "Qwen2VLImageProcessor", "processor_class": "Qwen2_5_VLProcessor"}


def build(spec, out):
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    from .tiny_tokenizers import qwen_tokenizer
    tok = qwen_tokenizer()
    ids = {t: tok.convert_tokens_to_ids(t) for t in ("<|endoftext|>", "<|im_end|>", "<|image_pad|>",
                                                     "<|video_pad|>", "<|vision_start|>", "<|vision_end|>")}
    text = dict(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32768, rms_norm_eps=1e-6,
                rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [2, 3, 3]},
                bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"], pad_token_id=None)
    vision = dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=4, out_hidden_size=64,
                  fullatt_block_indexes=[1], window_size=112, patch_size=14, spatial_merge_size=2,
                  temporal_patch_size=2, tokens_per_second=2, hidden_act="silu")
    config = Qwen2_5_VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=True,
                              image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
                              vision_start_token_id=ids["<|vision_start|>"],
                              vision_end_token_id=ids["<|vision_end|>"])
    seeded()
    model = Qwen2_5_VLForConditionalGeneration(config).eval()
    # As the real generation_config.json: "sampling" with top_k=1, i.e. greedy and deterministic.
    model.generation_config.update(bos_token_id=ids["<|endoftext|>"], pad_token_id=ids["<|endoftext|>"],
                                   eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]], do_sample=True,
                                   top_k=1, top_p=0.001, temperature=0.1, repetition_penalty=1.05)
    harden_lm_head(model, tok)
    model.to(torch.bfloat16).save_pretrained(out)   # the real checkpoint is bf16 (config "dtype": "bfloat16")
    # The real repo's processor files: tokenizer, a legacy preprocessor_config.json (from which transformers
    # also derives the video processor) and chat_template.json. No processor_config.json, as there.
    tok.save_pretrained(out)
    (Path(out) / "preprocessor_config.json").write_text(json.dumps(PREPROCESSOR_CONFIG, indent=2) + "\n")
    (Path(out) / "chat_template.json").write_text(json.dumps({"chat_template": CHAT_TEMPLATE}, indent=2) + "\n")


def summary(config) -> dict[str, object]:
    v, t = config.vision_config, config.text_config
    return {"vision encoder": Shape(v.depth, v.hidden_size),
            "language model": Shape(t.num_hidden_layers, t.hidden_size),
            "attention heads (key/value heads)": f"{t.num_attention_heads} ({t.num_key_value_heads})",
            "vocabulary": t.vocab_size}


def answer(card, models, device, dtype, g) -> int:
    import torch
    cfg = architectures.config(card.architecture)
    v = cfg["vision_config"]
    grid_h, grid_w = 36, 56                      # 2,016 patches -> 504 visual tokens (<= 512, the chat's bound)
    n_tokens = grid_h * grid_w // v["spatial_merge_size"] ** 2
    patch = 3 * v["temporal_patch_size"] * v["patch_size"] ** 2
    ids = torch.cat([random_ids(g, 14, 151000, device),
                     torch.tensor([[cfg["vision_start_token_id"]]], device=device),
                     torch.full((1, n_tokens), cfg["image_token_id"], device=device),
                     torch.tensor([[cfg["vision_end_token_id"]]], device=device),
                     random_ids(g, 16, 151000, device)], dim=1)
    return generate(models[None], 16, input_ids=ids, attention_mask=torch.ones_like(ids),
                    pixel_values=random_pixels(g, device, dtype, grid_h * grid_w, patch),
                    image_grid_thw=torch.tensor([[1, grid_h, grid_w]], device=device))


def serve(path, dtype, device) -> dict:
    """The request's prompt as the user turn of the chat template, after the image, as qwen_vl.ipynb asks."""
    import transformers as t
    processor = t.AutoProcessor.from_pretrained(path)
    model = t.Qwen2_5_VLForConditionalGeneration.from_pretrained(path, dtype=dtype, attn_implementation="sdpa"
                                                                 ).to(device)

    def prepare(image, prompt):
        messages = [{"role": "user", "content": [{"type": "image", "image": image},
                                                 {"type": "text", "text": prompt or SERVE_PROMPT}]}]
        return dict(processor.apply_chat_template(
            messages, tokenize=True, add_generation_prompt=True, return_dict=True, return_tensors="pt",
            processor_kwargs={"images_kwargs": {"size": dict(SERVE_IMAGE_SIZE)}}))

    return dict(model=model, decode=lambda ids: processor.decode(ids, skip_special_tokens=True), prepare=prepare)


CARDS = [
    Card("qwen-vl", "Qwen/Qwen2.5-VL-3B-Instruct", 7.5, "bfloat16", ("qwen_vl",), standin=build, summary=summary,
         workload=Workload("1 answer at the chat's max_pixels (504 visual tokens), 16 new tokens, greedy", answer),
         serve=serve, required=VISION_TEXT),
]
