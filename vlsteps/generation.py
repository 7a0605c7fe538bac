"""How much text a notebook lets a model write: on a stand-in every token is noise, so a few are enough.

    max_new_tokens=vlsteps.token_budget(path, 30)     30 on the real checkpoint, STANDIN_TOKENS on a stand-in

That the text is noise is said once per model, by the stand-in banner `vlsteps.model_dir` shows.
"""
from __future__ import annotations

from pathlib import Path

from .standins import is_standin

STANDIN_TOKENS = 8


def token_budget(path: Path, tokens: int) -> int:
    """`tokens` for a real checkpoint; at most STANDIN_TOKENS for a stand-in (its text only shows the shapes)."""
    return min(tokens, STANDIN_TOKENS) if is_standin(path) else tokens
