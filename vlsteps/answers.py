"""The questions the VQA notebooks share, and their saved answers, so later notebooks can compare models.

blip2, instructblip and qwen_vl ask the same QUESTIONS about the same sample photos and save what
they answered with `save_answers`; any notebook can then `load_answers` a previous one's file and put
the answers side by side. Files are small JSON documents under `outputs_dir()/answers/`.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from .files import atomic_write
from .paths import outputs_dir

# Sample photo name (vlsteps.sample_photo) -> the questions every VQA notebook asks about it.
QUESTIONS: dict[str, list[str]] = {
    "chelsea": ["What animal is this?", "What color is its fur?"],
    "coffee": ["What drink is in the cup?", "What is under the cup?"],
    "astronaut": ["What is this person wearing?", "What is in the background?"],
}

_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def answers_dir() -> Path:
    return outputs_dir() / "answers"


def answers_path(notebook: str) -> Path:
    """Where a notebook's answers live; the name must be a plain file name (no folders)."""
    if not isinstance(notebook, str) or not _NAME.fullmatch(notebook) or notebook in (".", ".."):
        raise ValueError(f"notebook name must be letters, digits, '_', '-' or '.', got {notebook!r}")
    return answers_dir() / f"{notebook}.json"


def _check_answers(answers) -> dict[str, dict[str, str]]:
    if not isinstance(answers, dict):
        raise TypeError(f"answers must be {{photo: {{question: answer}}}}, got {type(answers).__name__}")
    clean = {}
    for photo, qa in answers.items():
        if not isinstance(photo, str) or not isinstance(qa, dict):
            raise TypeError(f"answers[{photo!r}] must be a dict {{question: answer}}, got {type(qa).__name__}")
        for question, answer in qa.items():
            if not isinstance(question, str) or not isinstance(answer, str):
                raise TypeError(f"answers[{photo!r}][{question!r}] must map a str question to a str answer, "
                                f"got {type(answer).__name__}")
        clean[photo] = dict(qa)
    return clean


def save_answers(notebook: str, model_key: str, answers: dict[str, dict[str, str]], standin: bool) -> Path:
    """Write {"notebook", "model", "standin", "answers"} as JSON, atomically (a crash never leaves half a file)."""
    path = answers_path(notebook)
    record = {"notebook": notebook, "model": str(model_key), "standin": bool(standin),
              "answers": _check_answers(answers)}
    atomic_write(path, json.dumps(record, indent=1, ensure_ascii=False) + "\n")
    return path


def load_answers(notebook: str) -> dict | None:
    """A notebook's saved answers, or None when it has not run yet or its file is unreadable."""
    path = answers_path(notebook)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):   # RecursionError: brackets nested deeper than the decoder goes
        return None
    if not isinstance(record, dict) or not {"notebook", "model", "standin", "answers"} <= record.keys():
        return None
    if not (isinstance(record["notebook"], str) and isinstance(record["model"], str)
            and isinstance(record["standin"], bool)):
        return None
    try:
        record["answers"] = _check_answers(record["answers"])
    except TypeError:
        return None
    return record
