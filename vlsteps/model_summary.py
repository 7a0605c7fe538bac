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
from .cards.card import Card
from .device import model_size_gb, param_count
from .standins import is_learned, is_standin

# What BLIP-2 (and InstructBLIP, built the same way) trains; the image encoder and the LLM stay frozen.
BLIP2_TRAINED = ("qformer", "query_tokens", "language_projection")
TRAINED = "trained: Q-Former, queries, projection"
VISION_PARAMS = "  of which vision encoder"


def _params(part) -> int:
    return part.numel() if hasattr(part, "numel") else param_count(part)   # a tied weight counts once


def _trained_share(model) -> tuple[int, int] | None:
    """(trained, total) parameters for a model whose training froze some parts; None for the others."""
    if not all(hasattr(model, name) for name in BLIP2_TRAINED):
        return None
    return sum(_params(getattr(model, name)) for name in BLIP2_TRAINED), param_count(model)


def _facts(card: Card, parts: dict) -> dict[str, object]:
    """parts: {None: model} for one model, {component: module} for a pipeline (whose card's summary reads
    {component: config}); the card's rows come after the parameter counts."""
    if None not in parts:
        facts = {"parameters": sum(param_count(m) for m in parts.values())}
        facts |= {f"  of which {name}": param_count(m) for name, m in parts.items()}
        return facts | card.summary({name: m.config for name, m in parts.items()})
    model = parts[None]
    facts = {"parameters": param_count(model)}
    visual = getattr(getattr(model, "model", None), "visual", None)       # Qwen-VL's vision encoder
    if visual is not None:
        facts[VISION_PARAMS] = param_count(visual)
    share = _trained_share(model)
    if share is not None:
        facts[TRAINED] = share
    return facts | card.summary(model.config)


def _parts(model, key: str) -> dict:
    return {c: (model if c is None else getattr(model, c)) for c in sizes.module_components(key)}


@cache
def real_facts(key: str) -> dict[str, object]:
    """The real checkpoint's facts, computed from its architecture on the meta device."""
    facts = _facts(registry.get(key), {c: sizes.build(key, c) for c in sizes.module_components(key)})
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
    facts = _facts(registry.get(key), parts)
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
    learned: bool = False     # a stand-in that learned the procedural world (vlsteps.standins.learned)

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
            what = "trained on shapes" if self.learned else "tiny and random"   # the world, vlsteps.world
            lines.append(f"Stand-in: {what}, the real classes; where a row differs, the stand-in's is smaller.")
        return "\n".join(lines)

    __repr__ = __str__


def summary(model, key: str) -> Summary:
    """Real (computed) beside loaded (read off `model`); the loaded column says whether it is a stand-in."""
    registry.get(key)
    folder = getattr(model, "name_or_path", "") or ""
    standin = bool(folder) and is_standin(Path(folder))
    return Summary(key, real_facts(key), loaded_facts(model, key), standin, standin and is_learned(Path(folder)))
