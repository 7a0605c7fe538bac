"""Train a captioner into a run folder: `python -m vlsteps.captioner.train [flags]` or `train(Config(...))`.

The flags and defaults of the original Keras trainer this grew from (--seq_length 36 --batch_size 128 --epochs 20
--embed_dim 512 --ff_dim 256 --enc_heads 2 --dec_heads 4 --artifact_dir ./local_runs/default_run --lr 0.001), plus
--data (shapes, or a folder of images with a captions file), --encoder, --resume, --seed, --device, --patience
(early stopping on validation accuracy) and --max_steps (stop early, resumable).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from dataclasses import dataclass

import torch

from ..device import pick_device, pick_dtype
from . import data, decode, metrics
from .model import ENCODERS, Captioner
from ..files import atomic_write
from .runs import Run, load_checkpoint, read_progress, save_checkpoint

# What may differ when a run is resumed; anything else must match the run folder's config.json.
RESUMABLE = {"resume", "max_steps", "device", "workers", "threads", "wandb", "epochs", "patience", "log_every"}


@dataclass
class Config:
    data: str = "shapes"               # "shapes", or a folder of images holding a captions file
    captions: str | None = None        # the captions file, when it is not found in --data
    encoder: str = "auto"              # cnn | efficientnet_b1 | clip | vit; auto: cnn on shapes, else EfficientNet
    seq_length: int = 36
    batch_size: int = 128
    epochs: int = 20
    embed_dim: int = 512
    ff_dim: int = 256
    enc_heads: int = 2
    dec_heads: int = 4
    artifact_dir: str = "./local_runs/default_run"
    lr: float = 0.001
    dropout: float = 0.1
    seed: int = 0
    n_train: int = 4000                # shapes only: training scenes (val, test and compositional: a tenth each)
    patience: int = 3                  # epochs without a better validation accuracy before stopping
    beam_size: int = 3
    samples: int = 8                   # validation images captioned into samples/ each epoch
    max_steps: int | None = None       # stop after this many optimizer steps in all (resume continues)
    resume: bool = False
    device: str = "auto"
    workers: int = 0                   # DataLoader worker processes (photo folders)
    threads: int = 0                   # CPU threads for torch while training; 0: torch's own choice
    wandb: str = "off"                 # off | offline | online
    log_every: int = 10

    @property
    def encoder_name(self) -> str:
        return self.encoder if self.encoder != "auto" else ("cnn" if self.data == "shapes" else "efficientnet_b1")


def build_model(cfg: Config, vocab_size: int) -> Captioner:
    return Captioner(vocab_size, cfg.encoder_name, cfg.seq_length, cfg.embed_dim, cfg.ff_dim, cfg.enc_heads,
                     cfg.dec_heads, cfg.dropout)


def load_splits(cfg: Config) -> dict[str, data.Split]:
    if cfg.data == "shapes":
        return data.shapes_splits(cfg.n_train, cfg.seed)
    return data.folder_splits(cfg.data, cfg.captions, cfg.seed)


def _check_resumable(run: Run, cfg: Config) -> None:
    saved, now = run.config(), dataclasses.asdict(cfg)
    differ = [k for k in now if k not in RESUMABLE and saved.get(k) != now[k]]
    if differ:
        changes = ", ".join(f"{k}: {saved.get(k)!r} there, {now[k]!r} now" for k in differ)
        raise ValueError(f"{run.folder} was trained with other settings ({changes}); resume it with its own "
                         "or use a new --artifact_dir")


def _batches(n: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """The epoch's shuffled batches, from (seed, epoch) alone: a resumed run sees the very same order."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
    return [b.tolist() for b in order.split(batch_size)]


def teacher_forced(model, pairs: data.CaptionPairs, batch_size: int, device: str) -> dict[str, float]:
    """Validation loss and masked next-token accuracy, every caption fed its true previous words."""
    model.eval()
    loss_sum, right, counted = 0.0, 0, 0
    with torch.no_grad():
        for batch in _batches(len(pairs), batch_size, 0, 0):
            images, ids = (t.to(device) for t in data.collate([pairs[i] for i in batch]))
            logits = model(images, ids[:, :-1])
            r, c = metrics.masked_accuracy(logits, ids[:, 1:])
            loss_sum += float(metrics.masked_loss(logits, ids[:, 1:])) * c
            right, counted = right + r, counted + c
    return {"val_loss": loss_sum / counted, "val_acc": right / counted}


