"""The search box's callback, driven without a browser: text and image queries, errors as messages."""
import numpy as np
import pytest
from PIL import Image

from vlsteps import index
from vlsteps.search_widget import SearchWidget, hit_caption, show_hits
from vlsteps.widgets import ERROR


class ColorEmbedder:
    """Fake model: an image is its mean colour; 'red'/'green'/'blue' are the axes."""
    model_key, dim, fingerprint = "color", 3, "fake0002"

    def images(self, items):
        v = np.array([np.asarray((it if isinstance(it, Image.Image) else Image.open(it)).convert("RGB"),
                                 dtype=np.float32).mean(axis=(0, 1)) for it in items]).reshape(-1, 3)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    def texts(self, texts):
        return np.array([np.eye(3)[["red", "green", "blue"].index(t.split()[-1])] for t in texts], dtype=np.float32)


@pytest.fixture
def setup(tmp_path):
    colors = {"red": (230, 20, 10), "green": (10, 220, 30), "blue": (20, 10, 240), "pink": (240, 120, 130)}
    paths = {}
    for name, rgb in colors.items():
        paths[name] = tmp_path / f"{name}.png"
        Image.new("RGB", (40, 30), rgb).save(paths[name])
    client = index.chroma_client(path=tmp_path / "chroma", url="")
    emb = ColorEmbedder()
    col = index.image_collection(client, emb)
    index.index_images(col, emb, list(paths.values()),
                       [{"path": str(p), "category": n} for n, p in paths.items()])
    rendered = []
    box = SearchWidget(col, emb, images={n: str(p) for n, p in paths.items()}, k=2,
                       render=lambda hits, title: rendered.append((hits, title)))
    return box, rendered, paths


def test_a_text_query_shows_the_nearest_images(setup):
    box, rendered, _ = setup
    hits = box.search(text="  a photo of something blue ")
    assert hits[0].category == "blue"
    assert len(hits) == 2 and rendered[-1][0] == hits and "blue" in rendered[-1][1]
    assert "2 of 4 images" in box.status.value and box.last_hits == hits


def test_typing_and_the_button_run_the_search(setup):
    box, rendered, _ = setup
    box.text.value = "red"                 # what pressing Enter in the box does (continuous_update=False)
    assert rendered and rendered[-1][0][0].category == "red"
    box.k_slider.value = 3
    box.button.click()
    assert len(rendered[-1][0]) == 3 and rendered[-1][0][0].category == "red"


def test_picking_an_image_finds_itself_first(setup):
    box, rendered, paths = setup
    box.picker.value = "pink"
    hit = rendered[-1][0][0]
    assert hit.category == "pink" and hit.similarity == pytest.approx(1.0, abs=1e-4)
    assert hit.id == index.content_id(paths["pink"])


def test_bad_input_becomes_a_message_not_a_traceback(setup):
    box, rendered, _ = setup
    assert box.search(text="   ") == [] and "Type a query" in box.status.value
    assert box.search(image_name="nope") == [] and "no image named 'nope'" in box.status.value
    assert not rendered


def test_default_render_draws_a_grid_with_similarity_and_category(setup):
    box, _, paths = setup
    box.render = box._render
    hits = box.search(text="green")
    assert hits and hit_caption(hits[0]).endswith("| green")
    fig = show_hits(hits, title="t")
    assert len([ax for ax in fig.axes if ax.images]) == len(hits)
    with pytest.raises(ValueError):
        show_hits([])


def test_typing_then_clicking_searches_once(setup):
    box, rendered, _ = setup
    box.text.value = "green"               # leaving the box fires the search...
    box.button.click()                     # ...and the click on the same query adds nothing
    assert len(rendered) == 1
    box.k_slider.value = 3
    box.button.click()                     # a new k is a new search
    assert len(rendered) == 2 and len(rendered[-1][0]) == 3


@pytest.fixture
def drawn(setup):
    """The widget with its real grid (matplotlib into the Output widget)."""
    box, _, paths = setup
    box.render = box._render
    return box, paths


def test_an_image_deleted_after_indexing_is_a_message_and_an_empty_grid(drawn):
    box, paths = drawn
    box.text.value = "blue"
    assert len(box.output.outputs) == 1
    paths["red"].unlink()
    box.text.value = "red"                 # Enter: the callback must not raise
    assert "red.png" in box.status.value and ERROR in box.status.value
    assert box.output.outputs == () and box.last_hits == []


@pytest.mark.parametrize("query", [dict(text="   "), dict(image_name="nope")])
def test_every_new_query_clears_the_previous_grid(drawn, query):
    box, _ = drawn
    box.search(text="green")
    assert len(box.output.outputs) == 1
    box.search(**query)
    assert box.output.outputs == ()


def test_the_button_searches_the_typed_text_right_after_an_image_search(setup):
    box, rendered, _ = setup
    box.text.value = "red"
    box.picker.value = "pink"
    box.button.click()
    assert len(rendered) == 3 and "red" in rendered[-1][1] and rendered[-1][0][0].category == "red"


def test_the_same_image_can_be_picked_again_after_a_text_search(setup):
    box, rendered, _ = setup
    box.picker.value = "pink"
    box.text.value = "red"
    assert box.picker.value == ""          # the picker no longer claims the grid shows 'pink'
    box.picker.value = "pink"
    assert len(rendered) == 3 and rendered[-1][0][0].category == "pink"


def test_the_status_line_is_html_escaped(setup):
    box, _, _ = setup
    box.search(image_name="<img src=x onerror=alert(1)>")
    assert "<img" not in box.status.value and "&lt;img src=x onerror=alert(1)&gt;" in box.status.value
    box.text.value = "<img/src=x/onerror=alert(1)>"    # the fake model refuses it, quoting it in its error
    assert "<img" not in box.status.value and "&lt;img" in box.status.value


def test_a_failing_model_is_a_message_and_the_button_retries(setup, monkeypatch):
    box, rendered, _ = setup
    def broken(texts):
        raise RuntimeError("server went away")
    monkeypatch.setattr(box.embedder, "texts", broken)
    box.text.value = "red"                 # Enter: the callback must not raise
    assert "RuntimeError: server went away" in box.status.value and not rendered
    monkeypatch.undo()
    box.button.click()                     # the same query again: it failed, so the button searches
    assert rendered and rendered[-1][0][0].category == "red"
