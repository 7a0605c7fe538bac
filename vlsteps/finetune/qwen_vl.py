"""Qwen2.5-VL (and its stand-in) for fine-tuning: loading the base, one training batch, answers. Every example is a
one-turn chat through the model's own chat template, built and masked as the Qwen card trains its stand-in
(`vlsteps.cards.qwen_vl`): the loss falls on the assistant's answer and its <|im_end|> only."""
from __future__ import annotations

from ..cards.qwen_vl import SERVE_PROMPT, _inputs, _labels, reply, user_turn
from .data import Example

KEY = "qwen-vl"
# The parts bitsandbytes leaves in 16 bits for QLoRA: the vision tower (frozen, small, sensitive to rounding) and the
# output layer (tied to the input embedding, whose new-word rows the adapter trains).
UNQUANTIZED = ["model.visual", "lm_head"]


def load(folder, quantize: bool = False):
    """(model, processor): float32 on the CPU, bfloat16 (the checkpoint's dtype) on a GPU; with quantize, the
    language model's linear layers in 4-bit NF4 (QLoRA's base: bitsandbytes), the rest 16-bit."""
    import torch
    from transformers import AutoProcessor, BitsAndBytesConfig, Qwen2_5_VLForConditionalGeneration
    gpu = torch.cuda.is_available()
    dtype = torch.bfloat16 if gpu else torch.float32
    quantization = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype,
                                      llm_int8_skip_modules=UNQUANTIZED) if quantize else None
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(folder, dtype=dtype, quantization_config=quantization,
                                                               device_map="auto" if gpu else None)
    return model, AutoProcessor.from_pretrained(folder)


def turn(example: Example) -> dict:
    """The user's turn: the image, then the question, or for a caption the service's caption request (SERVE_PROMPT),
    so an adapter merged into the served model answers the request it was trained on."""
    return user_turn(example.picture(), example.prompt or SERVE_PROMPT)


def batch(processor, examples: list[Example]) -> dict:
    """Inputs and labels: the chat (system, user turn with the image, the assistant's target), right-padded; the loss
    falls on the target and its <|im_end|> only (-100 elsewhere, padding included)."""
    inputs = _inputs(processor, [[turn(e), reply(e.target)] for e in examples])
    return dict(inputs, labels=_labels(inputs["input_ids"], processor.tokenizer))


def answers(model, processor, examples: list[Example], max_new_tokens: int = 8, size: int = 32) -> list[str]:
    """Greedy answers (or captions) after the chat's generation prompt, left-padded, the prompt cut off the output."""
    import torch
    out = []
    for i in range(0, len(examples), size):
        inputs = _inputs(processor, [[turn(e)] for e in examples[i:i + size]], generation=True).to(model.device)
        with torch.inference_mode():
            ids = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        out += [t.strip() for t in processor.batch_decode(ids[:, inputs["input_ids"].shape[1]:],
                                                          skip_special_tokens=True)]
    return out
