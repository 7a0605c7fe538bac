"""The size tables shown to users (README, each notebook's header), generated from computed sizes
(`vlsteps.sizes`) and the committed dry-run measurements (vlsteps/architectures/measured.json), so no size is
typed by hand and each says whether it was computed or measured."""
from __future__ import annotations

import json
import re
from functools import cache

from vlsteps import registry, sizes
from vlsteps.architectures import MEASURED as RESULTS

START, END = "<!-- sizes:start -->", "<!-- sizes:end -->"
_BLOCK = re.compile(re.escape(START) + r".*?" + re.escape(END), re.S)
_LEGACY = re.compile(r"^\| model \| checkpoint \|.*\n(?:^\|.*(?:\n|$))*", re.M)   # a hand-typed table of old
T4_SPARE_GB = 2.0   # what "fits a T4" leaves for activations and the CUDA context besides the weights


@cache
def measured() -> tuple[str, dict]:
    """The machine the tables quote (the most recently measured one without a GPU) and its entry."""
    machines = json.loads(RESULTS.read_text(encoding="utf-8"))["machines"] if RESULTS.exists() else {}
    cpu_only = [(entry.get("date", ""), name) for name, entry in machines.items() if entry.get("gpu") == "none"]
    if not cpu_only:
        return "", {"results": {}}
    _, name = max(cpu_only)
    return name, machines[name]


def result(key: str, label: str) -> dict:
    return measured()[1]["results"].get(key, {}).get(label, {"status": "not measured yet"})


def _status(r: dict) -> str:
    if r["status"] == "does not fit":
        return f"does not fit (needs {r['needs_gb']:g} GB, {r['available_gb']:g} GB free)"
    return r["status"]


def peak_ram(keys: tuple[str, ...], label: str) -> str:
    """Peak RSS of a set of models held together: the baseline once plus each one's measured share."""
    rs = [result(k, label) for k in keys]
    bad = next((r for r in rs if "peak_rss_gb" not in r), None)
    if bad is not None:
        return _status(bad)
    base = max(r["rss_baseline_gb"] for r in rs)
    peak = f"{base + sum(r['peak_rss_gb'] - r['rss_baseline_gb'] for r in rs):.1f} GB"
    finished = all(r["status"] == "measured" for r in rs)
    return peak if finished else f"at least {peak} (a step did not finish in time)"


def fits_t4(n_bytes: int) -> str:
    return "yes" if n_bytes / sizes.GB + T4_SPARE_GB <= sizes.T4_GB else "no"


def weights_at(key: str, dtype: str | None = None) -> str:
    m = registry.get(key)
    return f"{sizes.format_gb(sizes.weight_bytes(key, dtype or m.dtype))} ({dtype or m.dtype})"


def held_at_once(name: str) -> tuple[tuple[str, ...], int]:
    return sizes.notebook_weight_bytes(name)


def notebook_header(name: str) -> str:
    """The size table of a notebook's first cell (between the sizes markers); "" for a notebook without models."""
    specs = registry.for_notebook(name)
    if not specs:
        return ""
    rows = ["| model | checkpoint | parameters | download | weights on a GPU (dtype) | peak RAM on a CPU, float32 |",
            "|---|---|---|---|---|---|"]
    for m in specs:
        note = " (optional)" if m.optional else ""
        rows.append(f"| `{m.key}`{note} | [{m.repo_id}](https://huggingface.co/{m.repo_id}) | "
                    f"{sizes.format_params(sizes.param_count(m.key))} | {m.download_gb:g} GB | {weights_at(m.key)} | "
                    f"{peak_ram((m.key,), 'float32')} |")
    keys, n_bytes = held_at_once(name)
    together = " + ".join(f"`{k}`" for k in keys)
    rows += ["", f"Held in memory at once, at most: {together}, {sizes.format_gb(n_bytes)} of weights at the GPU "
             "dtypes "
             f"(computed; fits a Colab T4's {sizes.T4_GB:g} GB with {T4_SPARE_GB:g} GB to spare for activations: "
             f"{fits_t4(n_bytes)}, computed); on a CPU in float32, peak RAM: {_peak_phrase(keys)}. Parameters "
             f"and weights are computed from the real architecture (`vlsteps.sizes`), also on stand-ins."]
    return "\n".join(rows)


