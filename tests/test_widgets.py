"""The four notebook widgets follow one convention: a cell that ends with the object shows its root widget, a
failure is one escaped line in the one error colour, and the figures they draw keep captions inside their panels."""
import builtins
import json
import warnings

import matplotlib
import numpy as np
import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from PIL import Image

import vlsteps.captioner.widget as caption_widget
from vlsteps import index, registry, widgets
from vlsteps.ask_widget import AskBox
from vlsteps.captioner.widget import CaptionWidget
from vlsteps.chat_widget import ChatSession, ChatWidget
from vlsteps.generation import STANDIN_TOKENS
from vlsteps.search_widget import SearchWidget, show_hits
from vlsteps.standins import MARKER
from vlsteps.standins.wording import TRAINED_HERE
from vlsteps.widgets import ERROR, escape

matplotlib.use("Agg")

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
PHOTO = Image.new("RGB", (40, 30), "red")
FAILURE = "<b>boom</b> & more"     # markup in an error must reach the reader as text


def fail(*_args):
    raise RuntimeError(FAILURE)


class FailingEmbedder:
    def texts(self, texts):
        fail()


# Each widget around a model that fails, and the reader's action that calls the model.
def ask():
    box = AskBox(fail, {"red": PHOTO})
    return box, lambda: (setattr(box.question, "value", "which color?"), box.button.click())


def chat():
    box = ChatWidget(ChatSession(fail, image=PHOTO))
    return box, lambda: (setattr(box.text, "value", "which color?"), box.send_button.click())


def search():
    box = SearchWidget(None, FailingEmbedder(), render=lambda hits, title: None)
    return box, lambda: setattr(box.text, "value", "red")          # what Enter in the box does


def caption():
    box = CaptionWidget({"run": "no-such-run"}, photos={"red": PHOTO}, render=lambda image, text: None)
    box.image.value = "red"
    return box, box.button.click


WIDGETS = {"ask": ask, "chat": chat, "search": search, "caption": caption}


@pytest.fixture(scope="module")
def shell():
    """An IPython shell, as in a notebook kernel: run_cell displays a cell's last value through IPython's hooks.

    Removed afterwards with what it adds to builtins (`__IPYTHON__`, which libraries read as "in a notebook")
    and to the warning filters, so later tests in this process do not run as if inside IPython."""
    names, filters = set(vars(builtins)), warnings.filters[:]
    yield InteractiveShell.instance()
    InteractiveShell.clear_instance()
    for name in set(vars(builtins)) - names:
        delattr(builtins, name)
    warnings.filters[:] = filters


def _children(widget):
    yield widget
    for child in getattr(widget, "children", ()):
        yield from _children(child)


@pytest.mark.parametrize("name", WIDGETS)
def test_a_cell_that_ends_with_the_widget_shows_its_root_with_the_status_line_inside(shell, name):
    box, _ = WIDGETS[name]()
    shell.user_ns["box"] = box
    with capture_output() as shown:
        shell.run_cell("box")
    assert len(shown.outputs) == 1, "one display: the root widget, no text repr beside it"
    assert shown.outputs[0].data[WIDGET_VIEW]["model_id"] == box.widget.model_id
    assert any(part is box.status for part in _children(box.widget))


@pytest.mark.parametrize("name", WIDGETS)
def test_each_widget_shows_a_failure_as_one_escaped_line_in_the_error_colour(name, monkeypatch):
    monkeypatch.setattr(caption_widget.predict, "load", fail)
    box, use = WIDGETS[name]()
    use()                                      # the reader's own click or Enter: it must not raise
    assert f"RuntimeError: {FAILURE}" in box.message
    assert box.status.value == f'<span style="color:{ERROR}">{escape(box.message)}</span>'
    assert "<b>boom" not in box.status.value


def test_a_success_after_a_failure_clears_the_error():
    box, use = ask()
    use()
    assert box.message
    box.answer_fn = lambda image, question: "<i>red</i>"
    box.ask("and now?")
    assert box.message == "" and ERROR not in box.status.value
    assert box.status.value == "<b>Answer:</b> &lt;i&gt;red&lt;/i&gt;"


LONG = ["inging" * 30, "PlePle " * 40, "a cat sitting on a mat, seen from above, on and on " * 3, "W" * 200, "dog", ""]


