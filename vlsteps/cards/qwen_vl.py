"""Qwen2.5-VL: Qwen/Qwen2.5-VL-3B-Instruct, a chat model that sees (notebooks/qwen_vl.ipynb; served).

Its stand-in has the real classes, chat template, special tokens and image processor.

What the notebook teaches depends on the image processor (14 px patches merged 2x2, and the real
min_pixels/max_pixels defaults decide the number of visual tokens), so those are the real values;
only the transformer sizes are tiny. The vision tower keeps the real layout in miniature: windowed
attention blocks with one full-attention block, 112 px windows, and an M-RoPE split of the text
head_dim like the real [16, 24, 24] of 128 (here [4, 6, 6] of 32).

It learned the procedural world (`vlsteps.world`), through the real chat template: one- and two-turn chats
about a scene (one-word answers), grounding in the real answer format (a fenced JSON list of `bbox_2d` in
pixels of the resized input) and captions. For that it is larger than a structural copy needs (text 128 wide
and 4 layers deep, vision 64 wide: 2 text layers trained 3,600 steps answered 0.705 and boxed 0.53; 4 layers
answered 0.7975 and boxed 0.79 after 6,000 steps, and 0.8875 and 0.92 after the 8,000 it trains, 55 minutes on one
core) and its text RoPE base is 10, not 1e6 (ROPE_THETA says why). Scenes are drawn at SCENE px.
"""
from __future__ import annotations

import json
from pathlib import Path

from .. import architectures, world
from ..boxes import iou
from .card import VISION_TEXT, Card, Shape, WorldTraining, Workload, generate, random_ids, random_pixels
from .common import harden_lm_head, patch_heads, patch_loss, patch_truth, seeded

