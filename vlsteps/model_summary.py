"""The loaded model's facts beside the real checkpoint's: parameters, layers x widths, token counts, the
trained/frozen split and the weights' memory at each dtype.

On a stand-in every size the notebook prints is the stand-in's; a learner needs the real ones too. The real
column is computed from the checkpoint's architecture (`vlsteps.architectures`, built on the meta device by
`vlsteps.sizes`: no download, no memory); the loaded column is read off the model in memory.

    print(summary(model, "blip2"))
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from . import registry, sizes
from .device import model_size_gb, param_count
from .standins import is_standin

# What BLIP-2 (and InstructBLIP, built the same way) trains; the image encoder and the LLM stay frozen.
BLIP2_TRAINED = ("qformer", "query_tokens", "language_projection")
TRAINED = "trained: Q-Former, queries, projection"
VISION_PARAMS = "  of which vision encoder"


@dataclass(frozen=True)
class Shape:
    """A stack of layers: how many, and how wide (hidden size)."""
    layers: int | str
    width: int

    def __str__(self) -> str:
        return f"{self.layers} layers x {self.width:,}"


def _vit_tokens(v) -> int:
    return (v.image_size // v.patch_size) ** 2 + 1          # patches + [CLS]


def _lm_shape(t) -> Shape:
    if t.model_type == "t5":                                 # encoder + decoder
        return Shape(f"{t.num_layers}+{t.num_decoder_layers}", t.d_model)
    return Shape(t.num_hidden_layers, t.hidden_size)


def architecture_facts(config) -> dict[str, object]:
    """Layers, widths and token counts of a transformers config, by model type (same rows for real and loaded)."""
    kind = config.model_type
    if kind == "vit":
        return {"encoder": Shape(config.num_hidden_layers, config.hidden_size),
                "image tokens (patches + [CLS])": _vit_tokens(config), "classes": config.num_labels}
    if kind == "clip":
        v, t = config.vision_config, config.text_config
        return {"image tower": Shape(v.num_hidden_layers, v.hidden_size),
                "text tower": Shape(t.num_hidden_layers, t.hidden_size),
                "shared space (dimensions)": config.projection_dim, "vocabulary": t.vocab_size,
                "image tokens (patches + [CLS])": _vit_tokens(v), "text tokens (max)": t.max_position_embeddings}
    if kind == "vilt":
        return {"transformer": Shape(config.num_hidden_layers, config.hidden_size),
                "vocabulary": config.vocab_size, "text tokens (max)": config.max_position_embeddings,
                "answers": config.num_labels}
    if kind == "blip":
        v, t = config.vision_config, config.text_config
        return {"image encoder": Shape(v.num_hidden_layers, v.hidden_size),
                "text model": Shape(t.num_hidden_layers, t.hidden_size), "vocabulary": t.vocab_size,
                "image tokens (patches + [CLS])": _vit_tokens(v)}
    if kind in ("blip-2", "instructblip"):
        v, q, t = config.vision_config, config.qformer_config, config.text_config
        return {"image encoder (ViT)": Shape(v.num_hidden_layers, v.hidden_size),
                "Q-Former": Shape(q.num_hidden_layers, q.hidden_size),
                f"language model ({t.model_type})": _lm_shape(t), "vocabulary": t.vocab_size,
                "image tokens (patches + [CLS])": _vit_tokens(v), "query tokens": config.num_query_tokens}
    if kind == "vision-encoder-decoder":
        e, d = config.encoder, config.decoder
        return {"image encoder": Shape(e.num_hidden_layers, e.hidden_size), "text decoder": Shape(d.n_layer, d.n_embd),
                "vocabulary": d.vocab_size, "image tokens (patches + [CLS])": _vit_tokens(e)}
    if kind == "kosmos-2":
        v, t = config.vision_config, config.text_config
        return {"image encoder": Shape(v.num_hidden_layers, v.hidden_size),
                "language model": Shape(t.layers, t.embed_dim), "vocabulary": t.vocab_size,
                "image query tokens": config.latent_query_num}
    if kind == "qwen2_5_vl":
        v, t = config.vision_config, config.text_config
        return {"vision encoder": Shape(v.depth, v.hidden_size), "language model": Shape(t.num_hidden_layers,
                                                                                          t.hidden_size),
                "attention heads (key/value heads)": f"{t.num_attention_heads} ({t.num_key_value_heads})",
                "vocabulary": t.vocab_size}
    raise ValueError(f"no summary rows for model type {kind!r}")


def _params(part) -> int:
    return part.numel() if hasattr(part, "numel") else param_count(part)   # a tied weight counts once


def _trained_share(model) -> tuple[int, int] | None:
    """(trained, total) parameters for a model whose training froze some parts; None for the others."""
    if not all(hasattr(model, name) for name in BLIP2_TRAINED):
        return None
    return sum(_params(getattr(model, name)) for name in BLIP2_TRAINED), param_count(model)


def _pipeline_facts(parts: dict) -> dict[str, object]:
    """A diffusers pipeline (SDXL): parameters per component, the UNet's channels, the text encoders' sizes."""
    facts = {"parameters": sum(param_count(m) for m in parts.values())}
    facts |= {f"  of which {name}": param_count(m) for name, m in parts.items()}
    facts["UNet channels per level"] = " / ".join(map(str, parts["unet"].config.block_out_channels))
    for name in ("text_encoder", "text_encoder_2"):
        c = parts[name].config
        facts[name.replace("_", " ")] = Shape(c.num_hidden_layers, c.hidden_size)
    return facts


def _facts(parts: dict) -> dict[str, object]:
    """parts: {None: model} for one model, {component: module} for a pipeline."""
    if None not in parts:
        return _pipeline_facts(parts)
    model = parts[None]
    facts = {"parameters": param_count(model)}
    visual = getattr(getattr(model, "model", None), "visual", None)       # Qwen-VL's vision encoder
    if visual is not None:
        facts[VISION_PARAMS] = param_count(visual)
    share = _trained_share(model)
    if share is not None:
        facts[TRAINED] = share
    return facts | architecture_facts(model.config)


def _parts(model, key: str) -> dict:
    return {c: (model if c is None else getattr(model, c)) for c in sizes.module_components(key)}


@cache
def real_facts(key: str) -> dict[str, object]:
    """The real checkpoint's facts, computed from its architecture on the meta device."""
    facts = _facts({c: sizes.build(key, c) for c in sizes.module_components(key)})
    facts["parameters"] = sizes.param_count(key)            # tied weights as the checkpoint stores them
    for dtype in sizes.DTYPES:
        if dtype != "bfloat16":                              # as many bytes as float16
            facts[f"weights in {'float16/bfloat16' if dtype == 'float16' else dtype}"] = sizes.weight_bytes(key, dtype)
    return facts


