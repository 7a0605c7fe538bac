"""A run folder holds everything one training run made, so it can be inspected, resumed and compared:

    config.json        the flags it ran with            vocab.json     the training split's words
    metrics.jsonl      one JSON line per logged step and per epoch (validation)
    last.safetensors   weights + optimizer + RNG state + progress (what --resume continues from)
    best.safetensors   weights of the epoch with the best validation accuracy
    samples/           per epoch: captions of fixed validation images, as PNG and JSON
    results.json       held-out scores of the best weights, beside the image-blind baseline
    tb/, wandb/        TensorBoard and W&B logs, when those packages are installed and asked for

Every file is written to a temporary name and then renamed, so a run stopped at any moment leaves no half file.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save

from ..files import atomic_write

FILES = ("config.json", "vocab.json", "metrics.jsonl", "last.safetensors", "best.safetensors", "results.json")


def save_checkpoint(path: Path, model_state: dict, progress: dict, optimizer=None) -> None:
    """Weights (and for `last`, the optimizer's moments and the RNG) in one safetensors file; the progress
    counters and optimizer hyper-parameters ride in its string metadata."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model_state.items()}
    meta = {"progress": json.dumps(progress)}
    if optimizer is not None:
        state = optimizer.state_dict()
        for index, slots in state["state"].items():
            for name, value in slots.items():
                tensors[f"optimizer.{index}.{name}"] = torch.as_tensor(value).detach().cpu().contiguous()
        meta["param_groups"] = json.dumps(state["param_groups"])
        tensors["rng.torch"] = torch.get_rng_state()
    atomic_write(path, save(tensors, metadata=meta))


def read_progress(path: Path) -> dict:
    """A checkpoint's progress counters, without loading its tensors."""
    with safe_open(str(path), framework="pt") as f:
        return json.loads(f.metadata()["progress"])


def load_checkpoint(path: Path, optimizer=None) -> tuple[dict, dict]:
    """(model state, progress); with `optimizer`, also restores its state and the torch RNG."""
    with safe_open(str(path), framework="pt") as f:
        meta, keys = f.metadata(), list(f.keys())
        tensors = {k: f.get_tensor(k) for k in keys}
    model = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
    if optimizer is not None:
        slots: dict[int, dict] = {}
        for k, v in tensors.items():
            if k.startswith("optimizer."):
                _, index, name = k.split(".", 2)
                slots.setdefault(int(index), {})[name] = v
        optimizer.load_state_dict({"state": slots, "param_groups": json.loads(meta["param_groups"])})
        torch.set_rng_state(tensors["rng.torch"])
    return model, json.loads(meta["progress"])


class Run:
    """One run folder: `Run(path)`; `log(record)` appends a metrics line (and a TensorBoard/W&B point)."""

    def __init__(self, folder, wandb: str = "off"):
        self.folder = Path(folder).expanduser().resolve()
        self.samples = self.folder / "samples"
        self._tb = self._wandb = None
        self._wandb_mode = wandb

    @property
    def started(self) -> bool:
        """Whether there is anything to resume: a run killed before its first checkpoint starts over."""
        return (self.folder / "last.safetensors").is_file() and (self.folder / "config.json").is_file()

    def path(self, name: str) -> Path:
        return self.folder / name

    def create(self, config: dict, vocab_json: str) -> None:
        self.samples.mkdir(parents=True, exist_ok=True)
        self.path("metrics.jsonl").unlink(missing_ok=True)
        atomic_write(self.path("config.json"), json.dumps(config, indent=2) + "\n")
        atomic_write(self.path("vocab.json"), vocab_json)

    def config(self) -> dict:
        return json.loads(self.path("config.json").read_text())

    def open_loggers(self, config: dict) -> list[str]:
        """Start TensorBoard (if importable) and W&B (if asked for); the names of those that started."""
        started = []
        try:
            from torch.utils.tensorboard import SummaryWriter
            self._tb = SummaryWriter(str(self.folder / "tb"))
            started.append("TensorBoard")
        except ImportError:
            pass
        if self._wandb_mode != "off":
            try:
                import wandb
            except ImportError:
                raise RuntimeError("--wandb needs the wandb package: pip install wandb (its offline mode needs "
                                   "no account)") from None
            # One W&B run per folder: a resumed run continues its own curves, and two folders never share one.
            run_id = hashlib.sha1(str(self.folder).encode()).hexdigest()[:16]
            self._wandb = wandb.init(project="vlsteps-captioner", name=self.folder.name, dir=str(self.folder),
                                     mode=self._wandb_mode, config=config, id=run_id, resume="allow")
            started.append(f"W&B ({self._wandb_mode})")
        return started

    def log(self, record: dict) -> None:
        with self.path("metrics.jsonl").open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        numbers = {k: v for k, v in record.items() if isinstance(v, (int, float)) and k != "step"}
        if self._tb is not None:
            for k, v in numbers.items():
                self._tb.add_scalar(k, v, record["step"])
        if self._wandb is not None:
            self._wandb.log(numbers, step=record["step"])

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()

    def metrics(self) -> list[dict]:
        path = self.path("metrics.jsonl")
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def truncate_metrics(self, step: int) -> None:
        """Drop lines logged after `step`: a run killed after its last checkpoint logged steps that resume redoes."""
        kept = [r for r in self.metrics() if r["step"] <= step]
        atomic_write(self.path("metrics.jsonl"), "".join(json.dumps(r) + "\n" for r in kept))

    def results(self) -> dict:
        return json.loads(self.path("results.json").read_text())
