"""`python -m tools.bench serve --photofield-ai DIR`: vlsteps serve against photofield-ai's own service (its
unmodified main.py, on ONNX Runtime, from a checkout in DIR) on the same real-size random-weight CLIP B/32.

The ONNX files photofield-ai loads are exported from the very model vlsteps serves (`vlsteps.onnx_clip.export`, as
the service's `--runtime onnx` does), and the BPE vocabulary photofield-ai's tokenizer ships becomes the served CLIP's
tokenizer, so both answer the same vectors (checked: the cosine of their answers is printed). Rounds are interleaved
and who goes first alternates, so a machine that gets busier slows both alike. Per scenario: the ratio of vlsteps' to
photofield-ai's items/s (median over rounds), items per server-CPU-second, and vlsteps' mean batch. The machine's
load is printed with them.
"""
from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import statistics
import sys
import time
from pathlib import Path

import httpx
import numpy as np

from vlsteps.onnx_clip import export
from vlsteps.serve import photofield
from vlsteps.serve.loadtest import Server, load

from .workload import make_images, save_model, scratch, served_embedder

# (name, items per request, requests in flight, texts?)
SCENARIOS = [("1 image, 1 in flight", 1, 1, False), ("1 image, 4 in flight", 1, 4, False),
             ("1 image, 16 in flight", 1, 16, False), ("8 images, 1 in flight", 8, 1, False),
             ("8 images, 4 in flight", 8, 4, False), ("1 text, 4 in flight", 1, 4, True)]


