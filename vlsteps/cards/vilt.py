"""ViLT: dandelin/vilt-b32-finetuned-vqa, visual question answering as classification (notebooks/vilt.ipynb).

Its stand-in has the real image size (384), patch size (32) and 40-token text limit, so the joint sequence the
notebook prints has the real checkpoint's layout. It learned the procedural world (`vlsteps.world`): its head has
the world's 18 answers (`world.ANSWERS`) where the real one has 3,129 VQA v2 answers, its vocabulary is the tiny
WordPiece's (the real bert-base-uncased has 30,522 rows no world text reaches), and its transformer is 64 wide and
3 layers deep (more than the other stand-ins: a question is about two shapes and where they stand). It answers 0.74
of held-out questions after 3,000 steps, 0.76 after 6,000, 0.83 after 12,000 and 0.91 after the 18,000 it trains
(51 minutes on one core), where and relation questions the last to come."""
from __future__ import annotations

from .. import architectures, world
from .card import VISION_TEXT, Card, Shape, WorldTraining, Workload, random_ids, random_pixels
from .common import patch_heads, patch_loss, patch_truth, pixels, seeded, sincos_positions

MAX_TEXT = 40   # real: tokenizer model_max_length == max_position_embeddings == 40
IMAGE_SIZE = 384
SIZES = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4)


def build(spec, out):
    from transformers import ViltConfig, ViltForQuestionAnswering, ViltImageProcessor, ViltProcessor

    from .tiny_tokenizers import bert_tokenizer
    tok = bert_tokenizer(model_max_length=MAX_TEXT)
    config = ViltConfig(vocab_size=len(tok), max_position_embeddings=MAX_TEXT, image_size=IMAGE_SIZE, patch_size=32,
                        id2label=dict(enumerate(world.ANSWERS)), label2id={a: i for i, a in enumerate(world.ANSWERS)},
                        pad_token_id=tok.pad_token_id, **SIZES)
    seeded()
    ViltForQuestionAnswering(config).save_pretrained(out)
    image_processor = ViltImageProcessor(size={"shortest_edge": IMAGE_SIZE}, size_divisor=32,
                                         image_mean=[0.5] * 3, image_std=[0.5] * 3)
    ViltProcessor(image_processor=image_processor, tokenizer=tok).save_pretrained(out)


def train(card, folder, steps: int = 18000, scenes_per_step: int = 16, per_scene: int = 2, patches: int = 72,
          lr: float = 2e-3) -> dict:
    """Answer world questions: the model's own loss (binary cross-entropy on one-hot targets, as VQA v2's soft
    scores), AdamW with a linear decay, fresh iid scenes every step. Each question sees a random half of the 144
    patches (ViLT's own `max_image_length` sampling, as its pre-training did): half the cost; all at inference.
    As blip-vqa's tower, the image positions start from sine-cosine ones (ViLT's start at zero) and linear heads,
    thrown away after, learn from each sampled patch's output token what it shows (`world.patch_labels`)."""
    import numpy as np
    import torch
    from transformers import ViltForQuestionAnswering, ViltProcessor
    model = ViltForQuestionAnswering.from_pretrained(folder)
    processor = ViltProcessor.from_pretrained(folder)
    scenes = world.scenes(steps * scenes_per_step, 0, "train")
    rng = np.random.default_rng(0)
    grid = IMAGE_SIZE // model.config.patch_size
    embeddings = model.vilt.embeddings
    with torch.no_grad():
        embeddings.position_embeddings[0, 1:] = sincos_positions(grid, model.config.hidden_size)
    sampled = _recording_patch_index(embeddings)
    heads = patch_heads(model.config.hidden_size)
    optimizer = torch.optim.AdamW(torch.nn.ModuleList([model, heads]).parameters(), lr=lr, weight_decay=0.01)
    model.config.max_image_length = patches
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / 100) * (1 - s / steps))
    model.train()
    for step in range(steps):
        batch = scenes[step * scenes_per_step:(step + 1) * scenes_per_step]
        images = pixels(processor.image_processor, [world.draw(s, IMAGE_SIZE) for s in batch])
        asked = world.ask(batch, rng, per_scene)
        text = processor.tokenizer([qa.question for _, qa in asked], padding=True, return_tensors="pt")
        labels = torch.zeros(len(asked), model.config.num_labels)
        labels[range(len(asked)), [model.config.label2id[qa.answer] for _, qa in asked]] = 1
        index = torch.tensor([i for i, _ in asked])
        out = model(**text, pixel_values=images[index], labels=labels, output_hidden_states=True)
        truth = patch_truth(batch, grid, IMAGE_SIZE)[index]
        row_col = sampled[-1]                                   # (questions, patches, 2), the tokens' order
        truth = truth.gather(1, (row_col[..., 0] * grid + row_col[..., 1])[..., None].expand(-1, -1, truth.shape[-1]))
        told = patch_loss(heads, out.hidden_states[-1][:, text.input_ids.shape[1] + 1:], truth)
        optimizer.zero_grad()
        (out.loss + told).backward()
        optimizer.step()
        schedule.step()
    del embeddings.visual_embed
    model.config.max_image_length = -1
    model.save_pretrained(folder)
    return {"steps": steps, "batch": len(asked), "scenes": len(scenes), "final_loss": round(out.loss.item(), 4),
            "final_patch_loss": round(told.item(), 4)}


