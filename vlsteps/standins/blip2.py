"""BLIP-2 / InstructBLIP stand-ins: Salesforce/blip2-opt-2.7b, instructblip-flan-t5-xl, instructblip-vicuna-7b.

The real shapes the notebooks teach are kept: 224x224 images in 14x14 patches (256 patches + CLS), 32 learned
query tokens, and the processor's `num_query_tokens` (without it the processor adds no `<image>` placeholders
and the model silently ignores the image). Hidden sizes are tiny.
"""
from __future__ import annotations

import torch
from transformers import (AddedToken, Blip2Config, Blip2ForConditionalGeneration, Blip2Processor,
                          Blip2QFormerConfig, Blip2VisionConfig, BlipImageProcessor, InstructBlipConfig,
                          InstructBlipForConditionalGeneration, InstructBlipProcessor, InstructBlipQFormerConfig,
                          InstructBlipVisionConfig, LlamaConfig, OPTConfig, T5Config)

from .. import architectures
from .common import harden_lm_head, seeded
from .tiny_tokenizers import bert_tokenizer, llama_tokenizer, opt_tokenizer, t5_tokenizer

IMAGE_SIZE, PATCH_SIZE, NUM_QUERY_TOKENS = 224, 14, 32      # as in the real checkpoints
HIDDEN = 32
OPENAI_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

# registry key -> (BLIP-2 or InstructBLIP, language model)
ARCHS = {
    "blip2": ("blip2", "opt"),
    "instructblip": ("instructblip", "t5"),
    "instructblip-vicuna": ("instructblip", "llama"),
}


def _tokenizer(lm: str):
    tok = {"opt": opt_tokenizer, "t5": t5_tokenizer, "llama": llama_tokenizer}[lm]()
    if tok.pad_token is None:            # Vicuna's tokenizer has none; the real processor pads with <unk>
        tok.pad_token = tok.unk_token
    # <image> exists before the config is built, so config.image_token_index can name its id.
    tok.add_tokens([AddedToken("<image>", normalized=False, special=True)], special_tokens=True)
    tok.image_token = "<image>"
    return tok


def _text_config(lm: str, tok, real: dict):
    ids = dict(pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    if lm == "opt":
        # The real vocabulary size (50,272 rows: OPT's 50,265 tokens and <image>, padded), as the notebook prints
        # it: the tied embedding is 50,272 x 32, 6 MB. Flan-T5 (32,128) and Vicuna (32,000) have two untied such
        # matrices, so they keep the tiny tokenizer's size. harden_lm_head zeroes the rows past the tokenizer.
        return OPTConfig(vocab_size=real["vocab_size"], hidden_size=HIDDEN, ffn_dim=2 * HIDDEN, num_hidden_layers=2,
                         num_attention_heads=2, word_embed_proj_dim=HIDDEN, max_position_embeddings=512,
                         bos_token_id=tok.bos_token_id, **ids)
    if lm == "llama":
        return LlamaConfig(vocab_size=len(tok), hidden_size=HIDDEN, intermediate_size=2 * HIDDEN,
                           num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                           max_position_embeddings=2048, bos_token_id=tok.bos_token_id,
                           tie_word_embeddings=False, **ids)
    # Flan-T5: like the real text_config, no bos_token_id at all (see the instructblip notebook).
    return T5Config(vocab_size=len(tok), d_model=HIDDEN, d_kv=16, d_ff=2 * HIDDEN, num_layers=2,
                    num_decoder_layers=2, num_heads=2, feed_forward_proj="gated-gelu",
                    tie_word_embeddings=False, decoder_start_token_id=tok.pad_token_id, **ids)


def build(spec, out):
    arch, lm = ARCHS[spec.key]
    tok = _tokenizer(lm)
    image_processor = BlipImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, resample=3,
                                         image_mean=OPENAI_CLIP_MEAN, image_std=OPENAI_CLIP_STD,
                                         do_convert_rgb=True)
    vision = dict(hidden_size=HIDDEN, intermediate_size=2 * HIDDEN, num_hidden_layers=2, num_attention_heads=2,
                  image_size=IMAGE_SIZE, patch_size=PATCH_SIZE)
    qformer = dict(hidden_size=HIDDEN, intermediate_size=2 * HIDDEN, num_hidden_layers=2, num_attention_heads=2,
                   cross_attention_frequency=2, encoder_hidden_size=HIDDEN)
    common = dict(text_config=_text_config(lm, tok, architectures.config(spec.key)["text_config"]),
                  num_query_tokens=NUM_QUERY_TOKENS,
                  image_token_index=tok.convert_tokens_to_ids("<image>"))
    if arch == "instructblip":
        qtok = bert_tokenizer()
        # The real qformer tokenizer is bert-base-uncased plus a [DEC] bos token.
        qtok.add_special_tokens({"bos_token": "[DEC]"})
        config = InstructBlipConfig(vision_config=InstructBlipVisionConfig(**vision),
                                    qformer_config=InstructBlipQFormerConfig(vocab_size=len(qtok), **qformer),
                                    **common)
        seeded()
        model = InstructBlipForConditionalGeneration(config).eval()
        processor = InstructBlipProcessor(image_processor=image_processor, tokenizer=tok, qformer_tokenizer=qtok,
                                          num_query_tokens=NUM_QUERY_TOKENS)
    else:
        config = Blip2Config(vision_config=Blip2VisionConfig(**vision),
                             qformer_config=Blip2QFormerConfig(vocab_size=len(tok), **qformer), **common)
        seeded()
        model = Blip2ForConditionalGeneration(config).eval()
        processor = Blip2Processor(image_processor=image_processor, tokenizer=tok,
                                   num_query_tokens=NUM_QUERY_TOKENS)
    # transformers initialises the queries to zeros: then all 32 are the same vector and attend uniformly. Trained
    # queries differ from each other; random ones (seeded above) do too.
    with torch.no_grad():
        model.query_tokens.normal_(mean=0.0, std=1.0)
    # logit std 5 (not 10): nucleus sampling then has a few tokens to choose from, so sampled captions differ.
    harden_lm_head(model, tok, logit_std=5.0)
    model.save_pretrained(out)
    processor.save_pretrained(out)
