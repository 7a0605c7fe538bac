"""microsoft/kosmos-2-patch14-224 stand-in: CLIP-style vision tower (224 px, 14 px patches), 64 latent image
queries, and the XLM-R tokenizer grown by Kosmos2Processor's 11 tag tokens and 1,024 <patch_index_*> tokens
(a 32 x 32 grid for boxes), so grounding markup round-trips exactly as with the real checkpoint."""
from transformers import (CLIPImageProcessor, Kosmos2Config, Kosmos2ForConditionalGeneration, Kosmos2Processor,
                          Kosmos2TextConfig, Kosmos2VisionConfig)

from .common import TINY, harden_lm_head, seeded
from .tiny_tokenizers import xlmr_tokenizer

LATENT_QUERIES = 64   # == the image positions Kosmos2Processor reserves; if they differ the image is misplaced


def build(spec, out):
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
