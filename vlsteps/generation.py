"""How much text a notebook lets a model write: on a stand-in every token is noise, so a few are enough.

    max_new_tokens=vlsteps.token_budget(path, 30)     30 on the real checkpoint, STANDIN_TOKENS on a stand-in
    print(vlsteps.standin_note(path))                 said once, in the setup cell
"""
from __future__ import annotations

from pathlib import Path

from .standins import is_standin

STANDIN_TOKENS = 8


def token_budget(path: Path, tokens: int) -> int:
    """`tokens` for a real checkpoint; at most STANDIN_TOKENS for a stand-in (its text only shows the shapes)."""
    return min(tokens, STANDIN_TOKENS) if is_standin(path) else tokens


def standin_note(*paths: Path) -> str:
    """One line for the setup cell: which folders are stand-ins and what that means for the text below."""
    standins = [Path(p).name for p in paths if is_standin(p)]
    if not standins:
        return "real checkpoints: " + ", ".join(Path(p).name for p in paths)
    return (f"STAND-IN weights ({', '.join(standins)}): tiny and random, so every generated text below is noise, "
            f"cut to {STANDIN_TOKENS} new tokens; shapes and by-hand checks still hold. The notes 'With the real "
            "checkpoint' say what the real model shows. Download it with scripts/download_models.sh.")
