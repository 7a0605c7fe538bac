"""Captioned scenes drawn by code: one or two coloured shapes, a caption from a small grammar.

"a small red circle left of a large blue square". Every scene follows from (seed, index), so a dataset is
rebuilt identically anywhere, offline. Some colour+shape pairs never appear in training: the compositional
split holds exactly the scenes that contain one, so a model only passes it by combining words it learned apart.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

SIZES = {"small": 0.13, "large": 0.22}            # radius, as a fraction of the image side
COLOURS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (50, 80, 220), "yellow": (230, 200, 40),
           "purple": (140, 60, 180)}
SHAPES = ("circle", "square", "triangle")
RELATIONS = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
# Never drawn in the training, validation or iid test scenes; every colour and every shape still is.
HELD_OUT = frozenset({("red", "square"), ("green", "triangle"), ("blue", "circle")})
FIELDS = ("count", "size", "colour", "shape", "relation")


@dataclass(frozen=True)
class Thing:
    size: str
    colour: str
    shape: str

    @property
    def words(self) -> str:
        return f"a {self.size} {self.colour} {self.shape}"


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


def random_scene(rng: np.random.Generator, compositional: bool) -> Scene:
    """A scene with (compositional=True) at least one held-out colour+shape pair, or (False) none."""
    while True:
        count = 1 if rng.random() < 0.3 else 2
        things = tuple(Thing(str(rng.choice(list(SIZES))), str(rng.choice(list(COLOURS))), str(rng.choice(SHAPES)))
                       for _ in range(count))
        relation = str(rng.choice(list(RELATIONS))) if count == 2 else None
        scene = Scene(things, relation, tuple(float(x) for x in rng.uniform(-1, 1, 4)))
        if scene.compositional == compositional:
            return scene


def scenes(n: int, seed: int, split: str) -> list[Scene]:
    """`n` scenes of one split ("train", "val", "test" or "compositional"), each from (seed, split, index):
    different splits never share a scene's random stream, so no image is in two of them."""
    code = ("train", "val", "test", "compositional").index(split)
    return [random_scene(np.random.default_rng([seed, code, i]), split == "compositional") for i in range(n)]


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
    for thing, (cx, cy) in zip(scene.things, _centres(scene)):
        r, x, y = SIZES[thing.size] * size, cx * size, cy * size
        fill = COLOURS[thing.colour]
        if thing.shape == "circle":
            pen.ellipse([x - r, y - r, x + r, y + r], fill=fill)
        elif thing.shape == "square":
            pen.rectangle([x - 0.85 * r, y - 0.85 * r, x + 0.85 * r, y + 0.85 * r], fill=fill)
        else:
            pen.polygon([(x, y - r), (x - r, y + 0.8 * r), (x + r, y + 0.8 * r)], fill=fill)
    return image


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
    if relation in ("right of", "below"):
        things, relation = things[::-1], RELATIONS[relation]
    return {"count": len(things), "things": things, "relation": relation}


def truth(scene: Scene) -> dict:
    return parse(scene.captions[0])