def _recording_patch_index(embeddings) -> list:
    """Which patch each image token is: ViltModel drops the (row, column) its `visual_embed` sampled, so this
    wraps that method on the instance and keeps the latest in the returned list (`del embeddings.visual_embed`
    restores it)."""
    seen = []
    original = embeddings.visual_embed

    def visual_embed(*args, **kwargs):
        out = original(*args, **kwargs)
        seen[:] = [out[2][0]]
        return out
    embeddings.visual_embed = visual_embed
    return seen


def measure(card, folder, n: int = 200) -> dict:
    """Accuracy of the top answer over every question of held-out iid scenes, as the notebook answers: processor,
    logits, argmax of the sigmoid (each scene's image processed once, repeated for its questions)."""
    import torch
    from transformers import ViltForQuestionAnswering, ViltProcessor
    model = ViltForQuestionAnswering.from_pretrained(folder).eval()
    processor = ViltProcessor.from_pretrained(folder)
    right = total = 0
    for scene in world.scenes(n, 0, "test"):
        qas = world.questions(scene)
        image = processor.image_processor(images=world.draw(scene, IMAGE_SIZE), return_tensors="pt")
        text = processor.tokenizer([qa.question for qa in qas], padding=True, truncation=True, return_tensors="pt")
        with torch.no_grad():
            logits = model(**text, pixel_values=image.pixel_values.expand(len(qas), -1, -1, -1),
                           pixel_mask=image.pixel_mask.expand(len(qas), -1, -1)).logits
        right += sum(model.config.id2label[i] == qa.answer for i, qa in zip(logits.argmax(-1).tolist(), qas))
        total += len(qas)
    return {"accuracy": right / total}


def summary(config) -> dict[str, object]:
    return {"transformer": Shape(config.num_hidden_layers, config.hidden_size),
            "vocabulary": config.vocab_size, "text tokens (max)": config.max_position_embeddings,
            "answers": config.num_labels}


def answer(card, models, device, dtype, g) -> int:
    import torch
    ids = random_ids(g, 12, architectures.config(card.architecture)["vocab_size"], device)
    models[None](input_ids=ids, attention_mask=torch.ones_like(ids), token_type_ids=torch.zeros_like(ids),
                 pixel_values=random_pixels(g, device, dtype, 1, 3, 384, 512),
                 pixel_mask=torch.ones(1, 384, 512, dtype=torch.long, device=device))
    return 0


CARDS = [
    Card("vilt", "dandelin/vilt-b32-finetuned-vqa", 0.47, "float32", ("vilt",), standin=build, summary=summary,
         workload=Workload("answer 1 question (384x512 image)", answer), revision="refs/pr/9", required=VISION_TEXT,
         training=WorldTraining("answers to questions about a scene (18 answers: colour, shape, size, count, "
                                "where, yes/no)", train, measure, goals={"accuracy": 0.85},
                                floors={"accuracy": 0.87})),
]