def _save_samples(run: Run, model, split: data.Split, vocab, epoch: int, count: int, device: str) -> None:
    import matplotlib
    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")    # a training script needs no window; a notebook keeps its own backend
    import matplotlib.pyplot as plt
    from ..plotting import show_grid
    sub = data.Split(split.sources[:count], split.captions[:count])
    hyps = decode.caption_split(model, sub, vocab, device=device)
    atomic_write(run.samples / f"epoch_{epoch:03d}.json",
               json.dumps([{"caption": h, "references": r} for h, r in zip(hyps, sub.captions)], indent=1))
    fig = show_grid([sub.image(i, 128) for i in range(len(sub))], hyps, ncols=4,
                    size=2.4, title=f"epoch {epoch}: greedy captions of validation scenes")
    path = run.samples / f"epoch_{epoch:03d}.png"
    fig.savefig(path.with_name(path.name + ".tmp.png"), dpi=80)
    plt.close(fig)
    path.with_name(path.name + ".tmp.png").replace(path)


def evaluate(model, splits: dict[str, data.Split], vocab, beam_size: int, device: str) -> dict:
    """Held-out scores of greedy and beam decoding, and of the image-blind baseline, per held-out split."""
    blind = metrics.blind_baseline(splits["train"])
    out = {"baseline caption": blind}
    for name in [n for n in ("test", "compositional") if n in splits]:
        split = splits[name]
        greedy = decode.caption_split(model, split, vocab, 1, device=device)
        out[name] = {"images": len(split), "greedy": metrics.score(greedy, split),
                     f"beam {beam_size}": metrics.score(decode.caption_split(model, split, vocab, beam_size,
                                                                              device=device), split),
                     "image-blind baseline": metrics.score([blind] * len(split), split),
                     "examples": [{"caption": h, "references": r} for h, r in zip(greedy[:8], split.captions)]}
    return out


def train(cfg: Config, echo=print) -> Run:
    """Train (or resume) the run in cfg.artifact_dir; returns it. A finished run is returned as it is."""
    if cfg.encoder_name not in ENCODERS:
        raise ValueError(f"Unknown encoder {cfg.encoder!r}; choose one of auto, {', '.join(ENCODERS)}")
    run = Run(cfg.artifact_dir, cfg.wandb)
    if run.started and not cfg.resume:
        raise FileExistsError(f"{run.folder} already holds a run: pass --resume to continue it, "
                              "or choose another --artifact_dir")
    if run.started:
        _check_resumable(run, cfg)
        if read_progress(run.path("last.safetensors")).get("done"):
            echo(f"{run.folder}: finished earlier; nothing to train (results.json holds its scores)")
            return run
    device = pick_device() if cfg.device == "auto" else cfg.device
    torch.manual_seed(cfg.seed)
    splits = load_splits(cfg)
    vocab = data.Vocabulary.build(c for caps in splits["train"].captions for c in caps)
    model = build_model(cfg, len(vocab)).to(device)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    progress = {"step": 0, "epoch": 0, "batch": 0, "best_val_acc": -1.0, "bad_epochs": 0, "done": False,
                "train_seconds": 0.0, "train_samples": 0}
    if run.started:
        if run.path("vocab.json").read_text() != vocab.to_json():
            raise ValueError(f"{run.folder}: the training split's vocabulary differs from the one saved there")
        state, progress = load_checkpoint(run.path("last.safetensors"), optimizer)
        model.load_saved_state(state)
        run.truncate_metrics(progress["step"])
        echo(f"resuming {run.folder} at step {progress['step']} (epoch {progress['epoch'] + 1})")
    else:
        run.create(dataclasses.asdict(cfg), vocab.to_json())
    preload = cfg.data == "shapes"
    pairs = data.CaptionPairs(splits["train"], vocab, cfg.seq_length, model.image_size, preload)
    val_pairs = data.CaptionPairs(splits["val"], vocab, cfg.seq_length, model.image_size, preload)
    amp = torch.device(device).type == "cuda"          # mixed precision: bf16 where the GPU has it, else fp16
    amp_dtype = pick_dtype(device="cuda") if amp else torch.float32
    scaler = torch.amp.GradScaler(enabled=amp and amp_dtype == torch.float16)
    threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    loggers = run.open_loggers(dataclasses.asdict(cfg))
    echo(f"{len(splits['train'])} training images ({len(pairs)} captions), {len(splits['val'])} validation; "
         f"vocabulary {len(vocab)} words; encoder: {model.features.note}; device {device}"
         + (f", mixed precision {str(amp_dtype).removeprefix('torch.')}" if amp else "")
         + f", CPU threads: {torch.get_num_threads()}"
         + (f"; logging to {', '.join(loggers)}" if loggers else ""))
    try:
        _loop(cfg, run, model, optimizer, scaler, amp, amp_dtype, pairs, val_pairs, splits, vocab, progress,
              device, echo)
    finally:
        run.close()
        torch.set_num_threads(threads)
    return run


