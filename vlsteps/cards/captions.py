"""How the two captioners' stand-ins (blip-caption, vit-gpt2) learn the world: a caption per fresh training scene,
teacher-forced, AdamW; and how they are scored on held-out scenes: BLEU-4 (pycocoevalcap) and exact match against
every correct caption of the scene (`scene.captions`)."""
from __future__ import annotations

from .. import world
from ..captioner import metrics


def target(scene: world.Scene) -> str:
    """The caption said from the left/above thing: one caption per scene, so the decoder learns no coin toss
    between the two correct ones."""
    return scene.captions[0] if scene.relation in (None, "left of", "above") else scene.captions[1]


def fit(model, scenes: list[world.Scene], batch: int, lr: float, loss) -> dict:
    """AdamW over `scenes` in order, `batch` at a time, minimising loss(model, scenes of the step); fixed steps."""
    import torch
    steps = len(scenes) // batch
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.1)
    model.train()
    for step in range(steps):
        value = loss(model, scenes[step * batch:(step + 1) * batch])
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
        schedule.step()
    model.eval()
    return {"steps": steps, "batch": batch, "scenes": len(scenes), "final_loss": round(value.item(), 4)}


def score(captions: list[str], scenes: list[world.Scene]) -> dict:
    """BLEU-4 and exact match of one caption per scene against all of its correct captions."""
    refs = [s.captions for s in scenes]
    return {"BLEU-4": metrics.caption_scores(captions, refs)["BLEU-4"],
            "exact match": metrics.exact_match(captions, refs)}
