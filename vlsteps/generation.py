"""How much text a notebook lets a model write: on a random-weight stand-in every token is noise, so a few are
enough; a stand-in that learned the procedural world writes whole answers and captions, as the real checkpoint.

    max_new_tokens=vlsteps.token_budget(path, 30)     30 on the real checkpoint, STANDIN_TOKENS on a random stand-in

That the text is noise is said once per model, by the stand-in banner `vlsteps.model_dir` shows.
"""
from __future__ import annotations

from pathlib import Path

from .standins import is_learned, is_standin

STANDIN_TOKENS = 8


def token_budget(path: Path, tokens: int) -> int:
    """`tokens` for a real checkpoint or a learned stand-in; at most STANDIN_TOKENS for a random-weight stand-in
    (its text only shows the shapes)."""
    return min(tokens, STANDIN_TOKENS) if is_standin(path) and not is_learned(path) else tokens