def _loop(cfg, run, model, optimizer, scaler, amp, amp_dtype, pairs, val_pairs, splits, vocab, progress, device,
          echo) -> None:
    def checkpoint(name="last.safetensors", with_optimizer=True):
        save_checkpoint(run.path(name), model.saved_state(), progress, optimizer if with_optimizer else None)

    while progress["epoch"] < cfg.epochs:
        batches = _batches(len(pairs), cfg.batch_size, cfg.seed, progress["epoch"])
        model.train()
        # A generator of its own: a DataLoader otherwise draws its worker seed from the global RNG, and a resumed
        # run's dropout would no longer match an uninterrupted one's.
        loader = torch.utils.data.DataLoader(pairs, batch_sampler=batches[progress["batch"]:],
                                             collate_fn=data.collate, num_workers=cfg.workers,
                                             generator=torch.Generator().manual_seed(cfg.seed))
        tick, right, counted, loss_sum = time.perf_counter(), 0, 0, 0.0
        for images, ids in loader:
            images, ids = images.to(device), ids.to(device)
            with torch.autocast(device_type="cuda" if amp else "cpu", dtype=amp_dtype, enabled=amp):
                logits = model(images, ids[:, :-1])      # teacher forcing: the true words in, the next ones out
                loss = metrics.masked_loss(logits, ids[:, 1:])
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            r, c = metrics.masked_accuracy(logits, ids[:, 1:])
            right, counted, loss_sum = right + r, counted + c, loss_sum + loss.item() * c
            progress["step"] += 1
            progress["batch"] += 1
            progress["train_samples"] += len(images)
            if progress["step"] % cfg.log_every == 0 or progress["batch"] == len(batches):
                if amp:
                    torch.cuda.synchronize()   # time what the GPU did, not what was queued
                now = time.perf_counter()
                progress["train_seconds"] += now - tick
                run.log({"step": progress["step"], "epoch": progress["epoch"] + progress["batch"] / len(batches),
                         "loss": loss_sum / counted, "acc": right / counted,
                         "samples_per_s": progress["train_samples"] / progress["train_seconds"]})
                tick, right, counted, loss_sum = now, 0, 0, 0.0
            if cfg.max_steps and progress["step"] >= cfg.max_steps:
                progress["train_seconds"] += time.perf_counter() - tick
                checkpoint()
                echo(f"stopped at step {progress['step']} (--max_steps); --resume continues from here")
                return
        val = teacher_forced(model, val_pairs, cfg.batch_size, device)
        progress["epoch"], progress["batch"] = progress["epoch"] + 1, 0
        _save_samples(run, model, splits["val"], vocab, progress["epoch"], cfg.samples, device)
        better = val["val_acc"] > progress["best_val_acc"]
        if better:
            progress["best_val_acc"], progress["bad_epochs"] = val["val_acc"], 0
            checkpoint("best.safetensors", with_optimizer=False)
        else:
            progress["bad_epochs"] += 1
        run.log({"step": progress["step"], "epoch": progress["epoch"], **val})
        echo(f"epoch {progress['epoch']}/{cfg.epochs}: step {progress['step']}, val loss {val['val_loss']:.3f}, "
             f"val next-word acc {val['val_acc']:.3f}{' (best)' if better else ''}; "
             f"{progress['train_samples'] / progress['train_seconds']:.0f} training samples/s")
        stop = progress["bad_epochs"] >= cfg.patience
        if stop or progress["epoch"] == cfg.epochs:
            break
        checkpoint()
    if progress["bad_epochs"] >= cfg.patience:
        echo(f"early stop: no better validation accuracy for {cfg.patience} epochs")
    last = {k: v.detach().clone() for k, v in model.saved_state().items()}
    model.load_saved_state(load_checkpoint(run.path("best.safetensors"))[0])
    results = evaluate(model, splits, vocab, cfg.beam_size, device)
    results.update({"train samples/s": progress["train_samples"] / progress["train_seconds"],
                    "train seconds": progress["train_seconds"], "device": device,
                    "best val acc": progress["best_val_acc"], "steps": progress["step"]})
    atomic_write(run.path("results.json"), json.dumps(results, indent=1) + "\n")
    progress["done"] = True
    save_checkpoint(run.path("last.safetensors"), last, progress, optimizer)