def tokenizer(checkout: Path):
    """CLIP's real tokenizer, built from the BPE vocabulary photofield-ai's checkout ships (cliponnx)."""
    from transformers import CLIPTokenizer
    spec = importlib.util.spec_from_file_location("photofield_ai_tokenizer",
                                                  checkout / "cliponnx" / "simple_tokenizer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    theirs = module.SimpleTokenizer()
    merges = [pair for pair, _ in sorted(theirs.bpe_ranks.items(), key=lambda kv: kv[1])]
    return CLIPTokenizer(vocab=dict(theirs.encoder), merges=merges)


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def _agreement(servers: dict, image: bytes, text: str) -> dict:
    """The cosine of the two services' vectors for one image and one text."""
    vectors = {}
    for name, s in servers.items():
        img = httpx.post(s.url + "/image-embeddings", files=[("image0", ("0.jpg", image, "image/jpeg"))], timeout=300)
        txt = httpx.post(s.url + "/text-embeddings", json={"texts": [text]}, timeout=300)
        img.raise_for_status()
        txt.raise_for_status()
        vectors[name] = [photofield.decode(r.json()[key][0]["embedding_f16_b64"], 0)[0]
                         for r, key in ((img, "images"), (txt, "texts"))]
    a, b = vectors.values()
    return {"image": _cosine(a[0], b[0]), "text": _cosine(a[1], b[1])}


def _batches(server: Server) -> tuple[int, int]:
    stats = httpx.get(server.url + "/api/v1/status", timeout=30).json()["batching"].get("clip-images") or {}
    return stats.get("items", 0), stats.get("batches", 0)


def bench_photofield_ai(checkout: Path, images_per_run: int = 48, rounds: int = 3) -> list[dict]:
    checkout = Path(checkout).expanduser().resolve()
    if not (checkout / "main.py").is_file() or not (checkout / "cliponnx").is_dir():
        raise SystemExit(f"{checkout} is no photofield-ai checkout (main.py, cliponnx/): git clone "
                         "https://github.com/SmilyOrg/photofield-ai there first")
    print(f"vlsteps serve vs photofield-ai ({checkout}): CLIP B/32, real size, random weights; {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    rows = []
    with scratch("vlsteps-bench-pfai-") as tmp:
        model = save_model("B/32", tmp / "clip", tokenizer(checkout))
        visual, textual = export(model, tmp, text_length=77)
        del model
        paths = make_images(images_per_run, tmp)
        images = [p.read_bytes() for p in paths]
        texts = [f"a photo of {n} things on a table" for n in range(images_per_run)]
        embedder, chosen = served_embedder(tmp / "clip", "bench-B/32")    # the server's runtime and threads
        print(f"  vlsteps serves CLIP on {chosen['runtime']} ({chosen['runtime_chosen_by']}), {chosen['clip_threads']} "
              f"thread(s) ({chosen['chosen_by']})", flush=True)
        pfai_env = {"PHOTOFIELD_AI_HOST": "127.0.0.1", "PHOTOFIELD_AI_RUNTIME": "cpu",
                    "PHOTOFIELD_AI_VISUAL_MODEL": str(visual), "PHOTOFIELD_AI_TEXTUAL_MODEL": str(textual),
                    "PHOTOFIELD_AI_MODELS_DIR": str(tmp) + "/"}
        servers = {}
        try:
            servers["vlsteps"] = Server(tmp / "clip", 16, tmp / "vlsteps.log")
            servers["photofield-ai"] = Server(
                log=tmp / "photofield-ai.log", cwd=checkout, health="/docs", **pfai_env,
                command=lambda port: ["env", f"PHOTOFIELD_AI_PORT={port}", sys.executable, "main.py"])
            print("  answers agree, cosine:", json.dumps({k: round(v, 6) for k, v in
                                                        _agreement(servers, images[0], texts[0]).items()}))
            for s in servers.values():                                          # warm up
                asyncio.run(load(s.url, images[:8], 4))
            rss_mb = {name: s.rss_mb() for name, s in servers.items()}
            for r in range(rounds):
                start = time.process_time()
                embedder.images(paths)
                in_process = images_per_run / (time.process_time() - start)     # images per CPU-second
                for name_, per, conc, is_text in SCENARIOS:
                    order = list(servers)[::1 if r % 2 == 0 else -1]
                    for name in order:
                        s = servers[name]
                        cpu, batched = s.cpu_s(), _batches(s) if name == "vlsteps" else (0, 0)
                        result = asyncio.run(load(s.url, images, conc, per, texts if is_text else None))
                        cpu = s.cpu_s() - cpu
                        items, batches = (np.subtract(_batches(s), batched) if name == "vlsteps" else (0, 0))
                        rows.append({"round": r, "scenario": name_, "server": name, **result,
                                     "items_per_cpu_s": images_per_run / cpu if cpu else float("nan"),
                                     "in_process_img_per_cpu_s": in_process,
                                     "mean_batch": items / batches if batches else None,
                                     "load": os.getloadavg()[0]})
                        print(f"  round {r} {name_:22s} {name:13s} {result['img_s']:6.2f}/s p50 "
                              f"{result['p50_ms']:6.0f} ms, {result['errors']} errors", flush=True)
            rss_after = {name: s.rss_mb() for name, s in servers.items()}
        finally:
            for s in servers.values():
                s.stop()
    _table(rows, rss_mb, rss_after)
    return rows


def _table(rows: list[dict], rss_before: dict, rss_after: dict) -> None:
    def median(scenario, server, key):
        values = [r[key] for r in rows if r["scenario"] == scenario and r["server"] == server and r[key] is not None]
        return statistics.median(values) if values else float("nan")

    print("\n| request | vlsteps /s | photofield-ai /s | ratio | vlsteps per CPU-s | photofield-ai per CPU-s | "
          "vlsteps mean batch |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for scenario, *_ in SCENARIOS:
        ratios = [a["img_s"] / b["img_s"] for a in rows for b in rows if a["scenario"] == b["scenario"] == scenario
                  and a["round"] == b["round"] and a["server"] == "vlsteps" and b["server"] == "photofield-ai"]
        print(f"| {scenario} | {median(scenario, 'vlsteps', 'img_s'):.2f} | "
              f"{median(scenario, 'photofield-ai', 'img_s'):.2f} | {statistics.median(ratios):.2f}× | "
              f"{median(scenario, 'vlsteps', 'items_per_cpu_s'):.2f} | "
              f"{median(scenario, 'photofield-ai', 'items_per_cpu_s'):.2f} | "
              f"{median(scenario, 'vlsteps', 'mean_batch'):.1f} |")
    in_process = statistics.median(r["in_process_img_per_cpu_s"] for r in rows)
    at_16 = median("1 image, 16 in flight", "vlsteps", "items_per_cpu_s")
    print(f"ratio: vlsteps ÷ photofield-ai, median over rounds. In-process, the service's embedder (batch 16): "
          f"{in_process:.2f} "
          f"images per CPU-second; vlsteps at 16 in flight: {100 * at_16 / in_process:.0f} % of it. "
          "RSS after warm-up → end, MB: " +
          ", ".join(f"{k} {rss_before[k]:.0f} → {rss_after[k]:.0f}" for k in rss_before) +
          f". Load average {statistics.median(r['load'] for r in rows):.1f} (median over the runs).")
