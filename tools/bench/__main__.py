"""Benchmarks (not tests) of the two ways the collection embeds images, on real-size CLIP towers with random weights:

    python -m tools.bench index [--arch B/32|L/14]        (make bench) the CLIP notebook's batched indexing against
                                                          the one-image-per-call loop of the tutorial it replaces
    python -m tools.bench serve [--arch B/32|L/14|both]   the HTTP service, batched against one request one forward
    python -m tools.bench serve --photofield-ai DIR       the HTTP service against photofield-ai's own main.py (a
                                                          checkout in DIR; pip install -r tools/bench/requirements.txt)
    python -m tools.bench library [--images N]          `python -m vlsteps.index build` on a generated photo library:
                                                          vs the model alone, parallel decoding, local Ray, 1->2
                                                          Ray workers, and a paper model for GPU clusters
    python -m tools.bench runtime [--arch B/32|L/14]      the service's CLIP runtimes, torch vs ONNX Runtime, at batch
                                                          1 and 8 on one and two threads (serve --runtime)
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import index, library, photofield_ai, runtime, serve, workload


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("index", help="image-embedding throughput: batched ClipEmbedder vs the original loop")
    p.add_argument("--arch", choices=list(workload.ARCHS), default="B/32")
    p.add_argument("--images", type=int, help="JPEGs per round (default: 16 for B/32, 8 for L/14)")
    p.add_argument("--rounds", type=int, help="at least this many interleaved rounds (default: 4 for B/32, 2 for "
                                               "L/14); more, up to 4x, while under --seconds")
    p.add_argument("--seconds", type=float, default=100.0, help="time budget for extra rounds (default 100)")
    p.add_argument("--batch", type=int, help="batch size of the batched path")
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    p.add_argument("--no-prefetch", action="store_true", help="decode the next batch in the main thread")
    p.add_argument("--dtype", choices=["auto", "float32", "bfloat16", "both"], default="auto",
                   help="dtype(s) of the batched path; the original style is always float32. auto: both where "
                        "the CPU has native bf16 (AVX512_BF16/AMX), else float32")
    p = sub.add_parser("serve", help="the HTTP service, batched vs one request one forward, at concurrency 1/4/16")
    p.add_argument("--arch", choices=[*workload.ARCHS, "both"], default="both")
    p.add_argument("--requests", type=int, help="one-image requests per level and server (default 64 B/32, 24 L/14; "
                                                 "48 images or texts per run with --photofield-ai)")
    p.add_argument("--photofield-ai", metavar="DIR", type=Path,
                   help="compare with photofield-ai's main.py from this checkout instead (CLIP B/32)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds with --photofield-ai (default 3)")
    p = sub.add_parser("runtime", help="CLIP's image tower on torch vs ONNX Runtime, batch 1/8, 1/2 threads")
    p.add_argument("--arch", choices=list(workload.ARCHS), default="B/32")
    p.add_argument("--images", type=int, default=16, help="images per batch size, thread count and round (16)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    p.add_argument("--busy", action="store_true", help="another process keeps one core busy, as on a shared machine")
    p = sub.add_parser("library", help="python -m vlsteps.index build on a photo library (issue 22)")
    p.add_argument("--images", type=int, default=10_000, help="photos in the library (default 10000)")
    p.add_argument("--sample", type=int, default=1000, help="photos of the compared runs (default 1000)")
    p.add_argument("--arch", choices=list(workload.ARCHS), default="B/32")
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds on the sample (default 2)")
    p.add_argument("--batch", type=int, default=32, help="--batch-size of every run (default 32)")
    p.add_argument("--no-ray", dest="ray", action="store_false", help="leave out the two Ray runs (d, e)")
    p.add_argument("--kills", type=int, metavar="N",
                   help="instead: kill the command N times at random moments of a run on the whole library, "
                        "then check the index holds each photo exactly once")
    args = parser.parse_args(argv)
    if args.what == "library" and args.kills:
        library.kill_and_resume(args.images, args.kills, args.arch, args.batch)
    elif args.what == "library":
        library.bench_library(args.images, args.sample, args.arch, args.rounds, args.batch, ray=args.ray)
    if args.what == "serve" and args.photofield_ai:
        photofield_ai.bench_photofield_ai(args.photofield_ai, args.requests or 48, args.rounds)
    elif args.what == "serve":
        archs = list(workload.ARCHS) if args.arch == "both" else [args.arch]
        serve.bench_serve(archs, requests={a: args.requests for a in archs} if args.requests else None)
    if args.what == "runtime":
        runtime.bench_runtime(args.arch, args.images, args.rounds, args.busy)
    if args.what == "index":
        dtypes = {"float32": ("float32",), "bfloat16": ("bfloat16",), "both": ("float32", "bfloat16"),
                  "auto": ("float32", "bfloat16") if index.cpu_has_bf16() else ("float32",)}[args.dtype]
        index.bench_index(args.arch, args.images, args.rounds, args.batch, args.threads,
                          prefetch=not args.no_prefetch, seconds=args.seconds, dtypes=dtypes)


if __name__ == "__main__":
    main(sys.argv[1:])
