"""What both benchmarks run: a CLIP image tower at its real size with random weights (throughput does not depend
on the weights' values), photo-like JPEG files, and a timer."""
from __future__ import annotations

import contextlib
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

# Public hyper-parameters of the two CLIP image towers (Radford et al. 2021, table 20).
ARCHS = {
    "B/32": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                 patch_size=32, image_size=224, projection_dim=512),
    "L/14": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                 patch_size=14, image_size=224, projection_dim=768),
}
TEXT_B32 = dict(hidden_size=512, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=8)   # table 20


def build_model(arch_name: str, tokenizer=None):
    """A CLIPModel with the real vision tower for arch_name, random weights, and a tiny text tower (the text
    tower is never run here), or given CLIP's real `tokenizer` B/32's real text tower. Plus a CLIPProcessor with
    CLIP's real preprocessing settings."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTextConfig, CLIPVisionConfig

    from vlsteps.cards.tiny_tokenizers import clip_tokenizer
    arch = ARCHS[arch_name]
    tok = tokenizer or clip_tokenizer()
    size = TEXT_B32 if tokenizer else dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                           num_attention_heads=2)
    text = CLIPTextConfig(vocab_size=len(tok), **size, max_position_embeddings=77,
                          projection_dim=arch["projection_dim"], bos_token_id=tok.bos_token_id,
                          eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    vision = CLIPVisionConfig(**arch)
    config = CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(),
                        projection_dim=arch["projection_dim"])
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    model = CLIPModel(config).eval()
    processor = CLIPProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 224},
                                                                 crop_size={"height": 224, "width": 224}),
                              tokenizer=tok)
    return model, processor


@contextlib.contextmanager
def scratch(prefix: str):
    """A temporary folder that is also the outputs folder (`VLSTEPS_OUTPUTS_DIR`) of this process and of the servers
    it starts, so the ONNX exports of the benchmark's models go with it instead of staying in the user's outputs."""
    before = os.environ.get("VLSTEPS_OUTPUTS_DIR")
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        os.environ["VLSTEPS_OUTPUTS_DIR"] = str(Path(tmp) / "outputs")
        try:
            yield Path(tmp)
        finally:
            if before is None:
                os.environ.pop("VLSTEPS_OUTPUTS_DIR")
            else:
                os.environ["VLSTEPS_OUTPUTS_DIR"] = before


def served_embedder(folder: Path, model_key: str, batch_size: int = 16):
    """The CLIP embedder the service runs on this machine (its runtime and threads, `vlsteps.serve.threads`), for
    the in-process rate a server is held to; with what was chosen."""
    from vlsteps.serve import threads
    from vlsteps.serve.pool import clip_embedder
    chosen = threads.choose()
    return clip_embedder(folder, chosen["runtime"], chosen["clip_threads"], batch_size, model_key), chosen


def save_model(arch_name: str, folder: Path, tokenizer=None):
    """build_model's model and processor saved into folder, as a checkpoint folder the code under test loads;
    returns the model."""
    model, processor = build_model(arch_name, tokenizer)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return model


def make_images(n: int, folder: Path, seed: int = 0) -> list[Path]:
    """n JPEG files (~640x480, like photos) cut from the sample photos with seeded random crops/flips."""
    from vlsteps.images import sample_photos
    rng = np.random.default_rng(seed)
    photos = list(sample_photos().values())
    paths = []
    for i in range(n):
        im = photos[i % len(photos)]
        w, h = im.size
        cw, ch = int(w * rng.uniform(0.6, 1.0)), int(h * rng.uniform(0.6, 1.0))
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        crop = im.crop((x, y, x + cw, y + ch)).resize((640, 480), Image.BICUBIC)
        if rng.random() < 0.5:
            crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
        path = folder / f"img_{i:04d}.jpg"
        crop.save(path, quality=90)
        paths.append(path)
    return paths


def timed(fn) -> float:
    """Seconds one call of fn takes."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start
