"""A checkpoint's card: everything the collection knows about one registry key, in one place.

The download list and the README's tables read its facts; `vlsteps.standins` builds its tiny stand-in with
`standin`; `vlsteps.model_summary` prints `summary`'s rows; the full-size dry runs (tools/dryrun.py) run its
`workload`; the service loads it with `serve`. The code lives beside the card, one module per model family
(`vlsteps.cards.<family>`), and imports torch and transformers only when called: `download_models.sh --list`
reads every card without them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

# Weights as safetensors only; configs, tokenizers, processors and chat templates beside them.
TRANSFORMERS_FILES = ("*.safetensors", "*.json", "*.txt", "*.model", "*.jinja")
# Never fetched, even where a repo holds them (pickled or other-framework weights).
IGNORED_FILES = ("*.bin", "*.bin.index.json", "*.pt", "*.pth", "*.ckpt", "*.h5", "*.msgpack",
                 "*.ot", "*.onnx", "*.onnx_data", "*.pb", "tf_*", "flax_*", "onnx/*", "openvino/*")


def any_of(*names: str, under: str = "") -> str:
    """A `required` entry that any one of `names` satisfies."""
    return " | ".join(under + name for name in names)


# Without one of these transformers builds a tokenizer of the special tokens only, without complaint. A folder
# made by hand (`hf download`) may hold the slow files instead of tokenizer.json; transformers converts them.
TOKENIZER = ("tokenizer.json", "vocab.json", "vocab.txt", "spiece.model", "sentencepiece.bpe.model",
             "tokenizer.model")
# The Hub's repos hold preprocessor_config.json; transformers 5 saves processor_config.json.
IMAGE_PROCESSOR = any_of("preprocessor_config.json", "processor_config.json")
VISION = ("config.json", IMAGE_PROCESSOR, "model.safetensors")
VISION_TEXT = (*VISION, any_of(*TOKENIZER))


@dataclass(frozen=True)
class Workload:
    """The notebook's own unit of work, as the dry runs run it: `text` says it in the README's measured table;
    `run(card, models, device, dtype, g)` does it once on random inputs of the real shapes (`models`: component
    -> module, None for a single model; `g`: a seeded torch.Generator) and returns the new tokens it made."""
    text: str
    run: Callable


@dataclass(frozen=True)
class WorldTraining:
    """How a stand-in learns the procedural world (`vlsteps.world`), run by `python -m tools.learn KEY`: `text`
    says what it learned (the README's "Offline behaviour" table); `train(card, folder)` trains the random-weight
    stand-in saved in folder, in place, deterministically on one CPU thread, and returns facts about the run
    ({"steps": ...}); `measure(card, folder)` scores the saved stand-in on held-out scenes through the notebook's
    own calls ({score name: value}); `goals` holds the issue's goal per score, and `floors` what `make test`
    holds the committed weights to."""
    text: str
    train: Callable
    measure: Callable
    goals: dict
    floors: dict


@dataclass(frozen=True)
class Card:
    key: str
    repo_id: str
    # The Hub's size of the files download_models.sh fetches (its file listing, rounded): what the disk needs,
    # shown before a download, which then reads the exact sizes. Parameters and memory are not typed here:
    # vlsteps.sizes computes them from the real architecture (vlsteps/architectures/) and measures them.
    download_gb: float
    dtype: str           # the notebook's dtype on a GPU
    notebooks: tuple[str, ...]
    standin: Callable    # standin(card, out): writes the tiny random-weight stand-in's files into the folder out
    # summary(config) -> {row label: value}: layers, widths and token counts of a transformers config (a pipeline's:
    # of {component: config}), the same rows for the real checkpoint and the loaded model
    summary: Callable
    workload: Workload
    serve: Callable | None = None   # serve(path, dtype, device) -> the service's captioner parts; None: not served
    training: WorldTraining | None = None   # None: the stand-in keeps its random weights
    files: tuple[str, ...] = TRANSFORMERS_FILES
    optional: bool = False  # not part of `download_models.sh all`
    gated: bool = False
    revision: str | None = None  # pinned where main holds pickled weights only (a safetensors conversion)
    # What a folder put there by hand must hold to count as complete (a download's own manifest says it for
    # folders it wrote): `a | b` accepts either; X.safetensors may be sharded (X.safetensors.index.json).
    required: tuple[str, ...] = ("config.json", "model.safetensors")
    architecture: str = ""   # its folder under vlsteps/architectures/; "" means the key

    def __post_init__(self):
        if not self.architecture:
            object.__setattr__(self, "architecture", self.key)

    @property
    def folder(self) -> str:
        """Local folder name: the repo's own name, so real and stand-in folders match."""
        return self.repo_id.split("/")[-1]

    @property
    def download_command(self) -> str:
        return f"tools/download_models.sh {self.key}"


# ---- what the cards' summaries share ----

@dataclass(frozen=True)
class Shape:
    """A stack of layers: how many, and how wide (hidden size)."""
    layers: int | str
    width: int

    def __str__(self) -> str:
        return f"{self.layers} layers x {self.width:,}"


def vit_tokens(v) -> int:
    return (v.image_size // v.patch_size) ** 2 + 1          # patches + [CLS]


# ---- what the cards' workloads share (torch is imported by the dry run's child process only) ----

def random_ids(g, n: int, high: int, device):
    import torch
    return torch.randint(10, high, (1, n), generator=g).to(device)


def random_pixels(g, device, dtype, *shape):
    import torch
    return torch.randn(*shape, generator=g).to(device, dtype)


def generate(model, n_new: int, **inputs) -> int:
    """Exactly n_new tokens (untrained weights stop anywhere): the notebook's token count, timed."""
    out = model.generate(**inputs, max_new_tokens=n_new, min_new_tokens=n_new, do_sample=False)
    return n_new if out.ndim == 2 else 0
