"""`python -m tools.bench index [--arch B/32|L/14]`: image-embedding throughput of the CLIP notebook's indexing
code (`ClipEmbedder`: batches, `torch.inference_mode`, SDPA attention, the processor's batched torchvision
transforms, the next batch decoded in a background thread) against the style of the tutorial this collection
replaces (one image per call, no `no_grad`, each image first resized to 224x224 with PIL), on the same JPEG files.
Both sides run interleaved in one process, so a busy machine slows both alike. It also counts the vision tower's
FLOPs analytically and compares the achieved GFLOP/s with a matmul peak measured in the same run and dtype.
Where the CPU has native bf16 (AVX512_BF16, AMX) the batched path is also run with a bf16 model.
"""
from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vlsteps.embed import ClipEmbedder

from .workload import ARCHS, build_model, make_images, timed

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


def breakdown(embedder, paths, reps: int = 3) -> dict[str, float]:
    """Seconds per image for decode+preprocess and for the forward pass of the batched path, measured
    apart (no overlap; best of reps), to show which one limits throughput."""
    chunk = list(paths[:embedder.batch_size])
    pv = embedder.pixel_values(chunk)
    t_pre = min(timed(lambda: embedder.pixel_values(chunk)) for _ in range(reps))
    t_fwd = min(timed(lambda: embedder.image_features(pv)) for _ in range(reps))
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
                times[name].append(timed(runs[name]))
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


