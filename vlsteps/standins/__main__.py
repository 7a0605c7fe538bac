"""python -m vlsteps.standins --dest DIR [KEY ...]: build tiny offline stand-ins (all keys by default)."""
import argparse
import os
import time

from .. import registry
from . import build


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    parser = argparse.ArgumentParser(prog="python -m vlsteps.standins", description=__doc__)
    parser.add_argument("--dest", required=True, help="folder to write <model folder>/ stand-ins into")
    parser.add_argument("keys", nargs="*", help=f"registry keys (default: all): {', '.join(registry.CARDS)}")
    args = parser.parse_args()
    for key in args.keys:
        if key not in registry.CARDS:
            parser.error(f"unknown model key {key!r}; known: {', '.join(registry.CARDS)}")
    start = time.perf_counter()
    total = 0
    for key in args.keys or list(registry.CARDS):
        t = time.perf_counter()
        folder = build(registry.get(key), args.dest)
        size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        total += size
        print(f"{key:20s} {folder}  {size / 1e6:6.2f} MB  {time.perf_counter() - t:5.1f} s", flush=True)
    print(f"total {total / 1e6:.1f} MB in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
