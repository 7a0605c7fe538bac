"""A search box over the image index: type a query or pick an image, see the nearest images.

The logic (`SearchWidget.search`) is plain Python that returns hits and sets a status line, so it is
unit-tested without a browser; the ipywidgets layer only wires the box, the picker and the button to it.
"""
from __future__ import annotations

from typing import Callable

from . import index
from .plotting import show_grid
from .widgets import Widget, failure, show_figure


def hit_caption(hit: index.Hit) -> str:
    """'0.93 | cat' : similarity and category, what a reader checks first."""
    return f"{hit.similarity:.2f} | {hit.category or '?'}"


def show_hits(hits: list[index.Hit], title: str | None = None, ncols: int = 4, size: float = 2.5):
    """A result grid: each hit's image with its similarity and category (fitted to its panel). Returns the figure."""
    if not hits:
        raise ValueError("no hits to show (is the collection empty?)")
    return show_grid([h.image() for h in hits], [hit_caption(h) for h in hits], ncols=ncols, size=size, title=title)


class SearchWidget(Widget):
    """`box = SearchWidget(collection, embedder, images={"cat": path_or_pil, ...}); box` in a notebook cell.

    `search(text=...)` or `search(image_name=...)` runs the query, draws the grid into the output area and
    returns the hits. Every query first clears the previous grid; any error (empty query, unknown image, an
    indexed image deleted since, a failing model or server) becomes the status line, never a traceback in a
    callback, where nobody would see it.
    """

    def __init__(self, collection, embedder, images: dict | None = None, k: int = 8,
                 render: Callable | None = None):
        import ipywidgets as w
        super().__init__()
        self.collection, self.embedder, self.k = collection, embedder, int(k)
        self.images = dict(images or {})
        self.render = render or self._render
        self.last_hits: list[index.Hit] = []
        self._shown: tuple | None = None   # (text, k) of the text query whose hits are on screen
        self.text = w.Text(placeholder="a photo of a cat", description="Query:", continuous_update=False,
                           layout=w.Layout(width="60%"))
        self.picker = w.Dropdown(options=[""] + list(self.images), value="", description="or image:")
        self.k_slider = w.IntSlider(value=self.k, min=1, max=32, description="k")
        self.button = w.Button(description="Search", button_style="primary", icon="search")
        self.output = w.Output()
        # Enter (or leaving the box) searches; so does the button, unless that query's hits for this k are
        # already on screen: typing then clicking fires both, and one search is enough.
        self.text.observe(lambda change: self.search(text=change["new"]), names="value")
        self.button.on_click(lambda _: (self.text.value, int(self.k_slider.value)) != self._shown
                             and self.search(text=self.text.value))
        self.picker.observe(lambda change: change["new"] and self.search(image_name=change["new"]), names="value")
        self.widget = w.VBox([w.HBox([self.text, self.button]), w.HBox([self.picker, self.k_slider]),
                              self.status, self.output])

    def search(self, text: str | None = None, image_name: str | None = None) -> list[index.Hit]:
        """Run one query (text, or one of `images` by name); show and return the hits ([] on any error)."""
        k = int(self.k_slider.value)
        self._shown, self.last_hits, query = None, [], None
        self.output.outputs = ()
        try:
            if image_name:
                if image_name not in self.images:
                    raise KeyError(f"no image named {image_name!r}; choose one of {', '.join(self.images)}")
                hits = index.search_by_image(self.collection, self.embedder, self.images[image_name], k=k)
                title = f"nearest to image '{image_name}'"
            else:
                self.picker.value = ""     # the picker no longer names what is shown (and can be picked again)
                if not text or not text.strip():
                    self.show_status("Type a query (e.g. 'a photo of a cat') or pick an image.")
                    return []
                hits = index.search_by_text(self.collection, self.embedder, text, k=k)
                title, query = f"nearest to '{text.strip()}'", (text, k)
            if hits:
                self.render(hits, title)
            self.show_status(f"{len(hits)} of {self.collection.count()} images, "
                             f"best similarity {hits[0].similarity:.3f}" if hits else "the collection is empty")
        except Exception as e:   # a callback's exception only reaches the kernel log: show it here instead
            self.show_error(str(e.args[0]) if isinstance(e, (KeyError, ValueError)) and e.args else failure(e))
            self.output.outputs = ()   # a grid half drawn before the error
            return []
        self.last_hits, self._shown = hits, query
        return hits

    def _render(self, hits, title):
        show_figure(self.output, show_hits(hits, title=title))   # search() has emptied the output
