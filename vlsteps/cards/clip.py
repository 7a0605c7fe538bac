"""CLIP: openai/clip-vit-large-patch14, images and text in one space (notebooks/clip.ipynb, blip, serve).

Its stand-in has the real CLIPModel/CLIPProcessor classes, the real image size (224) and patch size (14, so
16x16 = 256 patches + [CLS]), the real 768-d shared space and the real 49,408-token vocabulary size (an embedding
matrix of 49,408 x 32, 6 MB), over tiny 32-wide towers. The tokenizer itself has 1,000 trained tokens; the rows
above them exist, as in the real matrix, but no text maps to them."""
from __future__ import annotations

from .. import architectures
from .card import VISION_TEXT, Card, Shape, Workload, random_pixels, vit_tokens
from .common import TINY, seeded


def build(spec, out):
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTextConfig, CLIPVisionConfig

    from .tiny_tokenizers import clip_tokenizer
    real = architectures.config(spec.architecture)
    projection_dim = real["projection_dim"]
    tok = clip_tokenizer()
    text = CLIPTextConfig(vocab_size=real["text_config"]["vocab_size"], max_position_embeddings=tok.model_max_length,
                          projection_dim=projection_dim, bos_token_id=tok.bos_token_id,
                          eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, initializer_factor=10.0,
                          **TINY)
    vision = CLIPVisionConfig(image_size=224, patch_size=14, projection_dim=projection_dim, initializer_factor=10.0,
                              **TINY)
    # initializer_factor 10: with the default init every image embeds to nearly the same vector (cos > 0.9999),
    # so "an indexed image finds itself first" would hang on rounding noise; 10 spreads them (max cos ~0.85).
    config = CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=projection_dim,
                        initializer_factor=10.0)
    seeded()
    CLIPModel(config).save_pretrained(out)
    # The real checkpoint's preprocessing: shortest edge 224 (bicubic), center crop 224, OpenAI mean/std.
    image_processor = CLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224})
    CLIPProcessor(image_processor=image_processor, tokenizer=tok).save_pretrained(out)


def summary(config) -> dict[str, object]:
    v, t = config.vision_config, config.text_config
    return {"image tower": Shape(v.num_hidden_layers, v.hidden_size),
            "text tower": Shape(t.num_hidden_layers, t.hidden_size),
            "shared space (dimensions)": config.projection_dim, "vocabulary": t.vocab_size,
            "image tokens (patches + [CLS])": vit_tokens(v), "text tokens (max)": t.max_position_embeddings}


def embed(card, models, device, dtype, g) -> int:
    models[None].get_image_features(pixel_values=random_pixels(g, device, dtype, 8, 3, 224, 224))
    return 0


CARDS = [
    Card("clip", "openai/clip-vit-large-patch14", 1.7, "float16", ("clip", "blip", "serve"), standin=build,
         summary=summary, workload=Workload("embed 8 images (the notebook's CPU batch)", embed),
         required=VISION_TEXT),
]
