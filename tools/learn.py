"""python -m tools.learn KEY... : train stand-ins on the procedural world and commit what they learned.

For each key: build its random-weight stand-in, train it with its card's `training` on ONE CPU thread from fixed
seeds (the same run gives the same weights on the same torch; its CPU time, unlike its wall time, hardly
depends on what else the machine runs), round the weights to float16 as they are stored,
measure the behaviour on held-out scenes, and write vlsteps/standins/learned/<key>.safetensors and .json. Prints
per model the training time and the scores against the issue's goals: it is also the benchmark of the offline
behaviour. --check trains into a temporary folder and only prints (tests/test_learned.py retrains the ViT through
`train`).
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path


def train(key: str, dest: Path) -> dict:
    """Train key's stand-in in dest and return its record: facts of the run and the scores."""
    import torch
    import transformers

    from vlsteps import registry, standins
    from vlsteps.standins import learned
    card = registry.get(key)
    if card.training is None:
        raise SystemExit(f"{key} has no world training in its card")
    folder = standins.build(card, dest, trained=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    try:
        with standins.quiet():
            start, cpu = time.perf_counter(), time.process_time()
            facts = card.training.train(card, folder)
            seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
            learned.load_as_stored(folder)
            scores = card.training.measure(card, folder)
    finally:
        torch.set_num_threads(threads)
    return {"key": key, "learned": card.training.text, **facts, "train_seconds": round(seconds, 1),
            "cpu_seconds": round(cpu, 1),
            "threads": 1, "scores": {k: round(float(v), 4) for k, v in scores.items()},
            "goals": card.training.goals, "torch": torch.__version__, "transformers": transformers.__version__,
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, load average "
                       f"{os.getloadavg()[0]:.1f} at the end", "date": time.strftime("%Y-%m-%d")}


def report(rec: dict) -> str:
    scores = ", ".join(f"{k} {v:.3f} (goal {rec['goals'].get(k, '-')})" for k, v in rec["scores"].items())
    return (f"{rec['key']:14s} trained {rec['train_seconds']:7.1f} s ({rec['cpu_seconds']:.1f} CPU-seconds) "
            f"on 1 thread; {scores}")


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from vlsteps import registry
    from vlsteps.standins import learned
    parser = argparse.ArgumentParser(prog="python -m tools.learn", description=__doc__)
    parser.add_argument("keys", nargs="*", help="registry keys (default: every card with world training)")
    parser.add_argument("--check", action="store_true", help="train and print only; commit nothing")
    args = parser.parse_args()
    keys = args.keys or [k for k, c in registry.CARDS.items() if c.training]
    for key in keys:
        with tempfile.TemporaryDirectory() as tmp:
            rec = train(key, Path(tmp))
            if not args.check:
                learned.save(key, Path(tmp) / registry.get(key).folder, rec)
        print(report(rec), flush=True)


if __name__ == "__main__":
    main()
