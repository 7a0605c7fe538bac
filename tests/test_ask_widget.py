"""The 'ask about this photo' box: the button asks the model, bad input and model errors become messages."""
import pytest
from PIL import Image

from vlsteps.ask_widget import MAX_CHARS, AskBox, answer_question, check_question
from vlsteps.images import ImageLoadError

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
    assert "blue (which color?)" in box.status.value
    assert box.history == [("blue", "which color?", "blue (which color?)")]


def test_ask_from_code_and_errors_shown_not_raised():
    box = AskBox(color_model, PHOTOS)
    assert box.ask("what color?", photo="red") == "red (what color?)"
    assert box.photo.value == "red"
    assert "Type a question" in box.ask("   ")
    assert "Type a question" in box.status.value and len(box.history) == 1
    with pytest.raises(KeyError, match="choose one of"):
        box.ask("q", photo="green")


def test_answers_are_html_escaped_and_picture_follows_the_dropdown():
    box = AskBox(lambda image, q: "<script>alert(1)</script>", PHOTOS)
    box.ask("q")
    assert "<script>" not in box.status.value and "&lt;script&gt;" in box.status.value
    before = box.image.value
    box.photo.value = "blue"
    assert bytes(box.image.value) != bytes(before) and bytes(box.image.value).startswith(b"\x89PNG")


def test_needs_photos():
    with pytest.raises(ValueError):
        AskBox(color_model, {})


def test_photos_given_as_paths_are_loaded(tmp_path):
    PHOTOS["blue"].save(tmp_path / "blue.png")
    box = AskBox(color_model, {"red": PHOTOS["red"], "blue": str(tmp_path / "blue.png")})
    assert box.ask("which color?", photo="blue") == "blue (which color?)"
    assert bytes(box.image.value).startswith(b"\x89PNG")


@pytest.mark.parametrize("source", ["notes.txt", "missing.png"])
def test_a_photo_that_is_not_an_image_is_one_clear_error_naming_it(tmp_path, source):
    (tmp_path / "notes.txt").write_text("not a picture")
    with pytest.raises(ImageLoadError, match="'notes'") as err:
        AskBox(color_model, {"red": PHOTOS["red"], "notes": str(tmp_path / source)})
    assert source in str(err.value)


class CountingModel:
    def __init__(self, fail=False):
        self.calls, self.fail = 0, fail

    def __call__(self, image, question):
        self.calls += 1
        if self.fail:
            raise RuntimeError("CUDA out of memory")
        return color_model(image, question)


def test_fifty_rapid_clicks_run_the_model_once_and_show_the_answer_once():
    model = CountingModel()
    box = AskBox(model, PHOTOS)
    box.question.value = "which color?"
    for _ in range(50):                      # clicks queued in the kernel arrive one after the other
        box.button.click()
    assert model.calls == 1 and len(box.history) == 1
    assert "red (which color?)" in box.status.value
    box.question.value = "which  color? "    # the same question, typed differently
    box.button.click()
    assert model.calls == 1
    box.photo.value = "blue"                 # another photo is a new question
    box.button.click()
    box.question.value = "what is it?"
    box.button.click()
    assert model.calls == 3 and [h[:2] for h in box.history] == [("red", "which color?"), ("blue", "which color?"),
                                                                 ("blue", "what is it?")]


def test_a_click_while_the_model_runs_is_ignored_and_the_button_is_disabled():
    seen = []

    def slow_model(image, question):
        seen.append(box.button.disabled)
        if len(seen) < 50:
            box.button.click()               # a click that arrives while the model is still busy
        return "red"
    box = AskBox(slow_model, PHOTOS)
    box.question.value = "which color?"
    box.button.click()
    assert seen == [True] and not box.button.disabled and len(box.history) == 1


def test_after_a_failed_answer_a_click_asks_again():
    model = CountingModel(fail=True)
    box = AskBox(model, PHOTOS)
    box.question.value = "which color?"
    box.button.click()
    box.button.click()
    assert model.calls == 2 and "out of memory" in box.status.value and box.history == []


def test_clicking_the_answered_question_again_shows_its_answer_again_without_asking():
    model = CountingModel()
    box = AskBox(model, PHOTOS)
    box.ask("which color?")
    box.question.value = "x" * (MAX_CHARS + 1)
    box.button.click()
    assert "characters long" in box.status.value
    box.question.value = "which color?"
    box.button.click()
    assert model.calls == 1 and "red (which color?)" in box.status.value
