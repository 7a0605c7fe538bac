"""GPU memory to fine-tune each model (full, LoRA, QLoRA), computed from the real architectures: will it fit a T4?

Each model is built on the meta device from its checkpoint's config (`vlsteps.sizes`: no download, no memory) and,
for LoRA and QLoRA, wrapped by `peft.get_peft_model` with the notebook's adapter (`adapters.lora_config`), so the
trainable parameters are peft's own count. Every method runs with gradient checkpointing on the language model;
the vision tower stays frozen and runs under `no_grad`, so it keeps no activations (its forward frees each layer
before the language model's backward starts). Memory at the peak of one training step, in bytes:

    weights      full: 2 per parameter (16-bit); LoRA: 2 per base parameter + the adapters at peft's dtype;
                 QLoRA: the base as bitsandbytes stores it in 4-bit NF4 (`sizes.weight_bytes(key, "4-bit")`)
                 + the adapters
    state        full (trains all but the vision tower): 14 per trained parameter (16-bit gradient, float32
                 master copy, AdamW's two float32 moments); LoRA/QLoRA: 3x the adapters' bytes (gradient and two
                 moments at their dtype)
    activations  a 16-bit hidden state per checkpointed language-model layer (batch x tokens x hidden x 2)
                 + one layer's working set while it is recomputed (every Linear's input and output, 16-bit, and
                 the attention scores as eager attention keeps them) + the logits for the loss
                 (batch x tokens x vocab x LOGIT_BYTES); trained blocks outside the language model (the Q-Former
                 in full fine-tuning) keep all theirs
    total        weights + state + activations + CUDA_CONTEXT_GB

QLoRA keeps the parameters bitsandbytes leaves unquantized in 16 bits, as `vlsteps.finetune.train.adapt` leaves
them. Computed, not measured: allocator fragmentation, the data loader's tensors and the 16-bit copy of the one
4-bit layer bitsandbytes dequantizes at a time are not counted.

    print(memory.markdown(memory.table(batch=4, text_tokens=32)))
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from .. import architectures, registry, sizes
from . import adapters

METHODS = ("full", "LoRA", "QLoRA")
BATCH = 4             # images per step on a real checkpoint (the stand-ins train 16 at a time: theirs is nothing)
TEXT_TOKENS = 32      # prompt + answer tokens per example: a short question and its answer, or a caption
IMAGE_SIZE = 448      # Qwen2.5-VL's images resized to 448x448: (448/14)^2 patches, merged 2x2 -> 256 tokens
RANK = 8              # LoRA rank: the notebook's and `python -m vlsteps.finetune`'s
# (row key, column title, GB): a Colab T4 as Colab reports it; a 24 GB card (RTX 3090/4090, A10G, L4)
CARDS = (("fits_t4", f"fits a T4 ({sizes.T4_GB:g} GB)", sizes.T4_GB), ("fits_24gb", "fits 24 GB", 24.0))
HALF = 2              # bytes of a 16-bit value: weights, gradients and activations in mixed precision
FULL_STATE = 2 + 4 + 4 + 4   # per trained parameter: 16-bit gradient, float32 master weight, AdamW's m and v
ADAPTER_STATE = 3     # adapter bytes x3: a gradient and AdamW's two moments, each at the adapter's dtype
LOGIT_BYTES = 2 + 4 + 4      # per logit: the 16-bit head output, its float32 copy for the loss, the log-softmax
CUDA_CONTEXT_GB = 0.5        # the CUDA context and cuBLAS workspace torch creates, outside its allocator
VISION = re.compile(r"(?:^|\.)(?:vision_model|visual)(?:\.|$)")   # the frozen vision tower's module names


@dataclass(frozen=True)
class Stack:
    """A stack of identical transformer layers, as far as memory goes."""
    part: str        # "encoder" / "decoder" (of the language model) or "qformer"
    layers: int
    hidden: int
    heads: int
    width: int       # elements per token one layer keeps for backward: every Linear's input and output
    lora_width: int  # the same with the LoRA adapters in place (their inputs, rank-r middles and outputs)


@dataclass(frozen=True)
class Arch:
    params: int          # all parameters, tied weights once
    vision: int          # of which the frozen vision tower
    adapters: int        # LoRA's trainable parameters (peft's count)
    adapter_bytes: int   # their bytes at peft's dtype
    vocab: int
    query_tokens: int    # BLIP-2 / InstructBLIP: the Q-Former's queries; 0 for Qwen
    image_tokens: int    # tokens one image puts in front of the language model
    stacks: tuple[Stack, ...]


def _linear_width(layer) -> int:
    import torch
    return sum(m.in_features + m.out_features for m in layer.modules() if isinstance(m, torch.nn.Linear))


def _stacks(model) -> list[tuple[str, object]]:
    """(name, ModuleList) of the layer stacks outside the vision tower: the language model's and the Q-Former's."""
    import torch
    found: list[tuple[str, object]] = []
    for name, module in model.named_modules():
        if (isinstance(module, torch.nn.ModuleList) and len(module) > 1 and not VISION.search(name)
                and not any(name.startswith(f"{outer}.") for outer, _ in found)):
            found.append((name, module))
    return found


def _part(name: str) -> str:
    if "qformer" in name:
        return "qformer"
    return "encoder" if "encoder" in name.split(".") else "decoder"


@cache
def arch(key: str, r: int = RANK, qformer: bool = False) -> Arch:
    """What the memory needs of registry key `key`'s real architecture (a meta-device build: about a second)."""
    from .train import quiet_peft
    quiet_peft()
    import peft
    import torch
    if key not in adapters.KEYS:
        raise ValueError(f"{key!r} is not fine-tuned by the notebook; choose one of {', '.join(adapters.KEYS)}")
    model = sizes.build(key, dtype=torch.bfloat16)
    unique = {id(p): (n, p.numel()) for n, p in model.named_parameters(remove_duplicate=False)}.values()
    vision = sum(n for name, n in unique if VISION.search(name))
    config, text = architectures.config(registry.get(key).architecture), model.config.get_text_config()
    stacks = [(name, len(layers), max(map(_linear_width, layers))) for name, layers in _stacks(model)]
    lora = peft.get_peft_model(model, adapters.lora_config(r, qformer))   # wraps the layers in place
    trained = [p for p in lora.parameters() if p.requires_grad]
    found = []
    for (name, n, width), (_, adapted) in zip(stacks, _stacks(lora.base_model.model)):
        part = _part(name)
        sub = model.config.qformer_config if part == "qformer" else text
        found.append(Stack(part, n, sub.hidden_size, sub.num_attention_heads, width, max(map(_linear_width, adapted))))
    return Arch(params=sizes.param_count(key), vision=vision, adapters=sum(p.numel() for p in trained),
                adapter_bytes=sum(p.numel() * p.element_size() for p in trained), vocab=text.vocab_size,
                query_tokens=config.get("num_query_tokens", 0), image_tokens=_image_tokens(config), stacks=tuple(found))


