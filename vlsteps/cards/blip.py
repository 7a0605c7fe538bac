"""BLIP: Salesforce's captioning, VQA and image-text matching checkpoints (notebooks/blip.ipynb; the captioner is
served), each with its real head class.

All three real checkpoints see 384 x 384 images in 16 x 16 patches (577 image tokens with [CLS]); the
stand-ins keep the image size and the BERT tokenizer with BLIP's two added tokens ([DEC] = bos, [ENC]). All
three stand-ins learned the procedural world (`vlsteps.world`): the captioner captions scenes in the world's
grammar and continues the notebook's prompt "a picture of"; the VQA model answers the world's questions; the ITM
model matches scenes and captions. They take 32 x 32 patches (145 image tokens): a quarter of the tokens, so each
trains in minutes on one CPU thread. The captioner's decoder learns from the ordinary init, not from the hardened
one (`harden_lm_head`) that keeps random weights' text printable.
"""
from __future__ import annotations

from .. import architectures, world
from . import captions
from .card import VISION_TEXT, Card, Shape, WorldTraining, Workload, generate, random_ids, random_pixels, vit_tokens
from .common import TINY, harden_lm_head, patch_heads, patch_loss, patch_truth, pixels, seeded, sincos_positions

IMAGE_SIZE, PATCH_SIZE = 384, 16
STANDIN_PATCH = 32      # every BLIP stand-in: 145 image tokens, 4x cheaper to train on a CPU than 577
PROMPT = "a picture of"   # blip.ipynb's conditional captioning prompt


def blip_tokenizer():
    """bert-base-uncased + [DEC] (decoder bos) + [ENC], in that order, as Salesforce's tokenizers."""
    from .tiny_tokenizers import bert_tokenizer
    tok = bert_tokenizer()
    tok.add_special_tokens({"bos_token": "[DEC]", "extra_special_tokens": ["[ENC]"]})
    return tok


def blip_config(tok, patch_size: int = PATCH_SIZE):
    from transformers import BlipConfig, BlipTextConfig, BlipVisionConfig
    h = TINY["hidden_size"]
    text = BlipTextConfig(vocab_size=len(tok), encoder_hidden_size=h, projection_dim=h, max_position_embeddings=64,
                          bos_token_id=tok.bos_token_id, eos_token_id=tok.sep_token_id,
                          sep_token_id=tok.sep_token_id, pad_token_id=tok.pad_token_id, **TINY)
    # initializer_range: the real default (1e-10) makes every image look the same to a random-weight model.
    vision = BlipVisionConfig(projection_dim=h, image_size=IMAGE_SIZE, patch_size=patch_size, initializer_range=0.02,
                              **TINY)
    return BlipConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=h,
                      image_text_hidden_size=16)


def standin(head: str, patch_size: int = PATCH_SIZE, hardened: bool = True):
    """The stand-in builder of the checkpoint whose head is transformers' class `head`. hardened=False leaves a
    generative head's decoder at the ordinary init, for one that learns the world (hardened logits barely train)."""
    def build(spec, out):
        import torch
        import transformers
        tok = blip_tokenizer()
        seeded()
        model = getattr(transformers, head)(blip_config(tok, patch_size))
        if hasattr(model, "text_decoder") and hardened:   # generative heads: captions/answers never empty, never
            harden_lm_head(model.text_decoder, tok)         # special tokens
        if hasattr(model, "itm_head"):       # init-sized logits give P(match) = 0.50 everywhere: spread them out
            with torch.no_grad():
                model.itm_head.weight.mul_(30.0)
        model.save_pretrained(out)
        image_processor = transformers.BlipImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
        transformers.BlipProcessor(image_processor=image_processor, tokenizer=tok).save_pretrained(out)
    return build


def _loaded(head: str, folder):
    import transformers as t
    return t.BlipProcessor.from_pretrained(folder), getattr(t, head).from_pretrained(folder)


