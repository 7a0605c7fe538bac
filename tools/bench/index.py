"""Benchmarks (not tests): `python -m vlsteps.tools.bench index [--arch B/32|L/14]` and `... bench serve`
(batched service vs one request, one forward: see vlsteps/serve/loadtest.py).

`index` measures image-embedding throughput of the CLIP notebook's indexing code (`ClipEmbedder`: batches,
`torch.inference_mode`, SDPA attention, the processor's batched torchvision transforms, the next batch decoded
in a background thread) against the style of the tutorial this collection replaces (one image per call, no
`no_grad`, each image first resized to 224x224 with PIL), on the same JPEG files, with a real-size CLIP
vision tower and random weights (throughput does not depend on the weights' values). Both sides run
interleaved in one process, so a busy machine slows both alike. It also counts the vision tower's FLOPs
analytically and compares the achieved GFLOP/s with a matmul peak measured in the same run and dtype.
Where the CPU has native bf16 (AVX512_BF16, AMX) the batched path is also run with a bf16 model.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
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
DEFAULTS = {"B/32": dict(images=16, rounds=4, batch=16), "L/14": dict(images=8, rounds=2, batch=8)}


def vision_flops(arch: dict) -> float:
    """FLOPs (multiply-add = 2) of one image through the vision tower: patch conv, per layer the QKV/output
    projections, the two attention matmuls and the MLP, and the final projection. Layer norms, softmax,
    GELU and adds are left out (<1%)."""
    d, m, p, L = arch["hidden_size"], arch["intermediate_size"], arch["patch_size"], arch["num_hidden_layers"]
    n_patches = (arch["image_size"] // p) ** 2
    s = n_patches + 1
    patch = 2 * (3 * p * p) * d * n_patches
    per_layer = 2 * s * (4 * d * d + 2 * d * m) + 2 * 2 * s * s * d
    return patch + L * per_layer + 2 * d * arch["projection_dim"]


def build_model(arch_name: str):
    """A CLIPModel with the real vision tower for arch_name, random weights, and a tiny text tower (the text
    tower is never run here). Plus a CLIPProcessor with CLIP's real preprocessing settings."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTextConfig, CLIPVisionConfig

    from ..standins.tiny_tokenizers import clip_tokenizer
    arch = ARCHS[arch_name]
    tok = clip_tokenizer()
    text = CLIPTextConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                          num_attention_heads=2, max_position_embeddings=77, projection_dim=arch["projection_dim"],
                          bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
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


def make_images(n: int, folder: Path, seed: int = 0) -> list[Path]:
    """n JPEG files (~640x480, like photos) cut from the sample photos with seeded random crops/flips."""
    from ..images import sample_photos
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


def original_style(model, processor, paths) -> np.ndarray:
    """The replaced tutorial's loop: one image per call, PIL resize to 224x224 first, autograd left on."""
    out = []
    for path in paths:
        image = Image.open(path).convert("RGB").resize((224, 224))
        inputs = processor(images=image, return_tensors="pt")
        features = model.get_image_features(**inputs).pooler_output
        features = features / features.norm(dim=-1, keepdim=True)
        out.append(features.detach().numpy()[0])
    return np.stack(out)


