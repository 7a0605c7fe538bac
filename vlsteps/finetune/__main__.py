"""`python -m vlsteps.finetune` (`make finetune ARGS=...`): notebooks/finetune.ipynb from the shell. Scores the base
model on held-out examples, trains a LoRA (or QLoRA) adapter with a progress bar, scores it again and saves it; run
the same command again after a stop and it continues from its last checkpoint."""
from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

from .. import paths, world
from . import data

MODELS = ("blip2", "qwen-vl")       # the families with a module here (vlsteps/finetune/<key>.py)


def family(key: str):
    """The module that loads, batches and asks registry model `key`."""
    return importlib.import_module(f".{key.replace('-', '_')}", __package__)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m vlsteps.finetune", description=__doc__)
    p.add_argument("--model", choices=MODELS, default="blip2")
    p.add_argument("--data", default="world", help="'world' (offline: the new colour, world.NEW_COLOUR) or a folder "
                   "of images with qa.csv (image,question,answer) or a captions file (Flickr, CSV, COCO json)")
    p.add_argument("--pairs", help="the folder's questions or captions file, when it is not found by name")
    p.add_argument("--method", choices=("lora", "qlora"), default="lora",
                   help="qlora: the base in 4-bit (bitsandbytes), for a GPU too small for a 16-bit base")
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--qformer", action="store_true", help="adapters on BLIP-2's Q-Former too")
    p.add_argument("--new-word", action="append", default=None, metavar="WORD",
                   help="a word the model has never written, whose embedding rows are trained too (repeatable; "
                   f"default with --data world: {world.NEW_COLOUR})")
    p.add_argument("--out", type=Path, help="the run folder (default: OUTPUTS/finetune/MODEL-METHOD)")
    args = p.parse_args(argv)
    if args.new_word is None:
        args.new_word = [world.NEW_COLOUR] if args.data == "world" else []
    args.out = args.out or paths.outputs_dir() / "finetune" / f"{args.model}-{args.method}"
    return args


def examples(args) -> tuple[list[data.Example], list[data.Example]]:
    if args.data == "world":
        return data.new_colour(200 * args.batch, 0, "train"), data.new_colour(150, 1, "test")
    split = data.folder(args.data, args.pairs)
    return split["train"], split["test"]


def scored(fam, model, processor, test) -> dict[str, float]:
    if test and isinstance(test[0].image, Path):
        asked = data.distinct(test)
        return data.folder_score(fam.answers(model, processor, asked, max_new_tokens=30), asked, test)
    return data.score(fam.answers(model, processor, test), test)


def main(argv=None) -> dict:
    from ..checkpoint import model_dir
    from ..files import atomic_write
    from .train import ADAPTER, adapt, fit
    args = parse_args(argv)
    try:
        train_set, test = examples(args)
        folder = model_dir(args.model)
    except (FileNotFoundError, ValueError) as e:        # ModelNotFoundError is a FileNotFoundError
        sys.exit(f"finetune: {e}")
    fam = family(args.model)
    quantized = args.method == "qlora"
    model, processor = fam.load(folder, quantize=quantized)
    try:
        # A 4-bit base is scored after training only: bitsandbytes repacks its weights for inference on a CPU.
        before = None if quantized else scored(fam, model, processor, test)
        model = adapt(model, args.rank, args.qformer, args.new_word, processor.tokenizer)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        total = sum(p.numel() for p in model.parameters())
        print(f"{args.model} ({folder.name}), {args.method}: {trainable:,} trainable parameters of {total:,} "
              f"({100 * trainable / total:.2f} %); {len(train_set)} training examples, {len(test)} held out")
        losses = fit(model, processor, fam.batch, train_set, args.steps, args.batch, args.lr, folder=args.out)
        after = scored(fam, model, processor, test)
    except ValueError as e:        # a photo that does not decode (ImageLoadError), a folder of another run's settings
        sys.exit(f"finetune: {e}. Fix that and run the same command again: it continues from its last checkpoint.")
    model.save_pretrained(args.out / ADAPTER, save_embedding_layers=False)
    size = sum(f.stat().st_size for f in (args.out / ADAPTER).iterdir())
    result = {"model": args.model, "method": args.method, "before": before, "after": after,
              "trainable": trainable, "share": round(trainable / total, 5), "adapter_bytes": size,
              "final_loss": losses[-1], "steps": args.steps}
    atomic_write(args.out / "results.json", json.dumps(result, indent=2) + "\n")
    print(f"held out, before: {before if before is not None else 'not scored (4-bit base)'}\n"
          f"held out, after:  {after}\nadapter: {args.out / ADAPTER} ({size / 1e6:.2f} MB); serve it with "
          f"python -m vlsteps.serve --adapter {args.model}={args.out / ADAPTER}")
    return result


if __name__ == "__main__":
    main()
