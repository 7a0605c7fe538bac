"""openai/clip-vit-large-patch14 stand-in: the real CLIPModel/CLIPProcessor classes, the real image size
(224) and patch size (14, so 16x16 = 256 patches + [CLS]), tiny towers and a small shared space (32-d)."""
from transformers import (CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTextConfig,
                          CLIPVisionConfig)

from .common import TINY, seeded
from .tiny_tokenizers import clip_tokenizer

PROJECTION_DIM = 32


def build(spec, out):
    tok = clip_tokenizer()
    text = CLIPTextConfig(vocab_size=len(tok), max_position_embeddings=tok.model_max_length,
                          projection_dim=PROJECTION_DIM, bos_token_id=tok.bos_token_id,
                          eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, initializer_factor=10.0,
                          **TINY)
    vision = CLIPVisionConfig(image_size=224, patch_size=14, projection_dim=PROJECTION_DIM, initializer_factor=10.0,
                              **TINY)
    # initializer_factor 10: with the default init every image embeds to nearly the same vector (cos > 0.9999),
    # so "an indexed image finds itself first" would hang on rounding noise; 10 spreads them (max cos ~0.85).
    config = CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=PROJECTION_DIM,
                        initializer_factor=10.0)
    seeded()
    CLIPModel(config).save_pretrained(out)
    # The real checkpoint's preprocessing: shortest edge 224 (bicubic), center crop 224, OpenAI mean/std.
    image_processor = CLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224})
    CLIPProcessor(image_processor=image_processor, tokenizer=tok).save_pretrained(out)
