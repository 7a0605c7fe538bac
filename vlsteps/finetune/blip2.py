"""BLIP-2 (and its stand-in) for fine-tuning: loading the base, one training batch, answers. notebooks/finetune.ipynb
defines the batch function inline (a marked copy); `python -m vlsteps.finetune` imports it from here."""
from __future__ import annotations

from ..prompts import qa_prompt
from .data import Example

KEY = "blip2"


def load(folder, quantize: bool = False):
    """(model, processor): float32 on the CPU, float16 on a GPU; with quantize, the language model's linear layers in
    4-bit NF4 (QLoRA's base: bitsandbytes), the rest 16-bit."""
    import torch
    from transformers import BitsAndBytesConfig, Blip2ForConditionalGeneration, Blip2Processor
    gpu = torch.cuda.is_available()
    dtype = torch.float16 if gpu else torch.float32
    quantization = BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype,
        llm_int8_skip_modules=["vision_model", "qformer", "language_projection", "lm_head"]) if quantize else None
    model = Blip2ForConditionalGeneration.from_pretrained(folder, dtype=dtype, quantization_config=quantization,
                                                          device_map="auto" if gpu else None)
    return model, Blip2Processor.from_pretrained(folder)


# Copied from notebooks/finetune.ipynb: text
def text(example):
    """What the language model reads before the target: BLIP-2's VQA format for a question, nothing for a caption."""
    return qa_prompt(example.prompt) if example.prompt else ""


# Copied from notebooks/finetune.ipynb: batch
def batch(processor, examples):
    """Inputs and labels: the image's query tokens, the prompt and the target with </s>; the loss falls on the target
    and </s> only (-100 elsewhere, padding included)."""
    tok = processor.tokenizer
    tok.padding_side = "right"
    prompts = [text(e) for e in examples]
    full = [f"{p} {e.target}".strip() + tok.eos_token for p, e in zip(prompts, examples)]
    inputs = processor(images=[e.picture() for e in examples], text=full, padding=True, return_tensors="pt")
    labels = inputs["input_ids"].clone()
    image_tokens = processor.num_query_tokens
    for i, p in enumerate(prompts):
        labels[i, :image_tokens + len(tok(p).input_ids)] = -100       # query tokens, <s> and the prompt
    labels[inputs["attention_mask"] == 0] = -100
    return dict(inputs, labels=labels)


def answers(model, processor, examples: list[Example], max_new_tokens: int = 8, size: int = 32) -> list[str]:
    """Greedy answers (or captions), prompts left-padded as generation needs, the prompt cut off the output."""
    import torch
    processor.tokenizer.padding_side = "left"
    out = []
    for i in range(0, len(examples), size):
        part = examples[i:i + size]
        prompts = [text(e) for e in part]
        inputs = processor(images=[e.picture() for e in part], text=prompts, padding=True,
                           return_tensors="pt").to(model.device)
        with torch.inference_mode():
            ids = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        out += [t.strip() for t in processor.batch_decode(ids[:, inputs["input_ids"].shape[1]:],
                                                          skip_special_tokens=True)]
    return out
