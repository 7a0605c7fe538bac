import matplotlib
import numpy as np
import pytest
from PIL import Image

from vlsteps import draw_boxes, overlay_heatmap, show_grid
from vlsteps.boxes import Box

matplotlib.use("Agg")


def blank(size=(100, 80)):
    return Image.new("RGB", size, "white")


def test_grid_has_one_titled_panel_per_image_and_no_empty_panels():
    fig = show_grid([blank()] * 5, [f"#{i}" for i in range(5)], ncols=3)
    assert [ax.get_title() for ax in fig.axes] == [f"#{i}" for i in range(5)]
    assert all(ax.images for ax in fig.axes)


def test_grid_rejects_mismatched_captions_and_empty_input():
    with pytest.raises(ValueError, match="captions"):
        show_grid([blank()] * 2, ["only one"])
    with pytest.raises(ValueError, match="at least one"):
        show_grid([])


def test_boxes_are_drawn_in_pixels():
    out = np.asarray(draw_boxes(blank(), [Box(10, 10, 50, 40, "cat")]))
    assert (out[25, 10] != 255).any(), "left edge of the box"
    assert (out[60, 70] == 255).all(), "outside the box stays white"


def test_boxes_outside_or_inverted_are_clamped_not_fatal():
    image = blank()
    out = draw_boxes(image, [Box.ordered(90, 70, -20, 500, "odd"), Box(500, 500, 600, 600, "gone")])
    assert out.size == image.size and np.asarray(image).min() == 255, "original untouched"
    assert (np.asarray(out)[75, 0] != 255).any(), "the box cut to the image (0, 70, 90, 79) is drawn"


def test_heatmap_is_stretched_over_the_image():
    heat = np.zeros((14, 14))
    heat[0, 0] = 1
    out = np.asarray(overlay_heatmap(blank((140, 140)), heat, alpha=1.0)).astype(int)
    assert out.shape == (140, 140, 3)
    assert (out[2, 2] != out[120, 120]).any(), "the hot corner differs from the cold one"
    with pytest.raises(ValueError, match="2-D"):
        overlay_heatmap(blank(), np.zeros(5))


LONG = ["inging" * 30, "a cat sitting on a mat, seen from above, in a caption that goes on and on and on " * 3,
        "PlePle " * 40, "short", "", "W" * 200, "two\nlines"]


def _extents(fig):
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    return renderer, [(ax, ax.title.get_window_extent(renderer), ax.get_window_extent(renderer))
                      for ax in fig.axes if ax.images]


@pytest.mark.parametrize("ncols,size,colorbar,title,image", [
    (4, 2.5, None, "a title over long captions", (100, 80)), (3, 3.2, "attention", "a title", (100, 80)),
    (6, 2.2, None, "a title", (100, 80)), (7, 2.0, "relevance", "a title", (100, 80)),
    (4, 2.8, None, None, (128, 128))])   # square images without a title: the top row's captions near the edge
def test_every_caption_stays_inside_its_own_panel(ncols, size, colorbar, title, image):
    """Long, unbroken and multi-line captions are wrapped or cut to their panel: none runs into a neighbour."""
    fig = show_grid([blank(image)] * len(LONG), LONG, ncols=ncols, size=size, title=title, colorbar=colorbar)
    renderer, panels = _extents(fig)
    assert len(panels) == len(LONG) and len(fig.axes) == len(LONG) + bool(colorbar), "no empty panels"
    for ax, caption, panel in panels:
        assert panel.x0 - 1 <= caption.x0 and caption.x1 <= panel.x1 + 1, f"{ax.get_title()!r} leaves its panel"
        assert caption.y0 >= panel.y1 - 1, "the caption sits above its own image, not on it"
        assert ax.get_title().count("\n") < 4 or ax.get_title().endswith("…")
    for (a, ca, pa), (b, cb, pb) in zip(panels, panels[1:]):
        assert not ca.overlaps(cb) and not ca.overlaps(pb) and not cb.overlaps(pa), "captions collide"
    assert max(c.y1 for _, c, _ in panels) <= fig.bbox.y1 + 1, "a caption is cut off at the top"
    if title:
        suptitle = fig._suptitle.get_window_extent(renderer)
        assert suptitle.y0 >= max(c.y1 for _, c, _ in panels) - 1, "the title is clear of the captions"


def test_a_caption_that_fits_is_left_as_it_is():
    fig = show_grid([blank()], ["a cat"], size=3)
    assert fig.axes[0].get_title() == "a cat"
