"""What a fine-tuning run learns from: (image, prompt, target) examples, from the procedural world's new colour
(offline) or from the learner's own folder of photos with captions or question/answer pairs."""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .. import world
from ..captioner.data import find_captions_file, read_captions
from ..images import load_image

# Of the world examples, the share that shows the new colour: enough to learn it, rare enough to keep the rest.
NEW_SHARE = 0.3
SIZE = 224              # BLIP-2's input size; Qwen2.5-VL reads them at this size too (8 x 8 merged patches)
QA_COLUMNS = ("image", "question", "answer")
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Example:
    image: Image.Image | Path
    prompt: str | None      # a question; None: the target is a caption of the image
    target: str

    def picture(self) -> Image.Image:
        """The image as RGB (a file is decoded here, when a batch needs it)."""
        return self.image if isinstance(self.image, Image.Image) else load_image(self.image)


def new_colour(n: int, seed: int, split: str) -> list[Example]:
    """n colour questions about world scenes of `split`, NEW_SHARE of them about a shape painted world.NEW_COLOUR:
    a task no stand-in can do, since none has seen the colour or written its word."""
    rng = np.random.default_rng([seed, SPLITS.index(split)])
    out: list[Example] = []
    for scene in world.scenes(2 * n, seed, split, held_out=False):
        if rng.random() < NEW_SHARE:
            scene = world.with_new_colour(scene, rng)
        asked = [qa for qa in world.questions(scene) if qa.kind == "colour"]
        asked = [qa for qa in asked if qa.answer == world.NEW_COLOUR] or asked    # the new one, where it is there
        if asked:       # two same shapes have no colour question of their own
            qa = asked[int(rng.integers(len(asked)))]
            out.append(Example(world.draw(scene, SIZE), qa.question, qa.answer))
        if len(out) == n:
            return out
    raise ValueError(f"{2 * n} scenes held fewer than {n} colour questions")


def score(answers: list[str], examples: list[Example]) -> dict[str, float]:
    """The share of right answers about the new colour, and about the colours the model knew before (what
    fine-tuning must not break). Answers are compared lower-cased, without a final full stop."""
    right = [a.strip().lower().rstrip(".") == e.target for a, e in zip(answers, examples, strict=True)]
    new = [r for r, e in zip(right, examples) if e.target == world.NEW_COLOUR]
    old = [r for r, e in zip(right, examples) if e.target != world.NEW_COLOUR]
    return {"new colour named": round(float(np.mean(new)), 3), "old colours kept": round(float(np.mean(old)), 3)}


def distinct(examples: list[Example]) -> list[Example]:
    """One example per image and prompt: a photo with five captions is captioned once."""
    seen: dict[tuple, Example] = {}
    for e in examples:
        seen.setdefault((str(e.image), e.prompt), e)
    return list(seen.values())


def folder_score(answers: list[str], asked: list[Example], examples: list[Example]) -> dict[str, float]:
    """A learner's test examples, `answers` being the model's to `asked` (= distinct(examples)): the share of exactly
    right answers to questions, and BLEU-4 and CIDEr of captions against every caption of the same image."""
    from ..captioner.metrics import caption_scores
    out = {}
    questions = [(a, e) for a, e in zip(answers, asked, strict=True) if e.prompt]
    if questions:
        right = sum(a.strip().lower().rstrip(".") == e.target.strip().lower().rstrip(".") for a, e in questions)
        out["answers right"] = round(right / len(questions), 3)
    refs: dict[str, list[str]] = {}
    for e in examples:
        if not e.prompt:
            refs.setdefault(str(e.image), []).append(e.target)
    captioned = [(a, refs[str(e.image)]) for a, e in zip(answers, asked) if not e.prompt]
    if captioned:
        hyps, groups = zip(*captioned)
        out.update({k: round(v, 3) for k, v in caption_scores(list(hyps), list(groups)).items()})
    return out


def read_pairs(path: Path) -> list[tuple[str, str | None, str]]:
    """(image file name, prompt, target) rows: a CSV with image, question and answer columns gives questions; any
    captions file the captioner reads (Flickr token file, captions CSV, COCO captions JSON) gives captions."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        with path.open(encoding="utf-8", newline="") as f:
            rows = list(csv.reader(f))
        header = [h.strip().lower() for h in rows[0]] if rows else []
        if set(QA_COLUMNS) <= set(header):
            i, q, a = (header.index(c) for c in QA_COLUMNS)
            return [(r[i].strip(), r[q].strip(), r[a].strip()) for r in rows[1:] if len(r) > max(i, q, a)]
    return [(name, None, caption) for name, captions in read_captions(path).items() for caption in captions]


def folder(path, pairs_file=None, seed: int = 0, test: float = 0.1) -> dict[str, list[Example]]:
    """train and test examples of a photo folder, split by image (every caption or question of one image on one side)
    with a seeded shuffle. The pairs file is `pairs_file`, else a qa.csv in the folder, else its captions file."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"No such folder: {root}: give the folder of your images")
    source = Path(pairs_file) if pairs_file else root / "qa.csv" if (root / "qa.csv").is_file() \
        else find_captions_file(root)
    rows = read_pairs(source)
    found = {p.name: p for p in root.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp")}
    names = sorted({Path(name).name for name, _, _ in rows} & set(found))
    if len(names) < 2:
        raise ValueError(f"{source} names {len(names)} image(s) found under {root}: fine-tuning needs at least two "
                         "(one to learn from, one to test on); check the file names in it")
    order = np.random.default_rng(seed).permutation(len(names))
    held = {names[i] for i in order[:max(1, round(test * len(names)))]}
    out: dict[str, list[Example]] = {"train": [], "test": []}
    for name, prompt, target in rows:
        if Path(name).name in found:
            out["test" if Path(name).name in held else "train"].append(Example(found[Path(name).name], prompt, target))
    return out
