"""Captioned images: splits by image (never by caption), a vocabulary from the training split only, batches.

Two sources: the scenes of `shapes` (drawn by code, offline), and a folder of photos with a captions file in the
formats Flickr8k, Flickr30k and COCO ship in. An image and all its captions always land in the same split; the
original Keras trainer this grew from split captions, so one photo sat in training and validation at once.
"""
from __future__ import annotations

import csv
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..images import load_image
from .. import world

PAD, START, END, UNK = "<pad>", "<start>", "<end>", "<unk>"
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
CAPTION_FILES = ("captions.txt", "Flickr8k.token.txt", "results_20130124.token", "results.csv")


def tokenize(text: str) -> list[str]:
    """Lower-case words; punctuation dropped (what BLEU and CIDEr compare is words)."""
    return _WORD.findall(text.lower())


class Vocabulary:
    """Word <-> id. Ids 0-3 are <pad> <start> <end> <unk>; the rest are the training split's words, most frequent
    first, at most `max_size` in all (the original trainer's 10,000)."""

    def __init__(self, words: list[str]):
        self.words = [PAD, START, END, UNK] + [w for w in words if w not in (PAD, START, END, UNK)]
        self.index = {w: i for i, w in enumerate(self.words)}

    pad, start, end, unk = 0, 1, 2, 3

    @classmethod
    def build(cls, captions, max_size: int = 10_000, min_count: int = 1) -> "Vocabulary":
        counts = Counter(w for c in captions for w in tokenize(c))
        ranked = sorted((w for w, n in counts.items() if n >= min_count), key=lambda w: (-counts[w], w))
        return cls(ranked[:max_size - 4])

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, caption: str, seq_length: int) -> list[int]:
        """<start> words <end>, cut to `seq_length` ids (the cut keeps <start>, loses <end>)."""
        ids = [self.start] + [self.index.get(w, self.unk) for w in tokenize(caption)] + [self.end]
        return ids[:seq_length]

    def decode(self, ids) -> str:
        """Words up to the first <end>; <start> and <pad> dropped."""
        out = []
        for i in (int(i) for i in ids):
            if i == self.end:
                break
            if i not in (self.pad, self.start):
                out.append(self.words[i])
        return " ".join(out)

    def to_json(self) -> str:
        return json.dumps(self.words[4:])

    @classmethod
    def from_json(cls, text: str) -> "Vocabulary":
        return cls(json.loads(text))


@dataclass
class Split:
    """Images (a Scene or an image path each) and, per image, every reference caption."""
    sources: list
    captions: list[list[str]]

    def __len__(self) -> int:
        return len(self.sources)

    def image(self, i: int, size: int) -> Image.Image:
        source = self.sources[i]
        if isinstance(source, world.Scene):
            return world.draw(source, size)
        return load_image(source).resize((size, size), Image.BICUBIC)


