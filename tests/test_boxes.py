import pytest

from vlsteps.boxes import Box, iou


def test_inverted_corners_are_swapped():
    assert Box.ordered(50, 40, 10, 5, "cup") == Box(10, 5, 50, 40, "cup")


def test_clamp_cuts_a_box_to_its_image_and_drops_one_outside_it():
    assert Box(-5, 10, 120, 90, "cat").clamped(100, 80) == Box(0, 10, 100, 80, "cat")
    assert Box(110, 10, 150, 20).clamped(100, 80) is None, "wholly right of the image"
    assert Box(10, 10, 10, 20).clamped(100, 80) is None, "no width"


def test_scaled_maps_fractions_to_pixels():
    assert Box(0.25, 0.5, 0.75, 1.0, "a").scaled(200, 100) == Box(50, 50, 150, 100, "a")


def test_iou_of_boxes_and_tuples():
    assert iou((0, 0, 10, 10), Box(0, 0, 10, 10)) == 1
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0, "apart"
    assert iou((0, 0, 0, 0), (0, 0, 0, 0)) == 0, "no area: no overlap, no division by zero"
