"""What the stand-ins train on: world questions in batches, hard-negative captions, and the fast pixel path that
must equal the processors' own output."""
import numpy as np
import pytest
import torch
import transformers as tf

from vlsteps import world
from vlsteps.cards.common import pixels


def test_ask_draws_different_questions_of_each_scene_reproducibly():
    scenes = world.scenes(30, 0, "train")
    asked = world.ask(scenes, np.random.default_rng(0), 3)
    assert asked == world.ask(scenes, np.random.default_rng(0), 3)
    for i, scene in enumerate(scenes):
        mine, theirs = [qa for j, qa in asked if j == i], world.questions(scene)
        assert len(mine) == 3 and all(mine.count(qa) <= theirs.count(qa) for qa in mine)   # no question twice


def test_a_wrong_caption_gets_exactly_one_detail_wrong():
    rng = np.random.default_rng(0)
    equal = world.Scene((world.Thing("small", "red", "circle"),) * 2, "left of", (0, 0, 0, 0))
    for scene in world.scenes(300, 0, "train") + [equal] * 50:
        wrong = world.parse(world.wrong_caption(scene, rng))
        right = world.truth(scene)
        assert wrong is not None and wrong != right and wrong["relation"] == right["relation"]
        differ = sum(a != b for x, y in zip(wrong["things"], right["things"]) for a, b in zip(x, y))
        assert differ == 1 or wrong["things"] == right["things"][::-1]      # a detail, or the relation turned


@pytest.mark.parametrize("processor, side", [
    (tf.ViltImageProcessor(size={"shortest_edge": 384}, size_divisor=32, image_mean=[0.5] * 3, image_std=[0.5] * 3),
     384),
    (tf.BlipImageProcessor(size={"height": 384, "width": 384}), 384),
    (tf.ViTImageProcessor(size={"height": 224, "width": 224}, image_mean=[0.5] * 3, image_std=[0.5] * 3), 224),
    (tf.CLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}), 224)],
    ids=["vilt", "blip", "vit", "clip"])
def test_the_training_pixels_are_the_processors_pixels(processor, side):
    images = [world.draw(s, side) for s in world.scenes(3, 0, "test")]
    assert torch.allclose(pixels(processor, images), processor(images=images, return_tensors="pt").pixel_values,
                          atol=1e-6)