def _image_tokens(config: dict) -> int:
    """The query tokens (BLIP-2, InstructBLIP), or Qwen2.5-VL's patches of an IMAGE_SIZE image merged."""
    if "num_query_tokens" in config:
        return config["num_query_tokens"]
    vision = config["vision_config"]
    return (IMAGE_SIZE // vision["patch_size"]) ** 2 // vision["spatial_merge_size"] ** 2


def _tokens(a: Arch, part: str, text_tokens: int) -> int:
    """An encoder-decoder (Flan-T5) reads image + text in its encoder and decodes the text (an upper bound: only
    the answer is decoded); a decoder-only model reads both."""
    if part == "qformer":
        return a.query_tokens
    encoder_decoder = any(s.part == "encoder" for s in a.stacks)
    return text_tokens if encoder_decoder and part == "decoder" else a.image_tokens + text_tokens


def _layer_bytes(s: Stack, batch: int, tokens: int, lora: bool) -> int:
    return HALF * batch * (tokens * (s.lora_width if lora else s.width) + s.heads * tokens ** 2)


def activation_bytes(a: Arch, method: str, batch: int, text_tokens: int, qformer: bool = False,
                     checkpointing: bool = True) -> int:
    """With gradient checkpointing, one hidden state per language-model layer and one layer's working set at a time;
    without, every layer's working set is kept for the backward pass."""
    lora = method != "full"
    language = [s for s in a.stacks if s.part != "qformer"]
    if checkpointing:
        checkpoints = sum(HALF * batch * _tokens(a, s.part, text_tokens) * s.hidden * s.layers for s in language)
        recompute = max(_layer_bytes(s, batch, _tokens(a, s.part, text_tokens), lora) for s in language)
    else:
        checkpoints = sum(s.layers * _layer_bytes(s, batch, _tokens(a, s.part, text_tokens), lora) for s in language)
        recompute = 0
    logits = LOGIT_BYTES * batch * _tokens(a, "decoder", text_tokens) * a.vocab
    trained_qformer = sum(s.layers * _layer_bytes(s, batch, a.query_tokens, lora) for s in a.stacks
                          if s.part == "qformer" and (qformer or not lora))
    return checkpoints + recompute + logits + trained_qformer


def row(key: str, method: str, batch: int = BATCH, text_tokens: int = TEXT_TOKENS, r: int = RANK,
        qformer: bool = False) -> dict:
    """One model and method: parameters trained, bytes of each kind, and whether it fits each card."""
    if method not in METHODS:
        raise ValueError(f"Unknown method {method!r}; choose one of {', '.join(METHODS)}")
    a = arch(key, r, qformer)
    if method == "full":
        trained = a.params - a.vision
        weights, state = HALF * a.params, FULL_STATE * trained
    else:
        trained = a.adapters
        base = HALF * a.params if method == "LoRA" else sizes.weight_bytes(key, "4-bit")
        weights, state = base + a.adapter_bytes, ADAPTER_STATE * a.adapter_bytes
    activations = activation_bytes(a, method, batch, text_tokens, qformer)
    kept = activation_bytes(a, method, batch, text_tokens, qformer, checkpointing=False)
    total = weights + state + activations + CUDA_CONTEXT_GB * sizes.GB
    out = {"model": key, "method": method, "batch": batch, "tokens": a.image_tokens + text_tokens,
           "trainable": trained, "trainable_pct": 100 * trained / a.params, "weights_gb": weights / sizes.GB,
           "state_gb": state / sizes.GB, "activations_gb": activations / sizes.GB, "total_gb": total / sizes.GB,
           "unchecked_activations_gb": kept / sizes.GB}
    return out | {name: total / sizes.GB <= gb for name, _, gb in CARDS}


def table(keys=adapters.KEYS, batch: int = BATCH, text_tokens: int = TEXT_TOKENS, r: int = RANK,
          qformer: bool = False) -> list[dict]:
    """Every model and method; computed, not measured."""
    return [row(k, m, batch, text_tokens, r, qformer) for k in keys for m in METHODS]


def _share(pct: float) -> str:
    return f"{pct:.2f} %" if pct < 10 else f"{pct:.0f} %"


def markdown(rows: list[dict]) -> str:
    """The table as markdown (it reads as plain text too), for the README and the notebook."""
    lines = [f"| model | method | trainable parameters | share of all | weights | gradients + optimizer state | "
             f"activations | total | {' | '.join(title for _, title, _ in CARDS)} | activations without gradient "
             "checkpointing |", "|---" * (9 + len(CARDS)) + "|"]
    for x in rows:
        gb = " | ".join(f"{x[k]:.2f} GB" for k in ("weights_gb", "state_gb", "activations_gb", "total_gb"))
        fits = " | ".join("yes" if x[name] else "no" for name, _, _ in CARDS)
        lines.append(f"| `{x['model']}` | {x['method']} | {sizes.format_params(x['trainable'])} | "
                     f"{_share(x['trainable_pct'])} | {gb} | {fits} | {x['unchecked_activations_gb']:.2f} GB |")
    return "\n".join(lines)


def readme_table() -> str:
    """The README's section: the default table and the workload it assumes."""
    tokens = ", ".join(f"`{k}` {arch(k).image_tokens} + {TEXT_TOKENS}" for k in adapters.KEYS)
    return (markdown(table()) + "\n\n"
            f"Computed by `vlsteps.finetune.memory` from the real architectures, not measured: batch {BATCH}, tokens "
            f"per example = image + text ({tokens}; Qwen2.5-VL at {IMAGE_SIZE}x{IMAGE_SIZE}), LoRA rank {RANK} on "
            f"the language model's attention, totals with {CUDA_CONTEXT_GB:g} GB for the CUDA context.")
