"""`python -m tools.bench library [--images 10000] [--sample 1000] [--arch B/32]`: `python -m vlsteps.index build`
on a photo library, against the model's own ceiling (issue 22).

The library is the procedural world's scenes as JPEGs of photo-like sizes (1-4 megapixels, aspect ratios of
cameras and phones, film grain so they compress like photos, quality 90): decoding costs what it costs on photos.
It is made once, in parallel, under `outputs_dir()/bench-library/`, each file written atomically, so a killed
generation is finished by the next one. The model is a real-size CLIP with random weights (`workload.save_model`),
put where the command finds its "clip" (VLSTEPS_MODELS_DIR, stand-ins off).

Measured, each CLI run into a fresh index, in interleaved rounds that rotate who goes first:
  (a) the ceiling: `ClipEmbedder.image_features` in this process on already-decoded, preprocessed pixels;
  (b) the command as is (decoding threads), (c) `--workers 0` (decoding in the model's thread), (d) `--ray`
      with one embedding actor, (e) `--ray --ray-workers 2`: each the real CLI in a subprocess, on the sample;
  then (b) once on the whole library. A CLI rate is the difference in images over the difference in wall time of
  that run and a run on a few images (one batch), so fixed costs (imports, model load, Ray's start) drop out;
  raw rates (images over the whole wall time) beside.
Then a paper model of 10^6 and 10^7 photos on N GPU nodes, from the measured decode cost and stated assumptions.
"""
from __future__ import annotations

import io
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from vlsteps import world
from vlsteps.files import atomic_write
from vlsteps.paths import outputs_dir

from .workload import save_model, timed

ASPECTS = (4 / 3, 3 / 2, 16 / 9, 1.0, 3 / 4, 2 / 3)
VARIANTS = {"b": ("parallel decoding (default)", []), "c": ("--workers 0", ["--workers", "0"]),
            "d": ("--ray, 1 embedding actor", ["--ray", "--ray-workers", "1"]),
            "e": ("--ray --ray-workers 2", ["--ray", "--ray-workers", "2"])}
RAY = ("d", "e")
# The paper model's assumptions: not measured here. B/32 image-tower rates at batch 256, fp16 (clip-retrieval's
# reports are of this order); decode cores per GPU node; a phone photo's size and pixels; the network per node.
ASSUMED = {"gpu_img_s": {"T4": 400.0, "A100": 2500.0}, "decode_cores_per_node": 16, "photo_mb": 3.0,
           "photo_megapixels": 12.0, "network_gbit_s": 10.0}


def photo(i: int, seed: int = 0) -> bytes:
    """Scene i as the bytes of a photo-like JPEG."""
    rng = np.random.default_rng([seed, i])
    scene = world.scenes(1, seed * 100_003 + i, "test")[0]
    megapixels, aspect = rng.uniform(1.0, 4.0), ASPECTS[int(rng.integers(len(ASPECTS)))]
    w, h = int(math.sqrt(megapixels * 1e6 * aspect)), int(math.sqrt(megapixels * 1e6 / aspect))
    image = world.draw(scene, size=512).resize((w, h), Image.BICUBIC)
    pixels = np.asarray(image, dtype=np.int16) + rng.integers(-10, 11, (h, w, 1), dtype=np.int16)
    pixels = np.clip(pixels, 0, 255, out=pixels).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=90)
    return out.getvalue()


def _write(args: tuple[int, Path]) -> None:
    i, path = args
    atomic_write(path, photo(i))


def make_library(folder: Path, n: int, workers: int | None = None) -> list[Path]:
    """photos/000000.jpg ... for scenes 0..n-1 under folder, making only those missing."""
    paths = [folder / "photos" / f"{i:06d}.jpg" for i in range(n)]
    missing = [(i, p) for i, p in enumerate(paths) if not p.is_file()]
    if missing:
        print(f"writing {len(missing)} photo-like JPEGs into {folder / 'photos'} ...", flush=True)
        (folder / "photos").mkdir(parents=True, exist_ok=True)
        with ProcessPoolExecutor(max_workers=workers or os.cpu_count()) as pool:
            list(pool.map(_write, missing, chunksize=8))
    return paths


