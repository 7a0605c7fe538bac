import matplotlib

from vlsteps import diagrams

matplotlib.use("Agg")


def test_pipeline_draws_every_stage_inside_the_figure():
    stages = [("image\n224x224", "#dddddd"), ("ViT\n24 layers", "#9ecae1"), ("text", "#dddddd")]
    fig = diagrams.pipeline(stages, title="three stages")
    ax = fig.axes[0]
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = [t for t in ax.texts if t.get_text()]
    assert [t.get_text() for t in texts] == [s for s, _ in stages]
    assert len(ax.patches) == 3, "one box a stage"
    figure = fig.bbox
    for t in texts:
        extent = t.get_window_extent(renderer)
        assert figure.x0 <= extent.x0 and extent.x1 <= figure.x1, f"{t.get_text()!r} leaves the figure"


def test_two_towers_draws_both_towers_the_space_and_the_loss_grid_inside_the_figure():
    towers = [("image", "image tower", "#dbe4ff"), ("text", "text tower", "#d3f9d8")]
    fig = diagrams.two_towers(towers, "shared space", pairs=3, title="CLIP")
    left, right = fig.axes
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    assert [t.get_text() for t in left.texts if t.get_text() in ("image", "image tower", "text", "text tower",
                                                                  "shared space")] == \
        ["image", "image tower", "text", "text tower", "shared space"]
    assert sum(t.get_text() == "match" for t in right.texts) == 3 and len(right.patches) == 9
    figure = fig.bbox
    for ax in (left, right):
        for t in ax.texts:
            extent = t.get_window_extent(renderer)
            assert figure.x0 <= extent.x0 and extent.x1 <= figure.x1, f"{t.get_text()!r} leaves the figure"


def test_blip_draws_med_and_capfilt_inside_the_figure():
    fig = diagrams.blip()
    med, capfilt = fig.axes
    assert med.get_title() == "MED: one model, three ways to read text"
    assert capfilt.get_title() == "CapFilt: the model cleans its own training data"
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    labels = [t.get_text() for t in med.texts]
    assert {"[CLS] + text", "[ENC] + text", "[DEC] + text"} <= set(labels), "the three ways to read text"
    assert len(med.patches) == 1 + 8 + 3 and len(capfilt.patches) == 6, "every box: encoder, 8 layers, 3 heads"
    for t in med.texts + capfilt.texts:
        extent = t.get_window_extent(renderer)
        assert fig.bbox.x0 <= extent.x0 and extent.x1 <= fig.bbox.x1, f"{t.get_text()!r} leaves the figure"
