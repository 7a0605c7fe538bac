"""Kosmos-2: microsoft/kosmos-2-patch14-224, grounded captions (notebooks/blip.ipynb; served, the default).

Its stand-in: a CLIP-style vision tower (224 px), 64 latent image queries, and the XLM-R tokenizer grown by
Kosmos2Processor's 11 tag tokens and 1,024 <patch_index_*> tokens (a 32 x 32 grid for boxes), so grounding markup
round-trips exactly as with the real checkpoint. It is trained on the procedural world (`vlsteps.world`) to
continue the "<grounding>An image of" prompt with each shape as `<phrase> a small red circle</phrase>` followed
by its box as two patch-index tokens, as the real model marks what it names.

Changed from the real sizes for training on one CPU thread: 28 px patches (an 8 x 8 grid: one patch per latent
query, where 14 px gives 256) and widths of 64. Before training, the weights start from the grid's geometry
(`_geometric_start`): each latent query looks at its own patch, and the patch-index tokens' embeddings hold
the position of their cell, so boxes are learned as positions rather than as 1,024 unrelated words. During
training, heads on the 64 image tokens learn what each patch shows (`world.patch_labels`), and two shapes are
named in one order (`grounded_text`)."""
from __future__ import annotations

import math

from .. import architectures, world
from ..boxes import iou
from ..kosmos_boxes import entities_to_boxes
from .card import VISION_TEXT, Card, Shape, WorldTraining, Workload, generate, random_ids, random_pixels
from .common import harden_lm_head, patch_heads, patch_loss, patch_truth, seeded

LATENT_QUERIES = 64   # == the image positions Kosmos2Processor reserves; if they differ the image is misplaced
PROMPT = "<grounding>An image of"   # the served caption continues it, as blip.ipynb's does
PATCH, WIDTH = 28, 64
# Eager attention, as blip.ipynb loads it: transformers 5.20 to 5.22 (5.20.2 is the last for Python 3.10) mark the
# image-to-text projection's attention causal, and under SDPA its 64 queries then see only the first 64 of the
# tokens they should read (the boxes of two-shape scenes fell from 1.00 to 0.70). Eager has no such flag.
ATTENTION = "eager"


