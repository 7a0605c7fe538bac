"""Caption models behind one call: `Captioner.caption([(image, prompt), ...]) -> [(text, confidence), ...]`.

Each model is loaded and prompted as its notebook does, by its card's `serve` (vlsteps.cards: notebooks/blip.ipynb
for kosmos-2, blip-caption and vit-gpt2, blip2.ipynb, qwen_vl.ipynb), with greedy decoding, so a caption does not
depend on what else was in its batch: items are preprocessed one by one and only items whose inputs have the same
shape are stacked into one `generate`, so no item is ever padded. `confidence` is computed: the geometric mean of the
probabilities the model gave the tokens it chose.

A request's prompt is put in the model's own format, or dropped where the model cannot use it (`CaptionModel.prompt_use`
says which, in /api/v1/status). PhotoPrism sends an instruction written for Ollama chat models with every caption
request (internal/ai/vision/ollama/const.go, CaptionPrompt): Qwen-VL follows it in its chat template; BLIP-2 OPT,
never tuned to follow instructions, gives its own caption instead of continuing the instruction's text.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from .. import registry
from ..cards import kosmos2, qwen_vl
from ..device import pick_device, pick_dtype


@dataclass(frozen=True)
class CaptionModel:
    """A served caption model: the registry key it loads, the name and version it answers with, whether it reads a
    request's `prompt`, and what the prompt becomes."""
    key: str
    name: str
    version: str
    prompted: bool
    prompt_use: str


IGNORED = "ignored: the model captions without a prompt"
MODELS = {m.name: m for m in [
    CaptionModel("kosmos-2", "kosmos-2", "patch14-224", False,
                 f"ignored: the caption continues the model's own grounding prompt {kosmos2.PROMPT!r}"),
    CaptionModel("blip-caption", "blip-caption", "large", False, IGNORED),
    CaptionModel("vit-gpt2", "vit-gpt2", "latest", False, IGNORED),
    CaptionModel("blip2", "blip2", "opt-2.7b", True,
                 "a question (ending in '?') becomes 'Question: <question> Answer:', BLIP-2's VQA format, and one "
                 "already in that format is kept; anything else, such as PhotoPrism's default caption instruction, "
                 "is dropped (BLIP-2 OPT continues text, it does not follow instructions): the caption is then the "
                 "model's own unprompted one"),
    CaptionModel("qwen-vl", "qwen-vl", "2.5-3b-instruct", True,
                 "the user turn of Qwen's chat template, after the image, as sent (PhotoPrism's default caption "
                 f"instruction included); without one: {qwen_vl.SERVE_PROMPT!r}"),
]}
DEFAULT = "kosmos-2"


class Captioner:
    """One loaded caption model. `prepare(image, prompt)` makes one item's model inputs (a dict of tensors with a
    batch dimension of 1), `finish(text)` cleans a decoded caption."""

    def __init__(self, model, decode, prepare: Callable, finish: Callable = str.strip, max_new_tokens: int = 30,
                 resolution: int | None = None):
        self.model, self.decode, self.prepare, self.finish = model.eval(), decode, prepare, finish
        self.resolution = resolution
        self.max_new_tokens = max_new_tokens
        self.device, self.dtype = model.device, model.dtype

    def caption(self, items: list[tuple]) -> list[tuple[str, float]]:
        prepared = [self.prepare(image, prompt) for image, prompt in items]
        groups: dict[tuple, list[int]] = {}
        for i, inputs in enumerate(prepared):
            groups.setdefault(_shape_key(inputs), []).append(i)
        out: list = [None] * len(items)
        for indices in groups.values():
            stacked = {k: torch.cat([prepared[i][k] for i in indices]) for k in prepared[indices[0]]}
            for i, result in zip(indices, self._generate(stacked)):
                out[i] = result
        return out

    def _generate(self, inputs: dict) -> list[tuple[str, float]]:
        inputs = {k: v.to(self.device, self.dtype) if v.is_floating_point() else v.to(self.device)
                  for k, v in inputs.items()}
        with torch.inference_mode():
            out = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False, num_beams=1,
                                      return_dict_in_generate=True, output_scores=True)
            logprobs = self.model.compute_transition_scores(out.sequences, out.scores, normalize_logits=True)
        new = out.sequences[:, -len(out.scores):]
        config = self.model.generation_config
        ends = {t for t in (config.pad_token_id, config.eos_token_id) for t in (t if isinstance(t, list) else [t])
                if t is not None}
        results = []
        for tokens, scores in zip(new, logprobs.float()):
            keep = torch.tensor([int(t) not in ends for t in tokens])
            mean = scores[keep].mean() if keep.any() else scores.mean()
            confidence = float(torch.exp(mean).clamp(0, 1)) if torch.isfinite(mean) else 0.0
            results.append((self.finish(self.decode(tokens)), round(confidence, 4)))
        return results


def _shape_key(inputs: dict) -> tuple:
    """Items stack without padding when every tensor but Qwen's flattened patches has the same shape."""
    return tuple((k, tuple(v.shape[1:]) if k != "pixel_values" or v.ndim == 4 else v.shape[-1:])
                 for k, v in sorted(inputs.items()) if k != "image_grid_thw")


def load(key: str, path, max_new_tokens: int = 30, adapter=None) -> Captioner:
    """The captioner for registry key `key` from the model folder `path`, loaded and prompted by its card's `serve`
    (as its notebook does), in the dtype its notebook uses; with the LoRA adapter folder `adapter` merged in."""
    card = registry.get(key)
    if card.serve is None:
        raise KeyError(f"No caption model {key!r}; served: {', '.join(MODELS)}")
    device = pick_device()
    parts = card.serve(path, pick_dtype(key, device), device)
    if adapter:
        from ..finetune.merge import merge
        parts["model"] = merge(parts["model"], adapter, key)
    edge = resolution(parts.pop("image_processor", None))
    return Captioner(**parts, max_new_tokens=max_new_tokens, resolution=edge)


def resolution(image_processor) -> int | None:
    """The square edge in pixels a model sees (PhotoPrism's `resolution`); None where it varies (Qwen-VL)."""
    size = getattr(image_processor, "crop_size", None) if getattr(image_processor, "do_center_crop", False) else None
    size = size or getattr(image_processor, "size", None)     # a SizeDict in transformers 5, a dict before
    height = size.get("height") if isinstance(size, dict) else getattr(size, "height", None)
    return int(height) if height else None