def loaded_facts(model, key: str) -> dict[str, object]:
    """The same facts read off the model (or pipeline) in memory, and its weights' bytes as loaded (measured)."""
    parts = _parts(model, key)
    dtypes = sorted({str(t.dtype).replace("torch.", "") for m in parts.values() for t in (*m.parameters(), *m.buffers())
                     if t.is_floating_point()})
    facts = _facts(parts)
    if getattr(model, "hf_quantizer", None) is not None:    # bitsandbytes packs 4-bit weights: numel counts storage
        facts["parameters"] = f"{facts['parameters']:,} stored (quantized)"
        facts.pop(TRAINED, None)
        facts.pop(VISION_PARAMS, None)
    measured = round(sum(model_size_gb(m) for m in parts.values()) * 1e9)
    facts[f"weights as loaded ({', '.join(dtypes)}; measured)"] = measured
    return facts


def _fmt(value) -> str:
    if isinstance(value, tuple):                              # (trained, total)
        return f"{value[0]:,} ({value[0] / value[1]:.1%})"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _fmt_bytes(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.2f} MB"


@dataclass
class Summary:
    key: str
    real: dict[str, object]
    loaded: dict[str, object]
    standin: bool

    def __str__(self) -> str:
        spec = registry.get(self.key)
        # The repo id goes on a line of its own: as a column header it made the table wrap in a notebook.
        loaded = "loaded: stand-in" if self.standin else "loaded"
        rows = [("", "real (computed)", loaded)]
        for label in dict.fromkeys([*self.real, *self.loaded]):
            fmt = _fmt_bytes if label.startswith("weights") else _fmt
            rows.append((label, *(fmt(d[label]) if label in d else "" for d in (self.real, self.loaded))))
        w = [max(len(r[i]) for r in rows) for i in range(3)]
        lines = [f"{spec.key} = {spec.repo_id}; the real column is computed from its architecture"]
        lines += [f"{a:<{w[0]}}  {b:>{w[1]}}  {c:>{w[2]}}".rstrip() for a, b, c in rows]
        if self.standin:
            lines.append("Stand-in: tiny and random, the real classes; where a row differs, the stand-in's is smaller.")
        return "\n".join(lines)

    __repr__ = __str__


def summary(model, key: str) -> Summary:
    """Real (computed) beside loaded (read off `model`); the loaded column says whether it is a stand-in."""
    registry.get(key)
    folder = getattr(model, "name_or_path", "") or ""
    return Summary(key, real_facts(key), loaded_facts(model, key), bool(folder) and is_standin(Path(folder)))
