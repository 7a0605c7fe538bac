import matplotlib
import numpy as np
import pytest
from PIL import Image

from vlsteps import draw_boxes, overlay_heatmap, show_grid

matplotlib.use("Agg")


def blank(size=(100, 80)):
    return Image.new("RGB", size, "white")


def test_grid_has_one_titled_panel_per_image_and_hides_spares():
    fig = show_grid([blank()] * 5, [f"#{i}" for i in range(5)], ncols=3)
    axes = fig.axes
    assert len(axes) == 6
    assert [ax.get_title() for ax in axes[:5]] == [f"#{i}" for i in range(5)]
    assert not axes[5].images


def test_grid_rejects_mismatched_captions_and_empty_input():
    with pytest.raises(ValueError, match="captions"):
        show_grid([blank()] * 2, ["only one"])
    with pytest.raises(ValueError, match="at least one"):
        show_grid([])


def test_boxes_are_drawn_in_pixels_and_in_normalized_coordinates():
    out = np.asarray(draw_boxes(blank(), [(10, 10, 50, 40)], ["cat"]))
    assert (out[25, 10] != 255).any(), "left edge of the box"
    assert (out[60, 70] == 255).all(), "outside the box stays white"
    norm = np.asarray(draw_boxes(blank(), [(0.1, 0.125, 0.5, 0.5)], normalized=True))
    assert (norm[25, 10] != 255).any()


def test_boxes_outside_or_inverted_are_clamped_not_fatal():
    image = blank()
    out = draw_boxes(image, [(90, 70, -20, 500)], ["odd"])
    assert out.size == image.size and np.asarray(image).min() == 255, "original untouched"


def test_heatmap_is_stretched_over_the_image():
    heat = np.zeros((14, 14))
    heat[0, 0] = 1
    out = np.asarray(overlay_heatmap(blank((140, 140)), heat, alpha=1.0)).astype(int)
    assert out.shape == (140, 140, 3)
    assert (out[2, 2] != out[120, 120]).any(), "the hot corner differs from the cold one"
    with pytest.raises(ValueError, match="2-D"):
        overlay_heatmap(blank(), np.zeros(5))
