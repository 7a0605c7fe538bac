"""The Qwen2.5-VL stand-in: rebuilt byte for byte, loaded by the real classes, with the real processor numbers."""
import json

import pytest
import torch
from PIL import Image
from safetensors import safe_open
from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor

from vlsteps import registry, world
from vlsteps.cards import qwen_vl
from vlsteps.qwen_boxes import input_size, parse_boxes, rescale
from vlsteps.standins import build

SPEC = registry.get("qwen-vl")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return [build(registry.get("qwen-vl"), tmp_path_factory.mktemp(f"qwen{i}")) for i in range(2)]


@pytest.fixture(scope="module")
def folder(folders):
    return folders[0]


@pytest.fixture(scope="module")
def loaded(folder):
    processor = AutoProcessor.from_pretrained(folder)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(folder, dtype=torch.float32).eval()
    return processor, model


def chat_inputs(processor, image, text, **size):
    messages = [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": text}]}]
    kwargs = {"processor_kwargs": {"images_kwargs": {"size": size}}} if size else {}
    return processor.apply_chat_template(messages, tokenize=True, add_generation_prompt=True, return_dict=True,
                                         return_tensors="pt", **kwargs)


def test_rebuilds_are_byte_identical(folders):
    a, b = folders
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), f"{name} differs between two builds"


def test_folder_is_tiny_and_named_like_the_real_checkpoint(folder):
    assert folder.name == "Qwen2.5-VL-3B-Instruct"
    assert sum(p.stat().st_size for p in folder.iterdir()) < 8e6
    for name in ("config.json", "generation_config.json", "model.safetensors", "preprocessor_config.json",
                 "chat_template.json", "tokenizer.json", "tokenizer_config.json"):
        assert (folder / name).exists(), name


def test_weights_are_bf16_like_the_real_checkpoint(folder):
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        dtypes = {f.get_tensor(k).dtype for k in f.keys()}
    assert dtypes == {torch.bfloat16}
    assert json.loads((folder / "config.json").read_text())["dtype"] == "bfloat16"


def test_real_classes_and_real_image_processor_defaults(loaded):
    processor, model = loaded
    assert isinstance(processor, Qwen2_5_VLProcessor)
    ip = processor.image_processor
    assert (ip.patch_size, ip.merge_size, ip.temporal_patch_size) == (14, 2, 2)
    assert (ip.size.shortest_edge, ip.size.longest_edge) == (56 * 56, 28 * 28 * 16384)
    assert processor.video_processor is not None
    vision = model.config.vision_config
    assert (vision.patch_size, vision.spatial_merge_size, vision.window_size) == (14, 2, 112)


def test_config_lines_up_with_the_tokenizer(loaded):
    processor, model = loaded
    tok, cfg = processor.tokenizer, model.config
    text = cfg.text_config
    head_dim = text.hidden_size // text.num_attention_heads
    assert sum(text.rope_parameters["mrope_section"]) == head_dim // 2
    assert all(0 <= i < cfg.vision_config.depth for i in cfg.vision_config.fullatt_block_indexes)
    for attr, token in [("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>"),
                        ("vision_start_token_id", "<|vision_start|>"), ("vision_end_token_id", "<|vision_end|>")]:
        assert getattr(cfg, attr) == tok.convert_tokens_to_ids(token), attr
    assert text.vocab_size == len(tok)
    assert tok.convert_tokens_to_ids("<|im_end|>") in model.generation_config.eos_token_id


def test_chat_template_is_qwens(loaded):
    processor, _ = loaded
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Hi?"}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    assert prompt == ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
                      "<|vision_start|><|image_pad|><|vision_end|>Hi?<|im_end|>\n<|im_start|>assistant\n")


@pytest.mark.parametrize("size", [(451, 300), (640, 427)])
def test_visual_tokens_follow_the_patch_grid(loaded, size):
    processor, model = loaded
    inputs = chat_inputs(processor, Image.new("RGB", size, "gray"), "Describe this image.",
                         shortest_edge=56 * 56, longest_edge=64 * 28 * 28)
    t, h, w = inputs["image_grid_thw"][0].tolist()
    assert t == 1 and h * w * 14 * 14 <= 64 * 28 * 28 * 1.0001
    assert int((inputs["input_ids"] == model.config.image_token_id).sum()) == h * w // 4
    assert inputs["pixel_values"].shape == (h * w, 3 * 2 * 14 * 14)


def test_the_learned_stand_in_answers_a_chat_turn_and_stops(loaded):
    """Through the chat template on a held-out world scene: the right word, then <|im_end|> (EOS), nothing else."""
    processor, model = loaded
    scene = world.scenes(4, 0, "test", held_out=False)[0]     # the notebook's first chat
    qa = world.chat_turns(scene)[0]
    inputs = chat_inputs(processor, world.draw(scene, qwen_vl.SCENE), qa.question.capitalize(),
                         **qwen_vl.CHAT_SIZE)
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=6, do_sample=False)
    new = out[0, inputs["input_ids"].shape[1]:]
    assert processor.decode(new, skip_special_tokens=True) == qa.answer
    assert processor.decode(new[-1:]) == "<|im_end|>" and len(new) < 6


def test_its_grounding_answer_parses_to_the_shape_it_was_asked_for(loaded):
    """The model's own text through qwen_boxes, as the notebook draws it: one box in the input, a world label
    (how often it lands on the shape, tests/test_learned.py holds to the measured floor)."""
    processor, model = loaded
    scene = world.scenes(1, 0, "test", held_out=False)[0]
    image, k = world.draw(scene, qwen_vl.SCENE), qwen_vl.groundable(scene)[0]
    label = scene.things[k].label
    inputs = chat_inputs(processor, image, qwen_vl.GROUND.format(label), **qwen_vl.CHAT_SIZE)
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=48, do_sample=False)
    text = processor.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    assert text.startswith("```json\n[")
    boxes = rescale(parse_boxes(text), input_size(inputs["image_grid_thw"]), image.size)
    assert len(boxes) == 1 and boxes[0].label in world.LABELS
    assert 0 <= boxes[0].x1 < boxes[0].x2 <= image.width and 0 <= boxes[0].y1 < boxes[0].y2 <= image.height