# The real 1e6 leaves a 32-wide head's height/width M-RoPE frequencies near 0 across a 4x4 token grid, so the
# learned stand-in could not tell its visual tokens' places apart; 10 spreads them over ~0.1-0.6 rad per token.
ROPE_THETA = 10.0
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
    text = dict(vocab_size=len(tok), hidden_size=128, intermediate_size=256, num_hidden_layers=4,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32768, rms_norm_eps=1e-6,
                rope_parameters={"rope_type": "default", "rope_theta": ROPE_THETA, "mrope_section": [4, 6, 6]},
                bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"], pad_token_id=None)
    vision = dict(depth=2, hidden_size=64, intermediate_size=128, num_heads=4, out_hidden_size=128,
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


# The world's scenes are drawn at SCENE px, which the chat setting (at most 512 visual tokens) keeps as they are:
# 8x8 patches, 16 visual tokens, and box coordinates in pixels of that input.
SCENE = 112
GROUND = "Detect the bounding box of the {} and output it in JSON format."
CHAT_SIZE = {"shortest_edge": 56 * 56, "longest_edge": 512 * 28 * 28}   # qwen_vl.ipynb's chat setting


def user_turn(image, text) -> dict:
    content = ([{"type": "image", "image": image}] if image is not None else []) + [{"type": "text", "text": text}]
    return {"role": "user", "content": content}


def reply(text) -> dict:
    return {"role": "assistant", "content": [{"type": "text", "text": text}]}


def grounding_answer(label: str, box) -> str:
    """The real model's answer format: a fenced JSON list, integer pixels of the resized input."""
    coords = ", ".join(str(round(v)) for v in box)
    return f'```json\n[\n\t{{"bbox_2d": [{coords}], "label": "{label}"}}\n]\n```'


def groundable(scene) -> list[int]:
    """The things a grounding prompt names unambiguously: those whose "colour shape" is unique in the scene."""
    labels = [t.label for t in scene.things]
    return [i for i, label in enumerate(labels) if labels.count(label) == 1]


def conversation(scene, rng, task: str) -> list[dict]:
    """One training chat about a scene: "ground" one shape, "chat" one or two questions, or "describe" it."""
    image = world.draw(scene, SCENE)
    if task == "ground" and groundable(scene):
        i = int(rng.choice(groundable(scene)))
        thing = scene.things[i]
        return [user_turn(image, GROUND.format(thing.label)),
                reply(grounding_answer(thing.label, world.boxes(scene, SCENE)[i]))]
    if task == "describe":
        prompt = (world.DESCRIBE, SERVE_PROMPT)[int(rng.random() < 0.5)]
        return [user_turn(image, prompt), reply(scene.captions[0])]
    messages = []
    for k, qa in enumerate(world.chat_turns(scene, 1 + int(rng.random() < 0.6))):
        messages += [user_turn(image if k == 0 else None, qa.question.capitalize()), reply(qa.answer)]
    return messages


def _labels(ids, tok):
    """Loss only on the assistant's turns (their text and <|im_end|>), as chat fine-tuning does."""
    import torch
    start, end = tok.convert_tokens_to_ids("<|im_start|>"), tok.convert_tokens_to_ids("<|im_end|>")
    head = len(tok("assistant\n").input_ids)
    labels = torch.full_like(ids, -100)
    for row, seq in enumerate(ids.tolist()):
        speaking = -1
        for j, t in enumerate(seq):
            if t == start and tok.decode(seq[j + 1:j + 1 + head]) == "assistant\n":
                speaking = j + 1 + head
            elif speaking >= 0 and j >= speaking:
                labels[row, j] = t
                if t == end:
                    speaking = -1
    return labels


def _inputs(processor, conversations, generation: bool = False):
    processor.tokenizer.padding_side = "left" if generation else "right"
    return processor.apply_chat_template(
        conversations, tokenize=True, add_generation_prompt=generation, return_dict=True, return_tensors="pt",
        processor_kwargs={"padding": True, "images_kwargs": {"size": dict(CHAT_SIZE)}})


# Where each 14 px patch of a SCENE px image stands in the processor's order: 2 x 2 blocks (one visual token each)
# in row-major order, row-major inside a block. At SCENE px the vision tower's one window is the whole image, so its
# merged tokens come out in block order too.
_GRID = SCENE // 14
BLOCK_ORDER = [(2 * (b // (_GRID // 2)) + s // 2) * _GRID + 2 * (b % (_GRID // 2)) + s % 2
               for b in range(_GRID * _GRID // 4) for s in range(4)]


def train(card, folder, steps: int = 8000, batch: int = 32, lr: float = 1e-3) -> dict:
    """Chat and grounding on fresh world scenes every step: next-token loss on the assistant's turns, AdamW with
    warm-up and cosine decay. Beside it, heads on each visual token (thrown away after) learn what each of its
    four patches shows (`world.patch_labels`): the visual tokens then know what is where. The rate is 1e-3: at
    3e-3 the tied rows of the answer words collapsed together (cosine 0.99 between the colours) and every
    colour question was answered "green"."""
    import numpy as np
    import torch
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration
    processor = AutoProcessor.from_pretrained(folder)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(folder, dtype=torch.float32)
    with torch.no_grad():   # harden_lm_head's logits of std 10 are for random weights: learn from a small init
        model.get_input_embeddings().weight.normal_(0, 0.02)
    scenes = world.scenes(steps * batch, 0, "train", held_out=False)
    rng = np.random.default_rng(0)
    width = model.config.text_config.hidden_size
    heads = torch.nn.ModuleList(patch_heads(width) for _ in range(4))
    seen = {}
    hook = model.model.visual.register_forward_hook(lambda module, args, out: seen.update(tokens=out.pooler_output))
    optimizer = torch.optim.AdamW([*model.parameters(), *heads.parameters()], lr=lr, weight_decay=0.01)
    warm = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + np.cos(np.pi * min(1.0, s / steps))))
    model.train()
    for step in range(steps):
        # One task per batch (half of them grounding), so a batch of short chats is not padded to a box's length.
        task = "ground" if step % 2 else ("chat", "chat", "chat", "describe")[step // 2 % 4]
        part = scenes[step * batch:(step + 1) * batch]
        inputs = _inputs(processor, [conversation(s, rng, task) for s in part])
        labels = _labels(inputs["input_ids"], processor.tokenizer)[:, 1:]
        hidden = model.model(**inputs).last_hidden_state[:, :-1]
        keep = labels != -100                     # the logits of the assistant's tokens only: the cheap part
        loss = torch.nn.functional.cross_entropy(model.lm_head(hidden[keep]), labels[keep])
        truth = patch_truth(part, _GRID, SCENE)[:, BLOCK_ORDER]
        tokens = seen["tokens"].reshape(len(part), -1, width)     # (scenes, visual tokens, width)
        told = sum(patch_loss(heads[k], tokens, truth[:, k::4]) for k in range(4))   # patch k of each 2 x 2 block
        optimizer.zero_grad()
        (loss + told).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        if step % 50 == 0:
            print(step, task, round(loss.item(), 4), round(told.item(), 4), flush=True)
    hook.remove()
    model.to(torch.bfloat16).save_pretrained(folder)
    return {"steps": steps, "batch": batch, "scenes": len(scenes), "final_loss": round(loss.item(), 4),
            "final_patch_loss": round(told.item(), 4)}


def _generate(model, processor, conversations, max_new_tokens):
    import torch
    inputs = _inputs(processor, conversations, generation=True)
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    texts = processor.batch_decode(out[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    return [t.strip() for t in texts], inputs


def measure(card, folder, n: int = 200) -> dict:
    """On held-out scenes, through the notebook's calls (chat template, generate, decode, qwen_boxes): two-turn
    chats (the second question follows the model's own first answer) and one grounding request per shape."""
    import torch
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    from ..qwen_boxes import input_size, parse_boxes, rescale
    processor = AutoProcessor.from_pretrained(folder)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(folder, dtype=torch.float32).eval()
    scenes = world.scenes(n, 0, "test", held_out=False)
    images = [world.draw(s, SCENE) for s in scenes]
    chats = [[] for _ in scenes]
    right = total = 0
    for k in range(2):
        asked = [(i, qas[k]) for i, qas in enumerate(world.chat_turns(s) for s in scenes) if len(qas) > k]
        for i, qa in asked:
            chats[i].append(user_turn(images[i] if k == 0 else None, qa.question.capitalize()))
        answers, _ = _generate(model, processor, [chats[i] for i, _ in asked], 4)
        for (i, qa), answer in zip(asked, answers):
            chats[i].append(reply(answer))
            right += answer.lower().rstrip(".") == qa.answer
            total += 1
    wanted = [(s, im, i) for s, im in zip(scenes, images) for i in groundable(s)]
    texts, inputs = _generate(model, processor, [[user_turn(im, GROUND.format(s.things[i].label))]
                                                 for s, im, i in wanted], 48)
    hits = 0
    for (s, im, i), text, grid in zip(wanted, texts, inputs["image_grid_thw"]):
        boxes = rescale(parse_boxes(text), input_size(grid), im.size)
        hits += bool(boxes) and iou(boxes[0], world.boxes(s, SCENE)[i]) >= 0.5
    return {"chat answers": right / total, "boxes IoU>=0.5": hits / len(wanted)}


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
    Card("qwen-vl", "Qwen/Qwen2.5-VL-3B-Instruct", 7.5, "bfloat16", ("qwen_vl", "finetune"), standin=build,
         summary=summary,
         workload=Workload("1 answer at the chat's max_pixels (504 visual tokens), 16 new tokens, greedy", answer),
         serve=serve, required=VISION_TEXT,
         training=WorldTraining("chat answers to world questions (two turns) and grounding: a JSON box per shape",
                                train, measure, goals={"chat answers": 0.8, "boxes IoU>=0.5": 0.7},
                                floors={"chat answers": 0.85, "boxes IoU>=0.5": 0.88})),
]
