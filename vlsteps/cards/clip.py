"""CLIP: openai/clip-vit-large-patch14, images and text in one space (notebooks/clip.ipynb, blip, serve).

Its stand-in has the real CLIPModel/CLIPProcessor classes, the real image size (224) and preprocessing, and the
real 768-d shared space, over small towers. It learned the procedural world (`vlsteps.world`) contrastively, as
CLIP learned the web: world scenes against their captions and labels. Two sizes differ from the real ones, for
training: patches of 28 pixels, not 14 (8x8 + [CLS] = 65 image tokens, not 257: a quarter of the cost), and the
tokenizer's 3,000 trained tokens as the vocabulary, not 49,408 (the real size would add 49,408 x 64 embedding rows
no text maps to, 6 MB in float16, over the committed weights' budget)."""
from __future__ import annotations

from .. import architectures, world
from .card import VISION_TEXT, Card, Shape, WorldTraining, Workload, random_pixels, vit_tokens
from .common import pixels, seeded

# With the real patch size (14: 257 tokens an image) 600 steps took 17 minutes and named the shape of 59 % of
# one-shape scenes; patches of 28 (65 tokens) cost a quarter as much.
PATCH = 28
VISION_WIDTH = dict(hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=2)
TEXT_WIDTH = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4)
# How web alt-text says what a picture shows, as the stand-in saw it in training: a caption or a label, bare or
# in a sentence. The notebook's other templates ("a close-up photo of a {}.", ...) hold words it never saw.
FRAMES = ("{}", "a photo of {}.", "an image of {}.")


def build(spec, out):
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTextConfig, CLIPVisionConfig

    from .tiny_tokenizers import clip_tokenizer
    projection_dim = architectures.config(spec.architecture)["projection_dim"]
    tok = clip_tokenizer()
    text = CLIPTextConfig(vocab_size=len(tok), max_position_embeddings=tok.model_max_length,
                          projection_dim=projection_dim, bos_token_id=tok.bos_token_id,
                          eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, **TEXT_WIDTH)
    vision = CLIPVisionConfig(image_size=224, patch_size=PATCH, projection_dim=projection_dim, **VISION_WIDTH)
    config = CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=projection_dim)
    seeded()
    CLIPModel(config).save_pretrained(out)
    # The real checkpoint's preprocessing: shortest edge 224 (bicubic), center crop 224, OpenAI mean/std.
    image_processor = CLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224})
    CLIPProcessor(image_processor=image_processor, tokenizer=tok).save_pretrained(out)


def texts(scene: world.Scene) -> list[str]:
    """Every text that describes the scene in training: its captions, and a one-shape scene's label ("red circle",
    "a red circle"), each bare or framed."""
    phrases = list(scene.captions)
    if len(scene.things) == 1:
        phrases += [scene.things[0].label, f"a {scene.things[0].label}"]
    return [frame.format(p) for p in phrases for frame in FRAMES]


def _loss(model, pixels, ids, mask, match):
    """CLIP's symmetric cross-entropy, with every correct pair of the batch as a target (two scenes of one batch
    may share a text: "red circle")."""
    import torch
    image = torch.nn.functional.normalize(model.get_image_features(pixel_values=pixels).pooler_output, dim=-1)
    text = torch.nn.functional.normalize(model.get_text_features(input_ids=ids, attention_mask=mask).pooler_output,
                                         dim=-1)
    logits = model.logit_scale.exp() * image @ text.T
    target = match / match.sum(1, keepdim=True)
    target_t = match.T / match.T.sum(1, keepdim=True)
    return -((target * logits.log_softmax(1)).sum(1).mean() + (target_t * logits.T.log_softmax(1)).sum(1).mean()) / 2


