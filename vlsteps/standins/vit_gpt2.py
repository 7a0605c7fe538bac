"""nlpconnect/vit-gpt2-image-captioning stand-in: a ViT encoder (224 px, 16 px patches) feeding a GPT-2 decoder
through cross-attention, wrapped in VisionEncoderDecoderModel like the real one."""
from transformers import (GPT2Config, ViTConfig, ViTImageProcessor, VisionEncoderDecoderConfig,
                          VisionEncoderDecoderModel)

from .common import TINY, harden_lm_head, seeded
from .tiny_tokenizers import gpt2_tokenizer


def build(spec, out):
    tok = gpt2_tokenizer()
    eos = tok.eos_token_id   # real: 50256 (<|endoftext|>) is decoder start, pad and eos
    encoder = ViTConfig(image_size=224, patch_size=16, **TINY)
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
    harden_lm_head(model.decoder, tok)
    model.save_pretrained(out)
    ViTImageProcessor(size={"height": 224, "width": 224}, image_mean=[0.5] * 3,
                      image_std=[0.5] * 3).save_pretrained(out)
    tok.save_pretrained(out)
