"""What the stand-ins train on: world questions in batches, hard-negative captions, per-patch labels, and the fast
pixel path that must equal the processors' own output."""
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


def test_left_first_names_the_left_or_upper_shape_first_in_a_caption_of_the_scene():
    for scene in world.scenes(100, 0, "train", count=2):
        things, relation = world.left_first(list(scene.things), scene.relation)
        caption = f"{things[0].words} {relation} {things[1].words}"
        assert caption in scene.captions and relation in ("left of", "above")
        first = world.boxes(scene)[scene.things.index(things[0])]
        other = world.boxes(scene)[1 - scene.things.index(things[0])] if things[0] != things[1] else None
        if other is not None:      # its centre is left of (or above) the other's
            axis = 0 if relation == "left of" else 1
            assert first[axis] + first[axis + 2] < other[axis] + other[axis + 2]


def test_patch_labels_say_what_each_patch_centre_shows_and_where_its_shape_stands():
    grid, size = 12, 384
    centres = ((np.arange(grid) + 0.5) * size / grid).astype(int)
    scenes = [s for s in world.scenes(80, 0, "test") if len({t.label for t in s.things}) == len(s.things)]
    for scene in scenes:
        labels = world.patch_labels(scene, grid, size).reshape(grid, grid, 3)
        shown = np.asarray(world.draw(scene, size))[centres[:, None], centres[None]]
        assert ((labels[..., 0] == 0) == (shown == 235).all(-1)).all()          # background exactly where it shows
        for i, (thing, (x1, y1, x2, y2)) in enumerate(zip(scene.things, world.boxes(scene, size))):
            mine = (labels[..., 0] == 1 + list(world.COLOURS).index(thing.colour)) & \
                (labels[..., 1] == 1 + world.SHAPES.index(thing.shape))
            rows, cols = np.nonzero(mine)
            assert len(rows) > 0 and x1 - 1 <= centres[cols].min() and centres[cols].max() <= x2 + 1   # drawing rounds
            assert y1 - 1 <= centres[rows].min() and centres[rows].max() <= y2 + 1
            where = set(labels[mine][:, 2].tolist())
            if scene.relation is None:
                assert where == {0}
            else:
                said = world.WHERE[scene.relation if i == 0 else world.RELATIONS[scene.relation]]
                assert where == {1 + world.PATCH_FIELDS["where"].index(said)}
                side = {"left": cols.mean() < grid / 2, "right": cols.mean() > grid / 2,
                        "above": rows.mean() < grid / 2, "below": rows.mean() > grid / 2}
                assert side[said]


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


def test_vilt_training_reads_which_patch_each_sampled_image_token_is():
    """The per-patch targets of vilt's training line up with ViLT's randomly sampled image tokens."""
    from vlsteps.cards.vilt import _recording_patch_index
    config = tf.ViltConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                           image_size=96, patch_size=32, max_image_length=5, vocab_size=30)
    embeddings = tf.ViltModel(config).embeddings
    torch.nn.init.zeros_(embeddings.position_embeddings)
    sampled = _recording_patch_index(embeddings)
    images = torch.randn(2, 3, 96, 96)
    tokens, _ = embeddings(torch.zeros(2, 4, dtype=torch.long), torch.ones(2, 4, dtype=torch.long),
                           torch.zeros(2, 4, dtype=torch.long), images, torch.ones(2, 96, 96, dtype=torch.long),
                           None, None)
    patches = embeddings.patch_embeddings(images).flatten(2).transpose(1, 2)           # row-major, 3 x 3
    index = sampled[-1][..., 0] * 3 + sampled[-1][..., 1]
    image_type = embeddings.token_type_embeddings.weight[1]
    assert len(set(index[0].tolist())) == 5 and index.shape == (2, 5)
    assert torch.allclose(tokens[:, 4 + 1:] - image_type, patches.gather(1, index[..., None].expand(-1, -1, 16)),
                          atol=1e-6)
    del embeddings.visual_embed
    assert "visual_embed" not in vars(embeddings)


def test_qwen_training_reads_which_patch_each_visual_token_holds():
    """qwen-vl's per-patch targets are put in the processor's order of patches (2 x 2 blocks, each one visual
    token), not row-major: each patch of a scene-sized image is painted its own row-major index and read back."""
    from PIL import Image

    from vlsteps.cards.qwen_vl import BLOCK_ORDER, CHAT_SIZE, PREPROCESSOR_CONFIG, SCENE
    processor = tf.Qwen2VLImageProcessor(**{k: v for k, v in PREPROCESSOR_CONFIG.items()
                                            if k not in ("image_processor_type", "processor_class")})
    grid = SCENE // 14
    painted = np.zeros((SCENE, SCENE, 3), np.uint8)
    for i in range(grid * grid):
        painted[i // grid * 14:(i // grid + 1) * 14, i % grid * 14:(i % grid + 1) * 14] = 3 * i
    x = processor(images=[Image.fromarray(painted)], size=dict(CHAT_SIZE), return_tensors="pt")
    assert x.image_grid_thw.tolist() == [[1, grid, grid]]
    red = x.pixel_values[:, :2 * 14 * 14].mean(1) * processor.image_std[0] + processor.image_mean[0]
    assert (red * 255 / 3).round().long().tolist() == BLOCK_ORDER
