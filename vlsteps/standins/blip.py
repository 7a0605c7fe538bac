"""Salesforce BLIP stand-ins: captioning, VQA and image-text retrieval, each with its real head class.

All three real checkpoints see 384 x 384 images in 16 x 16 patches (577 image tokens with [CLS]); the
stand-ins keep that, and the BERT tokenizer with BLIP's two added tokens ([DEC] = bos, [ENC]).
"""
import torch
from transformers import (BlipConfig, BlipForConditionalGeneration, BlipForImageTextRetrieval,
                          BlipForQuestionAnswering, BlipImageProcessor, BlipProcessor, BlipTextConfig,
                          BlipVisionConfig)

from .common import TINY, harden_lm_head, seeded
from .tiny_tokenizers import bert_tokenizer

CLASSES = {"blip-caption": BlipForConditionalGeneration, "blip-vqa": BlipForQuestionAnswering,
           "blip-itm": BlipForImageTextRetrieval}
IMAGE_SIZE, PATCH_SIZE = 384, 16


def blip_tokenizer():
    """bert-base-uncased + [DEC] (decoder bos) + [ENC], in that order, as Salesforce's tokenizers."""
    tok = bert_tokenizer()
    tok.add_special_tokens({"bos_token": "[DEC]", "extra_special_tokens": ["[ENC]"]})
    return tok


def blip_config(tok) -> BlipConfig:
    h = TINY["hidden_size"]
    text = BlipTextConfig(vocab_size=len(tok), encoder_hidden_size=h, projection_dim=h, max_position_embeddings=64,
                          bos_token_id=tok.bos_token_id, eos_token_id=tok.sep_token_id,
                          sep_token_id=tok.sep_token_id, pad_token_id=tok.pad_token_id, **TINY)
    # initializer_range: the real default (1e-10) makes every image look the same to a random-weight model.
    vision = BlipVisionConfig(projection_dim=h, image_size=IMAGE_SIZE, patch_size=PATCH_SIZE, initializer_range=0.02,
                              **TINY)
    return BlipConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=h,
                      image_text_hidden_size=16)


def build(spec, out):
    if spec.key not in CLASSES:
        raise KeyError(f"No BLIP stand-in for {spec.key!r}; known: {', '.join(CLASSES)}")
    tok = blip_tokenizer()
    seeded()
    model = CLASSES[spec.key](blip_config(tok))
    if hasattr(model, "text_decoder"):   # generative heads: captions/answers never empty, never special tokens
        harden_lm_head(model.text_decoder, tok)
    if hasattr(model, "itm_head"):       # init-sized logits give P(match) = 0.50 everywhere: spread them out
        with torch.no_grad():
            model.itm_head.weight.mul_(30.0)
    model.save_pretrained(out)
    image_processor = BlipImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
    BlipProcessor(image_processor=image_processor, tokenizer=tok).save_pretrained(out)
