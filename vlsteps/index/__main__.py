"""`python -m vlsteps.index build PATH... | search TEXT | search --image FILE`: the index from the shell.

    python -m vlsteps.index build ~/Pictures                 # embed every image under it (again: only what changed)
    python -m vlsteps.index search "a red circle" -k 5       # score and path of the 5 nearest images
    python -m vlsteps.index search --image photo.jpg

`--chroma DIR|URL` picks the index (default: the notebooks' one, or VLSTEPS_CHROMA_URL); `--model` the embedder.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from ..images import ImageLoadError
from . import store
from .build import build

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
    b.add_argument("paths", nargs="+", metavar="PATH", help="folders (walked) or image files")
    b.add_argument("--workers", type=int, default=4, help="decoding threads (default: 4)")
    s = sub.add_parser("search", parents=[common], help="the nearest images to a text or an image")
    s.add_argument("text", nargs="?", help="what to look for, e.g. 'a red circle'")
    s.add_argument("--image", metavar="FILE", help="look for images like this one instead")
    s.add_argument("-k", type=int, default=8, help="how many hits (default: 8)")
    return parser


def _client(where: str | None):
    if where and where.startswith(("http://", "https://")):
        return store.chroma_client(url=where)
    return store.chroma_client(path=where, url=None if where is None else "")


def _embedder(key: str, batch_size: int):
    from .. import checkpoint
    from ..embed import ClipEmbedder
    return ClipEmbedder.from_pretrained(checkpoint.model_dir(key, banner=False), model_key=key,
                                        batch_size=batch_size)


def _open(args):
    """The index's client and the model, or one message and exit status 2 (no server, no model, bad URL)."""
    try:
        return _client(args.chroma), _embedder(args.model, args.batch_size)
    except (ConnectionError, FileNotFoundError, ValueError) as e:
        _fail(e)


def _fail(error: Exception):
    print(f"error: {error}", file=sys.stderr)
    sys.exit(2)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.command == "build":
        if args.workers < 1:
            parser.error(f"--workers must be at least 1, got {args.workers}")
        missing = [p for p in args.paths if not Path(p).expanduser().exists()]
        if missing:                          # stops here, before any model loads
            parser.error(f"{missing[0]} does not exist: pass folders or image files to index")
        client, embedder = _open(args)
        summary = build(client, embedder, args.paths, workers=args.workers,
                        progress=lambda n: tqdm(total=n, unit="img", desc="embedding", file=sys.stderr))
        print("\n".join(summary.lines()))
        return 0
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
