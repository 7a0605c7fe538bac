"""A chat box for a vision-language model in a notebook, with its logic testable without a browser.

`ChatSession` keeps the conversation in the chat-template format (`[{"role": ..., "content": [...]}]`)
and calls a `generate(messages) -> str` function that the notebook injects, so the same code drives
any model. `ChatWidget` puts ipywidgets around a session: a text box, Send and Reset buttons, the
transcript and a status line. A failed generation shows one clear message and leaves the conversation
as it was, so the reader can simply ask again.
"""
from __future__ import annotations

from typing import Callable

from .widgets import Widget, escape, failure

Generate = Callable[[list[dict]], str]


class EmptyQuestion(ValueError):
    """Send was pressed with nothing typed."""


class ChatSession:
    """A growing conversation about one image; the image goes into the first user turn, as the model expects."""

    def __init__(self, generate: Generate, image=None):
        if not callable(generate):
            raise TypeError(f"generate must be a function messages -> str, got {type(generate).__name__}")
        self.generate = generate
        self.image = image
        self.messages: list[dict] = []

    def ask(self, question: str) -> str:
        """Append the question, call generate on the whole conversation, append and return the answer.

        If generate raises or returns something that is not text, the conversation is left unchanged.
        """
        if not isinstance(question, str) or not question.strip():
            raise EmptyQuestion("Type a question first.")
        content = [{"type": "text", "text": question.strip()}]
        if self.image is not None and not self.messages:
            content.insert(0, {"type": "image", "image": self.image})
        messages = self.messages + [{"role": "user", "content": content}]
        answer = self.generate(messages)
        if not isinstance(answer, str):
            raise TypeError(f"generate returned {type(answer).__name__}, not text")
        self.messages = messages + [{"role": "assistant", "content": [{"type": "text", "text": answer}]}]
        return answer

    def reset(self) -> None:
        self.messages = []

    def transcript(self) -> list[tuple[str, str]]:
        """(role, text) per turn; an image in a turn shows as "[image]"."""
        turns = []
        for message in self.messages:
            parts = ["[image]" if part.get("type") == "image" else part.get("text", "")
                     for part in message["content"]]
            turns.append((message["role"], " ".join(parts)))
        return turns


def error_message(error: BaseException) -> str:
    """What went wrong, in one line, with what to try next."""
    name = type(error).__name__
    if "OutOfMemory" in name or isinstance(error, MemoryError):
        return (f"Out of memory ({name}). Lower max_pixels (fewer visual tokens) or max_new_tokens, "
                "or press Reset to shorten the conversation.")
    if isinstance(error, EmptyQuestion):
        return str(error)
    return f"The model failed: {failure(error)}. The conversation is unchanged; ask again or press Reset."


class ChatWidget(Widget):
    """ipywidgets around a ChatSession: `chat = ChatWidget(session); chat` shows it in a notebook. `on_send` is
    what the Send button runs: tests call it directly.

    Clicks queue up in the kernel while the model runs, so a click while it runs is dropped, and so is one on
    the empty box right after an answer (it would only say "Type a question first." under the answer)."""

    def __init__(self, session: ChatSession, placeholder: str = "Ask about the image and press Send"):
        import ipywidgets as widgets
        super().__init__()
        self.session = session
        self.text = widgets.Text(placeholder=placeholder, layout=widgets.Layout(width="70%"))
        self.send_button = widgets.Button(description="Send", button_style="primary")
        self.reset_button = widgets.Button(description="Reset")
        self.transcript = widgets.HTML()
        self._answered = False       # an answer came and nothing has been typed since
        self.text.observe(self._on_typing, names="value")
        self.send_button.on_click(self.on_send)
        self.reset_button.on_click(self.on_reset)
        self.widget = widgets.VBox([self.transcript, widgets.HBox([self.text, self.send_button, self.reset_button]),
                                    self.status])
        self._show_transcript()

    def _on_typing(self, _change) -> None:
        self._answered = False

    def on_send(self, _button=None) -> None:
        if self._busy or (self._answered and not self.text.value.strip()):
            return
        self.show_status("Thinking…")
        with self.busy(self.send_button):
            try:
                self.session.ask(self.text.value)
            except Exception as e:   # one clear line in the widget instead of a traceback in a callback
                self.show_error(error_message(e))
            else:
                self.text.value = ""
                self.show_status()
                self._answered = True
        self._show_transcript()

    def on_reset(self, _button=None) -> None:
        self.session.reset()
        self.show_status()
        self._answered = False
        self._show_transcript()

    def _show_transcript(self) -> None:
        # overflow-wrap: a reply without spaces (a URL, JSON, stand-in noise) wraps instead of running off the box
        rows = [f'<p style="overflow-wrap:anywhere"><b>{escape(role)}:</b> {escape(text)}</p>'
                for role, text in self.session.transcript()]
        self.transcript.value = "".join(rows) or "<p><i>No messages yet.</i></p>"