def _adamw(model, lr: float, steps: int):
    """AdamW with 50 warm-up steps, then a linear decay to 0."""
    import torch
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / 50) * (1 - s / steps))


def train_vqa(card, folder, steps: int = 4800, scenes_per_step: int = 12, per_scene: int = 4,
              lr: float = 3e-3) -> dict:
    """Answer world questions: BLIP's answer-decoder loss (teacher-forced from [DEC], as generate starts), fresh
    iid scenes every step. The model's own forward split in two, so that each image is encoded once for its
    questions. The vision tower starts from sine-cosine positions and also learns, through linear heads thrown away
    after training, what each patch shows (`world.patch_labels`). Without them "where is ...?" stays at chance (0.21
    after 1,200 steps; "left" to every one after 4,800) and "what shape is the red one?" near it (0.50); with them,
    after 4,800 steps, 0.71 and 0.97."""
    import numpy as np
    import torch
    processor, model = _loaded("BlipForQuestionAnswering", folder)
    scenes = world.scenes(steps * scenes_per_step, 0, "train")
    rng = np.random.default_rng(0)
    width, grid = model.config.vision_config.hidden_size, IMAGE_SIZE // model.config.vision_config.patch_size
    with torch.no_grad():
        model.vision_model.embeddings.position_embedding[0, 1:] = sincos_positions(grid, width)
    heads = patch_heads(width)
    optimizer, schedule = _adamw(torch.nn.ModuleList([model, heads]), lr, steps)
    model.train()
    for step in range(steps):
        batch = scenes[step * scenes_per_step:(step + 1) * scenes_per_step]
        asked = world.ask(batch, rng, per_scene)
        image = model.vision_model(pixels(processor.image_processor, [world.draw(s, IMAGE_SIZE) for s in batch]))
        truth = patch_truth(batch, grid, IMAGE_SIZE)
        told = patch_loss(heads, image.last_hidden_state[:, 1:], truth)
        image = image.last_hidden_state[torch.tensor([i for i, _ in asked])]
        question = processor.tokenizer([qa.question for _, qa in asked], padding=True, return_tensors="pt")
        encoded = model.text_encoder(input_ids=question.input_ids, attention_mask=question.attention_mask,
                                     encoder_hidden_states=image).last_hidden_state
        answer = processor.tokenizer([qa.answer for _, qa in asked], padding=True, return_tensors="pt")
        ids = answer.input_ids.clone()
        ids[:, 0] = model.config.text_config.bos_token_id
        loss = model.text_decoder(input_ids=ids, attention_mask=answer.attention_mask, encoder_hidden_states=encoded,
                                  encoder_attention_mask=question.attention_mask,
                                  labels=ids.masked_fill(answer.attention_mask == 0, -100)).loss
        optimizer.zero_grad()
        (loss + told).backward()
        optimizer.step()
        schedule.step()
    model.save_pretrained(folder)
    return {"steps": steps, "batch": len(asked), "scenes": len(scenes), "final_loss": round(loss.item(), 4),
            "final_patch_loss": round(told.item(), 4)}


def answer_questions(processor, model, images, asked) -> list[str]:
    """The answers to asked, [(index into images, question)], as blip.ipynb's blip_answers writes them (the
    processor, beam search with 3 beams, at most 10 new tokens), each image processed once."""
    import torch
    pixel_values = processor(images=images, return_tensors="pt").pixel_values
    question = processor.tokenizer([q for _, q in asked], padding=True, return_tensors="pt")
    with torch.inference_mode():
        out = model.generate(pixel_values=pixel_values[torch.tensor([i for i, _ in asked])],
                             input_ids=question.input_ids, attention_mask=question.attention_mask,
                             max_new_tokens=10, num_beams=3)
    return [a.strip() for a in processor.batch_decode(out, skip_special_tokens=True)]


