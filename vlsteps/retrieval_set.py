"""The retrieval set: images generated for the search index, seeded, saved with their metadata, made once.

The notebook passes in its own generation call (for SDXL-Turbo: the pipeline with 1-4 steps and
guidance 0), so nothing model-specific lives here. What this module guarantees:

- **Seeded**: every image has its own seed, derived from (category, index) only, so adding a category
  or changing N does not reseed the others.
- **Same pixels on a re-run**: images are generated in a *fixed* batch plan. Batched and one-by-one
  generation differ in the last bit of a few pixels (different matmul shapes), so a batch is always
  re-generated whole, with the same neighbours, even when only one of its images is missing.
- **Saved with metadata**: `<out>/<category>/<category>_<i>.png` plus a `.json` beside it holding the
  prompt, seed, steps, guidance, size and model. An image is skipped when its PNG decodes at the planned
  size and a JSON with the same settings exists; change a setting (or break the PNG) and it is regenerated.
- **The size planned**: an image of another size than the plan's is refused, not resized: it means the
  generation call ignores the plan's width and height, and a resized image is not what the recorded settings
  make (nor what the index should embed).
"""
from __future__ import annotations

import hashlib
import io
import json
import typing
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

from PIL import Image

from .files import atomic_write
from .images import ImageLoadError, load_image

# The generation call: (prompts, seeds) -> one PIL image per prompt, image i seeded with seeds[i].
GenerateFn = Callable[[list[str], list[int]], list[Image.Image]]


@dataclass(frozen=True)
class PlannedImage:
    category: str
    index: int
    prompt: str
    seed: int
    steps: int
    guidance_scale: float
    width: int
    height: int
    model: str

    @property
    def stem(self) -> str:
        return f"{self.category}/{self.category}_{self.index:03d}"

    def settings(self) -> dict:
        return asdict(self)


_FIELD_TYPES = typing.get_type_hints(PlannedImage)   # what a sidecar's settings must hold, key by key


def stable_seed(category: str, index: int, base_seed: int = 0) -> int:
    """A seed from the image's identity only (not from its position in a list)."""
    digest = hashlib.sha256(f"{base_seed}/{category}/{index}".encode()).hexdigest()
    return int(digest[:8], 16)


def plan(prompts: dict[str, str], n_per_category: int, *, model: str, steps: int = 1,
         guidance_scale: float = 0.0, size: int | tuple[int, int] = 512, base_seed: int = 0) -> list[PlannedImage]:
    """The images to have: `prompts` maps category -> prompt (may hold "{i}" for variety)."""
    if n_per_category < 1:
        raise ValueError(f"n_per_category must be >= 1, got {n_per_category}")
    width, height = (size, size) if isinstance(size, int) else size
    if width % 8 or height % 8:
        raise ValueError(f"width and height must be multiples of 8 (the VAE's downscale), got {width}x{height}")
    for cat in prompts:
        if not cat or any(c in cat for c in "/\\") or cat.startswith("."):
            raise ValueError(f"category {cat!r} must be a plain name (it becomes a folder)")
    return [PlannedImage(cat, i, prompt.format(i=i), stable_seed(cat, i, base_seed), int(steps), float(guidance_scale),
                      width, height, model)
            for cat, prompt in prompts.items() for i in range(n_per_category)]


def _paths(out_dir: Path, spec: PlannedImage) -> tuple[Path, Path]:
    base = Path(out_dir) / spec.stem
    return base.with_suffix(".png"), base.with_suffix(".json")


def _sidecar(meta: Path) -> PlannedImage | None:
    """The image a JSON sidecar describes, or None when it is unreadable or of another schema: such an image is
    treated as missing (skipped, then regenerated), never a crash."""
    try:
        doc = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    settings = doc.get("settings") if isinstance(doc, dict) else None
    if not isinstance(settings, dict) or settings.keys() != _FIELD_TYPES.keys():
        return None
    for key, kind in _FIELD_TYPES.items():
        value = settings[key]
        if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else kind):
            return None
    return PlannedImage(**settings)


