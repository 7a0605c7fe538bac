"""`python -m vlsteps.index build PATH... | search TEXT | search --image FILE`: the index from the shell.

    python -m vlsteps.index build ~/Pictures                 # embed every image under it (again: only what changed)
    python -m vlsteps.index build --urls urls.txt            # images by URL, one a line (each fetched once)
    python -m vlsteps.index build ~/Pictures --ray           # the same on a local Ray (Ray Data, an actor pool)
    python -m vlsteps.index build /shared/photos --ray-address auto --chroma http://db:8000   # on a Ray cluster
    python -m vlsteps.index search "a red circle" -k 5       # score and path of the 5 nearest images
    python -m vlsteps.index search --image photo.jpg

`--chroma DIR|URL` picks the index (default: the notebooks' one, or VLSTEPS_CHROMA_URL); `--model` the embedder.
With Ray the driver still writes the index; the workers read the files (at the same paths on every node: shared
storage) or fetch the URLs, and embed.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from ..images import ImageLoadError
from ..net import AddressPolicy
from . import store
from .build import build, load_embedder, read_urls

MODELS = ("clip",)      # the registry's image-text embedders (vlsteps.embed.ClipEmbedder loads them)


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--model", default="clip", choices=MODELS, help="embedding model (default: clip)")
    common.add_argument("--chroma", metavar="DIR|URL", default=None,
                        help="index folder, or http://host:port of a Chroma server (default: the notebooks' index)")
    common.add_argument("--batch-size", type=int, default=32, help="images per forward pass (default: 32)")
    parser = argparse.ArgumentParser(prog="python -m vlsteps.index", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", parents=[common], help="embed every image under PATH (only what changed)")
    b.add_argument("paths", nargs="*", metavar="PATH", help="folders (walked) or image files")
    b.add_argument("--urls", metavar="FILE",
                   help="a text file of image URLs, one a line (blank lines and # comments skipped). A URL already "
                        "in the index is not fetched again; one dropped from the file is removed from the index when "
                        "the file is indexed again. Private and loopback addresses are refused unless "
                        "VLSTEPS_ALLOW_HOSTS names them")
    b.add_argument("--workers", type=int, default=4,
                   help="decoding threads beside the model (default: 4; 0: decode in the model's thread, no overlap)")
    ray = b.add_argument_group("Ray (pip install 'ray[data]'): the same steps on Ray Data")
    ray.add_argument("--ray", action="store_true", help="start a local Ray on this machine's cores for the run")
    ray.add_argument("--ray-address", metavar="ADDR",
                     help="join a Ray cluster instead (auto, or ray://head:10001). The driver writes the index; the "
                          "workers read the files, so PATHs must be readable at the same path on every node (shared "
                          "storage), or use --urls; each node loads the model from its own VLSTEPS_MODELS_DIR")
    ray.add_argument("--ray-workers", type=int, metavar="N",
                     help="embedding actors, each with its own copy of the model (default: one per GPU of the "
                          "cluster, each holding that GPU; one when there is none, since on CPUs one model already "
                          "uses every core of its node)")
    s = sub.add_parser("search", parents=[common], help="the nearest images to a text or an image")
    s.add_argument("text", nargs="?", help="what to look for, e.g. 'a red circle'")
    s.add_argument("--image", metavar="FILE", help="look for images like this one instead")
    s.add_argument("-k", type=int, default=8, help="how many hits (default: 8)")
    return parser


def _client(where: str | None):
    if where and where.startswith(("http://", "https://")):
        return store.chroma_client(url=where)
    return store.chroma_client(path=where, url=None if where is None else "")


def _open(args):
    """The index's client and the model, or one message and exit status 2 (no server, no model, bad URL)."""
    try:
        return _client(args.chroma), load_embedder(args.model, args.batch_size)
    except (ConnectionError, FileNotFoundError, ValueError) as e:
        _fail(e)


def _fail(error: Exception):
    print(f"error: {error}", file=sys.stderr)
    sys.exit(2)


def _build(parser: argparse.ArgumentParser, args) -> int:
    if args.workers < 0:
        parser.error(f"--workers must be 0 or more, got {args.workers}")
    if args.ray_workers is not None and args.ray_workers < 1:
        parser.error(f"--ray-workers must be at least 1, got {args.ray_workers}")
    if not args.paths and not args.urls:
        parser.error("give folders or image files to index, or --urls FILE")
    missing = [p for p in args.paths if not Path(p).expanduser().exists()]
    if missing:                          # stops here, before any model loads
        parser.error(f"{missing[0]} does not exist: pass folders or image files to index")
    urls = None
    if args.urls:
        try:
            AddressPolicy.from_env()
            urls = read_urls(Path(args.urls).expanduser())
        except (OSError, UnicodeDecodeError, ValueError) as e:
            parser.error(f"--urls {args.urls} cannot be read ({e}): pass a text file of image URLs, one a line")
    on_ray = bool(args.ray or args.ray_address)
    if on_ray:
        from .ray_runner import RayRunner, import_ray
        try:
            import_ray()
        except ImportError as e:
            _fail(e)
    client, embedder = _open(args)
    runner = RayRunner(embedder, args.model, address=args.ray_address, workers=args.ray_workers) if on_ray else None
    try:
        summary = build(client, embedder, args.paths, batch_size=args.batch_size, workers=args.workers, urls=urls,
                        runner=runner,
                        progress=lambda n: tqdm(total=n, unit="img", desc="embedding", file=sys.stderr))
    finally:
        if runner is not None:
            runner.close()
    print("\n".join(summary.lines()))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.command == "build":
        return _build(parser, args)
    if (args.text is None) == (args.image is None):
        parser.error("give either a TEXT to look for or --image FILE, not both or neither")
    if args.k < 1:
        parser.error(f"-k must be at least 1, got {args.k}")
    client, embedder = _open(args)
    collection = store.image_collection(client, embedder)
    if collection.count() == 0:
        print(f"The index {collection.name} is empty: fill it with python -m vlsteps.index build PATH...",
              file=sys.stderr)
        return 1
    try:
        hits = (store.search_by_image(collection, embedder, args.image, args.k) if args.image
                else store.search_by_text(collection, embedder, args.text, args.k))
    except (ImageLoadError, ValueError) as e:
        _fail(e)
    for hit in hits:
        print(f"{hit.similarity:.4f}  {hit.metadata.get('path', hit.id)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
