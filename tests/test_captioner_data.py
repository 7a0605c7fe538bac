"""The captioner's data: scenes rebuilt from a seed, splits by image, the vocabulary of the training split only,
captions files in the Flickr and COCO formats, and batches padded to their longest caption."""
import json

import numpy as np
import pytest
import torch

from vlsteps import world
from vlsteps.captioner import data


def test_scenes_are_rebuilt_identically_from_their_seed():
    a, b = world.scenes(20, 3, "train"), world.scenes(20, 3, "train")
    assert a == b
    assert np.array_equal(np.asarray(world.draw(a[5])), np.asarray(world.draw(b[5])))
    assert world.scenes(20, 4, "train") != a


def test_no_scene_is_in_two_splits_and_held_out_pairs_only_in_the_compositional_one():
    splits = data.shapes_splits(600, seed=1)
    seen = {}
    for name, split in splits.items():
        for scene in split.sources:
            assert seen.setdefault(scene, name) == name, f"a scene is in both {seen[scene]} and {name}"
        pairs = {(t.colour, t.shape) for s in split.sources for t in s.things}
        if name == "compositional":
            assert all(s.compositional for s in split.sources)
        else:
            assert not pairs & world.HELD_OUT
    train_pairs = {(t.colour, t.shape) for s in splits["train"].sources for t in s.things}
    # the test is fair: every colour and every shape of a held-out pair was seen in training, only not together
    assert {c for c, _ in world.HELD_OUT} <= {c for c, _ in train_pairs}
    assert {s for _, s in world.HELD_OUT} <= {s for _, s in train_pairs}


def test_the_picture_shows_what_the_caption_says():
    scene = world.Scene((world.Thing("large", "red", "circle"), world.Thing("small", "blue", "square")),
                         "left of", (0, 0, 0, 0))
    pixels = np.asarray(world.draw(scene, 64)).astype(int)
    red = (np.abs(pixels - world.COLOURS["red"]).sum(-1) < 30).nonzero()
    blue = (np.abs(pixels - world.COLOURS["blue"]).sum(-1) < 30).nonzero()
    assert red[1].mean() < 32 < blue[1].mean()             # red on the left, blue on the right
    assert len(red[0]) > 2 * len(blue[0])                  # the large one covers more pixels


def test_every_caption_parses_back_to_its_scene_and_other_text_does_not():
    for scene in world.scenes(200, 0, "train") + world.scenes(50, 0, "compositional"):
        assert all(world.parse(c) == world.truth(scene) for c in scene.captions)
    for bad in ("", "a small red", "a small red circle left of", "a huge red circle", "a small red circle a small"
                " red circle", "a small red circle above a large blue square below a small red circle"):
        assert world.parse(bad) is None, bad


def test_vocabulary_is_ranked_cut_and_round_trips():
    vocab = data.Vocabulary.build(["A dog runs.", "a dog sits", "a cat"], max_size=6)
    assert vocab.words == ["<pad>", "<start>", "<end>", "<unk>", "a", "dog"]
    ids = vocab.encode("a cat runs", seq_length=10)
    assert ids == [vocab.start, 4, vocab.unk, vocab.unk, vocab.end]
    assert vocab.encode("a dog a dog a dog", seq_length=4) == [vocab.start, 4, 5, 4]
    assert vocab.decode([vocab.start, 5, 4, vocab.end, 5]) == "dog a"
    assert data.Vocabulary.from_json(vocab.to_json()).words == vocab.words


def test_batches_pad_to_the_longest_caption_with_pad_id_zero():
    split = data.Split(world.scenes(3, 0, "train"), [["a small red circle"], ["a small red circle left of a "
                       "large blue square"], ["a large green square"]])
    vocab = data.Vocabulary.build(c for caps in split.captions for c in caps)
    pairs = data.CaptionPairs(split, vocab, seq_length=36, image_size=64, preload=True)
    images, ids = data.collate([pairs[0], pairs[1]])
    assert images.shape == (2, 3, 64, 64) and images.dtype == torch.uint8
    assert ids.shape == (2, 12) and ids[0, 6:].eq(0).all() and ids[1].ne(0).all()


def make_folder(root, n=12, fmt="csv"):
    """A Flickr-style folder: n drawn scenes as JPEGs, two captions each; image 0's second caption has a word
    ('zebra') no other image's captions have."""
    (root / "Images").mkdir(parents=True)
    captions = {}
    for i, scene in enumerate(world.scenes(n, 9, "train")):
        world.draw(scene, 48).save(root / "Images" / f"{i:03d}.jpg")
        captions[f"{i:03d}.jpg"] = [scene.captions[0], "a zebra" if i == 0 else "some shapes"]
    if fmt == "csv":
        lines = ["image,caption"] + [f'{k},"{c}"' for k, cs in captions.items() for c in cs]
        (root / "captions.txt").write_text("\n".join(lines))
    elif fmt == "token":
        lines = [f"{k}#{j}\t{c}" for k, cs in captions.items() for j, c in enumerate(cs)]
        (root / "Flickr8k.token.txt").write_text("\n".join(lines))
    else:
        ids = {k: i for i, k in enumerate(captions)}
        coco = {"images": [{"id": i, "file_name": k} for k, i in ids.items()],
                "annotations": [{"image_id": ids[k], "caption": c} for k, cs in captions.items() for c in cs]}
        (root / "annotations").mkdir()
        (root / "annotations" / "captions_train2017.json").write_text(json.dumps(coco))
    return captions


@pytest.mark.parametrize("fmt", ["csv", "token", "coco"])
def test_a_photo_folder_is_split_by_image_in_every_captions_format(tmp_path, fmt):
    captions = make_folder(tmp_path, fmt=fmt)
    splits = data.folder_splits(tmp_path, seed=0, val=0.25, test=0.25)
    names = {k: [p.name for p in s.sources] for k, s in splits.items()}
    assert sorted(sum(names.values(), [])) == sorted(captions)              # every image once, in one split
    assert [len(v) for v in names.values()] == [6, 3, 3]
    for split in splits.values():
        for path, caps in zip(split.sources, split.captions):
            assert caps == captions[path.name]                               # all of an image's captions with it
            assert split.image(0, 32).size == (32, 32)
    assert data.folder_splits(tmp_path, seed=0, val=0.25, test=0.25)["test"].sources == splits["test"].sources


def test_a_folder_without_captions_or_images_says_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="No captions file"):
        data.folder_splits(tmp_path)
    (tmp_path / "captions.txt").write_text("image,caption\nnot_here.jpg,a cat\n")
    with pytest.raises(FileNotFoundError, match="not_here.jpg"):
        data.folder_splits(tmp_path)
    (tmp_path / "captions.txt").write_text("file,text\nx.jpg,a cat\n")
    with pytest.raises(ValueError, match="image and a caption column"):
        data.read_captions(tmp_path / "captions.txt")


def test_chat_turns_are_different_questions_of_the_scene_in_a_fixed_order():
    for scene in world.scenes(30, 0, "train"):
        turns = world.chat_turns(scene)
        assert len(turns) == 2 and turns[0] != turns[1]
        assert set(turns) <= set(world.questions(scene))
        assert world.chat_turns(scene) == turns
    scenes = world.scenes(30, 0, "train")
    assert len({world.chat_turns(s)[0].kind for s in scenes}) > 3, "first turns cover many kinds of question"
