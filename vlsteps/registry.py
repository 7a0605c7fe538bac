"""The registry: every checkpoint the notebooks use, by key, as its card (`vlsteps.cards`).

The README's tables, `tools/download_models.sh`, the stand-in builder, the computed sizes, the model summaries,
the dry runs and the service all read the cards, so a checkpoint is described once: adding a model is adding its
card to its family's module (and to CARDS below if the family is new).
"""
from __future__ import annotations

from .cards import blip, blip2, clip, kosmos2, qwen_vl, sdxl, vilt, vit, vit_gpt2
from .cards.card import Card

CARDS: dict[str, Card] = {card.key: card for family in (vit, clip, sdxl, vilt, blip, vit_gpt2, kosmos2, blip2, qwen_vl)
                          for card in family.CARDS}


def get(key: str) -> Card:
    """Look a model up by key, naming the known keys when it is not one."""
    try:
        return CARDS[key]
    except KeyError:
        raise KeyError(f"Unknown model key {key!r}. Known keys: {', '.join(CARDS)}") from None


def for_notebook(name: str) -> list[Card]:
    return [card for card in CARDS.values() if name in card.notebooks]
