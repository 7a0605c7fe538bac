"""Regenerate the README's notebook and model tables from the notebook list and the registry.

    python -m vlsteps.readme          rewrite README.md in place
    python -m vlsteps.readme --check  exit 1 if README.md is out of date
"""
from __future__ import annotations

import re
import sys

from . import notebooks, registry
from .models import REPO_ROOT

README = REPO_ROOT / "README.md"


def notebook_table() -> str:
    rows = ["| # | notebook | open | models | download | GPU memory | RAM (CPU, fp32) |",
            "|---|---|---|---|---|---|---|"]
    for i, nb in enumerate(notebooks.NOTEBOOKS, 1):
        ms = [m for m in nb.models if not m.optional]
        keys = ", ".join(f"`{m.key}`" for m in nb.models) or "—"
        download = sum(m.download_gb for m in ms)
        # Notebooks free one model before loading the next, so the peak is the largest one.
        gpu = max((m.gpu_gb for m in ms), default=0)
        ram = max((m.ram_gb for m in ms), default=0)
        sizes = f"{download:.1f} GB | {gpu:g} GB | {ram:g} GB" if ms else "see the notebook | | "
        rows.append(f"| {i} | [{nb.title}]({nb.path}) | {nb.colab_badge} | {keys} | {sizes} |")
    return "\n".join(rows)


def model_table() -> str:
    rows = ["| key | checkpoint | download | GPU memory (dtype) | notebooks |", "|---|---|---|---|---|"]
    for m in registry.MODELS.values():
        note = " (optional)" if m.optional else ""
        rows.append(f"| `{m.key}`{note} | [{m.repo_id}](https://huggingface.co/{m.repo_id}) | {m.download_gb:g} GB | "
                    f"{m.gpu_gb:g} GB ({m.dtype}) | {', '.join(m.notebooks)} |")
    total = sum(m.download_gb for m in registry.MODELS.values() if not m.optional)
    rows.append(f"| **all** | `scripts/download_models.sh all` | **{total:.1f} GB** | | |")
    return "\n".join(rows)


def render(text: str) -> str:
    for name, table in (("notebooks", notebook_table()), ("models", model_table())):
        text = re.sub(rf"(<!-- {name}:start -->\n).*?(<!-- {name}:end -->)",
                      lambda m: m.group(1) + table + "\n" + m.group(2), text, flags=re.S)
    return text


def main() -> None:
    text = README.read_text(encoding="utf-8")
    new = render(text)
    if "--check" in sys.argv:
        if new != text:
            sys.exit("README.md tables are out of date: run `make readme`")
        return
    README.write_text(new, encoding="utf-8")


if __name__ == "__main__":
    main()
