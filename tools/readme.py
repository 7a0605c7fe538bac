"""Regenerate the README's notebook, model, measured-size and fine-tuning memory tables from the notebook list, the
registry, the computed sizes (`vlsteps.sizes`, `vlsteps.finetune.memory`) and the committed dry-run measurements;
and vlsteps/architectures/computed.json, those computed sizes kept for `download_models.sh --list`, which then needs
no torch.

    python -m tools.readme          rewrite README.md and computed.json in place
    python -m tools.readme --check  exit 1 if either is out of date
"""
from __future__ import annotations

import json
import re
import sys

from vlsteps import architectures, registry, sizes
from vlsteps.files import atomic_write
from vlsteps.finetune import memory
from vlsteps.paths import REPO_ROOT
from vlsteps.standins import learned

from . import notebooks, size_tables

README = REPO_ROOT / "README.md"


def notebook_table() -> str:
    rows = ["| # | notebook | open | models | download | weights held at once on a GPU (computed) | "
            "fits a Colab T4 (computed) | peak RAM on a CPU, float32 / bfloat16 (measured) |",
            "|---|---|---|---|---|---|---|---|"]
    for i, nb in enumerate(notebooks.NOTEBOOKS, 1):
        ms = [m for m in nb.models if not m.optional]
        keys = ", ".join(f"`{m.key}`" + (" (optional, not in the sizes)" if m.optional else "") for m in nb.models)
        if nb.own_models:
            keys, *rest = nb.own_models
            sizes_ = " | ".join(rest)
        elif ms:
            held, n_bytes = size_tables.held_at_once(nb.name)
            ram = " / ".join(size_tables.peak_ram(held, label) for label in ("float32", "bfloat16"))
            sizes_ = (f"{sum(m.download_gb for m in ms):.1f} GB | {sizes.format_gb(n_bytes)} ({' + '.join(held)}) | "
                      f"{size_tables.fits_t4(n_bytes)} | {ram}")
        else:
            raise ValueError(f"{nb.name} uses no registry model: give it own_models in tools/notebooks.py")
        rows.append(f"| {i} | [{nb.title}]({nb.path}) | {nb.colab_badge} | {keys} | {sizes_} |")
    return "\n".join(rows)


def _goal(goal) -> str:
    """A number is a floor ("goal >= 0.90"); a string says its own goal ("< 0.99")."""
    return "" if goal is None else f" (goal {goal})" if isinstance(goal, str) else f" (goal ≥ {goal:.2f})"


def _score(value: float, goal) -> str:
    """Two decimals, or four where two would round a score across its goal (0.7975 is not "0.80 (goal >= 0.80)")."""
    text = f"{value:.2f}"
    if isinstance(goal, (int, float)) and (float(text) >= goal) != (value >= goal):
        text = f"{value:.4f}"
    return text


def offline_table() -> str:
    """One row per registry key: what its stand-in learned, its scores on held-out scenes, its training run."""
    rows = ["| model | what its stand-in learned | scores on held-out scenes (measured; goal) | training (measured) |",
            "|---|---|---|---|"]
    for key, card in registry.CARDS.items():
        rec = learned.record(key)
        if rec is None:
            rows.append(f"| `{key}` | nothing yet: random weights | - | - |")
            continue
        scores = "; ".join(f"{name} {_score(value, rec['goals'].get(name))}" + _goal(rec["goals"].get(name))
                           for name, value in rec["scores"].items())
        cpu = f"{rec['cpu_seconds']:.0f} CPU-seconds, " if "cpu_seconds" in rec else ""
        rows.append(f"| `{key}` | {rec['learned']} | {scores} | {rec['steps']:,} steps on 1 thread: {cpu}"
                    f"{rec['train_seconds']:.0f} s wall ({rec['date']}, {rec['machine']}) |")
    return "\n".join(rows)


TABLES = {"notebooks": notebook_table, "offline": offline_table, "models": size_tables.model_table,
          "measured": size_tables.measured_table, "finetune": memory.readme_table}


def render(text: str) -> str:
    for name, table in TABLES.items():
        if f"<!-- {name}:start -->" in text:
            generated = table()
            text = re.sub(rf"(<!-- {name}:start -->\n).*?(<!-- {name}:end -->)",
                          lambda m: m.group(1) + generated + "\n" + m.group(2), text, flags=re.S)
    return text


def main() -> None:
    generated = {README: render(README.read_text(encoding="utf-8")),
                 architectures.COMPUTED: json.dumps(size_tables.computed_data(), indent=1) + "\n"}
    stale = [path for path, text in generated.items() if path.read_text(encoding="utf-8") != text]
    if "--check" in sys.argv:
        if stale:
            sys.exit(f"{' and '.join(path.name for path in stale)} out of date: run `make readme`")
        return
    for path in stale:
        atomic_write(path, generated[path])


if __name__ == "__main__":
    main()
