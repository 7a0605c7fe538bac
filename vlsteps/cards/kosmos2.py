"""Kosmos-2: microsoft/kosmos-2-patch14-224, grounded captions (notebooks/blip.ipynb; served, the default).

Its stand-in: a CLIP-style vision tower (224 px, 14 px patches), 64 latent image
queries, and the XLM-R tokenizer grown by Kosmos2Processor's 11 tag tokens and 1,024 <patch_index_*> tokens
(a 32 x 32 grid for boxes), so grounding markup round-trips exactly as with the real checkpoint."""
from __future__ import annotations

from .. import architectures
from .card import VISION_TEXT, Card, Shape, Workload, generate, random_ids, random_pixels
from .common import TINY, harden_lm_head, seeded

LATENT_QUERIES = 64   # == the image positions Kosmos2Processor reserves; if they differ the image is misplaced
PROMPT = "<grounding>An image of"   # the served caption continues it, as blip.ipynb's does


def build(spec, out):
    from transformers import (CLIPImageProcessor, Kosmos2Config, Kosmos2ForConditionalGeneration, Kosmos2Processor,
                              Kosmos2TextConfig, Kosmos2VisionConfig)

    from .tiny_tokenizers import xlmr_tokenizer
    # Real: use_square_size -> the photo is stretched to 224 x 224 (not cropped), so 0..1 boxes map back.
    image_processor = CLIPImageProcessor(size={"height": 224, "width": 224}, crop_size={"height": 224, "width": 224},
                                         do_center_crop=True)
    processor = Kosmos2Processor(image_processor=image_processor, tokenizer=xlmr_tokenizer())
    tok = processor.tokenizer
    text = Kosmos2TextConfig(vocab_size=len(tok), max_position_embeddings=512, embed_dim=TINY["hidden_size"],
                             layers=TINY["num_hidden_layers"], ffn_dim=TINY["intermediate_size"],
                             attention_heads=TINY["num_attention_heads"], pad_token_id=tok.pad_token_id,
                             bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    vision = Kosmos2VisionConfig(image_size=224, patch_size=14, **TINY)
    config = Kosmos2Config(text_config=text.to_dict(), vision_config=vision.to_dict(),
                           latent_query_num=LATENT_QUERIES)
    seeded()
    model = Kosmos2ForConditionalGeneration(config)
    harden_lm_head(model, tok)
    model.save_pretrained(out)
    processor.save_pretrained(out)


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
    model = t.Kosmos2ForConditionalGeneration.from_pretrained(path, dtype=dtype).to(device)

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
         required=VISION_TEXT),
]