def linked(paths: list[Path], folder: Path) -> Path:
    """A folder holding exactly these files (hard links: no copy), for the CLI to walk."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for p in paths:
        try:
            os.link(p, folder / p.name)
        except OSError:
            shutil.copy(p, folder / p.name)
    return folder


def model_folder(root: Path, arch: str) -> Path:
    """VLSTEPS_MODELS_DIR with the random-weight CLIP `arch` as the registry's "clip" (made once)."""
    from vlsteps import registry
    models = root / f"models-{arch.replace('/', '')}"
    if not (models / registry.get("clip").folder).is_dir():
        tmp = Path(tempfile.mkdtemp(prefix=".clip-", dir=root))
        save_model(arch, tmp)
        models.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, models / registry.get("clip").folder)
    return models


def command_env(models: Path) -> dict:
    """The environment of a `python -m vlsteps.index` run: this checkout, the random-weight CLIP in `models`,
    stand-ins off, the embedded index."""
    return {**os.environ, "VLSTEPS_MODELS_DIR": str(models), "VLSTEPS_STANDINS": "0", "VLSTEPS_CHROMA_URL": "",
            "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]),
                                           os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}


def cli(folder: Path, db: Path, extra: list[str], env: dict) -> tuple[float, str]:
    """Seconds the command took, and its error ('' when it succeeded)."""
    cmd = [sys.executable, "-m", "vlsteps.index", "build", str(folder), "--chroma", str(db), *extra]
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode:
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        return seconds, lines[-1] if lines else f"exit status {proc.returncode}"
    return seconds, ""


def measure_cli(folder: Path, n: int, small: Path, s: int, extra: list[str], env: dict, work: Path) -> dict:
    """A run on the n images of folder and one on the s < n of small, each into a fresh index: the rate is the
    difference of images over the difference of wall times, so every fixed cost (imports, model load, Ray's start,
    its actors' model loads) drops out; `fixed_s` is what the small run took beyond its images."""
    walls = []
    for where in (small, folder):
        db = Path(tempfile.mkdtemp(prefix="db-", dir=work))
        try:
            wall, error = cli(where, db, extra, env)
        finally:
            shutil.rmtree(db, ignore_errors=True)
        if error:
            return {"error": error}
        walls.append(wall)
    rate = (n - s) / (walls[1] - walls[0]) if walls[1] > walls[0] else float("nan")
    return {"wall_s": walls[1], "fixed_s": walls[0] - s / rate, "raw_img_s": n / walls[1], "img_s": rate}


def ceiling(embedder, paths: list[Path], n: int) -> float:
    """Images/s of the model call alone over n images (batches cycled from up to 4 batches of decoded pixels:
    the forward's cost does not depend on what the pixels show)."""
    from vlsteps.images import load_image
    b = embedder.batch_size
    pool = embedder.pixel_values([load_image(p) for p in paths[:4 * b]])
    embedder.image_features(pool[:b])                                       # warm-up
    starts = range(0, len(pool) - b + 1, b) or [0]
    chunks = [pool[starts[k % len(starts)]:][:min(b, n - i)] for k, i in enumerate(range(0, n, b))]
    return n / timed(lambda: [embedder.image_features(c) for c in chunks])