def train(card, folder, steps: int = 900, batch: int = 64) -> dict:
    """Contrastive training on fresh world scenes (held_out=False: every colour+shape pair), one random text of
    each scene's `texts` a step; AdamW with a one-cycle learning rate."""
    import numpy as np
    import torch
    from transformers import CLIPModel, CLIPProcessor
    model = CLIPModel.from_pretrained(folder)
    processor = CLIPProcessor.from_pretrained(folder)
    # Half of each batch has one shape (the labels' scenes), half one or two (the captions' scenes).
    half = steps * batch // 2
    scenes = [s for pair in zip(world.scenes(half, 0, "train", count=1, held_out=False),
                                world.scenes(half, 0, "train", held_out=False)) for s in pair]
    rng = np.random.default_rng(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=2e-3, total_steps=steps, pct_start=0.1)
    model.train()
    for step in range(steps):
        chunk = scenes[step * batch:(step + 1) * batch]
        options = [texts(s) for s in chunk]
        chosen = [o[rng.integers(len(o))] for o in options]
        match = torch.tensor([[c in o for c in chosen] for o in options], dtype=torch.float32)
        images = pixels(processor.image_processor, [world.draw(s, 224) for s in chunk])
        enc = processor.tokenizer(chosen, padding=True, return_tensors="pt")
        loss = _loss(model, images, enc.input_ids, enc.attention_mask, match)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    model.save_pretrained(folder)
    return {"steps": steps, "batch": batch, "scenes": len(scenes), "final_loss": round(loss.item(), 4)}


def zero_shot(embedder, scenes, templates) -> float:
    """Top-1 "colour shape" of one-shape scenes among world.LABELS, the notebook's way: `prompt_ensemble` of the
    labels over `templates` (bare names: ["{}"]), the nearest class vector."""
    import numpy as np
    classes = embedder.prompt_ensemble(world.LABELS, templates)
    predicted = (embedder.images([world.draw(s, 224) for s in scenes]) @ classes.T).argmax(1)
    return float(np.mean([world.LABELS[p] == s.things[0].label for p, s in zip(predicted, scenes)]))


def text_to_image(embedder, scenes) -> float:
    """R@1: each scene's first caption as a query over all the scenes' images; a hit when the best image is one
    the query describes (two scenes may share a caption)."""
    import numpy as np
    queries = [s.captions[0] for s in scenes]
    best = (embedder.texts(queries) @ embedder.images([world.draw(s, 224) for s in scenes]).T).argmax(1)
    return float(np.mean([q in scenes[b].captions for q, b in zip(queries, best)]))


def measure(card, folder, n: int = 200) -> dict:
    """On held-out test scenes, through `ClipEmbedder` as the notebook calls it: zero-shot labels of one-shape
    scenes with bare names, one template and the notebook's template ensemble; text->image R@1 over scenes of one
    or two shapes."""
    from ..embed import TEMPLATES, ClipEmbedder
    embedder = ClipEmbedder.from_pretrained(folder, device="cpu", batch_size=50)
    one = world.scenes(n, 0, "test", count=1, held_out=False)
    return {"zero-shot, bare names": zero_shot(embedder, one, ["{}"]),
            "zero-shot, 'a photo of a {}.'": zero_shot(embedder, one, ["a photo of a {}."]),
            "zero-shot, template ensemble": zero_shot(embedder, one, TEMPLATES),
            "text->image R@1": text_to_image(embedder, world.scenes(n, 0, "test", held_out=False))}


def summary(config) -> dict[str, object]:
    v, t = config.vision_config, config.text_config
    return {"image tower": Shape(v.num_hidden_layers, v.hidden_size),
            "text tower": Shape(t.num_hidden_layers, t.hidden_size),
            "shared space (dimensions)": config.projection_dim, "vocabulary": t.vocab_size,
            "image tokens (patches + [CLS])": vit_tokens(v), "text tokens (max)": t.max_position_embeddings}


def embed(card, models, device, dtype, g) -> int:
    models[None].get_image_features(pixel_values=random_pixels(g, device, dtype, 8, 3, 224, 224))
    return 0


CARDS = [
    Card("clip", "openai/clip-vit-large-patch14", 1.7, "float16", ("clip", "blip", "serve"), standin=build,
         summary=summary, workload=Workload("embed 8 images (the notebook's CPU batch)", embed),
         required=VISION_TEXT,
         training=WorldTraining("zero-shot \"colour shape\" labels of one-shape scenes; text->image search",
                                train, measure,
                                goals={"zero-shot, template ensemble": 0.9, "text->image R@1": 0.7},
                                floors={"zero-shot, bare names": 0.93, "zero-shot, 'a photo of a {}.'": 0.93,
                                        "zero-shot, template ensemble": 0.93, "text->image R@1": 0.8})),
]