def assert_captions_inside_their_panels(fig):
    """Each panel's caption lies within its panel's width and above its image, clear of the others and the title."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    panels = [(ax.title.get_window_extent(renderer), ax.get_window_extent(renderer)) for ax in fig.axes if ax.images]
    assert panels and len(panels) == len(fig.axes), "no empty panels"
    for caption, panel in panels:
        assert panel.x0 - 1 <= caption.x0 and caption.x1 <= panel.x1 + 1, "a caption leaves its panel"
        assert caption.y0 >= panel.y1 - 1, "a caption runs onto its image"
    for i, (caption, _) in enumerate(panels):
        assert not any(caption.overlaps(other) or caption.overlaps(panel)
                       for j, (other, panel) in enumerate(panels) if j != i), "captions collide"
    if fig._suptitle is not None:
        assert fig._suptitle.get_window_extent(renderer).y0 >= max(c.y1 for c, _ in panels) - 1, "title on captions"


def test_search_results_with_long_categories_keep_their_captions_in_their_panels(tmp_path):
    PHOTO.save(tmp_path / "red.png")
    hits = [index.Hit(id=str(i), similarity=0.5, metadata={"path": str(tmp_path / "red.png"), "category": c})
            for i, c in enumerate(LONG)]
    assert_captions_inside_their_panels(show_hits(hits, title="nearest to 'a very long query' " * 2))


@pytest.mark.parametrize("text", LONG[:4])
def test_the_caption_boxs_picture_keeps_a_long_caption_in_its_panel(text, monkeypatch):
    figures = []
    monkeypatch.setattr(caption_widget, "show_figure", lambda output, fig: figures.append(fig))
    box = CaptionWidget({"run": "no-such-run"})
    box._render(Image.fromarray(np.zeros((128, 128, 3), np.uint8)), text)
    assert len(figures) == 1 and figures[0].axes[0].get_title()
    assert_captions_inside_their_panels(figures[0])


# --- the stand-in banner -----------------------------------------------------------------------------------------
@pytest.fixture
def outside_ipython(monkeypatch):
    """The banner as a script sees it, on stderr (other tests here start an IPython shell, where it is HTML)."""
    monkeypatch.setattr("IPython.get_ipython", lambda: None)


def standin_folder(parent, learned: bool):
    """A folder marked as a stand-in the way `vlsteps.standins.build` marks one, learned or random."""
    folder = parent / ("learned" if learned else "random")
    folder.mkdir()
    (folder / MARKER).write_text(json.dumps({"key": "vit", "learned": learned}))
    return folder


def test_the_banner_explains_random_stand_ins_once_then_names_each_one_and_its_download(capsys, monkeypatch,
                                                                                       tmp_path, outside_ipython):
    monkeypatch.setattr(widgets, "_EXPLAINED", False)
    random = standin_folder(tmp_path, learned=False)
    widgets.standin_banner(registry.get("vit"), random)
    first = capsys.readouterr().err
    assert "STAND-IN" in first and "random-weight" in first and "noise" in first
    assert f"{STANDIN_TOKENS} new tokens" in first and TRAINED_HERE not in first
    assert "tools/download_models.sh vit" in first and "With the real checkpoint" in first
    widgets.standin_banner(registry.get("vilt"), random)
    second = capsys.readouterr().err
    assert "'vilt'" in second and "noise" in second and "tools/download_models.sh vilt" in second
    assert "With the real checkpoint" not in second and len(second) < len(first)


def test_the_banner_of_a_learned_stand_in_is_one_line_that_says_where_it_learned(capsys, monkeypatch, tmp_path,
                                                                                  outside_ipython):
    monkeypatch.setattr(widgets, "_EXPLAINED", False)
    widgets.standin_banner(registry.get("vit"), standin_folder(tmp_path, learned=True))
    text = capsys.readouterr().err.strip()
    assert text.count("\n") == 0 and text.startswith("!!! STAND-IN: 'vit'") and TRAINED_HERE in text
    assert "random" not in text and "noise" not in text and "tools/download_models.sh vit" in text
    widgets.standin_banner(registry.get("vilt"), standin_folder(tmp_path, learned=False))
    assert "With the real checkpoint" in capsys.readouterr().err, "a random stand-in after it is still explained"


def test_model_dir_shows_the_banner_its_stand_in_deserves(capsys, outside_ipython):
    from vlsteps import model_dir
    from vlsteps.standins import is_learned
    folder = model_dir("vit")
    text = capsys.readouterr().err
    assert "STAND-IN: 'vit'" in text and (TRAINED_HERE in text) == is_learned(folder)