def shapes_splits(n_train: int, seed: int = 0, n_eval: int | None = None) -> dict[str, Split]:
    """train / val / test (iid) / compositional scenes; the held-out colour+shape pairs appear only in the last."""
    n_eval = n_eval or max(100, n_train // 10)
    sizes = {"train": n_train, "val": n_eval, "test": n_eval, "compositional": n_eval}
    return {name: Split(scenes, [s.captions for s in scenes])
            for name, scenes in ((name, world.scenes(n, seed, name)) for name, n in sizes.items())}


def read_captions(path: Path) -> dict[str, list[str]]:
    """{image file name: [captions]} from a Flickr token file (`name.jpg#0<TAB>caption`), a CSV with image and
    caption columns (Kaggle's Flickr8k/30k, `|`-separated too) or a COCO captions JSON."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    out: dict[str, list[str]] = {}
    if path.suffix == ".json":
        coco = json.loads(text)
        names = {im["id"]: im["file_name"] for im in coco["images"]}
        for ann in coco["annotations"]:
            out.setdefault(names[ann["image_id"]], []).append(ann["caption"].strip())
        return out
    first = text.split("\n", 1)[0]
    if "\t" in first:
        for line in filter(str.strip, text.splitlines()):
            key, caption = line.split("\t", 1)
            out.setdefault(key.split("#", 1)[0], []).append(caption.strip())
        return out
    delimiter = "|" if first.count("|") >= 1 else ","
    rows = csv.reader(text.splitlines(), delimiter=delimiter)
    header = [h.strip().lower() for h in next(rows)]
    if "image" not in header and "image_name" not in header or not {"caption", "comment"} & set(header):
        raise ValueError(f"{path}: a captions CSV needs an image and a caption column; its header is {first!r}")
    image_col = header.index("image" if "image" in header else "image_name")
    caption_col = header.index("caption" if "caption" in header else "comment")
    for row in rows:
        if len(row) > max(image_col, caption_col):
            out.setdefault(row[image_col].strip(), []).append(row[caption_col].strip())
    return out


def find_captions_file(folder: Path) -> Path:
    for name in CAPTION_FILES:
        for candidate in (folder / name, *folder.glob(f"*/{name}")):
            if candidate.is_file():
                return candidate
    jsons = sorted(folder.glob("**/captions_*.json"))
    if jsons:
        return jsons[0]
    raise FileNotFoundError(f"No captions file in {folder}: expected one of {', '.join(CAPTION_FILES)} or a COCO "
                            "captions_*.json; pass --captions FILE")


def folder_splits(folder, captions_file=None, seed: int = 0, val: float = 0.1, test: float = 0.1) -> dict[str, Split]:
    """train / val / test of a photo folder, split by image with a seeded shuffle."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"No such folder: {folder}")
    captions = read_captions(Path(captions_file) if captions_file else find_captions_file(folder))
    found = {p.name: p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")}
    missing = [name for name in captions if Path(name).name not in found]
    if len(missing) == len(captions):
        raise FileNotFoundError(f"None of the {len(captions)} images the captions file names is under {folder} "
                                f"(first: {missing[0]!r})" if missing else "The captions file names no images")
    names = sorted(name for name in captions if Path(name).name in found)
    order = np.random.default_rng(seed).permutation(len(names))
    n_val, n_test = max(1, round(val * len(names))), max(1, round(test * len(names)))
    if len(names) < n_val + n_test + 1:
        raise ValueError(f"{len(names)} captioned images are too few to split into train, val and test")
    parts = {"val": order[:n_val], "test": order[n_val:n_val + n_test], "train": order[n_val + n_test:]}
    return {split: Split([found[Path(names[i]).name] for i in idx], [captions[names[i]] for i in idx])
            for split, idx in (("train", parts["train"]), ("val", parts["val"]), ("test", parts["test"]))}


def pixels(image: Image.Image) -> torch.Tensor:
    """A PIL image as the uint8 (3, H, W) tensor the model takes."""
    return torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1).contiguous()


class CaptionPairs(torch.utils.data.Dataset):
    """Every (image, caption) pair of a split as (uint8 image CHW, caption ids). Images are drawn or loaded and
    resized once and kept in memory when `preload` (scenes), else on each access (photo folders)."""

    def __init__(self, split: Split, vocab: Vocabulary, seq_length: int, image_size: int, preload: bool):
        self.split, self.image_size = split, image_size
        self.pairs = [(i, vocab.encode(c, seq_length)) for i, caps in enumerate(split.captions) for c in caps]
        self.cache = torch.stack([self._load(i) for i in range(len(split))]) if preload else None

    def _load(self, i: int) -> torch.Tensor:
        return pixels(self.split.image(i, self.image_size))

    def image(self, i: int) -> torch.Tensor:
        return self.cache[i] if self.cache is not None else self._load(i)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, k: int):
        i, ids = self.pairs[k]
        return self.image(i), torch.tensor(ids)


def collate(batch):
    """Images stacked; captions padded with <pad> (id 0) to the longest in the batch, not to seq_length."""
    images, ids = zip(*batch)
    return torch.stack(images), torch.nn.utils.rnn.pad_sequence(list(ids), batch_first=True, padding_value=0)
