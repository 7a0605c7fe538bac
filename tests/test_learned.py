"""Learned stand-ins: each card with world training ships the weights it learned, and keeps their behaviour.

The scores are measured by the card's own `measure` (held-out world scenes, through the notebook's calls), so a
wrong normalisation, prompt format or box scale in that path fails here, as does a weight file that lost its
learning. One stand-in is retrained from scratch by the committed script, to check it still gets there.
"""
import hashlib
import inspect
import json

import pytest

from tools import learn
from vlsteps import registry, standins
from vlsteps.standins import learned

TRAINED = [card for card in registry.CARDS.values() if card.training]
# All committed weights together (the budget for committing them rather than training on first use).
MAX_LEARNED_BYTES = 30_000_000


def test_every_trained_card_ships_its_weights_and_record():
    assert TRAINED, "no card has world training"
    for card in TRAINED:
        rec = learned.record(card.key)
        assert rec is not None, f"{card.key}: no committed weights; run python -m tools.learn {card.key}"
        assert set(card.training.floors) <= set(rec["scores"]), card.key
        assert rec["train_seconds"] > 0 and rec["steps"] > 0, card.key


def test_the_committed_weights_fit_in_their_budget():
    total = sum(p.stat().st_size for p in learned.FOLDER.glob("*.safetensors"))
    assert 0 < total <= MAX_LEARNED_BYTES, total


@pytest.mark.parametrize("card", TRAINED, ids=lambda card: card.key)
def test_a_learned_stand_in_keeps_the_behaviour_it_was_committed_with(card, tmp_path):
    folder = standins.build(card, tmp_path)
    assert standins.is_learned(folder)
    scores = card.training.measure(card, folder)
    for name, floor in card.training.floors.items():
        assert scores[name] >= floor, f"{card.key}: {name} {scores[name]:.3f} fell under {floor}"
    recorded = learned.record(card.key)["scores"]
    for name, value in recorded.items():       # the record (and the README) says what the weights do
        assert scores[name] == pytest.approx(value, abs=0.02), f"{card.key}: {name}"


def _weights_digest(folder) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*.safetensors")):
        digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.mark.parametrize("card", TRAINED, ids=lambda card: card.key)
def test_every_trainer_runs_two_steps_and_saves_what_it_learned(card, tmp_path):
    """The committed weights took minutes to hours to train, so only the ViT is retrained in full; every other
    trainer is run for two steps, so a library change that breaks one fails here rather than at the next retraining."""
    folder = standins.build(card, tmp_path, trained=False)
    before = _weights_digest(folder)
    short = {name: 2 for name in inspect.signature(card.training.train).parameters if name.endswith("steps")}
    facts = card.training.train(card, folder, **short)
    assert facts["steps"] == sum(short.values()), card.key      # sdxl-turbo: its VAE's steps and its UNet's
    assert _weights_digest(folder) != before, f"{card.key}: two steps of training saved no change"


def test_a_stand_in_built_without_its_weights_is_random_and_fails_its_floors(tmp_path):
    card = registry.get("vit")
    folder = standins.build(card, tmp_path, trained=False)
    assert not standins.is_learned(folder)
    scores = card.training.measure(card, folder)
    assert scores["top-1"] < card.training.floors["top-1"] / 2      # the floor is not reachable by chance


def test_weights_for_another_structure_are_refused_with_the_command_that_retrains(tmp_path, monkeypatch):
    card = registry.get("vit")
    fake = tmp_path / "learned"
    fake.mkdir()
    (fake / "vit.safetensors").write_bytes(learned.weights_path("vit").read_bytes())
    rec = json.loads((learned.FOLDER / "vit.json").read_text())
    (fake / "vit.json").write_text(json.dumps({**rec, "structure": "0" * 16}))
    monkeypatch.setattr(learned, "FOLDER", fake)
    with pytest.raises(RuntimeError, match="python -m tools.learn vit"):
        standins.build(card, tmp_path / "out")
    assert not (tmp_path / "out" / card.folder).exists()       # nothing half-built is left


def test_retraining_the_vit_from_the_script_gets_the_same_behaviour(tmp_path):
    rec = learn.train("vit", tmp_path)
    committed = learned.record("vit")
    assert rec["steps"] == committed["steps"]
    assert rec["scores"]["top-1"] >= registry.get("vit").training.floors["top-1"]
    assert rec["scores"]["top-1"] == pytest.approx(committed["scores"]["top-1"], abs=0.03)

