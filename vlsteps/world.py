"""The procedural world every offline model learns: scenes of one or two coloured shapes, drawn by code.

Everything a model family needs is derived from the scene: captions from a small grammar ("a small red circle
left of a large blue square"), "colour shape" labels, question/answer pairs, instructions and each shape's box.
Every scene follows from (seed, split, index), so a dataset is rebuilt identically anywhere, offline. Some
colour+shape pairs never appear in the default training scenes: the compositional split holds exactly the scenes
that contain one, so a model only passes it by combining words it learned apart.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

SIZES = {"small": 0.13, "large": 0.22}            # radius, as a fraction of the image side
COLOURS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (50, 80, 220), "yellow": (230, 200, 40),
           "purple": (140, 60, 180)}
SHAPES = ("circle", "square", "triangle")
# A colour drawn only when asked for (`with_new_colour`), never in a stand-in's training world: the concept that
# notebooks/finetune.ipynb teaches a pretrained stand-in with an adapter (a colour, because every stand-in tells the
# world's colours apart, and its word, because no stand-in has ever written it).
NEW_COLOUR, NEW_RGB = "black", (25, 25, 25)
RELATIONS = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
# Never drawn in the training, validation or iid test scenes; every colour and every shape still is.
HELD_OUT = frozenset({("red", "square"), ("green", "triangle"), ("blue", "circle")})
FIELDS = ("count", "size", "colour", "shape", "relation")
LABELS = tuple(f"{colour} {shape}" for colour in COLOURS for shape in SHAPES)   # a one-shape scene's class
SPLITS = ("train", "val", "test", "compositional")
COUNTS = {1: "one", 2: "two"}
WHERE = {"left of": "left", "right of": "right", "above": "above", "below": "below"}
# Every answer a question of `questions` can have: a VQA classifier's label set.
ANSWERS = (*COLOURS, *SHAPES, *SIZES, *COUNTS.values(), *WHERE.values(), "yes", "no")
DESCRIBE = "Describe the image in one sentence."


@dataclass(frozen=True)
class Thing:
    size: str
    colour: str
    shape: str

    @property
    def words(self) -> str:
        return f"a {self.size} {self.colour} {self.shape}"

    @property
    def label(self) -> str:
        return f"{self.colour} {self.shape}"


@dataclass(frozen=True)
class Scene:
    things: tuple[Thing, ...]
    relation: str | None = None        # how things[0] stands to things[1]
    jitter: tuple[float, ...] = ()     # where exactly they stand: drawing only, never in the caption

    @property
    def captions(self) -> list[str]:
        """Every correct caption: a two-shape scene is said from either side."""
        if len(self.things) == 1:
            return [self.things[0].words]
        a, b = self.things
        return [f"{a.words} {self.relation} {b.words}", f"{b.words} {RELATIONS[self.relation]} {a.words}"]

    @property
    def compositional(self) -> bool:
        return any((t.colour, t.shape) in HELD_OUT for t in self.things)


def random_scene(rng: np.random.Generator, compositional: bool, count: int | None = None,
                 held_out: bool = True) -> Scene:
    """A scene with (compositional=True) at least one held-out colour+shape pair, or (False) none; with
    held_out=False any pair may be drawn. `count` shapes, or one 30 % of the time and two otherwise."""
    while True:
        n = count or (1 if rng.random() < 0.3 else 2)
        things = tuple(Thing(str(rng.choice(list(SIZES))), str(rng.choice(list(COLOURS))), str(rng.choice(SHAPES)))
                       for _ in range(n))
        relation = str(rng.choice(list(RELATIONS))) if n == 2 else None
        scene = Scene(things, relation, tuple(float(x) for x in rng.uniform(-1, 1, 4)))
        if not held_out or scene.compositional == compositional:
            return scene


def scenes(n: int, seed: int, split: str, count: int | None = None, held_out: bool = True) -> list[Scene]:
    """`n` scenes of one split ("train", "val", "test" or "compositional"), each from (seed, split, index):
    different splits never share a scene's random stream, so no image is in two of them. `count` fixes the number
    of shapes; held_out=False draws every colour+shape pair in every split (for models that learn labels, not
    composition). Each choice of (count, held_out) has random streams of its own."""
    if not held_out and split == "compositional":
        raise ValueError("the compositional split exists only with held_out=True")
    variant = [(None, True), (1, True), (2, True), (None, False), (1, False), (2, False)].index((count, held_out))
    code = SPLITS.index(split) + 10 * variant
    return [random_scene(np.random.default_rng([seed, code, i]), split == "compositional", count, held_out)
            for i in range(n)]


def _centres(scene: Scene) -> list[tuple[float, float]]:
    jx, jy, kx, ky = scene.jitter or (0, 0, 0, 0)
    if len(scene.things) == 1:
        return [(0.5 + 0.2 * jx, 0.5 + 0.2 * jy)]
    # The first thing stands on its side of the line through the centre; the other across it.
    along = {"left of": (-1, 0), "right of": (1, 0), "above": (0, -1), "below": (0, 1)}[scene.relation]
    spread = 0.24 + 0.03 * kx
    across = 0.12 * jy, 0.12 * ky
    if along[0]:
        return [(0.5 + along[0] * spread, 0.5 + across[0]), (0.5 - along[0] * spread, 0.5 + across[1])]
    return [(0.5 + across[0], 0.5 + along[1] * spread), (0.5 + across[1], 0.5 - along[1] * spread)]


def draw(scene: Scene, size: int = 64) -> Image.Image:
    """The scene as an RGB image on a light grey background."""
    image = Image.new("RGB", (size, size), (235, 235, 235))
    pen = ImageDraw.Draw(image)
    for thing, (x1, y1, x2, y2) in zip(scene.things, boxes(scene, size)):
        fill = NEW_RGB if thing.colour == NEW_COLOUR else COLOURS[thing.colour]
        if thing.shape == "circle":
            pen.ellipse([x1, y1, x2, y2], fill=fill)
        elif thing.shape == "square":
            pen.rectangle([x1, y1, x2, y2], fill=fill)
        else:
            pen.polygon([((x1 + x2) / 2, y1), (x1, y2), (x2, y2)], fill=fill)
    return image


def with_new_colour(scene: Scene, rng: np.random.Generator) -> Scene:
    """The scene with one of its shapes (picked by rng) painted NEW_COLOUR, the same size, shape and place."""
    things = list(scene.things)
    i = int(rng.integers(len(things)))
    things[i] = Thing(things[i].size, NEW_COLOUR, things[i].shape)
    return Scene(tuple(things), scene.relation, scene.jitter)


def boxes(scene: Scene, size: int = 64) -> list[tuple[float, float, float, float]]:
    """Each thing's box (x1, y1, x2, y2) in pixels of `draw(scene, size)`, in the order of scene.things: the
    tight bounds of what is drawn (every scene lies inside the image)."""
    out = []
    for thing, (cx, cy) in zip(scene.things, _centres(scene)):
        r, x, y = SIZES[thing.size] * size, cx * size, cy * size
        if thing.shape == "square":
            box = (x - 0.85 * r, y - 0.85 * r, x + 0.85 * r, y + 0.85 * r)
        elif thing.shape == "triangle":
            box = (x - r, y - r, x + r, y + 0.8 * r)
        else:
            box = (x - r, y - r, x + r, y + r)
        out.append(box)
    return out


PATCH_FIELDS = {"colour": tuple(COLOURS), "shape": SHAPES, "where": tuple(WHERE.values())}


def patch_labels(scene: Scene, grid: int, size: int = 384) -> np.ndarray:
    """What each patch of `draw(scene, size)` cut into grid x grid shows at its centre pixel: a (grid * grid, 3)
    array of 1 + the index in PATCH_FIELDS' colour, shape and where (where the shape stands to the other one; 0 in
    a one-shape scene), all 0 on the background. Row-major, as a ViT orders its patch tokens: dense targets that
    teach a small vision tower what is where, which its answers alone teach too slowly."""
    centres = ((np.arange(grid) + 0.5) * size / grid).astype(int)
    shown = np.asarray(draw(scene, size)).astype(int)[centres[:, None], centres[None]]
    out = np.zeros((grid, grid, 3), dtype=np.int64)
    distance = []
    for (x1, y1, x2, y2) in boxes(scene, size):     # of each patch to each shape: two shapes may share a colour
        distance.append(np.hypot(centres[None] - (x1 + x2) / 2, centres[:, None] - (y1 + y2) / 2))
    for i, thing in enumerate(scene.things):
        same_colour = [d for j, d in enumerate(distance) if j != i and scene.things[j].colour == thing.colour]
        inside = (np.abs(shown - COLOURS[thing.colour]).sum(-1) < 10) & \
            (distance[i] <= np.min(same_colour, axis=0, initial=np.inf))
        where = 0 if scene.relation is None else \
            1 + PATCH_FIELDS["where"].index(WHERE[scene.relation if i == 0 else RELATIONS[scene.relation]])
        out[inside] = (1 + PATCH_FIELDS["colour"].index(thing.colour), 1 + SHAPES.index(thing.shape), where)
    return out.reshape(-1, 3)


@dataclass(frozen=True)
class QA:
    question: str
    answer: str      # one of ANSWERS
    kind: str        # count, colour, shape, size, where, relation or exists


def _unique(scene: Scene, attr: str, value: str) -> bool:
    return sum(getattr(t, attr) == value for t in scene.things) == 1


def questions(scene: Scene) -> list[QA]:
    """Every question the scene answers, each naming its shapes unambiguously (a shape is "the circle" only when
    it is the one circle). An absent pair is asked about once ("is there a green square?" -> no)."""
    things, out = scene.things, [QA("how many shapes are there?", COUNTS[len(scene.things)], "count")]
    for t in things:
        if _unique(scene, "shape", t.shape):
            out.append(QA(f"what colour is the {t.shape}?", t.colour, "colour"))
        if _unique(scene, "colour", t.colour):
            out.append(QA(f"what shape is the {t.colour} one?", t.shape, "shape"))
        if sum(u.label == t.label for u in things) == 1:
            out.append(QA(f"is the {t.label} small or large?", t.size, "size"))
        out.append(QA(f"is there a {t.label}?", "yes", "exists"))
    present = {t.label for t in things}
    absent = [label for label in LABELS if label not in present]
    pick = int(abs(scene.jitter[0]) * 1000) % len(absent) if scene.jitter else 0
    out.append(QA(f"is there a {absent[pick]}?", "no", "exists"))
    if len(things) == 2 and things[0].label != things[1].label:
        (a, b), rel = things, scene.relation
        out.append(QA(f"where is the {a.label}?", WHERE[rel], "where"))
        out.append(QA(f"where is the {b.label}?", WHERE[RELATIONS[rel]], "where"))
        out.append(QA(f"is the {a.label} {rel} the {b.label}?", "yes", "relation"))
        out.append(QA(f"is the {a.label} {RELATIONS[rel]} the {b.label}?", "no", "relation"))
    return out


def parse(caption: str) -> dict | None:
    """A caption back into fields ({"count", "things": [(size, colour, shape)], "relation"}), said from the
    left/above side; None when it is not a sentence of the grammar."""
    words = caption.split()
    things, relation, i = [], None, 0
    while i < len(words):
        if len(words) < i + 4 or words[i] != "a" or words[i + 1] not in SIZES or words[i + 2] not in COLOURS \
                or words[i + 3] not in SHAPES:
            return None
        things.append(tuple(words[i + 1:i + 4]))
        i += 4
        if i == len(words):
            break
        if len(things) == 2:
            return None
        two = " ".join(words[i:i + 2])
        relation, i = (two, i + 2) if two in RELATIONS else (words[i], i + 1)
        if relation not in RELATIONS:
            return None
    if len(things) == 0 or (len(things) == 2) != (relation is not None):
        return None
    things, relation = left_first(things, relation)
    return {"count": len(things), "things": things, "relation": relation}


def left_first(things: list, relation: str | None) -> tuple[list, str | None]:
    """Two things (or anything in their order) and their relation said from the left or upper one: "B right of
    A" becomes "A left of B". One way to name a two-shape scene, where its captions say it from either side."""
    if relation in ("right of", "below"):
        return things[::-1], RELATIONS[relation]
    return things, relation


