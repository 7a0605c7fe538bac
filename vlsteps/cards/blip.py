"""BLIP: Salesforce's captioning, VQA and image-text matching checkpoints (notebooks/blip.ipynb; the captioner is
served), each with its real head class.

All three real checkpoints see 384 x 384 images in 16 x 16 patches (577 image tokens with [CLS]); the
stand-ins keep that, and the BERT tokenizer with BLIP's two added tokens ([DEC] = bos, [ENC]).
"""
from __future__ import annotations

from .. import architectures
from .card import VISION_TEXT, Card, Shape, Workload, generate, random_ids, random_pixels, vit_tokens
from .common import TINY, harden_lm_head, seeded

IMAGE_SIZE, PATCH_SIZE = 384, 16


def blip_tokenizer():
    """bert-base-uncased + [DEC] (decoder bos) + [ENC], in that order, as Salesforce's tokenizers."""
    from .tiny_tokenizers import bert_tokenizer
    tok = bert_tokenizer()
    tok.add_special_tokens({"bos_token": "[DEC]", "extra_special_tokens": ["[ENC]"]})
    return tok


def blip_config(tok):
    from transformers import BlipConfig, BlipTextConfig, BlipVisionConfig
    h = TINY["hidden_size"]
    text = BlipTextConfig(vocab_size=len(tok), encoder_hidden_size=h, projection_dim=h, max_position_embeddings=64,
                          bos_token_id=tok.bos_token_id, eos_token_id=tok.sep_token_id,
                          sep_token_id=tok.sep_token_id, pad_token_id=tok.pad_token_id, **TINY)
    # initializer_range: the real default (1e-10) makes every image look the same to a random-weight model.
    vision = BlipVisionConfig(projection_dim=h, image_size=IMAGE_SIZE, patch_size=PATCH_SIZE, initializer_range=0.02,
                              **TINY)
    return BlipConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=h,
                      image_text_hidden_size=16)


def standin(head: str):
    """The stand-in builder of the checkpoint whose head is transformers' class `head`."""
    def build(spec, out):
        import torch
        import transformers
        tok = blip_tokenizer()
        seeded()
        model = getattr(transformers, head)(blip_config(tok))
        if hasattr(model, "text_decoder"):   # generative heads: captions/answers never empty, never special tokens
            harden_lm_head(model.text_decoder, tok)
        if hasattr(model, "itm_head"):       # init-sized logits give P(match) = 0.50 everywhere: spread them out
            with torch.no_grad():
                model.itm_head.weight.mul_(30.0)
        model.save_pretrained(out)
        image_processor = transformers.BlipImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
        transformers.BlipProcessor(image_processor=image_processor, tokenizer=tok).save_pretrained(out)
    return build


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
         standin=standin("BlipForConditionalGeneration"),
         summary=summary, workload=Workload("1 caption, 20 new tokens, 3 beams", _generating(20)),
         serve=serve_caption, required=VISION_TEXT),
    Card("blip-vqa", "Salesforce/blip-vqa-base", 1.5, "float16", ("blip",),
         standin=standin("BlipForQuestionAnswering"), summary=summary,
         workload=Workload("1 answer, 10 new tokens, 3 beams", _generating(10)), required=VISION_TEXT),
    Card("blip-itm", "Salesforce/blip-itm-large-coco", 1.8, "float16", ("blip",),
         standin=standin("BlipForImageTextRetrieval"), summary=summary,
         workload=Workload("1 image-text match score", match), revision="c0273606af96037e7a3b2fb0ff4ae9620b517be6",
         required=VISION_TEXT),
]