def decode_costs(embedder, paths: list[Path], k: int = 24) -> dict:
    """Per image, one thread: ms to decode the JPEG in full and ms to preprocess it (a notebook's embedder given a
    photo), and ms for the indexer's read (decoded at libjpeg's reduced scale, then preprocessed); megapixels,
    bytes."""
    from vlsteps.images import load_image
    sample = paths[:k]
    data = [p.read_bytes() for p in sample]
    images = []
    t_dec = timed(lambda: images.extend(load_image(d) for d in data))
    t_pre = timed(lambda: [embedder.pixels(im) for im in images])
    t_draft = timed(lambda: [embedder.preprocess(d, draft=True) for d in data])
    mp = statistics.mean(im.width * im.height / 1e6 for im in images)
    return {"decode_ms": 1e3 * t_dec / len(sample), "preprocess_ms": 1e3 * t_pre / len(sample),
            "indexer_ms": 1e3 * t_draft / len(sample), "megapixels": mp, "bytes": statistics.mean(map(len, data))}


def paper_model(costs: dict, nodes=(1, 4, 16, 64)) -> list[str]:
    """Hours to embed 10^6 and 10^7 photos on N GPU nodes: each node at the least of its GPU's (assumed) rate,
    its decode cores' rate (the measured decode + preprocess ms per megapixel, both of which scale with the pixels
    decoded and resized, at an assumed photo size) and its network (assumed). The decode cost is the indexer's
    (a reduced-scale JPEG decode), taken to grow with the megapixels."""
    a = ASSUMED
    ms_per_mp = costs["indexer_ms"] / costs["megapixels"]
    decode_ms = ms_per_mp * a["photo_megapixels"]
    decode_img_s = a["decode_cores_per_node"] * 1e3 / decode_ms
    net_img_s = a["network_gbit_s"] * 1e9 / 8 / (a["photo_mb"] * 1e6)
    gpus = ", ".join(f"{gpu} {rate:g}" for gpu, rate in a["gpu_img_s"].items())
    out = [f"paper model (ASSUMED, not measured: GPU rates {gpus} img/s for B/32; "
           f"{a['decode_cores_per_node']} decode cores/node; photos of {a['photo_mb']:g} MB, "
           f"{a['photo_megapixels']:g} MP; {a['network_gbit_s']:g} Gbit/s per node). Measured: the indexer's "
           f"read {ms_per_mp:.1f} ms/MP on one core -> {decode_ms:.0f} ms per {a['photo_megapixels']:g} MP "
           f"photo -> {decode_img_s:.0f} img/s/node decoding; "
           f"network {net_img_s:.0f} img/s/node"]
    for gpu, rate in a["gpu_img_s"].items():
        per_node = min(rate, decode_img_s, net_img_s)
        limit = {rate: "GPU", decode_img_s: "decoding", net_img_s: "network"}[per_node]
        out.append(f"  {gpu}: {per_node:.0f} img/s per node ({limit}-bound); " + "; ".join(
            f"{n} node(s): 10^6 in {1e6 / (n * per_node) / 3600:.2f} h, 10^7 in {1e7 / (n * per_node) / 3600:.1f} h"
            for n in nodes))
    return out


def ray_offered(env: dict) -> bool:
    """Whether this checkout's command has --ray (issue 22's Ray pipeline)."""
    out = subprocess.run([sys.executable, "-m", "vlsteps.index", "build", "--help"], env=env, capture_output=True,
                         text=True).stdout
    return "--ray" in out


