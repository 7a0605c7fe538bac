"""ViT: google/vit-base-patch16-224, an image classifier (notebooks/vit.ipynb).

Its stand-in keeps the real patch size and image size, so patch grids match, and the real 1,000-class ImageNet head
with the real class names, so top-5 prints name real classes (with random scores)."""
from __future__ import annotations

from .card import VISION, Card, Shape, Workload, random_pixels, vit_tokens
from .common import seeded


def imagenet_labels() -> dict[int, str]:
    """ImageNet-1k id -> name, from torchvision (shipped with the package, offline).

    torchvision keeps one short name per class ("tabby", "bow tie"); the real checkpoint's id2label has the
    full synset lists ("tabby, tabby cat", "bow tie, bow-tie, bowtie"). Same ids, same order, shorter names.
    """
    from torchvision.models import ViT_B_16_Weights
    return dict(enumerate(ViT_B_16_Weights.IMAGENET1K_V1.meta["categories"]))


def build(spec, out):
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor
    id2label = imagenet_labels()
    config = ViTConfig(image_size=224, patch_size=16, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                       intermediate_size=64, id2label=id2label, label2id={v: k for k, v in id2label.items()})
    seeded()
    ViTForImageClassification(config).save_pretrained(out)
    ViTImageProcessor(size={"height": 224, "width": 224}, image_mean=[0.5] * 3,
                      image_std=[0.5] * 3).save_pretrained(out)


def summary(config) -> dict[str, object]:
    return {"encoder": Shape(config.num_hidden_layers, config.hidden_size),
            "image tokens (patches + [CLS])": vit_tokens(config), "classes": config.num_labels}


def classify(card, models, device, dtype, g) -> int:
    models[None](pixel_values=random_pixels(g, device, dtype, 1, 3, 224, 224))
    return 0


CARDS = [
    Card("vit", "google/vit-base-patch16-224", 0.35, "float32", ("vit",), standin=build, summary=summary,
         workload=Workload("classify 1 image (224x224)", classify), required=VISION),
]