def measure_vqa(card, folder, n: int = 200, per_scene: int = 3) -> dict:
    """Exact-answer accuracy on held-out iid scenes, per_scene random questions of each, as the notebook asks."""
    import numpy as np
    processor, model = _loaded("BlipForQuestionAnswering", folder)
    scenes = world.scenes(n, 0, "test")
    asked = world.ask(scenes, np.random.default_rng(1), per_scene)
    replies = answer_questions(processor, model.eval(), [world.draw(s, IMAGE_SIZE) for s in scenes],
                               [(i, qa.question) for i, qa in asked])
    return {"accuracy": sum(r == qa.answer for r, (_, qa) in zip(replies, asked)) / len(asked)}


def train_itm(card, folder, steps: int = 2500, batch: int = 16, lr: float = 1e-3) -> dict:
    """Both of BLIP's matching losses on fresh iid scenes: ITC (symmetric InfoNCE over the batch, temperature
    0.07) on the projected [CLS] vectors, and ITM (match / no match) on the right caption against three wrong
    ones: a caption with one detail wrong, another scene's caption, and BLIP's hard negative, a caption of the
    batch drawn by its ITC similarity to the image (never one that describes it too). Measured on held-out groups
    (`measure_itm`), ITM picked the right caption of 5 in 0.885 of them without the hard negative and 0.93 with it
    (0.895 with another draw of the hard negatives); at lr 3e-3 it was 0.80 without, and with it training broke
    down (0.43)."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    processor, model = _loaded("BlipForImageTextRetrieval", folder)
    scenes = world.scenes(steps * batch, 0, "train")
    rng, draw = np.random.default_rng(0), torch.Generator().manual_seed(0)
    optimizer, schedule = _adamw(model, lr, steps)
    model.train()
    for step in range(steps):
        chunk = scenes[step * batch:(step + 1) * batch]
        right = [str(rng.choice(s.captions)) for s in chunk]
        image = model.vision_model(pixels(processor.image_processor,
                                          [world.draw(s, IMAGE_SIZE) for s in chunk])).last_hidden_state
        text = processor.tokenizer(right, padding=True, return_tensors="pt")
        text_cls = model.text_encoder(input_ids=text.input_ids,
                                      attention_mask=text.attention_mask).last_hidden_state[:, 0]
        sim = F.normalize(model.vision_proj(image[:, 0]), dim=-1) @ F.normalize(model.text_proj(text_cls), dim=-1).T
        target = torch.arange(len(chunk))
        itc = (F.cross_entropy(sim / 0.07, target) + F.cross_entropy(sim.T / 0.07, target)) / 2
        same = torch.tensor([[a.captions[0] == b.captions[0] for b in chunk] for a in chunk])
        hard = torch.multinomial((sim.detach() / 0.07).softmax(1).masked_fill(same, 0), 1, generator=draw)[:, 0]
        pairs = processor.tokenizer(right + [world.wrong_caption(s, rng) for s in chunk] +
                                    [right[j] for j in hard.tolist()] + right[1:] + right[:1],
                                    padding=True, return_tensors="pt")
        first = model.text_encoder(input_ids=pairs.input_ids, attention_mask=pairs.attention_mask,
                                   encoder_hidden_states=image.repeat(4, 1, 1)).last_hidden_state[:, 0]
        itm = F.cross_entropy(model.itm_head(first), torch.tensor([1] * len(chunk) + [0] * 3 * len(chunk)))
        loss = itc + itm
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    model.save_pretrained(folder)
    return {"steps": steps, "batch": batch, "scenes": len(scenes), "final_loss": round(loss.item(), 4)}


def itc_itm(processor, model, images, texts):
    """(images, texts) ITC cosines and ITM P(match), as blip.ipynb's itc_scores and itm_probs compute them."""
    import torch
    import torch.nn.functional as F
    pixel_values = processor(images=images, return_tensors="pt").pixel_values
    tok = processor.tokenizer(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        image = model.vision_model(pixel_values=pixel_values).last_hidden_state
        text_cls = model.text_encoder(input_ids=tok.input_ids, attention_mask=tok.attention_mask).last_hidden_state
        itc = F.normalize(model.vision_proj(image[:, 0]), dim=-1) @ F.normalize(model.text_proj(text_cls[:, 0]),
                                                                                 dim=-1).T
        itm = torch.stack([model.itm_head(model.text_encoder(
            input_ids=tok.input_ids, attention_mask=tok.attention_mask,
            encoder_hidden_states=tokens[None].expand(len(texts), -1, -1)).last_hidden_state[:, 0]).softmax(-1)[:, 1]
            for tokens in image])
    return itc, itm


def measure_itm(card, folder, n: int = 200) -> dict:
    """On n held-out iid scenes with n different captions, in groups of 5: how often ITM's P(match) and ITC's
    cosine put each image's own caption first of the 5 (the notebook's matrices, row by row)."""
    import torch
    processor, model = _loaded("BlipForImageTextRetrieval", folder)
    scenes = list({s.captions[0]: s for s in world.scenes(2 * n, 0, "test")}.values())[:n - n % 5]
    itm_right = itc_right = 0
    for g in range(0, len(scenes), 5):
        group = scenes[g:g + 5]
        itc, itm = itc_itm(processor, model.eval(), [world.draw(s, IMAGE_SIZE) for s in group],
                           [s.captions[0] for s in group])
        itc_right += (itc.argmax(1) == torch.arange(5)).sum().item()
        itm_right += (itm.argmax(1) == torch.arange(5)).sum().item()
    return {"ITM right caption of 5": itm_right / len(scenes), "ITC diagonal": itc_right / len(scenes)}


def _captioner(folder):
    import transformers as t
    return t.BlipProcessor.from_pretrained(folder), t.BlipForConditionalGeneration.from_pretrained(folder)


def train_caption(card, folder, steps: int = 1200, batch: int = 32) -> dict:
    """Caption fresh training scenes, teacher-forced from [DEC] as BLIP's LM loss is; every fourth caption starts
    with the notebook's prompt, so conditional captioning continues it."""
    processor, model = _captioner(folder)
    bos = model.config.text_config.bos_token_id

    def loss(model, scenes):
        texts = [f"{PROMPT} {captions.target(s)}" if i % 4 == 0 else captions.target(s) for i, s in enumerate(scenes)]
        inputs = processor(images=[world.draw(s, IMAGE_SIZE) for s in scenes], text=texts, padding=True,
                           return_tensors="pt")
        ids = inputs.input_ids.clone()
        ids[:, 0] = bos                       # [CLS] -> [DEC], as generate does
        labels = ids.masked_fill(inputs.attention_mask == 0, -100)
        return model(pixel_values=inputs.pixel_values, input_ids=ids, attention_mask=inputs.attention_mask,
                     labels=labels).loss

    facts = captions.fit(model, world.scenes(steps * batch, 0, "train"), batch, 3e-3, loss)
    model.save_pretrained(folder)
    return facts


def caption_scenes(processor, model, scenes, prompt=None) -> list[str]:
    """As blip.ipynb's blip_caption: the processor (and the prompt), beam search with 3 beams, 20 new tokens."""
    import torch
    text = [prompt] * len(scenes) if prompt else None
    inputs = processor(images=[world.draw(s, IMAGE_SIZE) for s in scenes], text=text, return_tensors="pt")
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=20, num_beams=3)
    return [t.strip() for t in processor.batch_decode(out, skip_special_tokens=True)]


