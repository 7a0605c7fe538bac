"""Model sizes computed from the real architectures (`vlsteps.architectures`), never typed in.

Each registry entry is built on the meta device from its checkpoint's config (no memory, no download), weights
tied as `from_pretrained` ties them, and its parameters counted. Weight bytes per dtype follow from the count;
for 8-bit and 4-bit, as bitsandbytes quantizes: the weights of `nn.Linear` layers shrink, the rest (embeddings,
norms, biases, convolutions, the output head) stays 16-bit. Memory for activations, the KV cache and the
framework comes on top: the full-size dry runs measure that (`make sizes`, tools/dryrun.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from . import architectures, registry

GB = 1e9
T4_GB = 15.0       # a Colab T4's memory as Colab reports it
DTYPES = ("float32", "float16", "bfloat16", "int8", "4-bit")
_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}
NF4_BLOCK = 64     # bitsandbytes 4-bit: one float32 absmax per block of 64 weights (no double quantization)

# What each notebook holds in memory at once, read from its cells (a model is freed with `del` +
# `vlsteps.free_memory()` before the next is loaded). A notebook not listed holds one model at a time.
HELD_TOGETHER: dict[str, list[tuple[str, ...]]] = {
    "clip": [("clip", "sdxl-turbo")],                       # CLIP stays loaded while SDXL-Turbo draws the retrieval set
    "blip": [("clip", "blip-itm"), ("clip", "vit-gpt2"),     # CLIP stays for re-ranking and CLIPScore
             ("clip", "blip-caption"), ("clip", "kosmos-2")],
    # The service keeps every model it has loaded; the notebook calls each of these routes.
    "serve": [("clip", "kosmos-2", "blip2", "vit-gpt2", "blip-caption")],
}


@dataclass(frozen=True)
class Counts:
    params: int        # unique parameters (tied weights once)
    linear: int        # of which weights of nn.Linear layers that bitsandbytes would quantize
    rows: int          # their output rows (8-bit keeps one float32 scale per row)


def _hf_config(d: dict):
    import transformers
    d = dict(d)
    d.pop("architectures", None)
    return transformers.AutoConfig.for_model(d.pop("model_type"), **d)


def _unties_head(d: dict) -> bool:
    """A checkpoint saved with tie_word_embeddings false stores its own output head; from_pretrained keeps it."""
    return d.get("tie_word_embeddings") is False or any(
        isinstance(v, dict) and _unties_head(v) for v in d.values())


def _is_module_config(d: dict) -> bool:
    return "_class_name" not in d or not d["_class_name"].endswith("Scheduler")


def build(key: str, component: str | None = None, *, device: str = "meta", dtype=None):
    """The model (or a pipeline's component) at full size from its real architecture: on the meta device it takes
    no memory; on a real device its weights are those its class initialises (random)."""
    import torch
    arch = registry.get(key).architecture
    names = architectures.components(arch)
    if names and component not in names:
        raise ValueError(f"{key} is a pipeline: pass one of its components {names}")
    d = architectures.config(arch)[component] if names else architectures.config(arch)
    dtype = dtype or torch.float32
    if device == "meta":
        from accelerate import init_empty_weights
        context = init_empty_weights()
    else:
        context = torch.device(device)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with context:
            if "_class_name" in d:
                import diffusers
                model = getattr(diffusers, d["_class_name"]).from_config(d)
            else:
                import transformers
                model = getattr(transformers, d["architectures"][0])._from_config(_hf_config(d), dtype=dtype)
    finally:
        torch.set_default_dtype(previous)
    if "_class_name" not in d:  # outside init_empty_weights, which would turn a tied weight into a new one
        model.tie_weights()
        head = model.get_output_embeddings()
        if head is not None and _unties_head(d) and head.weight is model.get_input_embeddings().weight:
            head.weight = torch.nn.Parameter(torch.empty_like(head.weight))
    return model.eval()


def module_components(key: str) -> list[str | None]:
    """The parts of a registry entry that hold weights: [None] for a single model, a pipeline's modules."""
    arch = registry.get(key).architecture
    names = architectures.components(arch)
    if not names:
        return [None]
    return [n for n in names if _is_module_config(architectures.config(arch)[n])]


@cache
def counts(key: str, component: str | None = None) -> Counts:
    import torch
    model = build(key, component)
    skip = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    params = {id(p): p.numel() for p in model.parameters()}
    linear = {id(m.weight): m.weight.shape for m in model.modules()
              if isinstance(m, torch.nn.Linear) and m is not skip}
    return Counts(sum(params.values()), sum(r * c for r, c in linear.values()), sum(r for r, _ in linear.values()))


def component_param_counts(key: str) -> dict[str, int]:
    """Parameters per pipeline component ({} for a single model)."""
    return {c: counts(key, c).params for c in module_components(key) if c is not None}


def param_count(key: str, component: str | None = None) -> int:
    """Parameters of the real checkpoint (a pipeline: all its components, or the one named)."""
    if component is not None or module_components(key) == [None]:
        return counts(key, component).params
    return sum(component_param_counts(key).values())


def _bytes(c: Counts, dtype: str) -> int:
    if dtype in _BYTES:
        return c.params * _BYTES[dtype]
    rest = (c.params - c.linear) * 2
    if dtype == "int8":
        return rest + c.linear + 4 * c.rows
    if dtype == "4-bit":
        return rest + c.linear // 2 + 4 * -(-c.linear // NF4_BLOCK)
    raise ValueError(f"Unknown dtype {dtype!r}; known: {', '.join(DTYPES)}")


def weight_bytes(key: str, dtype: str, component: str | None = None) -> int:
    """Bytes of the weights alone at `dtype` (one of DTYPES), computed from the parameter count."""
    if component is not None or module_components(key) == [None]:
        return _bytes(counts(key, component), dtype)
    return sum(_bytes(counts(key, c), dtype) for c in module_components(key))


def notebook_sets(name: str) -> list[tuple[str, ...]]:
    """Every set of registry keys the notebook holds at once (a key alone where nothing else stays loaded)."""
    keys = [m.key for m in registry.for_notebook(name)]
    together = HELD_TOGETHER.get(name, [])
    alone = [(k,) for k in keys if not any(k in s for s in together)]
    return together + alone


def notebook_weight_bytes(name: str, dtype: str | None = None, *,
                          optional: bool = False) -> tuple[tuple[str, ...], int]:
    """The largest set a notebook holds at once and its weight bytes: at `dtype`, or at each model's notebook
    dtype (the registry's, on a GPU) when None. Optional models count only with optional=True."""
    best: tuple[tuple[str, ...], int] = ((), 0)
    for keys in notebook_sets(name):
        if not optional and any(registry.get(k).optional for k in keys):
            continue
        total = sum(weight_bytes(k, dtype or registry.get(k).dtype) for k in keys)
        best = max(best, (keys, total), key=lambda b: b[1])
    return best


def format_params(n: int) -> str:
    """86.6 M, 3.75 B: three significant figures, as model cards write them."""
    value, unit = (n / 1e9, "B") if n >= 1e9 else (n / 1e6, "M")
    return f"{value:.3g} {unit}"


def format_gb(n_bytes: float) -> str:
    return f"{n_bytes / GB:.2f} GB" if n_bytes < 10 * GB else f"{n_bytes / GB:.1f} GB"
