"""CLIP's two towers on ONNX Runtime: the service's runtime on a machine without CUDA (`--runtime auto|onnx`; the
runtime photofield-ai and immich serve CLIP with), faster than torch on this project's CPU at every batch and thread
count measured (README, Serving; `python -m tools.bench runtime`).

The towers are exported from the very model `ClipEmbedder` loads (torch.onnx), once per model folder, into
`outputs_dir()/onnx`: a folder per folder and weights, written under a temporary name and renamed into place, so a
half-written export is never loaded, and another one is made when the folder's weights change.
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from . import paths
from .embed import ClipEmbedder

log = logging.getLogger(__name__)
INSTALL = "pip install onnxruntime 'onnx<1.23' (pinned in requirements.txt, and in the serve extra)"
FORMAT = 1      # bump when what `export` writes changes, so old exports are redone
_WEIGHTS = ("*.safetensors", "*.bin", "*.json")


def require():
    """onnxruntime (and onnx, which torch.onnx.export needs), or one ImportError that says what to install."""
    try:
        import onnx  # noqa: F401
        import onnxruntime
    except ImportError:
        raise ImportError(f"The onnx runtime needs onnxruntime and onnx: {INSTALL}; or run on torch "
                          "(--runtime torch).") from None
    return onnxruntime


class _Tower(torch.nn.Module):
    """One tower of a CLIPModel as a module of one input: its projected (not normalized) embedding."""

    def __init__(self, model, image: bool):
        super().__init__()
        self.model, self.image = model, image

    def forward(self, x):
        out = (self.model.get_image_features(pixel_values=x) if self.image else
               self.model.get_text_features(input_ids=x))
        return out.pooler_output if hasattr(out, "pooler_output") else out


def export(model, folder: Path, text_length: int | None = None) -> tuple[Path, Path]:
    """visual.onnx ([batch, 3, H, W] float32) and textual.onnx ([batch, tokens] int64, right-padded: the causal
    mask keeps padding after the end token out of its embedding). `text_length` fixes the tokens axis: photofield-ai's
    cliponnx loads a text tower only with the input [batch, 77] (models.py, TextualModel), the service pads to the
    longest text of a batch instead."""
    folder = Path(folder)
    files = folder / "visual.onnx", folder / "textual.onnx"
    size = model.config.vision_config.image_size
    inputs = torch.zeros(1, 3, size, size), torch.zeros(
        1, text_length or model.config.text_config.max_position_embeddings, dtype=torch.int64)
    axes = {"input": {0: "batch"}, "output": {0: "batch"}}
    model = model.float().cpu().eval()
    with warnings.catch_warnings():
        # the tracer's notes on shape checks it keeps as constants (none depends on the batch or the text length),
        # on indexing by negative numbers (the text tower indexes by its end token's position, never negative), and
        # that this exporter and its parts are the older ones (the newer needs onnxscript; photofield-ai loads this)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", "Exporting aten::index operator", UserWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx")
        warnings.filterwarnings("ignore", "You are using the legacy TorchScript-based ONNX export", DeprecationWarning)
        for path, x, image in zip(files, inputs, (True, False)):
            torch.onnx.export(_Tower(model, image), (x,), str(path), dynamo=False, opset_version=17,
                              input_names=["input"], output_names=["output"],
                              dynamic_axes=(axes if image or text_length else
                                            {**axes, "input": {0: "batch", 1: "tokens"}}))
    return files


def _weights_key(folder: Path, fingerprint: str) -> str:
    """What an export depends on: the weights' fingerprint and the files' sizes and times (a rewrite changes them
    even where the sampled signs do not), torch's version and this module's format."""
    files = [p for pattern in _WEIGHTS for p in folder.glob(pattern)]
    stats = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    blob = json.dumps([FORMAT, torch.__version__, fingerprint, stats])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def cached_export(model, folder: Path, fingerprint: str) -> Path:
    """The folder holding visual.onnx and textual.onnx for the model loaded from `folder`, exported on first use;
    exports of this folder's earlier weights are removed."""
    folder = Path(folder).resolve()
    home = paths.outputs_dir() / "onnx" / f"{folder.name}-{hashlib.sha256(str(folder).encode()).hexdigest()[:8]}"
    target = home / _weights_key(folder, fingerprint)
    if not target.is_dir():
        home.mkdir(parents=True, exist_ok=True)
        log.info("exporting %s to ONNX in %s", folder, target)
        tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=home))
        try:
            export(model, tmp)
            tmp.rename(target)            # atomic; fails if another process has just put its export there
        except OSError:
            if not target.is_dir():
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    for old in home.iterdir():
        if old != target and not old.name.startswith("."):
            shutil.rmtree(old, ignore_errors=True)
    return target


def _release_freed() -> None:
    """Hand the pages of the freed torch weights back to the system (glibc keeps them otherwise: 136 MB of a B/32
    stayed in the service's RSS)."""
    import ctypes
    import gc
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):     # not glibc: nothing to trim
        pass


def _unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows L2-normalized as torch's `normalize` does them (float32, a zero row stays zero)."""
    return torch.nn.functional.normalize(torch.from_numpy(x).float(), dim=-1).numpy()


class OnnxClipEmbedder(ClipEmbedder):
    """`ClipEmbedder` whose towers run on ONNX Runtime's CPU provider: the same preprocessing, tokenizer,
    fingerprint and vectors (cosine >= 0.9999 with torch's; tests/test_onnx_clip.py). The torch model is kept for
    the export only and released after it."""

    def __init__(self, model, processor, folder: Path, batch_size: int = 32, model_key: str = "clip",
                 threads: int | None = None):
        ort = require()
        super().__init__(model, processor, device="cpu", batch_size=batch_size, model_key=model_key)
        self.export_dir = cached_export(model, folder, self.fingerprint)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()     # the service's thread choice
        options.inter_op_num_threads = 1
        # threads that wait blocking, not spinning: as fast on free cores, and on a busy one two threads no longer
        # fall behind one (vlsteps.serve.threads)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.threads = options.intra_op_num_threads
        self._visual, self._textual = (ort.InferenceSession(str(self.export_dir / name), options,
                                                            providers=["CPUExecutionProvider"])
                                       for name in ("visual.onnx", "textual.onnx"))
        self._logit_scale = super().logit_scale
        del self.model
        _release_freed()

    @classmethod
    def from_pretrained(cls, path, model_key: str = "clip", batch_size: int = 32, threads: int | None = None):
        """Load the folder as `ClipEmbedder.from_pretrained` does (float32, on the CPU), then export or reuse."""
        loaded = ClipEmbedder.from_pretrained(path, model_key=model_key, device="cpu", dtype=torch.float32,
                                              batch_size=batch_size)
        return cls(loaded.model, loaded.processor, Path(path), batch_size, model_key, threads)

    def __repr__(self) -> str:
        return super().__repr__().replace("ClipEmbedder(", "OnnxClipEmbedder(runtime=onnx, ", 1)

    @property
    def logit_scale(self) -> float:
        return self._logit_scale

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(_unit_rows(self._visual.run(None, {"input": pixel_values.float().numpy()})[0]))

    def text_features(self, texts: list[str]) -> np.ndarray:
        tok = getattr(self.processor, "tokenizer", self.processor)
        ids = tok(texts, padding=True, padding_side="right", truncation=True, return_tensors="np")["input_ids"]
        return _unit_rows(self._textual.run(None, {"input": ids.astype(np.int64)})[0])
