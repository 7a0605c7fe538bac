"""google/vit-base-patch16-224 stand-in: real patch size and image size, so patch grids match."""
from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

from .common import seeded

# A few ImageNet-1k labels with their real ids, so top-5 prints look like the real model's.
LABELS = {281: "tabby, tabby cat", 285: "Egyptian cat", 504: "coffee mug", 967: "espresso",
          812: "space shuttle", 670: "motor scooter, scooter", 457: "bow tie, bow-tie, bowtie"}


def build(spec, out):
    id2label = {i: LABELS.get(i, f"imagenet class {i}") for i in range(1000)}
    config = ViTConfig(image_size=224, patch_size=16, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                       intermediate_size=64, id2label=id2label, label2id={v: k for k, v in id2label.items()})
    seeded()
    ViTForImageClassification(config).save_pretrained(out)
    ViTImageProcessor(size={"height": 224, "width": 224}, image_mean=[0.5] * 3,
                      image_std=[0.5] * 3).save_pretrained(out)
