"""The notebooks, in teaching order: the README table, Colab badges and `make run` read this list."""
from __future__ import annotations

from dataclasses import dataclass

from . import registry

GITHUB_REPO = "vlsteps/vlsteps"


@dataclass(frozen=True)
class Notebook:
    name: str
    title: str
    kernel: str = "python3"   # the LAVIS notebook runs in its own environment's kernel

    @property
    def path(self) -> str:
        return f"notebooks/{self.name}.ipynb"

    @property
    def colab_url(self) -> str:
        return f"https://colab.research.google.com/github/{GITHUB_REPO}/blob/main/{self.path}"

    @property
    def colab_badge(self) -> str:
        return f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({self.colab_url})"

    @property
    def models(self) -> list[registry.ModelSpec]:
        return registry.for_notebook(self.name)


NOTEBOOKS = [
    Notebook("vit", "ViT: an image as a sequence of patches"),
    Notebook("clip", "CLIP: zero-shot labels, SDXL-Turbo test images, Chroma retrieval"),
    Notebook("vilt", "ViLT: visual question answering with one light transformer"),
    Notebook("blip", "BLIP: captions, VQA, image-text matching; caption models compared"),
    Notebook("blip2", "BLIP-2: a Q-Former between a frozen image encoder and a frozen LLM"),
    Notebook("instructblip", "InstructBLIP: instruction-aware visual features"),
    Notebook("blip2_lavis", "BLIP-2 the LAVIS way, in its own environment", kernel="vlsteps-lavis"),
    Notebook("qwen_vl", "Qwen2.5-VL: chat, grounding with boxes, dynamic resolution"),
]


def get(name: str) -> Notebook:
    for nb in NOTEBOOKS:
        if nb.name == name:
            return nb
    raise KeyError(f"Unknown notebook {name!r}; known: {', '.join(nb.name for nb in NOTEBOOKS)}")
