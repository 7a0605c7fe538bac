"""The notebooks, in teaching order: the README table, `make run`, and each notebook's Colab badge and install
cell (generated here from the one home URL; tests/test_notebooks.py fails when a notebook's copy differs)."""
from __future__ import annotations

import re
from dataclasses import dataclass

from vlsteps import registry

HOME = "https://github.com/vlsteps/vlsteps"     # the project's home: pyproject.toml's Homepage says the same
GITHUB_REPO = HOME.removeprefix("https://github.com/")
PIP_SPEC = f"vlsteps @ git+{HOME}"
LAVIS_HINT = "LAVIS_PYTHON=/path/to/python3.11 make lavis-env"
_BADGE = re.compile(r"\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)")

PINS = "/tmp/pins.txt"
# Colab's packages, pinned: pip adds what the notebook's extra needs and replaces none of them (its frontend shows
# ipywidgets 7 only), except those the notebook names as needing newer versions.
_INSTALL = """# On Colab: install vlsteps[{name}] and download this notebook's {what}.
# Colab's own packages stay as they are (pinned from pip's list; Colab shows ipywidgets 7 only).{newer}
import sys
if "google.colab" in sys.modules:
    !python -m pip list --format=freeze --exclude vlsteps{excludes} > {pins}
    %pip install -q -c {pins} "{spec}"
    !python -m vlsteps.download {keys}"""
_OPTIONAL = "\n    # Optional, not downloaded here: !python -m vlsteps.download {key}"
# Where LAVIS cannot install, the cell raises: Run all stops here, and IPython shows what _render_traceback_ returns,
# the one message, in place of a traceback.
_INSTALL_LAVIS = """# On Colab: LAVIS replaces Colab's transformers and NumPy in this runtime (nothing else of this collection runs
# in it afterwards). Run this cell, then Runtime > Restart session, then run the notebook from the top.
# LAVIS's transformers 4.26 needs tokenizers 0.13, which has wheels up to Python 3.11 only.
import sys
if "google.colab" in sys.modules:
    if sys.version_info[:2] != (3, 11):
        class CannotRunHere(Exception):
            def _render_traceback_(self):
                return [str(self)]
        python = f"{{sys.version_info.major}}.{{sys.version_info.minor}}"
        raise CannotRunHere(f"This Colab runs Python {{python}}, and salesforce-lavis 1.0.2 needs Python 3.11: this "
                            "notebook stops here. Run it locally, set up with "
                            "`{hint}`.")
    %pip install -q salesforce-lavis==1.0.2 "numpy<2" "transformers==4.26.1"
    %pip install -q --no-deps "{spec}\""""  # noqa: E501