def matmul_gflops(n: int = 2048, reps: int = 3, dtype=torch.float32) -> float:
    """Best-of-reps matmul throughput (GFLOP/s) of an n x n x n product: the machine's practical peak."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    torch.matmul(a, b)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def breakdown(embedder, paths, reps: int = 3) -> dict[str, float]:
    """Seconds per image for decode+preprocess and for the forward pass of the batched path, measured
    apart (no overlap; best of reps), to show which one limits throughput."""
    chunk = list(paths[:embedder.batch_size])
    pv = embedder.pixel_values(chunk)
    t_pre = min(_timed(lambda: embedder.pixel_values(chunk)) for _ in range(reps))
    t_fwd = min(_timed(lambda: embedder.image_features(pv)) for _ in range(reps))
    return {"preprocess_s_per_img": t_pre / len(chunk), "forward_s_per_img": t_fwd / len(chunk)}


def cpu_has_bf16() -> bool:
    """Native bf16 dot products (AVX512_BF16 or AMX): there a bf16 model runs ~2-3x faster than fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def bench_index(arch_name: str = "B/32", n_images: int | None = None, rounds: int | None = None,
                batch: int | None = None, threads: int | None = None, prefetch: bool = True,
                seconds: float = 100.0, dtypes: tuple[str, ...] = ("float32",)) -> dict:
    """Interleaved rounds (at least `rounds`, more while under `seconds`): each round times the original
    loop and the batched path (one per dtype) on the same files, in rotating order, and a matmul per dtype.
    Best-of-rounds figures are reported, as the least disturbed by other load on the machine; medians
    beside them."""
    from ..embed import ClipEmbedder
    d = DEFAULTS[arch_name]
    n_images, rounds, batch = n_images or d["images"], rounds or d["rounds"], batch or d["batch"]
    if threads:
        torch.set_num_threads(threads)
    arch = ARCHS[arch_name]
    flops = vision_flops(arch)
    print(f"CLIP ViT-{arch_name} vision tower (random weights): hidden {arch['hidden_size']}, "
          f"{arch['num_hidden_layers']} layers, {arch['num_attention_heads']} heads, mlp {arch['intermediate_size']}, "
          f"patch {arch['patch_size']}, {(arch['image_size'] // arch['patch_size']) ** 2 + 1} tokens; "
          f"{flops / 1e9:.2f} GFLOP per image (analytic)")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}{' + bf16' if cpu_has_bf16() else ''}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}; {n_images} JPEGs 640x480 per round; batched: batch {batch}, "
          f"{' and '.join(dtypes)}, prefetch {'on' if prefetch else 'off'}", flush=True)
    model, processor = build_model(arch_name)
    embedders = {}
    for name in dtypes:
        m = model if name == "float32" else build_model(arch_name)[0].to(DTYPES[name])
        embedders[name] = ClipEmbedder(m, processor, device="cpu", batch_size=batch, prefetch=prefetch,
                                       model_key=f"bench-{arch_name}")
    peak_dtypes = sorted(set(dtypes) | {"float32"}, key=list(DTYPES).index)
    times: dict[str, list[float]] = {"original": [], **{k: [] for k in dtypes}}
    peaks: dict[str, list[float]] = {k: [] for k in peak_dtypes}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vlsteps-bench-") as tmp:
        paths = make_images(n_images, Path(tmp))
        original_style(model, processor, paths[:2])                # warm-up: allocations, kernel choice
        for e in embedders.values():
            e.images(paths[:min(len(paths), batch)])
        runs = {"original": lambda: original_style(model, processor, paths),
                **{k: (lambda e=e: e.images(paths)) for k, e in embedders.items()}}
        r = 0
        while r < rounds or (time.perf_counter() - start < seconds and r < 4 * rounds):
            names = list(runs)
            names = names[r % len(names):] + names[:r % len(names)]      # rotate who goes first
            for name in names:
                times[name].append(_timed(runs[name]))
            for k in peak_dtypes:
                peaks[k].append(matmul_gflops(dtype=DTYPES[k]))
            r += 1
            print(f"  round {r:2d}: " + ", ".join(f"{k} {n_images / v[-1]:.2f} img/s" for k, v in times.items())
                  + " | matmul " + ", ".join(f"{k} {v[-1]:.0f}" for k, v in peaks.items()) + " GFLOP/s", flush=True)
        parts = {k: breakdown(e, paths) for k, e in embedders.items()}
        ref = embedders.get("float32") or ClipEmbedder(model, processor, device="cpu", batch_size=batch)
        ref_emb = ref.images(paths[:4])
        cos_old = float(np.min(np.sum(original_style(model, processor, paths[:4]) * ref_emb, axis=1)))
        cos_dtype = {k: float(np.min(np.sum(e.images(paths[:4]) * ref_emb, axis=1))) for k, e in embedders.items()}

    best = {k: n_images / min(v) for k, v in times.items()}
    median = {k: n_images / statistics.median(v) for k, v in times.items()}
    peak = {k: max(v) for k, v in peaks.items()}
    res = {"arch": arch_name, "images": n_images, "rounds": r, "batch": batch, "threads": torch.get_num_threads(),
           "gflop_per_img": flops / 1e9, "img_s": best, "img_s_median": median, "matmul_peak_gflops": peak,
           "gflops": {k: v * flops / 1e9 for k, v in best.items()}, "breakdown": parts,
           "min_cos_original_vs_batched": cos_old, "min_cos_vs_float32": cos_dtype}
    res["pct_peak"] = {k: 100 * res["gflops"][k] / peak["float32" if k == "original" else k] for k in best}
    res["pct_peak_median"] = {k: statistics.median(100 * n_images / t * flops / 1e9 / pk for t, pk in
                                                   zip(times[k], peaks["float32" if k == "original" else k]))
                              for k in best}
    res["ratio"] = {k: best[k] / best["original"] for k in dtypes}
    res["ratio_median"] = {k: statistics.median(o / n for o, n in zip(times["original"], times[k])) for k in dtypes}
    print()
    label = {"original": "original style (1 image/call, PIL resize, autograd on), float32"}
    label.update({k: f"batched ClipEmbedder (batch {batch}, inference_mode), {k}" for k in dtypes})
    width = max(map(len, label.values()))
    for k in best:
        ref_peak = "float32" if k == "original" else k
        extra = "" if k == "original" else (f"  speed-up {res['ratio'][k]:.2f}x (median of same-round ratios "
                                            f"{res['ratio_median'][k]:.2f}x)")
        print(f"{label[k]:{width}s}: {best[k]:6.2f} img/s (median {median[k]:6.2f}) {res['gflops'][k]:6.1f} GFLOP/s "
              f"= {res['pct_peak'][k]:3.0f}% of the {ref_peak} matmul peak (same-round median "
              f"{res['pct_peak_median'][k]:3.0f}%){extra}")
    print("matmul peak (2048^3, best of " + str(r) + "): " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peak.items()))
    for k, pt in parts.items():
        print(f"batched {k}, measured apart: decode+preprocess {1e3 * pt['preprocess_s_per_img']:.1f} ms/img, "
              f"forward {1e3 * pt['forward_s_per_img']:.1f} ms/img (= {flops / pt['forward_s_per_img'] / 1e9:.0f} "
              "GFLOP/s)")
    print(f"original vs batched embeddings of the same files: min cosine {cos_old:.3f} (the original squashes each "
          "photo to 224x224; CLIP's processor resizes the short side and center-crops)")
    for k, c in cos_dtype.items():
        if k != "float32":
            print(f"batched {k} vs float32 embeddings of the same pixels: min cosine {c:.4f}")
    return res


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m vlsteps.tools.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("index", help="image-embedding throughput: batched ClipEmbedder vs the original loop")
    p.add_argument("--arch", choices=list(ARCHS), default="B/32")
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
    p.add_argument("--arch", choices=[*ARCHS, "both"], default="both")
    p.add_argument("--requests", type=int, help="one-image requests per level and server (default 64 B/32, 24 L/14)")
    args = parser.parse_args(argv)
    if args.what == "serve":
        from ..serve.loadtest import bench_serve
        archs = list(ARCHS) if args.arch == "both" else [args.arch]
        bench_serve(archs, requests={a: args.requests for a in archs} if args.requests else None)
    if args.what == "index":
        dtypes = {"float32": ("float32",), "bfloat16": ("bfloat16",), "both": ("float32", "bfloat16"),
                  "auto": ("float32", "bfloat16") if cpu_has_bf16() else ("float32",)}[args.dtype]
        bench_index(args.arch, args.images, args.rounds, args.batch, args.threads, prefetch=not args.no_prefetch,
                    seconds=args.seconds, dtypes=dtypes)


if __name__ == "__main__":
    main(sys.argv[1:])
