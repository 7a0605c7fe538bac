"""Prompt text for BLIP-2-style models: a question in the trained format, after earlier question/answer turns.

BLIP-2 has no chat template. It was fine-tuned for VQA on `Question: {} Answer:`, and "chat" is the earlier
turns written into the same prompt. Without the format the model tends to echo the question or stop at once.
"""
from __future__ import annotations

from collections.abc import Iterable

QA_TEMPLATE = "Question: {} Answer:"          # the BLIP-2 paper / model card VQA format
SHORT_ANSWER_TEMPLATE = "Question: {} Short answer:"


def _clean(text, what: str) -> str:
    if not isinstance(text, str):
        raise TypeError(f"{what} must be a str, got {type(text).__name__}")
    return " ".join(text.split())      # newlines and runs of spaces would leak into the prompt


def _fill(template: str, text: str) -> str:
    # Not str.format: any other brace in a template ("{x}", "{{}}", a lone "{") would raise or drop the question.
    return template.replace("{}", text)


def qa_prompt(question: str, history: Iterable[tuple[str, str]] = (), template: str = QA_TEMPLATE,
              sep: str = " ") -> str:
    """The prompt for `question` after the (question, answer) pairs in `history`, oldest first.

    >>> qa_prompt("What color is it?", history=[("What is this?", "a cat")])
    'Question: What is this? Answer: a cat. Question: What color is it? Answer:'

    Earlier answers get a final period (unless they end with . ! or ?) so each turn reads as a sentence, as in
    the BLIP-2 model card's chat example. The template must hold exactly one `{}`; other braces are kept as text.
    """
    if template.count("{}") != 1:
        raise ValueError(f"template must contain exactly one '{{}}' for the question, got {template!r}")
    question = _clean(question, "question")
    if not question:
        raise ValueError("question is empty")
    turns = []
    for i, pair in enumerate(history):
        try:
            if isinstance(pair, (str, bytes)):
                raise TypeError
            q, a = pair
        except (TypeError, ValueError):
            raise ValueError(f"history[{i}] must be a (question, answer) pair, got {pair!r}") from None
        q, a = _clean(q, f"history[{i}] question"), _clean(a, f"history[{i}] answer")
        if not q:
            raise ValueError(f"history[{i}] has an empty question")
        if a and a[-1] not in ".!?":
            a += "."
        turns.append(f"{_fill(template, q)} {a}".rstrip())
    turns.append(_fill(template, question))
    return sep.join(turns)


def instruction_prompt(question: str, short: bool = True) -> str:
    """InstructBLIP-style instruction: the question itself, optionally asking for a short answer.

    InstructBLIP was instruction-tuned on templates such as "<question> Short answer:" /
    "Question: {} Short answer:"; plain questions and open requests ("Describe the image in detail.") also work.
    """
    question = _clean(question, "question")
    if not question:
        raise ValueError("question is empty")
    return _fill(SHORT_ANSWER_TEMPLATE, question) if short else question