def bench_library(n_images: int = 10_000, sample: int = 1000, arch: str = "B/32", rounds: int = 2,
                  batch: int = 32, root: Path | None = None, ray: bool = True) -> dict:
    import torch

    from vlsteps.embed import ClipEmbedder
    root = Path(root or outputs_dir() / "bench-library")
    root.mkdir(parents=True, exist_ok=True)
    sample = min(sample, n_images)
    load_before = os.getloadavg()
    print(f"machine: {os.cpu_count()} CPUs, torch {torch.__version__} ({torch.get_num_threads()} threads), load "
          f"average {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}; library of {n_images} photos, "
          f"sample {sample}, CLIP {arch} (random weights), batch {batch}, {rounds} round(s)", flush=True)
    paths = make_library(root, n_images)
    models = model_folder(root, arch)
    env = command_env(models)
    from vlsteps import registry
    embedder = ClipEmbedder.from_pretrained(models / registry.get("clip").folder, model_key="clip",
                                            batch_size=batch)
    work = Path(tempfile.mkdtemp(prefix="runs-", dir=root))
    res: dict = {"rates": {"a": []}, "cli": {k: [] for k in VARIANTS}, "errors": {}}
    if not ray:
        res["errors"].update({k: "left out (--no-ray)" for k in RAY})
    elif not ray_offered(env):
        res["errors"].update({k: "this checkout's command has no --ray" for k in RAY})
    variants = [k for k in VARIANTS if k not in res["errors"]]
    try:
        small = max(1, min(batch, sample // 4))
        sample_dir, small_dir = linked(paths[:sample], work / "sample"), linked(paths[:small], work / "small")
        extra = ["--batch-size", str(batch)]
        for r in range(rounds):
            order = ["a", *variants]
            order = order[r % len(order):] + order[:r % len(order)]
            for k in order:
                if k == "a":
                    res["rates"]["a"].append(ceiling(embedder, paths[:sample], sample))
                    print(f"  round {r + 1} (a) in-process embedder: {res['rates']['a'][-1]:.2f} img/s", flush=True)
                    continue
                if k in res["errors"]:
                    continue
                got = measure_cli(sample_dir, sample, small_dir, small, VARIANTS[k][1] + extra, env, work)
                if "error" in got:
                    res["errors"][k] = got["error"]
                    print(f"  round {r + 1} ({k}) {VARIANTS[k][0]}: not measured: {got['error']}", flush=True)
                    continue
                res["cli"][k].append(got)
                print(f"  round {r + 1} ({k}) {VARIANTS[k][0]}: {got['img_s']:.2f} img/s ({got['raw_img_s']:.2f} "
                      f"raw: {got['wall_s']:.1f} s, of which {got['fixed_s']:.1f} s fixed)", flush=True)
        whole = measure_cli(linked(paths, work / "library"), n_images, small_dir, small, extra, env, work)
        res["library"] = whole
        costs = decode_costs(embedder, paths[:sample])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    res["decode"] = costs
    res["load_after"] = os.getloadavg()
    _report(res, n_images, sample)
    return res


def kill_and_resume(n_images: int = 10_000, kills: int = 5, arch: str = "B/32", batch: int = 32,
                    root: Path | None = None, seed: int = 0) -> dict:
    """Issue 22's resumability on the whole library: the command killed with SIGKILL at `kills` random moments of
    its run (each next run resuming), then run to the end; the index must then hold each photo exactly once (one
    id per distinct file content, one vector per id, every file recorded pointing to a stored vector). Prints
    what each killed run had stored. tests/test_index_kills.py checks the same on a small library, vectors too."""
    import random
    import signal

    import chromadb

    from vlsteps.index import build
    root = Path(root or outputs_dir() / "bench-library")
    paths = make_library(root, n_images)
    models = model_folder(root, arch)
    env = command_env(models)
    work = Path(tempfile.mkdtemp(prefix="kills-", dir=root))
    rng = random.Random(seed)
    try:
        folder, db = linked(paths, work / "library"), work / "db"
        cmd = [sys.executable, "-m", "vlsteps.index", "build", str(folder), "--chroma", str(db), "--batch-size",
               str(batch)]
        stored = []
        for k in range(kills):
            delay = rng.uniform(20.0, 90.0)          # past the imports and the model load, into the embedding
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                proc.wait(timeout=delay)
                raise RuntimeError(f"run {k + 1} ended before it was killed: raise the library's size")
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
            stored.append(_count(chromadb, db))
            print(f"  run {k + 1} killed (SIGKILL) after {delay:.0f} s: {stored[-1]} vectors stored so far", flush=True)
        start = time.perf_counter()
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        print(f"  last run: exit {done.returncode} in {time.perf_counter() - start:.0f} s: "
              f"{done.stdout.strip().splitlines()[0] if done.stdout.strip() else done.stderr[-300:]}", flush=True)
        client = chromadb.PersistentClient(path=str(db))
        vectors = next(c for c in client.list_collections() if not c.name.startswith("files-"))
        records = client.get_collection(f"files-{vectors.name}"[:512])
        ids = set(build._all(vectors)[0])
        rec_ids, rec_metas = build._all(records)
        contents = {build.file_id(p.read_bytes()) for p in paths}
        wanted = {str(p.absolute()) for p in folder.iterdir()}
        res = {"kills": stored, "vectors": vectors.count(), "distinct contents": len(contents),
               "records": len(rec_ids), "files": len(paths),
               "each photo once": vectors.count() == len(ids) == len(contents) and ids == contents
               and set(rec_ids) == wanted and {m["image"] for m in rec_metas} == ids}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"after {kills} kills and a last run: {res['vectors']} vectors for {res['distinct contents']} distinct "
          f"photos, {res['records']} file records for {res['files']} files; each photo exactly once: "
          f"{res['each photo once']}")
    return res


def _count(chromadb, db: Path) -> int:
    """Vectors in the index folder now (0 before the first batch is stored)."""
    if not db.exists():
        return 0
    client = chromadb.PersistentClient(path=str(db))
    return sum(c.count() for c in client.list_collections() if not c.name.startswith("files-"))


def _best(runs: list[dict]) -> float | None:
    return max((r["img_s"] for r in runs), default=None)


def _report(res: dict, n_images: int, sample: int) -> None:
    best = {"a": max(res["rates"]["a"])} | {k: _best(v) for k, v in res["cli"].items() if v}
    res["best"] = best
    print(f"\nimages/s on the {sample}-image sample, best of rounds (fixed cost taken out):")
    print(f"  (a) in-process embedder, decoded pixels (the ceiling): {best['a']:.2f}")
    for k, (label, _) in VARIANTS.items():
        print(f"  ({k}) vlsteps index build, {label}: " + (f"{best[k]:.2f}" if k in best else
                                                             f"not measured: {res['errors'].get(k)}"))
    ratios = {"b/a": ("b", "a", "one machine vs the ceiling (goal >= 0.90)"),
              "b/c": ("b", "c", "parallel decoding's effect"),
              "d/b": ("d", "b", "local Ray vs the plain run (goal: overhead <= 15 %, i.e. >= 0.85)"),
              "e/d": ("e", "d", "Ray 1 -> 2 embedding actors")}
    res["ratios"] = {}
    for name, (x, y, what) in ratios.items():
        if x in best and y in best:
            res["ratios"][name] = best[x] / best[y]
            print(f"  {name} = {best[x] / best[y]:.2f}: {what}")
    lib = res["library"]
    if "error" in lib:
        print(f"whole library ({n_images} images): not measured: {lib['error']}")
    else:
        print(f"whole library, (b) on {n_images} images: {lib['img_s']:.2f} img/s ({lib['raw_img_s']:.2f} raw: "
              f"{lib['wall_s']:.0f} s, of which {lib['fixed_s']:.1f} s fixed); 10^6 photos at this rate: "
              f"{1e6 / lib['img_s'] / 3600:.1f} h on this machine")
    c = res["decode"]
    print(f"per image on one thread (mean {c['megapixels']:.2f} MP, {c['bytes'] / 1e6:.2f} MB per JPEG): full "
          f"decode {c['decode_ms']:.1f} ms + preprocess {c['preprocess_ms']:.1f} ms; the indexer's reduced-scale "
          f"decode + preprocess {c['indexer_ms']:.1f} ms")
    print("\n".join(paper_model(c)))
    after = res["load_after"]
    print(f"load average after: {after[0]:.2f} {after[1]:.2f} {after[2]:.2f} on {os.cpu_count()} CPUs")
