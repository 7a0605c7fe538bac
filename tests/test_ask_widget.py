"""The 'ask about this photo' box: the button asks the model, bad input and model errors become messages."""
import pytest
from PIL import Image

from vlsteps.ask_widget import MAX_CHARS, AskBox, answer_question, check_question

PHOTOS = {"red": Image.new("RGB", (40, 30), "red"), "blue": Image.new("RGB", (30, 40), "blue")}


def color_model(image, question):
    """A 'model' that answers with the photo's color and echoes the question, so tests see both."""
    return f"{ {(255, 0, 0): 'red', (0, 0, 255): 'blue'}[image.getpixel((0, 0))]} ({question})"


def test_check_question_cleans_and_refuses():
    assert check_question("  what   color? ") == "what color?"
    for bad in ("", "   ", None, 3):
        with pytest.raises(ValueError, match="Type a question"):
            check_question(bad)
    with pytest.raises(ValueError, match="characters long"):
        check_question("x" * (MAX_CHARS + 1))


def test_answer_question_turns_failures_into_messages():
    assert answer_question(color_model, PHOTOS["red"], "what color?") == (True, "red (what color?)")
    ok, text = answer_question(color_model, PHOTOS["red"], "")
    assert not ok and "Type a question" in text

    def broken(image, question):
        raise RuntimeError("CUDA out of memory")
    ok, text = answer_question(broken, PHOTOS["red"], "what color?")
    assert not ok and "RuntimeError" in text and "out of memory" in text
    assert answer_question(lambda i, q: "  ", PHOTOS["red"], "q") == (True, "(the model gave an empty answer)")


def test_button_click_asks_about_the_picked_photo():
    box = AskBox(color_model, PHOTOS)
    box.photo.value = "blue"
    box.question.value = "which color?"
    box.button.click()                       # what a click in the browser does
    assert "blue (which color?)" in box.answer.value
    assert box.history == [("blue", "which color?", "blue (which color?)")]


def test_ask_from_code_and_errors_shown_not_raised():
    box = AskBox(color_model, PHOTOS)
    assert box.ask("what color?", photo="red") == "red (what color?)"
    assert box.photo.value == "red"
    assert "Type a question" in box.ask("   ")
    assert "Type a question" in box.answer.value and len(box.history) == 1
    with pytest.raises(KeyError, match="choose one of"):
        box.ask("q", photo="green")


def test_answers_are_html_escaped_and_picture_follows_the_dropdown():
    box = AskBox(lambda image, q: "<script>alert(1)</script>", PHOTOS)
    box.ask("q")
    assert "<script>" not in box.answer.value and "&lt;script&gt;" in box.answer.value
    before = box.image.value
    box.photo.value = "blue"
    assert bytes(box.image.value) != bytes(before) and bytes(box.image.value).startswith(b"\x89PNG")


def test_needs_photos():
    with pytest.raises(ValueError):
        AskBox(color_model, {})