def measure_caption(card, folder, n: int = 200) -> dict:
    """BLEU-4 and exact match on held-out scenes, unconditional and with the prompt (removed before scoring)."""
    processor, model = _captioner(folder)
    scenes = world.scenes(n, 0, "test")
    plain = caption_scenes(processor, model.eval(), scenes)
    prompted = caption_scenes(processor, model, scenes, PROMPT)
    conditional = captions.score([c.removeprefix(PROMPT).strip() for c in prompted], scenes)
    return {**captions.score(plain, scenes), **{f"{k} with the prompt": v for k, v in conditional.items()},
            "starts with the prompt": sum(c.startswith(PROMPT) for c in prompted) / n}


def summary(config) -> dict[str, object]:
    v, t = config.vision_config, config.text_config
    return {"image encoder": Shape(v.num_hidden_layers, v.hidden_size),
            "text model": Shape(t.num_hidden_layers, t.hidden_size), "vocabulary": t.vocab_size,
            "image tokens (patches + [CLS])": vit_tokens(v)}


def _text(card, g, n: int, device):
    return random_ids(g, n, architectures.processor(card.architecture)["vocab_size"], device)


def match(card, models, device, dtype, g) -> int:
    import torch
    ids = _text(card, g, 12, device)
    models[None](input_ids=ids, attention_mask=torch.ones_like(ids),
                 pixel_values=random_pixels(g, device, dtype, 1, 3, 384, 384))
    return 0