def build(spec, out):
    from transformers import (CLIPImageProcessor, Kosmos2Config, Kosmos2ForConditionalGeneration, Kosmos2Processor,
                              Kosmos2TextConfig, Kosmos2VisionConfig)

    from .tiny_tokenizers import xlmr_tokenizer
    # Real: use_square_size -> the photo is stretched to 224 x 224 (not cropped), so 0..1 boxes map back.
    image_processor = CLIPImageProcessor(size={"height": 224, "width": 224}, crop_size={"height": 224, "width": 224},
                                         do_center_crop=True)
    processor = Kosmos2Processor(image_processor=image_processor, tokenizer=xlmr_tokenizer())
    tok = processor.tokenizer
    text = Kosmos2TextConfig(vocab_size=len(tok), max_position_embeddings=512, embed_dim=WIDTH, layers=2,
                             ffn_dim=2 * WIDTH, attention_heads=4, pad_token_id=tok.pad_token_id,
                             bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    vision = Kosmos2VisionConfig(image_size=224, patch_size=PATCH, hidden_size=WIDTH, intermediate_size=2 * WIDTH,
                                 num_hidden_layers=2, num_attention_heads=4)
    config = Kosmos2Config(text_config=text.to_dict(), vision_config=vision.to_dict(),
                           latent_query_num=LATENT_QUERIES)
    seeded()
    model = Kosmos2ForConditionalGeneration(config)
    harden_lm_head(model, tok)   # until it has learned weights, random decoding stays safe for the notebooks
    model.save_pretrained(out)
    processor.save_pretrained(out)


def grounded_text(scene) -> tuple[str, list[tuple[float, ...]]]:
    """The prompt and the caption the stand-in learns to write, each shape a phrase, and the phrases' boxes (0..1 of
    the image) for the processor to write as patch-index tokens: "<grounding>An image of<phrase> a small red
    circle</phrase> left of...". Two shapes are named left to right or top to bottom, as `world.left_first` says a
    scene: in the scene's own order the first phrase could be either shape, and which box follows it a guess."""
    order, relation = world.left_first(list(range(len(scene.things))), scene.relation)
    phrases = [f"<phrase> {scene.things[i].words}</phrase>" for i in order]
    boxes = world.boxes(scene, 224)
    return (PROMPT + (f" {relation}".join(phrases) if relation else phrases[0]),
            [tuple(v / 224 for v in boxes[i]) for i in order])


def _code(y: float, x: float):
    """A point of the 8 x 8 patch grid (in patches) as 16 numbers: sines and cosines of 4 frequencies per axis,
    so nearby points have similar codes and a shift is a linear map."""
    import torch
    k = torch.arange(1, 5).float() * 2 * math.pi / 16
    return torch.cat([torch.cos(k * y), torch.sin(k * y), torch.cos(k * x), torch.sin(k * x)]) / 2


def _geometric_start(model, tok, code_dims: int = 16) -> None:
    """Start training from the grid's geometry (random weights would first have to find it, for thousands of
    steps): the vision tower's position embeddings carry each patch's code in the last `code_dims` channels;
    latent query i holds patch i's code and the projection's attention matches codes, so image token i starts
    as patch i's features; each <patch_index_*> embedding (tied to the output layer) holds its cell's code.
    The latent queries stay small (the sharpness is in q_proj): they are values of that attention too, and
    large ones drown the image (with them, 1,000 steps never learned to look at it)."""
    import torch
    n, width = 224 // PATCH, model.config.text_config.embed_dim
    code, first = slice(width - code_dims, width), tok.convert_tokens_to_ids("<patch_index_0000>")
    vision = model.vision_model.model
    projection = model.image_to_text_projection
    attention = projection.x_attn
    head = width // model.config.text_config.attention_heads
    with torch.no_grad():
        vision.embeddings.patch_embedding.weight[code] = 0
        vision.embeddings.position_embedding.weight[:, code] = 0
        vision.post_layernorm.weight[code] = 6.0
        projection.dense.weight.copy_(torch.eye(width))
        projection.latent_query.zero_()
        for i in range(n * n):
            vision.embeddings.position_embedding.weight[1 + i, code] = 6.0 * _code(i // n + 0.5, i % n + 0.5)
            projection.latent_query[i, :code_dims] = _code(i // n + 0.5, i % n + 0.5)
        for linear in (attention.q_proj, attention.k_proj, projection.dense, attention.v_proj, attention.out_proj):
            linear.bias.zero_()
        attention.q_proj.weight.zero_()
        attention.k_proj.weight.zero_()
        for h in range(0, width, head):     # every head matches the latent's code with the patch's
            attention.q_proj.weight[h:h + code_dims, :code_dims] = 300.0 * torch.eye(code_dims)
            attention.k_proj.weight[h:h + code_dims, code] = torch.eye(code_dims)
        attention.v_proj.weight.copy_(torch.eye(width))
        attention.out_proj.weight.copy_(torch.eye(width))
        embeddings = model.get_input_embeddings().weight
        for i in range(32 * 32):
            embeddings[first + i, code] = 3.0 * _code((i // 32 + 0.5) * n / 32, (i % 32 + 0.5) * n / 32)


def train(card, folder, steps: int = 16000, batch: int = 16, one_shape: float = 0.5) -> dict:
    """Grounded captions with boxes: next-token cross-entropy on the caption (the prompt and image positions are
    given), the patch-index tokens weighted 3x; one-shape scenes first, then scenes of one or two shapes. Beside
    it, heads on the image tokens the language model reads (thrown away after) learn what each patch shows."""
    import torch
    from transformers import Kosmos2ForConditionalGeneration, Kosmos2Processor
    model = Kosmos2ForConditionalGeneration.from_pretrained(folder, attn_implementation=ATTENTION)
    processor = Kosmos2Processor.from_pretrained(folder)
    tok = processor.tokenizer
    with torch.no_grad():   # the built stand-in's output rows were rescaled for safe random decoding: start afresh
        model.get_input_embeddings().weight.normal_(0, model.config.text_config.init_std)
    _geometric_start(model, tok)
    first = tok.convert_tokens_to_ids("<patch_index_0000>")
    ones = world.scenes(steps * batch, 0, "train", count=1, held_out=False)
    mixed = world.scenes(steps * batch, 0, "train", held_out=False)
    prompt = processor(text=PROMPT, images=world.draw(ones[0], 224), return_tensors="pt").input_ids.shape[1]
    heads = patch_heads(WIDTH)
    optimizer = torch.optim.AdamW([*model.parameters(), *heads.parameters()], lr=2e-3)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1, (s + 1) / 50) * max(0.05, 1 - s / steps))
    model.train()
    for step in range(steps):
        scenes = (ones if step < steps * one_shape else mixed)[step * batch:(step + 1) * batch]
        texts, boxes = zip(*map(grounded_text, scenes))
        x = processor(text=list(texts), images=[world.draw(s, 224) for s in scenes], bboxes=list(boxes),
                      add_eos_token=True, padding=True, return_tensors="pt")
        out = model(pixel_values=x.pixel_values, input_ids=x.input_ids, attention_mask=x.attention_mask,
                    image_embeds_position_mask=x.image_embeds_position_mask,
                    logits_to_keep=x.input_ids.shape[1] - prompt + 1)
        logits = out.logits[:, :-1]
        target = x.input_ids[:, prompt:].masked_fill(x.attention_mask[:, prompt:] == 0, -100).reshape(-1)
        losses = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target, reduction="none")
        weights = 1.0 + 2.0 * ((target >= first) & (target < first + 1024))
        loss = (losses * weights).sum() / (target != -100).sum()
        told = patch_loss(heads, out.image_embeds, patch_truth(scenes, 224 // PATCH, 224))
        optimizer.zero_grad()
        (loss + told).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
    model.save_pretrained(folder)
    return {"steps": steps, "batch": batch, "one-shape steps": int(steps * one_shape),
            "final_loss": round(loss.item(), 4), "final_patch_loss": round(told.item(), 4)}


def ground(processor, model, images, max_new_tokens: int = 40) -> list[tuple[str, list]]:
    """The notebook's grounded captions of images: (the clean caption, the entities) each, greedy."""
    import torch
    x = processor(text=[PROMPT] * len(images), images=images, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(pixel_values=x.pixel_values, input_ids=x.input_ids, attention_mask=x.attention_mask,
                             image_embeds_position_mask=x.image_embeds_position_mask,
                             max_new_tokens=max_new_tokens, do_sample=False)
    return [processor.post_process_generation(text) for text in processor.batch_decode(out, skip_special_tokens=True)]


def measure(card, folder, n: int = 200) -> dict:
    """On held-out scenes of one or two shapes: the share of shapes whose phrase gets a box with IoU >= 0.5 to
    the truth (`world.boxes`), and of captions that are right word for word."""
    from transformers import Kosmos2ForConditionalGeneration, Kosmos2Processor
    model = Kosmos2ForConditionalGeneration.from_pretrained(folder, attn_implementation=ATTENTION).eval()
    processor = Kosmos2Processor.from_pretrained(folder)
    scenes = world.scenes(n, 0, "test", held_out=False)
    images = [world.draw(s, 224) for s in scenes]
    hits = shapes = right = 0
    for scene, image, (caption, entities) in zip(scenes, images, ground(processor, model, images)):
        right += caption.removeprefix("An image of").strip() in scene.captions
        boxes = entities_to_boxes(entities, image.size)
        for thing, truth in zip(scene.things, world.boxes(scene, 224)):
            shapes += 1
            hits += any(b.label == thing.words and iou(b, truth) >= 0.5 for b in boxes)
    return {"boxes IoU>=0.5": hits / shapes, "captions exact": right / n}


def summary(config) -> dict[str, object]:
    v, t = config.vision_config, config.text_config
    return {"image encoder": Shape(v.num_hidden_layers, v.hidden_size),
            "language model": Shape(t.layers, t.embed_dim), "vocabulary": t.vocab_size,
            "image query tokens": config.latent_query_num}


def caption(card, models, device, dtype, g) -> int:
    import torch
    n_img = architectures.config(card.architecture)["latent_query_num"]
    ids = torch.cat([random_ids(g, 2, 1000, device), random_ids(g, n_img, 1000, device),
                     random_ids(g, 6, 60000, device)], dim=1)
    mask = torch.zeros_like(ids, dtype=torch.bool)
    mask[:, 2:2 + n_img] = True
    return generate(models[None], 20, pixel_values=random_pixels(g, device, dtype, 1, 3, 224, 224), input_ids=ids,
                    attention_mask=torch.ones_like(ids), image_embeds_position_mask=mask, num_beams=3)


def serve(path, dtype, device) -> dict:
    import transformers as t
    processor = t.Kosmos2Processor.from_pretrained(path)
    model = t.Kosmos2ForConditionalGeneration.from_pretrained(path, dtype=dtype,
                                                            attn_implementation=ATTENTION).to(device)

    def prepare(image, prompt):
        x = processor(text=PROMPT, images=image, return_tensors="pt")
        return {k: x[k] for k in ("pixel_values", "input_ids", "attention_mask", "image_embeds_position_mask")}

    # Copied from notebooks/blip.ipynb: kosmos_read
    def kosmos_read(text):
        """Kosmos-2's decoded text -> (the clean caption without the prompt, the entities)."""
        caption, entities = processor.post_process_generation(text)
        return caption.removeprefix("An image of").strip(), entities

    # finish: the new tokens only, the caption after the prompt with its entity tags removed
    return dict(model=model, decode=lambda ids: processor.decode(ids, skip_special_tokens=True), prepare=prepare,
                finish=lambda text: kosmos_read(text)[0], image_processor=processor.image_processor)


CARDS = [
    Card("kosmos-2", "microsoft/kosmos-2-patch14-224", 6.7, "float16", ("blip", "serve"), standin=build,
         summary=summary, workload=Workload("1 grounded caption, 20 new tokens, 3 beams", caption), serve=serve,
         required=VISION_TEXT,
         training=WorldTraining("grounded captions of scenes of one or two shapes, a box per shape from its "
                                "patch-index tokens", train, measure,
                                goals={"boxes IoU>=0.5": 0.7},
                                floors={"boxes IoU>=0.5": 0.95, "captions exact": 0.95})),
]