def _peak_phrase(keys: tuple[str, ...]) -> str:
    peak = peak_ram(keys, "float32")
    if not peak.endswith(" GB"):
        return peak
    return f"{peak} (measured on {measured()[0]}, with untrained weights of the real size)"


def sync_header(name: str, text: str) -> str:
    """`text` (a notebook's first cell) with its size table regenerated: between the markers, in place of an
    old hand-typed table, or appended; unchanged for a notebook without models and without markers."""
    header = notebook_header(name)
    if _BLOCK.search(text):
        return _BLOCK.sub(lambda _: f"{START}\n{header}\n{END}", text, count=1)
    if not header:
        return text
    block = f"{START}\n{header}\n{END}\n"
    if _LEGACY.search(text):
        return _LEGACY.sub(lambda _: block, text, count=1)
    return text.rstrip("\n") + "\n\n" + block.rstrip("\n")


def header_block(text: str) -> str | None:
    """What stands between the sizes markers of a first cell (None without markers)."""
    found = _BLOCK.search(text)
    return found.group(0)[len(START) + 1:-len(END) - 1] if found else None


def model_table() -> str:
    rows = ["| key | checkpoint | parameters | download | float32 | float16 / bfloat16 | 8-bit | 4-bit | "
            "notebook dtype on a GPU | notebooks |", "|---|---|---|---|---|---|---|---|---|---|"]
    for m in registry.CARDS.values():
        note = " (optional)" if m.optional else ""
        w = [sizes.format_gb(sizes.weight_bytes(m.key, d)) for d in ("float32", "float16", "int8", "4-bit")]
        rows.append(f"| `{m.key}`{note} | [{m.repo_id}](https://huggingface.co/{m.repo_id}) | "
                    f"{sizes.format_params(sizes.param_count(m.key))} | {m.download_gb:g} GB | {' | '.join(w)} | "
                    f"{m.dtype} | {', '.join(m.notebooks)} |")
    total = sum(m.download_gb for m in registry.CARDS.values() if not m.optional)
    left_out = ", ".join(f"`{m.key}` ({m.download_gb:g} GB)" for m in registry.CARDS.values() if m.optional)
    rows.append(f"| **all** | `tools/download_models.sh all`: every model above except the optional {left_out} "
                f"(it says so when it starts) | | **{total:.1f} GB** | | | | | | |")
    return "\n".join(rows)


def computed_data() -> dict:
    """What vlsteps/architectures/computed.json holds: every key's parameters and weight bytes per dtype."""
    return {key: {"params": sizes.param_count(key),
                  "weight_bytes": {d: sizes.weight_bytes(key, d) for d in sizes.DTYPES}} for key in registry.CARDS}


def measured_table() -> str:
    machine, entry = measured()
    rows = [f"Measured on {machine or 'no machine yet'}" + (f", {entry['date']}" if machine else "")
            + " (`make sizes`): each model built at full size with untrained weights and run once on its notebook's "
            "workload, in its own process." + _load_note(entry), "",
            "| key | workload | peak RAM, float32 | peak RAM, bfloat16 | seconds per step, float32 | "
            "seconds per step, bfloat16 | build, float32 |", "|---|---|---|---|---|---|---|"]
    for key, card in registry.CARDS.items():
        f32, b16 = result(key, "float32"), result(key, "bfloat16")
        build = f"{f32['build_s']:.3g} s" if "build_s" in f32 else "—"
        rows.append(f"| `{key}` | {card.workload.text} | {peak_ram((key,), 'float32')} "
                    f"| {peak_ram((key,), 'bfloat16')} | {_seconds(f32)} | {_seconds(b16)} | {build} |")
    return "\n".join(rows)


def _seconds(r: dict) -> str:
    if r["status"] != "measured":
        return "—"
    per_token = f" ({r['s_per_new_token']:.3g} per token)" if r.get("s_per_new_token") else ""
    return f"{r['step_s']:.3g}{per_token}"


def _load_note(entry: dict) -> str:
    loads = [r["load_avg_1m"] for by_dtype in entry["results"].values() for r in by_dtype.values()
             if "load_avg_1m" in r]
    if not loads:
        return ""
    return (f" Other processes shared the {entry['cores']} cores (1-minute load average {min(loads):g} to "
            f"{max(loads):g} at the end of each run): the seconds are upper bounds.")
