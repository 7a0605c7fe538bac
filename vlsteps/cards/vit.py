"""ViT: google/vit-base-patch16-224, an image classifier (notebooks/vit.ipynb).

Its stand-in keeps the real patch size and image size, so patch grids match. It learned the procedural world
(`vlsteps.world`): its head has the world's 15 "colour shape" classes where the real one has ImageNet's 1,000."""
from __future__ import annotations

from .. import world
from .card import VISION, Card, Shape, WorldTraining, Workload, random_pixels, vit_tokens
from .common import pixels, seeded


def build(spec, out):
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor
    id2label = dict(enumerate(world.LABELS))
    config = ViTConfig(image_size=224, patch_size=16, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                       intermediate_size=64, id2label=id2label, label2id={v: k for k, v in id2label.items()})
    seeded()
    ViTForImageClassification(config).save_pretrained(out)
    ViTImageProcessor(size={"height": 224, "width": 224}, image_mean=[0.5] * 3,
                      image_std=[0.5] * 3).save_pretrained(out)


def _labels(model, scenes):
    import torch
    return torch.tensor([model.config.label2id[s.things[0].label] for s in scenes])


def train(card, folder, steps: int = 1000, batch: int = 64) -> dict:
    """Classify one-shape scenes by "colour shape": cross-entropy, AdamW, fresh scenes every step."""
    import torch
    from transformers import ViTForImageClassification, ViTImageProcessor
    model = ViTForImageClassification.from_pretrained(folder)
    processor = ViTImageProcessor.from_pretrained(folder)
    scenes = world.scenes(steps * batch, 0, "train", count=1, held_out=False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for step in range(steps):
        part = scenes[step * batch:(step + 1) * batch]
        loss = model(pixel_values=pixels(processor, [world.draw(s, 224) for s in part]),
                     labels=_labels(model, part)).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.save_pretrained(folder)
    return {"steps": steps, "batch": batch, "scenes": len(scenes), "final_loss": round(loss.item(), 4)}


def measure(card, folder, n: int = 300) -> dict:
    """Top-1 "colour shape" on held-out one-shape scenes, as the notebook classifies: processor, logits, argmax."""
    import torch
    from transformers import ViTForImageClassification, ViTImageProcessor
    model = ViTForImageClassification.from_pretrained(folder).eval()
    processor = ViTImageProcessor.from_pretrained(folder)
    scenes = world.scenes(n, 0, "test", count=1, held_out=False)
    pixel_values = processor(images=[world.draw(s, 224) for s in scenes], return_tensors="pt").pixel_values
    with torch.no_grad():
        predicted = model(pixel_values=pixel_values).logits.argmax(-1)
    return {"top-1": (predicted == _labels(model, scenes)).float().mean().item()}


def summary(config) -> dict[str, object]:
    return {"encoder": Shape(config.num_hidden_layers, config.hidden_size),
            "image tokens (patches + [CLS])": vit_tokens(config), "classes": config.num_labels}


def classify(card, models, device, dtype, g) -> int:
    models[None](pixel_values=random_pixels(g, device, dtype, 1, 3, 224, 224))
    return 0


CARDS = [
    Card("vit", "google/vit-base-patch16-224", 0.35, "float32", ("vit",), standin=build, summary=summary,
         workload=Workload("classify 1 image (224x224)", classify), required=VISION,
         training=WorldTraining('the "colour shape" class of a one-shape scene (15 classes)', train, measure,
                                goals={"top-1": 0.9}, floors={"top-1": 0.9})),
]
