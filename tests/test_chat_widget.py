"""The chat widget's logic, driven without a browser: turns are appended, generate is called, errors are shown."""
import pytest
from PIL import Image

from vlsteps.chat_widget import ChatSession, ChatWidget, EmptyQuestion, error_message


class FakeModel:
    """Records the conversations it was given and answers with a numbered reply."""

    def __init__(self, fail_with=None):
        self.calls = []
        self.fail_with = fail_with

    def __call__(self, messages):
        self.calls.append([dict(m) for m in messages])
        if self.fail_with is not None:
            raise self.fail_with
        return f"answer {len(self.calls)}"


@pytest.fixture
def image():
    return Image.new("RGB", (32, 24), "red")


def test_first_turn_carries_the_image_then_turns_alternate(image):
    model = FakeModel()
    session = ChatSession(model, image=image)
    assert session.ask("What is this?") == "answer 1"
    assert session.ask("  And its color?  ") == "answer 2"
    first_user = session.messages[0]["content"]
    assert first_user[0] == {"type": "image", "image": image}
    assert first_user[1] == {"type": "text", "text": "What is this?"}
    assert [m["role"] for m in session.messages] == ["user", "assistant", "user", "assistant"]
    assert session.messages[2]["content"] == [{"type": "text", "text": "And its color?"}]   # no second image
    # generate saw the whole conversation so far, ending with the new question
    assert len(model.calls[1]) == 3 and model.calls[1][-1]["role"] == "user"
    assert session.transcript() == [("user", "[image] What is this?"), ("assistant", "answer 1"),
                                    ("user", "And its color?"), ("assistant", "answer 2")]


def test_text_only_session_has_no_image_part():
    session = ChatSession(FakeModel())
    session.ask("hello?")
    assert session.messages[0]["content"] == [{"type": "text", "text": "hello?"}]


def test_a_failing_generate_leaves_the_conversation_unchanged(image):
    session = ChatSession(FakeModel(), image=image)
    session.ask("q1")
    before = [dict(m) for m in session.messages]
    session.generate = FakeModel(fail_with=RuntimeError("boom"))
    with pytest.raises(RuntimeError):
        session.ask("q2")
    assert session.messages == before


def test_non_text_answers_are_refused():
    session = ChatSession(lambda messages: None)
    with pytest.raises(TypeError):
        session.ask("q")
    assert session.messages == []


@pytest.mark.parametrize("question", ["", "   ", None])
def test_empty_questions_never_reach_the_model(question):
    model = FakeModel()
    with pytest.raises(EmptyQuestion):
        ChatSession(model).ask(question)
    assert model.calls == []


def test_generate_must_be_callable():
    with pytest.raises(TypeError):
        ChatSession("not a function")


def test_reset_starts_over_and_sends_the_image_again(image):
    session = ChatSession(FakeModel(), image=image)
    session.ask("q1")
    session.reset()
    assert session.messages == []
    session.ask("q2")
    assert session.messages[0]["content"][0]["type"] == "image"


def test_send_button_appends_turns_and_clears_the_box(image):
    model = FakeModel()
    ui = ChatWidget(ChatSession(model, image=image))
    ui.text.value = "What is it?"
    ui.send_button.click()          # runs the on_click handlers, as a browser click would
    assert len(model.calls) == 1
    assert ui.text.value == "" and ui.status.value == "" and ui.message == ""
    assert "What is it?" in ui.transcript.value and "answer 1" in ui.transcript.value
    assert not ui.send_button.disabled


def test_model_errors_show_one_clear_message_and_keep_the_question(image):
    model = FakeModel(fail_with=RuntimeError("CUDA error: device-side assert"))
    ui = ChatWidget(ChatSession(model, image=image))
    ui.text.value = "What is it?"
    ui.on_send()
    assert ui.message.startswith("The model failed: RuntimeError: CUDA error: device-side assert")
    assert "The model failed" in ui.status.value
    assert ui.text.value == "What is it?"            # the reader can press Send again
    assert ui.session.messages == []
    assert not ui.send_button.disabled


def test_empty_send_asks_for_a_question():
    model = FakeModel()
    ui = ChatWidget(ChatSession(model))
    ui.on_send()
    assert ui.message == "Type a question first." and ui.message in ui.status.value and model.calls == []


def test_out_of_memory_suggests_fewer_visual_tokens():
    class OutOfMemoryError(RuntimeError):   # the name torch.cuda.OutOfMemoryError has
        pass
    assert "max_pixels" in error_message(OutOfMemoryError("CUDA out of memory"))
    assert "max_pixels" in error_message(MemoryError())


def test_transcript_is_html_escaped():
    ui = ChatWidget(ChatSession(lambda messages: "<script>alert(1)</script>"))
    ui.text.value = "<b>hi</b>"
    ui.on_send()
    assert "<script>" not in ui.transcript.value and "&lt;script&gt;" in ui.transcript.value
    assert "<b>hi</b>" not in ui.transcript.value


def test_reset_button_clears_the_transcript():
    ui = ChatWidget(ChatSession(FakeModel()))
    ui.text.value = "q"
    ui.on_send()
    ui.reset_button.click()
    assert ui.session.messages == [] and "No messages yet" in ui.transcript.value


def test_clicks_queued_behind_an_answer_neither_rerun_the_model_nor_complain():
    model = FakeModel()
    ui = ChatWidget(ChatSession(model))
    ui.text.value = "What is it?"
    for _ in range(50):                     # clicks queued in the kernel arrive one after the other
        ui.send_button.click()
    assert len(model.calls) == 1 and ui.status.value == "" and ui.message == ""
    assert ui.transcript.value.count("answer 1") == 1
    ui.text.value = "x"                     # once the reader types again, Send on an empty box says what to do
    ui.text.value = ""
    ui.send_button.click()
    assert ui.message == "Type a question first." and len(model.calls) == 1


def test_a_click_while_the_model_runs_is_ignored():
    def generate(messages):
        calls.append(ui.send_button.disabled)
        if len(calls) < 50:
            ui.send_button.click()          # a click that arrives while the model is still busy
        return "an answer"
    calls = []
    ui = ChatWidget(ChatSession(generate))
    ui.text.value = "q"
    ui.send_button.click()
    assert calls == [True] and len(ui.session.messages) == 2 and not ui.send_button.disabled