@dataclass(frozen=True)
class Notebook:
    name: str
    title: str
    kernel: str = "python3"   # the LAVIS notebook runs in its own environment's kernel
    # For a notebook without registry models: what the README's models and sizes columns say instead.
    own_models: tuple[str, str, str, str, str] | None = None
    # Colab's packages that this notebook needs newer than Colab ships: its install cell leaves them unpinned
    # (tests/test_colab_install.py checks this against Colab's freeze).
    newer_than_colab: tuple[str, ...] = ()

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
    def pip_spec(self) -> str:
        """What the install cell installs: vlsteps with the notebook's extra (pyproject.toml), what it imports."""
        return f"vlsteps[{self.name}] @ git+{HOME}"

    @property
    def models(self) -> list[registry.Card]:
        return registry.for_notebook(self.name)

    @property
    def install_cell(self) -> str:
        """The notebook's second cell: on Colab, install vlsteps from HOME and download the notebook's models."""
        if self.kernel != "python3":
            return _INSTALL_LAVIS.format(spec=PIP_SPEC, hint=LAVIS_HINT)
        wanted = [m.key for m in self.models if not m.optional]
        newer = " and ".join(self.newer_than_colab)
        text = _INSTALL.format(name=self.name, what="model" if len(wanted) == 1 else "models", pins=PINS,
                               spec=self.pip_spec, keys=" ".join(wanted),
                               newer=newer and f"\n# Not pinned: {newer}, which this notebook needs newer.",
                               excludes="".join(f" --exclude {name}" for name in self.newer_than_colab))
        if not wanted:   # a notebook of its own code (the captioner) downloads nothing
            text = text.replace(" and download this notebook's models", "").rsplit("\n", 1)[0]
        return text + "".join(_OPTIONAL.format(key=m.key) for m in self.models if m.optional)

    def sync(self, nb):
        """Rewrite the generated parts of a notebook (the badge and the size table in cell 0, the install cell) and
        drop widget state, which GitHub refuses to render when it has no `state`."""
        first, install = nb.cells[0], nb.cells[1]
        if first.cell_type != "markdown" or not _BADGE.search(first.source):
            raise ValueError(f"{self.path}: the first cell must be markdown with the Colab badge {self.colab_badge}")
        first.source = _BADGE.sub(lambda _: self.colab_badge, first.source, count=1)
        from .size_tables import sync_header   # here: it builds models on the meta device, which importing need not
        first.source = sync_header(self.name, first.source)
        if install.cell_type != "code" or "google.colab" not in install.source:
            raise ValueError(f"{self.path}: the second cell must be the Colab install cell")
        install.source = self.install_cell
        nb.metadata.pop("widgets", None)
        return nb


NOTEBOOKS = [
    Notebook("vit", "ViT: an image as a sequence of patches"),
    # diffusers >= 0.41 (pyproject.toml says why) needs huggingface-hub >= 1.32; Colab has 0.39 and 1.27.
    Notebook("clip", "CLIP: zero-shot labels, an SDXL-Turbo retrieval set, Chroma search",
             newer_than_colab=("diffusers", "huggingface-hub")),
    Notebook("vilt", "ViLT: visual question answering with one light transformer"),
    Notebook("blip", "BLIP: captions, VQA, image-text matching; caption models compared"),
    Notebook("blip2", "BLIP-2: a Q-Former between a frozen image encoder and a frozen LLM"),
    Notebook("instructblip", "InstructBLIP: instruction-aware visual features"),
    Notebook("blip2_lavis", "BLIP-2 the LAVIS way, in its own environment", kernel="vlsteps-lavis",
             own_models=("LAVIS's `blip2_t5` / `caption_coco_flant5xl` (EVA ViT-g + Q-Former + Flan-T5-XL), outside "
                         "the registry", "by LAVIS itself on first use (`eva_vit_g.pth`, `blip2_caption_flant5xl.pth`, "
                         "`google/flan-t5-xl`, `bert-base-uncased`), not `download_models.sh`",
                         "not computed: LAVIS builds the model from its own YAML, not from `vlsteps/architectures`",
                         "not on Colab: LAVIS needs Python 3.11, Colab runs 3.13",
                         "not measured (stand-ins only in CI)")),
    Notebook("qwen_vl", "Qwen2.5-VL: chat, grounding with boxes, dynamic resolution"),
    Notebook("captioner", "Train your own captioner: CNN -> Transformer encoder -> decoder, on a CPU in minutes",
             own_models=("none: the learner trains its own (its parameters are counted in the notebook)",
                         "nothing", "the learner's model, counted in the notebook", "not needed: trains on a CPU",
                         "not measured")),
    Notebook("finetune", "Fine-tune BLIP-2 and Qwen2.5-VL with LoRA / QLoRA: a new concept, offline in minutes"),
    Notebook("serve", "Serving: the models as a batched vision service for PhotoPrism and Photofield"),
]


def get(name: str) -> Notebook:
    for nb in NOTEBOOKS:
        if nb.name == name:
            return nb
    raise KeyError(f"Unknown notebook {name!r}; known: {', '.join(nb.name for nb in NOTEBOOKS)}")
