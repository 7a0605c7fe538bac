"""ViT-GPT2: nlpconnect/vit-gpt2-image-captioning, a captioner (notebooks/blip.ipynb; served).

Its stand-in: a ViT encoder (224 px, 16 px patches) feeding a GPT-2 decoder
through cross-attention, wrapped in VisionEncoderDecoderModel like the real one. It learned the procedural world
(`vlsteps.world`): it captions scenes in the world's grammar."""
from __future__ import annotations

from .. import world
from . import captions
from .card import VISION_TEXT, Card, Shape, WorldTraining, Workload, generate, random_pixels, vit_tokens
from .common import TINY, seeded

IMAGE_SIZE = 224


def build(spec, out):
    from transformers import (GPT2Config, ViTConfig, ViTImageProcessor, VisionEncoderDecoderConfig,
                              VisionEncoderDecoderModel)

    from .tiny_tokenizers import gpt2_tokenizer
    tok = gpt2_tokenizer()
    eos = tok.eos_token_id   # real: 50256 (<|endoftext|>) is decoder start, pad and eos
    encoder = ViTConfig(image_size=IMAGE_SIZE, patch_size=16, **TINY)
    decoder = GPT2Config(vocab_size=len(tok), n_positions=128, n_embd=TINY["hidden_size"],
                         n_layer=TINY["num_hidden_layers"], n_head=TINY["num_attention_heads"],
                         n_inner=TINY["intermediate_size"], add_cross_attention=True, is_decoder=True,
                         bos_token_id=eos, eos_token_id=eos, pad_token_id=eos)
    config = VisionEncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder)
    config.decoder_start_token_id = config.pad_token_id = config.eos_token_id = eos
    seeded()
    model = VisionEncoderDecoderModel(config=config)
    for key in ("decoder_start_token_id", "pad_token_id", "eos_token_id", "bos_token_id"):
        setattr(model.generation_config, key, eos)
    model.save_pretrained(out)
    ViTImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, image_mean=[0.5] * 3,
                      image_std=[0.5] * 3).save_pretrained(out)
    tok.save_pretrained(out)


def _parts(folder):
    import transformers as t
    return (t.ViTImageProcessor.from_pretrained(folder), t.AutoTokenizer.from_pretrained(folder),
            t.VisionEncoderDecoderModel.from_pretrained(folder))


def train(card, folder, steps: int = 1200, batch: int = 32) -> dict:
    """Caption fresh training scenes: GPT-2 tokens of the caption and <|endoftext|> as labels (the model shifts
    them right behind its decoder start token, <|endoftext|> too)."""
    import torch
    image_processor, tokenizer, model = _parts(folder)

    def loss(model, scenes):
        ids = [tokenizer(captions.target(s)).input_ids + [tokenizer.eos_token_id] for s in scenes]
        labels = torch.full((len(ids), max(map(len, ids))), -100)
        for row, seq in zip(labels, ids):
            row[:len(seq)] = torch.tensor(seq)
        pixels = image_processor(images=[world.draw(s, IMAGE_SIZE) for s in scenes], return_tensors="pt")
        return model(pixel_values=pixels.pixel_values, labels=labels).loss

    facts = captions.fit(model, world.scenes(steps * batch, 0, "train"), batch, 3e-3, loss)
    model.save_pretrained(folder)
    return facts


def caption_scenes(image_processor, tokenizer, model, scenes) -> list[str]:
    """As blip.ipynb's vit_gpt2_caption: pixels, decoding from <|endoftext|> marked as no padding, 3 beams."""
    import torch
    images = [world.draw(s, IMAGE_SIZE) for s in scenes]
    pixel_values = image_processor(images=images, return_tensors="pt").pixel_values
    start = torch.full((len(scenes), 1), model.config.decoder_start_token_id)
    with torch.inference_mode():
        out = model.generate(pixel_values, decoder_input_ids=start, decoder_attention_mask=torch.ones_like(start),
                             max_new_tokens=20, num_beams=3)
    return [t.strip() for t in tokenizer.batch_decode(out, skip_special_tokens=True)]


def measure(card, folder, n: int = 200) -> dict:
    """BLEU-4 and exact match of its captions of held-out scenes."""
    image_processor, tokenizer, model = _parts(folder)
    scenes = world.scenes(n, 0, "test")
    return captions.score(caption_scenes(image_processor, tokenizer, model.eval(), scenes), scenes)


def summary(config) -> dict[str, object]:
    e, d = config.encoder, config.decoder
    return {"image encoder": Shape(e.num_hidden_layers, e.hidden_size), "text decoder": Shape(d.n_layer, d.n_embd),
            "vocabulary": d.vocab_size, "image tokens (patches + [CLS])": vit_tokens(e)}


def caption(card, models, device, dtype, g) -> int:
    return generate(models[None], 20, pixel_values=random_pixels(g, device, dtype, 1, 3, 224, 224), num_beams=3)


def serve(path, dtype, device) -> dict:
    """As blip.ipynb captions: the image processor's pixels alone."""
    import transformers as t
    image_processor = t.ViTImageProcessor.from_pretrained(path)
    tokenizer = t.AutoTokenizer.from_pretrained(path)
    model = t.VisionEncoderDecoderModel.from_pretrained(path, dtype=dtype).to(device)
    return dict(model=model, decode=lambda ids: tokenizer.decode(ids, skip_special_tokens=True),
                prepare=lambda image, prompt: dict(image_processor(images=image, return_tensors="pt")),
                image_processor=image_processor)


CARDS = [
    Card("vit-gpt2", "nlpconnect/vit-gpt2-image-captioning", 0.98, "float32", ("blip", "serve"), standin=build,
         summary=summary, workload=Workload("1 caption, 20 new tokens, 3 beams", caption), serve=serve,
         revision="93857e539f312a97c13f16976c2a43505fd76d87", required=VISION_TEXT,
         training=WorldTraining("a caption of a one- or two-shape scene", train, measure, goals={"BLEU-4": 0.5},
                                floors={"BLEU-4": 0.58, "exact match": 0.3})),
]
