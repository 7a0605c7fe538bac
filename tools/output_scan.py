"""What a learner must not find in an executed notebook: library warnings, progress bars, blank output.

Progress bars are for a live session; in an executed copy (HTML, GitHub) a tqdm widget is a blank gap or "0%".
QUIET_ENV turns them off where the notebooks are executed for reading (`make run`) and for testing (nbval), so
live JupyterLab and Colab sessions keep theirs. `problems` is the check, run by both on every cell.
"""
from __future__ import annotations

import re

# huggingface_hub's bars, transformers' "Loading weights" and the retrieval set's follow it (TQDM_DISABLE would
# not: tqdm.notebook passes disable=False explicitly); clip.ipynb turns diffusers' off where it is set.
QUIET_ENV = {"HF_HUB_DISABLE_PROGRESS_BARS": "1"}
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
_PROGRESS = re.compile(r"\d+%\||\d+/\d+ \[\d|it/s\]|s/it\]")

# stderr lines a learner may see, each with the reason it cannot be avoided. Keep it short.
ALLOWED: list[tuple[re.Pattern, str]] = [
    (re.compile(r"FutureWarning: `torch\.jit\.script` is deprecated|^\s*warnings\.warn\($"),
     "Python 3.10 only (measured in its check): diffusers 0.41, the last release for 3.10, runs a "
     "@torch.jit.script decorator of its own when clip.ipynb loads the pipeline; today's torch deprecates it, "
     "and nothing in the notebook can avoid it"),
]


def _allowed(line: str) -> bool:
    return any(pattern.search(line) for pattern, _why in ALLOWED)


def _coalesced(outputs) -> list[dict]:
    """Adjacent writes to one stream as the reader sees them: one block (nbval merges them; nbclient may not)."""
    merged = []
    for out in outputs:
        if (out.get("output_type") == "stream" and merged and merged[-1].get("output_type") == "stream"
                and merged[-1].get("name") == out.get("name")):
            merged[-1] = {**merged[-1], "text": merged[-1].get("text", "") + out.get("text", "")}
        else:
            merged.append(out)
    return merged


def problems(outputs) -> list[str]:
    """One line for each thing in a cell's outputs that reads as broken; [] when the cell is clean."""
    found = []
    for out in _coalesced(outputs):
        kind = out.get("output_type")
        if kind == "stream":
            text, name = out.get("text", ""), out.get("name", "stdout")
            if not text.strip():
                found.append(f"an empty {name} stream: a blank gap ({text!r})")
                continue
            if name == "stderr":
                found += [f"stderr: {line.strip()[:160]}" for line in text.splitlines()
                          if line.strip() and not _allowed(line)]
            elif text.startswith("\n") or "\n\n\n" in text:
                found.append(f"stray blank lines in stdout: {text[:80]!r}")
        elif kind in ("display_data", "execute_result"):
            data = out.get("data", {})
            if WIDGET_VIEW in data and _PROGRESS.search(data.get("text/plain", "")):
                found.append(f"a progress-bar widget (blank in HTML): {data['text/plain'][:80]!r}")
        if kind == "stream" and _PROGRESS.search(out.get("text", "")):
            found.append(f"a progress bar in text: {out.get('text', '')[:80]!r}")
    return found