def truth(scene: Scene) -> dict:
    return parse(scene.captions[0])


def ask(scenes: list[Scene], rng: np.random.Generator, per_scene: int) -> list[tuple[int, QA]]:
    """Up to per_scene different random questions of each scene, as (index of the scene, QA): a VQA batch."""
    out = []
    for i, scene in enumerate(scenes):
        qas = questions(scene)
        out += [(i, qas[j]) for j in rng.choice(len(qas), size=min(per_scene, len(qas)), replace=False)]
    return out


def wrong_caption(scene: Scene, rng: np.random.Generator) -> str:
    """A caption of the scene with one detail wrong (a size, colour or shape, or the relation turned round): a
    hard negative for image-text matching."""
    things, relation = list(scene.things), scene.relation
    i = int(rng.integers(len(things)))
    turnable = relation is not None and things[0] != things[1]      # two equal shapes stand either way round
    field = str(rng.choice(["size", "colour", "shape"] + (["relation"] if turnable else [])))
    if field == "relation":
        relation = RELATIONS[relation]
    else:
        options = {"size": list(SIZES), "colour": list(COLOURS), "shape": list(SHAPES)}[field]
        current = getattr(things[i], field)
        new = str(rng.choice([o for o in options if o != current]))
        things[i] = Thing(**{**things[i].__dict__, field: new})
    return Scene(tuple(things), relation, scene.jitter).captions[0]


def scene_for(caption: str, seed: int) -> Scene:
    """A scene that `caption` describes, placed by `seed` (the same seed, the same drawing): a text-to-image
    generator drawn by code, for a retrieval set whose every image shows its prompt. ValueError when the caption
    is not a sentence of the grammar."""
    fields = parse(caption)
    if fields is None:
        raise ValueError(f"{caption!r} is not a caption of the world's grammar: write one like 'a small red circle' "
                         "or 'a small red circle left of a large blue square'")
    jitter = tuple(float(x) for x in np.random.default_rng(seed).uniform(-1, 1, 4))
    return Scene(tuple(Thing(*t) for t in fields["things"]), fields["relation"], jitter)


def chat_turns(scene: Scene, turns: int = 2) -> list[QA]:
    """`turns` different questions about one scene, in a fixed order: the user turns of a multi-turn chat
    (a follow-up asks about the same image). Fewer when the scene answers fewer questions."""
    qas = list(dict.fromkeys(questions(scene)))     # two same shapes ask "is there a ...?" twice
    pick = np.random.default_rng(int(abs(scene.jitter[1]) * 1e6) if scene.jitter else 0).permutation(len(qas))
    return [qas[j] for j in pick[:turns]]
