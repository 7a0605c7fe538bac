"""What the notebooks' widgets share, so the four (ask, chat, search, caption) look and behave alike.

Each widget keeps its root ipywidgets container in `.widget` and displays it when the object itself ends a
cell (`box`, not `box.widget`). Each has one status line, `.status`, written only through `show_status` /
`show_error`: user and model text is HTML-escaped there (and in the chat transcript) by the one `escape`, and
errors are in the one ERROR colour.
A click that arrives while the model runs is dropped (`busy`), since clicks queue up in the kernel.
The red stand-in banner (`standin_banner`, shown by `vlsteps.model_dir`) is in the same colour.
"""
from __future__ import annotations

import html
import sys
from contextlib import contextmanager
from functools import partial

ERROR = "#b00020"   # the notebooks' one error colour (Material Design's baseline error colour)
# Status text is element content, never an attribute value: quotes stay as typed (a KeyError's 'nope' reads as such).
escape = partial(html.escape, quote=False)


def failure(error: BaseException) -> str:
    """'RuntimeError: CUDA out of memory': what failed, in one line, for a status line."""
    return f"{type(error).__name__}: {error}"


def show_figure(output, fig) -> None:
    """Append a matplotlib figure to an ipywidgets Output and close it (no second copy below the cell).

    Appended rather than captured with `with output:` plus clear_output(wait=True): that path intermittently
    hangs headless runs (nbclient, CI)."""
    import matplotlib.pyplot as plt
    try:
        output.append_display_data(fig)
    finally:
        plt.close(fig)


class Widget:
    """Base of the notebook widgets: a subclass calls `super().__init__()`, builds its controls around
    `self.status` and puts them in `self.widget`."""

    widget = None   # the root container, set by the subclass

    def __init__(self):
        import ipywidgets
        self.status = ipywidgets.HTML("")
        self.message = ""       # the error on show, as plain text ("" when all is well)
        self._busy = False

    def show_status(self, text: str = "", lead: str = "") -> None:
        """A normal status line: `lead` in bold, then `text`; both escaped. `show_status()` clears it."""
        self.message = ""
        parts = [f"<b>{escape(lead)}</b>" if lead else "", escape(text)]
        self.status.value = " ".join(part for part in parts if part)

    def show_error(self, text: str) -> None:
        """One error line in the ERROR colour, escaped; also kept as plain text in `message`."""
        self.message = text
        self.status.value = f'<span style="color:{ERROR}">{escape(text)}</span>'

    @contextmanager
    def busy(self, button):
        """While the model runs: the button is disabled and `self._busy` is set, so queued clicks can be dropped."""
        self._busy = button.disabled = True
        try:
            yield
        finally:
            self._busy = button.disabled = False

    def _ipython_display_(self):
        from IPython.display import display
        display(self.widget)


_EXPLAINED = False


def standin_banner(spec, folder, incomplete: str | None = None) -> None:
    """The red line a notebook shows when `model_dir` hands it a stand-in (stderr outside IPython): one short line
    for a stand-in that learned the shapes world; for a random one, what that means (said once a session; a
    notebook may load six); and the download that gives real results."""
    global _EXPLAINED
    from .generation import STANDIN_TOKENS
    from .standins import is_learned
    from .standins.wording import what
    advice = (f"The real download in {incomplete} Finish it with: {spec.download_command}" if incomplete
              else f"For real results: {spec.download_command}")
    learned = is_learned(folder)
    text = f"STAND-IN: '{spec.key}' is {what(spec.repo_id, learned)}"
    if learned:
        text += f". {advice}"
    elif _EXPLAINED:
        text += f": its outputs are noise. {advice}"
    else:
        text += (f". Shapes and by-hand checks hold, but its text, labels, scores and maps are noise (generated text "
                 f"is cut to {STANDIN_TOKENS} new tokens); the notes 'With the real checkpoint' say what the real "
                 f"model shows. {advice}")
        _EXPLAINED = True
    try:
        from IPython import get_ipython
        from IPython.display import HTML, display
        if get_ipython() is not None:
            display(HTML(f'<div style="background:{ERROR};color:white;padding:8px;font-weight:bold">'
                         f'{escape(text)}</div>'))
            return
    except ImportError:
        pass
    print(f"\n!!! {text}\n", file=sys.stderr)
