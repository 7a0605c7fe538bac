"""The demo box: pick a checkpoint, a sample photo or a freshly drawn scene, greedy or beam; read the caption.

`CaptionWidget.caption()` is plain Python that returns the caption and sets a status line, so it is tested
without a browser; the ipywidgets layer only wires the pickers and the button to it.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..plotting import show_grid
from ..widgets import Widget, failure, show_figure
from .. import world
from . import predict

SCENE = "a new shape scene"


class CaptionWidget(Widget):
    """`box = CaptionWidget({"run": run_folder, ...}, photos={"cat": pil, ...}); box` in a notebook cell."""

    def __init__(self, runs: dict, photos: dict | None = None, render: Callable | None = None):
        import ipywidgets as w
        if not runs:
            raise ValueError("CaptionWidget needs at least one run folder")
        super().__init__()
        self.checkpoints = {f"{name} ({which})": f"{folder}/{which}.safetensors"
                            for name, folder in runs.items() for which in ("best", "last")}
        self.photos = dict(photos or {})
        self.render = render or self._render
        self.checkpoint = w.Dropdown(options=list(self.checkpoints), description="checkpoint:")
        self.image = w.Dropdown(options=[SCENE] + list(self.photos), description="image:")
        self.scene_seed = w.IntSlider(value=0, min=0, max=999, description="scene #")
        self.held_out = w.Checkbox(value=False, description="with a held-out colour+shape pair")
        self.decoding = w.Dropdown(options=["greedy", "beam 3"], value="beam 3", description="decoding:")
        self.button = w.Button(description="Caption", button_style="primary")
        self.output = w.Output()
        self.button.on_click(lambda _: self.caption())
        self.widget = w.VBox([w.HBox([self.checkpoint, self.decoding]), w.HBox([self.image, self.button]),
                              w.HBox([self.scene_seed, self.held_out]), self.status, self.output])

    def picture(self):
        """(image, what is true about it or None): the chosen photo, or the scene the slider and box describe."""
        if self.image.value == SCENE:
            scene = world.random_scene(np.random.default_rng([self.scene_seed.value, 7]), self.held_out.value)
            return world.draw(scene, 128), scene.captions[0]
        return self.photos[self.image.value], None

    def caption(self) -> str | None:
        """Caption the chosen image with the chosen checkpoint; None, and the reason as the status, on error."""
        self.output.outputs = ()
        try:
            image, truth = self.picture()
            trained = predict.load(self.checkpoints[self.checkpoint.value])
            beam_size = 1 if self.decoding.value == "greedy" else int(self.decoding.value.split()[1])
            text = predict.caption_image(trained, image, beam_size)
        except Exception as e:   # a callback's exception only reaches the kernel log: show it here instead
            self.show_error(failure(e))
            return None
        self.show_status(f"(drawn as: {truth})" if truth else "", lead=text or "(empty caption)")
        self.render(image, text)
        return text

    def _render(self, image, text):
        show_figure(self.output, show_grid([image], [text], ncols=1, size=3))   # caption() has emptied the output
