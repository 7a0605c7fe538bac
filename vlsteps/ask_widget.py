"""An "ask about this photo" box: pick a photo, type a question, read the model's answer.

The notebook supplies `answer_fn(image, question) -> str` (its own model code); this module only holds
the plumbing around it: checking the question, catching a failing model call, keeping a history, and
the ipywidgets layout. `ask()` is plain Python, so the logic is tested without a browser.
"""
from __future__ import annotations

import io
from typing import Callable, Mapping

from PIL import Image

from .images import ImageLoadError, load_image
from .widgets import Widget, failure

MAX_CHARS = 200   # VQA models see ~30-40 question tokens; a paragraph is a mistake, not a question


def check_question(question, max_chars: int = MAX_CHARS) -> str:
    """The cleaned question, or ValueError with a message meant for the reader."""
    if not isinstance(question, str) or not question.strip():
        raise ValueError("Type a question first, e.g. 'What animal is this?'")
    question = " ".join(question.split())
    if len(question) > max_chars:
        raise ValueError(f"That question is {len(question)} characters long; keep it under {max_chars}.")
    return question


def answer_question(answer_fn: Callable[[Image.Image, str], str], image: Image.Image, question,
                    max_chars: int = MAX_CHARS) -> tuple[bool, str]:
    """(ok, text): the model's answer, or one readable message for a bad question or a failing model."""
    try:
        question = check_question(question, max_chars)
    except ValueError as e:
        return False, str(e)
    try:
        answer = answer_fn(image, question)
    except Exception as e:   # a widget callback must never die with a traceback nobody sees
        return False, f"The model failed on this question ({failure(e)})."
    answer = str(answer).strip() if answer is not None else ""
    return True, answer if answer else "(the model gave an empty answer)"


def _png(image: Image.Image, max_side: int = 320) -> bytes:
    thumb = image.convert("RGB").copy()
    thumb.thumbnail((max_side, max_side))
    buf = io.BytesIO()
    thumb.save(buf, format="PNG")
    return buf.getvalue()


def _load_photos(photos: Mapping) -> dict[str, Image.Image]:
    """Every photo as an RGB image, loaded now: a bad one is one error naming it, not a failure on first use."""
    loaded = {}
    for name, source in photos.items():
        try:
            loaded[name] = load_image(source)
        except ImageLoadError as e:
            raise ImageLoadError(f"Photo {name!r}: {e}") from None
    return loaded


class AskBox(Widget):
    """A photo picker, a question box, an Ask button, the answer in the status line, and the answers so far.

    `box = AskBox(answer_fn, {"cat": image_or_path, ...}); box` shows it in a notebook; `box.ask("...")` asks
    from code. Clicks queue up in the kernel while the model runs, so a click while it runs, or one for the
    photo and question just answered, does not run it again."""

    def __init__(self, answer_fn: Callable[[Image.Image, str], str], photos: Mapping[str, Image.Image | str],
                 max_chars: int = MAX_CHARS):
        import ipywidgets as w
        if not photos:
            raise ValueError("AskBox needs at least one photo")
        super().__init__()
        self.answer_fn = answer_fn
        self.photos = _load_photos(photos)
        self.max_chars = max_chars
        self.history: list[tuple[str, str, str]] = []   # (photo, question, answer)
        self.photo = w.Dropdown(options=list(self.photos), description="Photo")
        self.image = w.Image(value=_png(self.photos[self.photo.value]), format="png")
        self.question = w.Text(placeholder="What is in the picture?", description="Question",
                               layout=w.Layout(width="420px"))
        self.button = w.Button(description="Ask", button_style="primary")
        self.photo.observe(self._on_photo, names="value")
        self.button.on_click(self._on_click)
        self.widget = w.VBox([self.photo, self.image, w.HBox([self.question, self.button]), self.status])

    def _on_photo(self, change) -> None:
        self.image.value = _png(self.photos[change["new"]])

    def _asked(self) -> tuple[str, str]:
        """(photo, question) as picked and typed, the question's whitespace collapsed as the model sees it."""
        return self.photo.value, " ".join(self.question.value.split())

    def _on_click(self, _button) -> None:
        if self._busy:
            return
        if self.history and self.history[-1][:2] == self._asked():
            self.show_status(self.history[-1][2], lead="Answer:")   # answered already: show it again, do not ask again
        else:
            self.ask()

    def ask(self, question: str | None = None, photo: str | None = None) -> str:
        """Answer `question` (default: what is typed) about `photo` (default: the one picked)."""
        if photo is not None:
            if photo not in self.photos:
                raise KeyError(f"No photo {photo!r}; choose one of: {', '.join(self.photos)}")
            self.photo.value = photo
        if question is not None:
            self.question.value = question
        with self.busy(self.button):
            ok, text = answer_question(self.answer_fn, self.photos[self.photo.value], self.question.value,
                                       self.max_chars)
        if ok:
            self.history.append((*self._asked(), text))
            self.show_status(text, lead="Answer:")
        else:
            self.show_error(text)
        return text
