"""The model registry: the single source of truth for every checkpoint the notebooks use.

The README's model table, `tools/download_models.sh` and the offline stand-in builder all read
this list, so a checkpoint is described once.
"""
from __future__ import annotations

from dataclasses import dataclass

# Weights as safetensors only; configs, tokenizers, processors and chat templates beside them.
TRANSFORMERS_FILES = ("*.safetensors", "*.json", "*.txt", "*.model", "*.jinja")
# Never fetched, even where a repo holds them (pickled or other-framework weights).
IGNORED_FILES = ("*.bin", "*.bin.index.json", "*.pt", "*.pth", "*.ckpt", "*.h5", "*.msgpack",
                 "*.ot", "*.onnx", "*.onnx_data", "*.pb", "tf_*", "flax_*", "onnx/*", "openvino/*")
SDXL_FP16_FILES = (
    "model_index.json", "scheduler/*.json", "tokenizer/*", "tokenizer_2/*",
    "text_encoder/config.json", "text_encoder/model.fp16.safetensors",
    "text_encoder_2/config.json", "text_encoder_2/model.fp16.safetensors",
    "unet/config.json", "unet/diffusion_pytorch_model.fp16.safetensors",
    "vae/config.json", "vae/diffusion_pytorch_model.fp16.safetensors",
)


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
INSTRUCTBLIP = (*VISION_TEXT, any_of(*TOKENIZER, under="qformer_tokenizer/"))
SDXL_REQUIRED = (*(f for f in SDXL_FP16_FILES if "*" not in f), "scheduler/scheduler_config.json",
                 any_of(*TOKENIZER, under="tokenizer/"), any_of(*TOKENIZER, under="tokenizer_2/"))


@dataclass(frozen=True)
class ModelSpec:
    key: str
    repo_id: str
    # The Hub's size of the files download_models.sh fetches (its file listing, rounded): what the disk needs,
    # shown before a download, which then reads the exact sizes. Parameters and memory are not typed here:
    # vlsteps.sizes computes them from the real architecture (vlsteps/architectures/) and measures them.
    download_gb: float
    dtype: str           # the notebook's dtype on a GPU
    notebooks: tuple[str, ...]
    family: str          # module of vlsteps.standins that builds its tiny stand-in
    files: tuple[str, ...] = TRANSFORMERS_FILES
    optional: bool = False  # not part of `download_models.sh all`
    gated: bool = False
    revision: str | None = None  # pinned where main holds pickled weights only (a safetensors conversion)
    # What a folder put there by hand must hold to count as complete (a download's own manifest says it for
    # folders it wrote): `a | b` accepts either; X.safetensors may be sharded (X.safetensors.index.json).
    required: tuple[str, ...] = ("config.json", "model.safetensors")

    @property
    def folder(self) -> str:
        """Local folder name: the repo's own name, so real and stand-in folders match."""
        return self.repo_id.split("/")[-1]

    @property
    def download_command(self) -> str:
        return f"tools/download_models.sh {self.key}"


MODELS: dict[str, ModelSpec] = {m.key: m for m in [
    ModelSpec("vit", "google/vit-base-patch16-224", 0.35, "float32", ("vit",), "vit", required=VISION),
    ModelSpec("clip", "openai/clip-vit-large-patch14", 1.7, "float16", ("clip", "blip", "serve"), "clip",
              required=VISION_TEXT),
    ModelSpec("sdxl-turbo", "stabilityai/sdxl-turbo", 6.9, "float16", ("clip",), "sdxl",
              files=SDXL_FP16_FILES, required=SDXL_REQUIRED),
    ModelSpec("vilt", "dandelin/vilt-b32-finetuned-vqa", 0.47, "float32", ("vilt",), "vilt",
              revision="refs/pr/9", required=VISION_TEXT),
    ModelSpec("blip-caption", "Salesforce/blip-image-captioning-large", 1.9, "float16",
              ("blip", "serve"), "blip", required=VISION_TEXT),
    ModelSpec("blip-vqa", "Salesforce/blip-vqa-base", 1.5, "float16", ("blip",), "blip",
              required=VISION_TEXT),
    ModelSpec("blip-itm", "Salesforce/blip-itm-large-coco", 1.8, "float16", ("blip",), "blip",
              revision="c0273606af96037e7a3b2fb0ff4ae9620b517be6", required=VISION_TEXT),
    ModelSpec("vit-gpt2", "nlpconnect/vit-gpt2-image-captioning", 0.98, "float32",
              ("blip", "serve"), "vit_gpt2", revision="93857e539f312a97c13f16976c2a43505fd76d87", required=VISION_TEXT),
    ModelSpec("kosmos-2", "microsoft/kosmos-2-patch14-224", 6.7, "float16", ("blip", "serve"), "kosmos2",
              required=VISION_TEXT),
    ModelSpec("blip2", "Salesforce/blip2-opt-2.7b", 15.5, "float16", ("blip2", "instructblip", "serve"),
              "blip2", required=VISION_TEXT),
    ModelSpec("instructblip", "Salesforce/instructblip-flan-t5-xl", 16.0, "bfloat16",
              ("instructblip",), "blip2", required=INSTRUCTBLIP),
    ModelSpec("instructblip-vicuna", "Salesforce/instructblip-vicuna-7b", 31.8, "4-bit",
              ("instructblip",), "blip2", optional=True, required=INSTRUCTBLIP),
    ModelSpec("qwen-vl", "Qwen/Qwen2.5-VL-3B-Instruct", 7.5, "bfloat16", ("qwen_vl",), "qwen_vl",
              required=VISION_TEXT),
]}


def get(key: str) -> ModelSpec:
    """Look a model up by key, naming the known keys when it is not one."""
    try:
        return MODELS[key]
    except KeyError:
        raise KeyError(f"Unknown model key {key!r}. Known keys: {', '.join(MODELS)}") from None


def for_notebook(name: str) -> list[ModelSpec]:
    return [m for m in MODELS.values() if name in m.notebooks]