def is_present(out_dir: Path, spec: PlannedImage) -> bool:
    png, meta = _paths(out_dir, spec)
    return _sidecar(meta) == spec and _whole(png, spec)


def _whole(png: Path, spec: PlannedImage) -> bool:
    """Whether the PNG decodes at the planned size: an empty, torn or foreign file counts as missing."""
    try:
        return load_image(png).size == (spec.width, spec.height)
    except ImageLoadError:
        return False


def batches(specs: Sequence[PlannedImage], batch_size: int) -> list[list[PlannedImage]]:
    """The fixed batch plan: consecutive images with the same size and steps, at most batch_size each."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    out: list[list[PlannedImage]] = []
    for spec in specs:
        if out and len(out[-1]) < batch_size and (out[-1][0].width, out[-1][0].height, out[-1][0].steps) == \
                (spec.width, spec.height, spec.steps):
            out[-1].append(spec)
        else:
            out.append([spec])
    return out


def generate(specs: Sequence[PlannedImage], generate_fn: GenerateFn, out_dir, batch_size: int = 4,
             progress: bool = True) -> list[dict]:
    """Make sure every planned image exists in out_dir; returns their records (see `record`).

    Batches whose images are all present are skipped; the others are generated whole (see module doc)."""
    out_dir = Path(out_dir)
    plan_batches = batches(specs, batch_size)
    todo = [b for b in plan_batches if not all(is_present(out_dir, s) for s in b)]
    bar = None
    if progress:
        from huggingface_hub.utils import tqdm   # off where HF_HUB_DISABLE_PROGRESS_BARS is set (copies made to read)
        bar = tqdm(total=len(specs), initial=len(specs) - sum(len(b) for b in todo), unit="img",
                   desc="retrieval set")
    try:
        for batch in todo:
            images = generate_fn([s.prompt for s in batch], [s.seed for s in batch])
            if len(images) != len(batch):
                raise RuntimeError(f"generate_fn returned {len(images)} images for {len(batch)} prompts")
            for spec, image in zip(batch, images):
                save(out_dir, spec, image)
            if bar is not None:
                bar.update(len(batch))
    finally:
        if bar is not None:
            bar.close()
    return [record(out_dir, s) for s in specs]


def save(out_dir, spec: PlannedImage, image: Image.Image) -> Path:
    """Write the PNG, then its JSON (the JSON last: a crash in between leaves the image 'missing').

    Refuses an image of another size than planned (see the module doc)."""
    if image.size != (spec.width, spec.height):
        raise ValueError(f"The image for {spec.stem} is {image.width}x{image.height}, the plan says "
                         f"{spec.width}x{spec.height}: make the generation call pass the plan's width and height")
    png, meta = _paths(Path(out_dir), spec)
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="PNG")
    atomic_write(png, buf.getvalue())
    atomic_write(meta, json.dumps({"settings": spec.settings(), "file": png.name}, indent=1, sort_keys=True) + "\n")
    return png


def record(out_dir, spec: PlannedImage) -> dict:
    """What the index stores about an image: path, category, prompt, seed, steps, model."""
    png, _ = _paths(Path(out_dir), spec)
    return {"path": str(png), "category": spec.category, "index": spec.index, "prompt": spec.prompt, "seed": spec.seed,
            "steps": spec.steps, "model": spec.model, "width": spec.width, "height": spec.height}


def load_records(out_dir) -> list[dict]:
    """Every image already saved under out_dir (sorted by path), read back from the JSON files."""
    out = []
    for meta in sorted(Path(out_dir).glob("*/*.json")):
        spec = _sidecar(meta)
        png = meta.with_suffix(".png")
        if spec is not None and _paths(Path(out_dir), spec) == (png, meta) and _whole(png, spec):   # describes itself
            out.append(record(out_dir, spec))
    return out
