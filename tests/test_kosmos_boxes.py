"""Kosmos-2 entities become pixel boxes on the photo; anything malformed is skipped, never fatal."""
import math
from fractions import Fraction

import numpy as np
import pytest
from PIL import Image

from vlsteps.boxes import Box, iou
from vlsteps.kosmos_boxes import draw_entities, entities_to_boxes

# What Kosmos2Processor.post_process_generation returns for the model card's snowman example.
GOOD = [("a snowman", (12, 21), [(0.390625, 0.046875, 0.984375, 0.828125)]),
        ("a fire", (41, 47), [(0.171875, 0.015625, 0.484375, 0.890625)])]


def test_good_entities_map_to_pixels_of_the_original_photo():
    boxes = entities_to_boxes(GOOD, (640, 480))
    assert [b.label for b in boxes] == ["a snowman", "a fire"]
    assert boxes[0].xyxy == (round(0.390625 * 640), round(0.046875 * 480), round(0.984375 * 640),
                           round(0.828125 * 480))


def test_an_entity_with_several_boxes_gives_one_box_each():
    ent = [("two cats", (0, 8), [(0.0, 0.0, 0.5, 0.5), (0.5, 0.5, 1.0, 1.0)])]
    assert [b.xyxy for b in entities_to_boxes(ent, (100, 100))] == [(0, 0, 50, 50), (50, 50, 100, 100)]


def test_real_processor_output_round_trips():
    from transformers.models.kosmos2.processing_kosmos2 import clean_text_and_extract_entities_with_bboxes
    text = ("<grounding> An image of<phrase> a snowman</phrase><object><patch_index_0044><patch_index_0863>"
            "</object> warming himself by<phrase> a fire</phrase><object><patch_index_0005><patch_index_0911>"
            "</object>.")
    caption, entities = clean_text_and_extract_entities_with_bboxes(text)
    assert caption == "An image of a snowman warming himself by a fire."
    assert len(entities_to_boxes(entities, (224, 224))) == 2


@pytest.mark.parametrize("entities", [[], None, "a cat", 42, [()], [("a cat",)], [("a cat", (0, 5), None)],
                                      [("a cat", (0, 5), [])], [("a cat", (0, 5), [(0.1, 0.2, 0.3)])],
                                      [("a cat", (0, 5), ["0.1 0.2 0.3 0.4"])],
                                      [("a cat", (0, 5), [(0.1, 0.2, "x", 0.4)])],
                                      [("a cat", (0, 5), [(0.1, math.nan, 0.3, 0.4)])],
                                      [("a cat", (0, 5), [(0.5, 0.5, 0.2, 0.9)])],      # x2 < x1
                                      [("a cat", (0, 5), [(1.5, 0.1, 2.0, 0.4)])],      # outside the image
                                      [("a cat", (0, 5), [(True, 0.1, 0.3, 0.4)])]])
def test_empty_or_malformed_entities_give_no_boxes(entities):
    assert entities_to_boxes(entities, (100, 80)) == []


def test_good_boxes_survive_beside_malformed_ones():
    mixed = [None, ("junk",), ("a cat", (0, 5), [(0.1, 0.2), (0.1, 0.2, 0.6, 0.9)]), GOOD[1]]
    assert [b.label for b in entities_to_boxes(mixed, (100, 100))] == ["a cat", "a fire"]


def test_boxes_are_clamped_into_the_image():
    assert entities_to_boxes([("x", (0, 1), [(-0.2, 0.1, 1.3, 0.5)])], (10, 10)) == [Box(0, 1, 10, 5, "x")]


def test_draw_entities_draws_boxes_and_draws_nothing_for_bad_lists():
    image = Image.new("RGB", (64, 48), "white")
    drawn = draw_entities(image, GOOD)
    assert drawn.size == image.size and drawn is not image
    assert not np.array_equal(np.asarray(drawn), np.asarray(image))
    for bad in ([], None, [("a cat", (0, 5), [(0.9, 0.9, 0.1, 0.1)])]):
        untouched = draw_entities(image, bad)
        assert np.array_equal(np.asarray(untouched), np.asarray(image))
    assert np.array_equal(np.asarray(image), np.full((48, 64, 3), 255))   # the input is never drawn on


@pytest.mark.parametrize("huge", [10**400, -10**400, Fraction(10**400)],   # float() of these overflows
                         ids=["int", "negative int", "fraction"])
def test_huge_numbers_are_skipped_not_raised(huge):
    entities = [("big", (0, 3), [(0.1, 0.1, huge, 0.5)]), GOOD[1]]
    assert [b.label for b in entities_to_boxes(entities, (100, 100))] == ["a fire"]


def test_the_grounded_captions_the_stand_in_learns_give_back_every_shapes_box():
    """The training text: the processor's patch-index markup of world.boxes, read back by post_process_generation
    and entities_to_boxes, names each shape and hits it (the 32 x 32 grid costs only a little IoU)."""
    import transformers as tf

    from vlsteps import world
    from vlsteps.cards.kosmos2 import grounded_text
    from vlsteps.cards.tiny_tokenizers import xlmr_tokenizer
    processor = tf.Kosmos2Processor(image_processor=tf.CLIPImageProcessor(), tokenizer=xlmr_tokenizer())
    scenes = world.scenes(20, 0, "test", held_out=False)
    assert {s.relation for s in scenes} >= {"right of", "below"}
    for scene in scenes:
        text, phrase_boxes = grounded_text(scene)
        x = processor(text=text, images=world.draw(scene, 224), bboxes=phrase_boxes)
        text = processor.batch_decode(x.input_ids, skip_special_tokens=True)[0]
        caption, entities = processor.post_process_generation(text)
        assert caption.removeprefix("An image of ") in scene.captions
        boxes = entities_to_boxes(entities, (224, 224))
        assert sorted(b.label for b in boxes) == sorted(t.words for t in scene.things)
        for thing, truth in zip(scene.things, world.boxes(scene, 224)):
            assert any(b.label == thing.words and iou(b, truth) >= 0.8 for b in boxes)
        if scene.relation:   # named left to right or top to bottom, one order for each picture
            first, second = boxes
            assert first.x1 + first.x2 < second.x1 + second.x2 if " left of " in caption else \
                first.y1 + first.y2 < second.y1 + second.y2
