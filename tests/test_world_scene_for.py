"""world.scene_for: a prompt of the world's grammar drawn by code (the offline retrieval set of clip.ipynb)."""
import numpy as np
import pytest

from vlsteps import retrieval_set, world
from vlsteps.images import load_image


@pytest.mark.parametrize("prompt", ["a large red circle", "a small yellow circle left of a large purple square",
                                    "a small blue square below a large green triangle"])
def test_the_scene_drawn_for_a_prompt_is_described_by_it(prompt):
    scene = world.scene_for(prompt, 7)
    assert prompt in scene.captions
    assert world.boxes(scene, 224) and all(0 <= v <= 224 for box in world.boxes(scene, 224) for v in box)


def test_the_seed_places_the_scene_and_the_same_seed_draws_the_same_pixels():
    a, b, c = (np.asarray(world.draw(world.scene_for("a small blue square", seed), 64)) for seed in (1, 1, 2))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


@pytest.mark.parametrize("prompt", ["red circle", "a photo of a cat", "", "a large red circle left of"])
def test_a_prompt_outside_the_grammar_is_refused_with_an_example(prompt):
    with pytest.raises(ValueError, match="not a caption of the world's grammar: write one like 'a small red circle'"):
        world.scene_for(prompt, 0)


def test_a_retrieval_set_drawn_by_code_shows_each_prompt(tmp_path):
    prompts = {"red-circle": "a large red circle", "pair": "a small yellow circle left of a large purple square"}
    specs = retrieval_set.plan(prompts, 2, model="drawn-by-code", size=64)
    records = retrieval_set.generate(specs, lambda ps, seeds: [world.draw(world.scene_for(p, s), 64)
                                                               for p, s in zip(ps, seeds)], tmp_path, progress=False)
    assert [r["category"] for r in records] == ["red-circle"] * 2 + ["pair"] * 2
    first, second = (np.asarray(load_image(r["path"])) for r in records[:2])
    assert not np.array_equal(first, second)            # two placements of one prompt
