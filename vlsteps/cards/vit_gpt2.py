"""ViT-GPT2: nlpconnect/vit-gpt2-image-captioning, a captioner (notebooks/blip.ipynb; served).

Its stand-in: a ViT encoder (224 px, 16 px patches) feeding a GPT-2 decoder
through cross-attention, wrapped in VisionEncoderDecoderModel like the real one."""
from __future__ import annotations

from .card import VISION_TEXT, Card, Shape, Workload, generate, random_pixels, vit_tokens
from .common import TINY, harden_lm_head, seeded


def build(spec, out):
    from transformers import (GPT2Config, ViTConfig, ViTImageProcessor, VisionEncoderDecoderConfig,
                              VisionEncoderDecoderModel)

    from .tiny_tokenizers import gpt2_tokenizer
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
         revision="93857e539f312a97c13f16976c2a43505fd76d87", required=VISION_TEXT),
]