def _generating(n_new: int):
    def run(card, models, device, dtype, g) -> int:
        import torch
        ids = _text(card, g, 8, device)
        return generate(models[None], n_new, input_ids=ids, attention_mask=torch.ones_like(ids),
                        pixel_values=random_pixels(g, device, dtype, 1, 3, 384, 384), num_beams=3)
    return run


def serve_caption(path, dtype, device) -> dict:
    """As blip.ipynb captions: the processor's image alone, no prompt."""
    import transformers as t
    processor = t.BlipProcessor.from_pretrained(path)
    model = t.BlipForConditionalGeneration.from_pretrained(path, dtype=dtype).to(device)
    return dict(model=model, decode=lambda ids: processor.decode(ids, skip_special_tokens=True),
                prepare=lambda image, prompt: dict(processor(images=image, return_tensors="pt")),
                image_processor=processor.image_processor)


CARDS = [
    Card("blip-caption", "Salesforce/blip-image-captioning-large", 1.9, "float16", ("blip", "serve"),
         standin=standin("BlipForConditionalGeneration", STANDIN_PATCH, hardened=False),
         summary=summary, workload=Workload("1 caption, 20 new tokens, 3 beams", _generating(20)),
         serve=serve_caption, required=VISION_TEXT,
         training=WorldTraining("a caption of a one- or two-shape scene, with and without the prompt", train_caption,
                                measure_caption, goals={"BLEU-4": 0.5},
                                floors={"BLEU-4": 0.53, "exact match": 0.25, "BLEU-4 with the prompt": 0.55})),
    Card("blip-vqa", "Salesforce/blip-vqa-base", 1.5, "float16", ("blip",),
         standin=standin("BlipForQuestionAnswering", STANDIN_PATCH), summary=summary,
         workload=Workload("1 answer, 10 new tokens, 3 beams", _generating(10)), required=VISION_TEXT,
         training=WorldTraining("one-word answers to questions about a scene (colour, shape, size, count, where, "
                                "yes/no), generated", train_vqa, measure_vqa, goals={"accuracy": 0.85},
                                floors={"accuracy": 0.86})),
    Card("blip-itm", "Salesforce/blip-itm-large-coco", 1.8, "float16", ("blip",),
         standin=standin("BlipForImageTextRetrieval", STANDIN_PATCH), summary=summary,
         workload=Workload("1 image-text match score", match), revision="c0273606af96037e7a3b2fb0ff4ae9620b517be6",
         required=VISION_TEXT,
         training=WorldTraining("whether a caption matches a scene: ITM head and ITC projections", train_itm,
                                measure_itm, goals={"ITM right caption of 5": 0.9, "ITC diagonal": 0.9},
                                floors={"ITM right caption of 5": 0.89, "ITC diagonal": 0.93})),
]