HELP = {
    "data": "'shapes' (scenes drawn by code) or a folder of images with a captions file (Flickr8k/30k, COCO)",
    "captions": "the captions file, where it is not found in --data",
    "encoder": "image features; auto: cnn on shapes, efficientnet_b1 on photos",
    "artifact_dir": "the run folder: config, metrics, checkpoints, samples, results",
    "n_train": "shapes only: training scenes (validation, test and compositional: a tenth each, at least 100)",
    "patience": "stop after this many epochs without a better validation accuracy",
    "max_steps": "stop after this many optimizer steps in all; --resume continues",
    "resume": "continue the run in --artifact_dir from its last checkpoint",
    "device": "auto (cuda, then mps, then cpu), or a torch device name",
    "threads": "CPU threads for torch while training (0: torch's default)",
    "wandb": "also log to Weights & Biases (pip install wandb; offline needs no account)",
}


def parse_args(argv=None) -> Config:
    parser = argparse.ArgumentParser(prog="python -m vlsteps.captioner.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    for field in dataclasses.fields(Config):
        flag, default = f"--{field.name}", field.default
        text = HELP.get(field.name, "") + (" (default: %(default)s)" if field.type != "bool" else "")
        if field.type == "bool":
            parser.add_argument(flag, action="store_true", help=text)
        elif field.name in ("encoder", "wandb"):
            choices = ("auto", *ENCODERS) if field.name == "encoder" else ("off", "offline", "online")
            parser.add_argument(flag, default=default, choices=choices, help=text)
        else:
            kind = {"int": int, "float": float, "int | None": int}.get(field.type, str)
            parser.add_argument(flag, type=kind, default=default, help=text)
    return Config(**vars(parser.parse_args(argv)))


def main(argv=None) -> None:
    cfg = parse_args(argv)
    try:
        run = train(cfg)
    except (FileExistsError, FileNotFoundError, ValueError, RuntimeError) as e:
        sys.exit(f"error: {e}")
    if run.path("results.json").exists():
        print(format_results(run.results()))


def format_results(results: dict) -> str:
    """The held-out table: one column per decoding beside the image-blind baseline, one row per score; every
    column as wide as its name, so no two headers run together."""
    lines = [f"image-blind baseline caption: {results['baseline caption']!r}"]
    for name in ("test", "compositional"):
        if name not in results:
            continue
        part = results[name]
        columns = [k for k in part if isinstance(part[k], dict)]
        scores = list(part[columns[0]])
        label = max(map(len, scores)) + 2
        widths = [max(len(c), 6) + 2 for c in columns]
        lines.append(f"\n{name}: {part['images']} held-out images")
        lines.append(" " * label + "".join(f"{c:>{w}}" for c, w in zip(columns, widths)))
        lines += [f"{score:<{label}}" + "".join(f"{part[c][score]:>{w}.3f}" for c, w in zip(columns, widths))
                  for score in scores]
    lines.append(f"\ntraining: {results['steps']} steps, {results['train seconds']:.0f} s, "
                 f"{results['train samples/s']:.0f} samples/s measured on {results['device']}")
    return "\n".join(lines)

if __name__ == "__main__":
    main()
