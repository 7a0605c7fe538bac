"""The BLIP-2 prompt format: what blip2 and instructblip rely on for VQA and chat with context."""
import pytest

from vlsteps.prompts import QA_TEMPLATE, instruction_prompt, qa_prompt


def test_a_single_question_uses_the_blip2_vqa_format():
    assert qa_prompt("What animal is this?") == "Question: What animal is this? Answer:"


def test_history_is_rendered_oldest_first_before_the_new_question():
    prompt = qa_prompt("Why?", history=[("Which city is this?", "singapore"),
                                        ("What is in the water?", "a statue of a merlion")])
    assert prompt == ("Question: Which city is this? Answer: singapore. "
                      "Question: What is in the water? Answer: a statue of a merlion. "
                      "Question: Why? Answer:")


def test_the_prompt_always_ends_ready_for_the_answer():
    for history in ([], [("q1?", "a1")], [("q1?", "a1"), ("q2?", "a2!")]):
        assert qa_prompt("next?", history=history).endswith("Question: next? Answer:")


def test_answers_keep_their_own_final_punctuation():
    assert "Answer: yes!" in qa_prompt("q?", history=[("q0?", "yes!")])
    assert "Answer: two cats." in qa_prompt("q?", history=[("q0?", "two cats.")])
    assert ".." not in qa_prompt("q?", history=[("q0?", "two cats.")])


def test_whitespace_and_newlines_are_collapsed():
    prompt = qa_prompt("  What is\nthis? ", history=[("a\n\nb?", "  c  ")])
    assert "\n" not in prompt and "  " not in prompt
    assert prompt == "Question: a b? Answer: c. Question: What is this? Answer:"


def test_empty_earlier_answer_does_not_leave_trailing_space_or_period():
    assert qa_prompt("q?", history=[("q0?", "")]) == "Question: q0? Answer: Question: q? Answer:"


def test_other_templates():
    assert qa_prompt("Is it red?", template="Q: {} A:") == "Q: Is it red? A:"
    assert qa_prompt("b?", history=[("a?", "x")], template="Q: {} A:", sep="\n") == "Q: a? A: x.\nQ: b? A:"
    assert QA_TEMPLATE.format("x") == "Question: x Answer:"


@pytest.mark.parametrize("template", ["Question: Answer:", "Q: {} A: {}"])
def test_template_needs_exactly_one_slot(template):
    with pytest.raises(ValueError, match="exactly one"):
        qa_prompt("q?", template=template)


@pytest.mark.parametrize("bad", [[("only a question",)], ["qa"], [("q", "a", "extra")], [None]])
def test_malformed_history_is_a_clear_error(bad):
    with pytest.raises(ValueError, match=r"history\[0\]"):
        qa_prompt("q?", history=bad)


def test_non_text_and_empty_questions_are_rejected():
    with pytest.raises(ValueError, match="empty"):
        qa_prompt("   ")
    with pytest.raises(TypeError):
        qa_prompt(None)
    with pytest.raises(TypeError):
        qa_prompt("q?", history=[("q0?", 3)])


def test_history_may_be_any_iterable_of_pairs():
    pairs = ((f"q{i}?", f"a{i}") for i in range(2))
    assert qa_prompt("q2?", history=pairs) == ("Question: q0? Answer: a0. Question: q1? Answer: a1. "
                                               "Question: q2? Answer:")


def test_instruction_prompt():
    assert instruction_prompt("What color is its fur?") == "Question: What color is its fur? Short answer:"
    assert instruction_prompt(" Describe the image\nin detail. ", short=False) == "Describe the image in detail."
    with pytest.raises(ValueError):
        instruction_prompt("")
