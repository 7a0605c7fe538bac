"""The CLIP and SDXL-Turbo stand-ins: byte-identical rebuilds, the real classes and layout, and they run."""
import fnmatch
import hashlib

import numpy as np
import pytest
import torch

from vlsteps import registry, standins
from vlsteps.cards import clip, sdxl

MAX_BYTES = 8_000_000


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    out = {}
    for key in ("clip", "sdxl-turbo"):
        out[key] = [standins.build(registry.get(key), tmp_path_factory.mktemp(f"{key}-{i}")) for i in range(2)]
    return out


def digests(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("key", ["clip", "sdxl-turbo"])
def test_two_builds_are_byte_identical_and_small(builds, key):
    a, b = builds[key]
    da, db = digests(a), digests(b)
    assert da == db, [f for f in da if da.get(f) != db.get(f)]
    assert sum(p.stat().st_size for p in a.rglob("*") if p.is_file()) < MAX_BYTES
    assert a.name == registry.get(key).folder


def test_clip_has_the_real_classes_and_image_size(builds):
    from transformers import CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer
    folder = builds["clip"][0]
    model, processor = CLIPModel.from_pretrained(folder), CLIPProcessor.from_pretrained(folder)
    assert isinstance(processor.image_processor, CLIPImageProcessor)
    assert isinstance(processor.tokenizer, CLIPTokenizer)
    vc = model.config.vision_config
    assert (vc.image_size, vc.patch_size) == (224, clip.PATCH)     # the real image size; 28-pixel patches (its doc)
    inputs = processor(images=[np.zeros((300, 400, 3), np.uint8)], text=["a photo of a cat"], return_tensors="pt")
    with torch.no_grad():
        out = model.vision_model(pixel_values=inputs["pixel_values"])
        txt = model.get_text_features(**{k: inputs[k] for k in ("input_ids", "attention_mask")}).pooler_output
    assert tuple(inputs["pixel_values"].shape) == (1, 3, 224, 224)
    assert out.last_hidden_state.shape[1] == (224 // clip.PATCH) ** 2 + 1
    assert txt.shape == (1, model.config.projection_dim)
    assert processor.tokenizer.model_max_length <= model.config.text_config.max_position_embeddings


def test_clip_stand_in_images_do_not_all_embed_alike(builds):
    """Random CLIP weights at the default init map every image to nearly one vector; ours must not."""
    from transformers import CLIPModel, CLIPProcessor
    folder = builds["clip"][0]
    model, processor = CLIPModel.from_pretrained(folder), CLIPProcessor.from_pretrained(folder)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (64, 64, 3), dtype=np.uint8) for _ in range(6)]
    with torch.no_grad():
        f = model.get_image_features(**processor(images=images, return_tensors="pt")).pooler_output
    f = torch.nn.functional.normalize(f, dim=-1)
    off = (f @ f.T)[~torch.eye(6, dtype=torch.bool)]
    assert off.max() < 0.999


def test_sdxl_holds_only_the_fp16_files_the_registry_downloads(builds):
    folder = builds["sdxl-turbo"][0]
    files = [f for f in digests(folder) if f != standins.MARKER]
    stray = [f for f in files if not any(fnmatch.fnmatch(f, pat) for pat in sdxl.SDXL_FP16_FILES)]
    assert not stray
    for pat in sdxl.SDXL_FP16_FILES:
        assert any(fnmatch.fnmatch(f, pat) for f in files), pat


def test_sdxl_loads_like_the_real_one_and_draws_seeded_images(builds):
    from diffusers import AutoPipelineForText2Image, StableDiffusionXLPipeline
    pipe = AutoPipelineForText2Image.from_pretrained(builds["sdxl-turbo"][0], variant="fp16", dtype=torch.float32)
    assert isinstance(pipe, StableDiffusionXLPipeline) and pipe.unet.dtype == torch.float32
    assert pipe.vae_scale_factor == 8 and pipe.scheduler.config.timestep_spacing == "trailing"
    pipe.set_progress_bar_config(disable=True)

    def draw(seed):
        return np.asarray(pipe("a photo of a cat", num_inference_steps=1, guidance_scale=0.0, height=64, width=64,
                               generator=torch.Generator().manual_seed(seed)).images[0])
    a, b, c = draw(1), draw(1), draw(2)
    assert a.shape == (64, 64, 3) and np.array_equal(a, b) and not np.array_equal(a, c)
