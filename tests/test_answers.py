"""Saved answers: the contract between the VQA notebooks (blip2, instructblip, qwen_vl)."""
import json

import pytest

from vlsteps import answers, images


@pytest.fixture(autouse=True)
def private_outputs(tmp_path, monkeypatch):
    monkeypatch.setenv("VLSTEPS_OUTPUTS_DIR", str(tmp_path))
    return tmp_path


def test_questions_name_real_sample_photos_and_are_questions():
    assert answers.QUESTIONS
    for photo, questions in answers.QUESTIONS.items():
        assert photo in images.SAMPLE_PHOTOS
        assert questions and len(set(questions)) == len(questions)
        assert all(isinstance(q, str) and q.strip().endswith("?") for q in questions)


def test_save_then_load_round_trips(private_outputs):
    qa = {p: {q: f"answer {i}" for i, q in enumerate(qs)} for p, qs in answers.QUESTIONS.items()}
    qa["chelsea"]["What animal is this?"] = "a cat — ünïcode"
    path = answers.save_answers("blip2", "blip2", qa, standin=True)
    assert path == private_outputs / "answers" / "blip2.json"
    loaded = answers.load_answers("blip2")
    assert loaded == {"notebook": "blip2", "model": "blip2", "standin": True, "answers": qa}


def test_saving_again_replaces_and_leaves_no_temporary_files(private_outputs):
    answers.save_answers("nb", "m1", {"chelsea": {"q?": "a"}}, standin=False)
    answers.save_answers("nb", "m2", {"coffee": {"q?": "b"}}, standin=True)
    loaded = answers.load_answers("nb")
    assert loaded["model"] == "m2" and loaded["answers"] == {"coffee": {"q?": "b"}} and loaded["standin"] is True
    assert [p.name for p in (private_outputs / "answers").iterdir()] == ["nb.json"]


def test_a_failed_save_keeps_the_previous_file(private_outputs):
    answers.save_answers("nb", "m1", {"chelsea": {"q?": "a"}}, standin=False)
    with pytest.raises(TypeError):
        answers.save_answers("nb", "m2", {"chelsea": {"q?": object()}}, standin=False)
    assert answers.load_answers("nb")["model"] == "m1"


def test_load_is_none_when_absent_or_corrupt(private_outputs):
    assert answers.load_answers("never_ran") is None
    folder = private_outputs / "answers"
    folder.mkdir(exist_ok=True)
    (folder / "broken.json").write_text('{"notebook": "broken", "answ')
    assert answers.load_answers("broken") is None
    (folder / "wrong.json").write_text(json.dumps({"notebook": "wrong", "model": "m", "standin": False,
                                                   "answers": {"chelsea": ["not", "a", "dict"]}}))
    assert answers.load_answers("wrong") is None
    (folder / "list.json").write_text("[1, 2]")
    assert answers.load_answers("list") is None


@pytest.mark.parametrize("bad", ["../evil", "a/b", "", ".."])
def test_notebook_names_cannot_escape_the_answers_folder(bad):
    with pytest.raises(ValueError):
        answers.save_answers(bad, "m", {}, standin=True)


def test_answers_must_be_strings():
    with pytest.raises(TypeError):
        answers.save_answers("nb", "m", {"chelsea": {"What animal is this?": None}}, standin=True)
    with pytest.raises(TypeError):
        answers.save_answers("nb", "m", ["not a dict"], standin=True)
