"""Qwen2.5-VL for fine-tuning (vlsteps.finetune.qwen_vl) on its stand-in: the loss falls on the answer only, the new
word's rows are the ones the answer writes, one answer per example, and QLoRA quantizes the language model alone."""
import pytest

from vlsteps import paths, registry, world
from vlsteps.cards.qwen_vl import SERVE_PROMPT
from vlsteps.finetune import data, qwen_vl
from vlsteps.finetune.adapters import new_token_ids
from vlsteps.standins import ensure_standin


@pytest.fixture(scope="module")
def folder():
    return ensure_standin(registry.get(qwen_vl.KEY), paths.standins_dir())


@pytest.fixture(scope="module")
def loaded(folder):
    model, processor = qwen_vl.load(folder)
    return model.eval(), processor


@pytest.fixture(scope="module")
def examples():
    out = data.new_colour(6, 0, "train")
    assert world.NEW_COLOUR in [e.target for e in out]
    return out


def labelled(batch) -> list[list[int]]:
    return [row[row != -100].tolist() for row in batch["labels"]]


def test_the_loss_falls_on_the_answer_and_its_end_of_turn_only(loaded, examples):
    _, processor = loaded
    batch = qwen_vl.batch(processor, examples)
    assert batch["labels"].shape == batch["input_ids"].shape
    assert (batch["labels"][batch["attention_mask"] == 0] == -100).all()
    texts = [processor.tokenizer.decode(ids) for ids in labelled(batch)]
    assert texts == [f"{e.target}<|im_end|>" for e in examples]


def test_a_caption_example_is_the_services_caption_request(loaded):
    _, processor = loaded
    picture = world.draw(world.scenes(1, 0, "train")[0], data.SIZE)
    batch = qwen_vl.batch(processor, [data.Example(picture, None, "a red circle.")])
    text = processor.tokenizer.decode(batch["input_ids"][0])
    assert f"<|vision_end|>{SERVE_PROMPT}<|im_end|>" in text
    assert processor.tokenizer.decode(labelled(batch)[0]) == "a red circle.<|im_end|>"


def test_the_new_words_rows_are_the_tokens_its_answer_is_written_with(loaded, examples):
    """The answer opens the assistant's turn (no space before it): its tokens are what the adapter must train."""
    _, processor = loaded
    new = [e for e in examples if e.target == world.NEW_COLOUR]
    written = set(labelled(qwen_vl.batch(processor, new))[0][:-1])
    assert written <= set(new_token_ids(processor.tokenizer, [world.NEW_COLOUR]))


def test_answers_are_one_stripped_string_per_example(loaded, examples):
    model, processor = loaded
    out = qwen_vl.answers(model, processor, examples, max_new_tokens=4, size=4)
    assert len(out) == len(examples)
    assert all(isinstance(a, str) and a == a.strip() and "<|" not in a for a in out)
    assert out[:4] == qwen_vl.answers(model, processor, examples[:4], max_new_tokens=4)   # chunked in order


def test_qlora_quantizes_the_language_model_not_the_vision_tower_or_the_output_layer(folder, examples):
    import bitsandbytes as bnb
    model, processor = qwen_vl.load(folder, quantize=True)
    four_bit = [name for name, m in model.named_modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert four_bit and all(name.startswith("model.language_model.") for name in four_bit)
    assert not isinstance(model.lm_head, bnb.nn.Linear4bit)
    assert len(qwen_vl.answers(model.eval(), processor, examples[:2], max_new_tokens=2)) == 2
