"""google/vit-base-patch16-224 stand-in: real patch size and image size, so patch grids match, and the real
1,000-class ImageNet head with the real class names, so top-5 prints name real classes (with random scores)."""
from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

from .common import seeded


def imagenet_labels() -> dict[int, str]:
    """ImageNet-1k id -> name, from torchvision (shipped with the package, offline).

    torchvision keeps one short name per class ("tabby", "bow tie"); the real checkpoint's id2label has the
    full synset lists ("tabby, tabby cat", "bow tie, bow-tie, bowtie"). Same ids, same order, shorter names.
    """
    from torchvision.models import ViT_B_16_Weights
    return dict(enumerate(ViT_B_16_Weights.IMAGENET1K_V1.meta["categories"]))


def build(spec, out):
    id2label = imagenet_labels()
    config = ViTConfig(image_size=224, patch_size=16, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                       intermediate_size=64, id2label=id2label, label2id={v: k for k, v in id2label.items()})
    seeded()
    ViTForImageClassification(config).save_pretrained(out)
    ViTImageProcessor(size={"height": 224, "width": 224}, image_mean=[0.5] * 3,
                      image_std=[0.5] * 3).save_pretrained(out)
