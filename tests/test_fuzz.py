"""Property-based checks of the helpers that take untrusted input: model text, model entities, prompts, saved files.

Each property is what a notebook relies on: the box parsers never raise and only return drawable boxes, the prompt
builders keep their format or refuse with a clear error, and saved answers round-trip or read back as None.
"""
import json
import math
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from vlsteps import answers
from vlsteps.boxes import Box
from vlsteps.qwen_boxes import parse_boxes
from vlsteps.kosmos_boxes import entities_to_boxes
from vlsteps.prompts import QA_TEMPLATE, SHORT_ANSWER_TEMPLATE, instruction_prompt, qa_prompt

# Derandomized: CI sees the same examples on every run (and no .hypothesis/ folder is written).
FAST = settings(max_examples=150, deadline=1000, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])


# --- qwen_boxes.parse_boxes ------------------------------------------------------------------------------
def _drawable(boxes):
    assert isinstance(boxes, list)
    for b in boxes:
        assert isinstance(b, Box) and isinstance(b.label, str)
        assert all(isinstance(v, float) and math.isfinite(v) for v in b.xyxy)
        assert 0 <= b.x1 < b.x2 and 0 <= b.y1 < b.y2


HUGE = "9" * 5000   # past Python's 4300-digit int-from-str limit


# A coordinate as JSON text: ordinary and huge numbers, NaN/Infinity tokens, strings, nested lists, null.
number_token = st.one_of(
    st.integers(-10**6, 10**6).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(json.dumps),
    st.integers(300, 6000).map(lambda n: "9" * n),
    st.integers(300, 6000).map(lambda n: "-" + "9" * n),
    st.integers(300, 400).map(lambda n: "1" * n + ".5"),
    st.sampled_from(['"nan"', '"inf"', '"-Infinity"', '"12"', "null", "true", "[1, 2]", "[[3]]", "{}"]),
)
label_token = st.one_of(st.text().map(lambda s: json.dumps(s, ensure_ascii=False)), number_token)


@st.composite
def grounding_answers(draw):
    """Near-valid Qwen2.5-VL answers: the real shape with odd values, optionally fenced, wrapped or cut off."""
    entries = []
    for _ in range(draw(st.integers(0, 4))):
        coords = ", ".join(draw(st.lists(number_token, min_size=3, max_size=5)))
        entries.append(f'{{"bbox_2d": [{coords}], "label": {draw(label_token)}}}')
    text = "[" + ", ".join(entries) + "]"
    if draw(st.booleans()):
        text = "```json\n" + text + "\n```"
    text = draw(st.text(max_size=20)) + text + draw(st.text(max_size=20))
    if draw(st.booleans()):
        text = text[: draw(st.integers(0, len(text)))]
    return text


@FAST
@given(st.one_of(st.text(), st.text(alphabet='[]{}":,.-+eE0123456789 \n`jsonabel_2dx')))
@example("[" * 5000)
@example('[{"bbox_2d": [1, 2, ' + HUGE + ', 4]}]')
def test_parse_boxes_never_raises_on_any_text(text):
    _drawable(parse_boxes(text))


@FAST
@given(grounding_answers())
@example('[{"bbox_2d": [1, 2, ' + "9" * 400 + ', 4], "label": "x"}]')       # float() overflows
@example('[{"bbox_2d": [1, 2, ' + HUGE + ', 4], "label": "x"}]')            # int() digit limit
@example('[{"bbox_2d": [1, 2, 3, 4], "label": ' + HUGE + '}]')              # a huge number as the label
def test_parse_boxes_keeps_only_drawable_boxes_from_near_valid_json(text):
    _drawable(parse_boxes(text))


@FAST
@given(st.integers(0, 10**4), st.integers(0, 10**4), st.integers(1, 10**4), st.integers(1, 10**4), st.text())
@example(1, 2, 3, 4, "a ``` fence")     # the fence regex stopped at the backticks inside the label: no box
def test_parse_boxes_finds_a_valid_box_whatever_its_label(x, y, w, h, label):
    text = "```json\n" + json.dumps([{"bbox_2d": [x, y, x + w, y + h], "label": label}]) + "\n```"
    assert parse_boxes(text) == [Box(x, y, x + w, y + h, label.strip())]


# --- kosmos_boxes.entities_to_boxes ---------------------------------------------------------------------
scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(300, 1000).map(lambda n: 10**n),
                   st.floats(), st.fractions(), st.text(max_size=5), st.binary(max_size=5))
anything = st.recursive(scalar, lambda inner: st.one_of(st.lists(inner, max_size=5),
                                                        st.lists(inner, max_size=5).map(tuple),
                                                        st.dictionaries(st.text(max_size=3), inner, max_size=3)),
                        max_leaves=30)
coordinate = st.one_of(st.floats(-0.5, 1.5), st.floats(), st.integers(-2, 2), st.just(10**400),
                       st.just(Fraction(10**400)), st.booleans(), st.none(), st.text(max_size=3))
entity = st.tuples(st.one_of(st.text(), anything), anything,
                   st.lists(st.one_of(st.lists(coordinate, min_size=3, max_size=5).map(tuple), anything), max_size=4))


@FAST
@given(st.one_of(anything, st.lists(st.one_of(entity, anything), max_size=5)),
       st.tuples(st.integers(1, 5000), st.integers(1, 5000)))
@example([("a cat", (0, 5), [(0.1, 0.1, 10**400, 0.5)])], (100, 100))          # float() overflows
@example([("a cat", (0, 5), [(0.1, 0.1, Fraction(10**400), 0.5)])], (100, 100))
def test_entities_to_boxes_never_raises_and_stays_inside_the_image(entities, size):
    width, height = size
    for label, (x1, y1, x2, y2) in entities_to_boxes(entities, size):
        assert isinstance(label, str)
        assert all(isinstance(v, int) for v in (x1, y1, x2, y2))
        assert 0 <= x1 <= x2 <= width and 0 <= y1 <= y2 <= height


# --- prompts ---------------------------------------------------------------------------------------------
def _clean(s):
    return " ".join(s.split())


words = st.text(min_size=1).filter(lambda s: s.strip())
pairs = st.lists(st.tuples(st.one_of(words, st.text()), st.text()), max_size=4)


@FAST
@given(words, pairs)
@example("q?", [(" ", "a")])            # an empty earlier question left a double space in the prompt
def test_qa_prompt_keeps_the_blip2_format(question, history):
    if any(not q.strip() for q, _ in history):
        with pytest.raises(ValueError, match=r"history\[\d+\] has an empty question"):
            qa_prompt(question, history=history)
        return
    prompt = qa_prompt(question, history=history)
    assert prompt.endswith(QA_TEMPLATE.replace("{}", _clean(question)))
    assert "\n" not in prompt and "  " not in prompt
    assert prompt.count("Question: ") >= len(history) + 1


@FAST
@given(words, st.one_of(st.text(), st.builds(lambda head, tail: head + "{}" + tail, st.text(), st.text())))
@example("q?", "{{}}")                   # str.format turned it into a literal '{}': the question was lost
@example("q?", "{} {x}")                 # any other brace raised KeyError/ValueError/IndexError from format
@example("q?", "{} {")
@example("q?", "Q: {0} A:")
def test_qa_prompt_puts_the_question_in_any_one_slot_template_or_refuses_clearly(question, template):
    if template.count("{}") != 1:
        with pytest.raises(ValueError, match="exactly one"):
            qa_prompt(question, template=template)
        return
    head, tail = template.split("{}")
    assert qa_prompt(question, template=template) == head + _clean(question) + tail


@FAST
@given(st.one_of(st.text(), st.none(), st.integers(), st.lists(st.text())), st.booleans())
def test_instruction_prompt_is_the_clean_question_or_a_clear_error(question, short):
    if not isinstance(question, str):
        with pytest.raises(TypeError):
            instruction_prompt(question, short=short)
    elif not question.strip():
        with pytest.raises(ValueError, match="empty"):
            instruction_prompt(question, short=short)
    else:
        expected = SHORT_ANSWER_TEMPLATE.replace("{}", _clean(question)) if short else _clean(question)
        assert instruction_prompt(question, short=short) == expected


@FAST
@given(words, st.lists(st.one_of(anything, st.tuples(anything, anything)), max_size=3))
def test_qa_prompt_refuses_malformed_history_with_a_clear_error(question, history):
    try:
        qa_prompt(question, history=history)
    except (TypeError, ValueError) as e:
        assert "history[" in str(e)


# --- answers ---------------------------------------------------------------------------------------------
@pytest.fixture
def outputs(tmp_path, monkeypatch):
    monkeypatch.setenv("VLSTEPS_OUTPUTS_DIR", str(tmp_path))
    return tmp_path


qa_dicts = st.dictionaries(st.text(max_size=10), st.dictionaries(st.text(max_size=20), st.text(max_size=20),
                                                                 max_size=3), max_size=3)


@settings(FAST, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(name=st.text(max_size=12))
@example(name="nb\n")                    # `$` matched before a trailing newline: a file name with a newline in it
@example(name="...")
def test_answers_path_is_a_plain_file_in_the_answers_folder_or_refused(outputs, name):
    try:
        path = answers.answers_path(name)
    except ValueError as e:
        assert "notebook name" in str(e)
        return
    assert path.parent == answers.answers_dir() and path.name == name + ".json"
    assert all(c.isascii() and (c.isalnum() or c in "_.-") for c in name)


@settings(FAST, max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(qa=qa_dicts, model=st.text(max_size=10), standin=st.booleans())
def test_saved_answers_load_back_unchanged(outputs, qa, model, standin):
    answers.save_answers("nb", model, qa, standin=standin)
    assert answers.load_answers("nb") == {"notebook": "nb", "model": model, "standin": standin, "answers": qa}
    assert [p.name for p in answers.answers_dir().iterdir()] == ["nb.json"]


def _json_like():
    return st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text()),
                        lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                        max_leaves=20)


@settings(FAST, max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(content=st.one_of(
    st.binary(max_size=200),
    _json_like().map(json.dumps),
    st.builds(lambda m, s, a: json.dumps({"notebook": "nb", "model": m, "standin": s, "answers": a}),
              _json_like(), _json_like(), _json_like())))
@example(content="[" * 100000)           # RecursionError from the JSON decoder escaped
@example(content='{"notebook": "nb", "model": "m", "standin": "yes", "answers": {}}')
@example(content='{"notebook": "nb", "model": 3, "standin": false, "answers": {}}')
def test_load_answers_reads_any_file_as_a_valid_record_or_none(outputs, content):
    folder = answers.answers_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "nb.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    record = answers.load_answers("nb")
    if record is None:
        return
    assert set(record) == {"notebook", "model", "standin", "answers"}
    assert isinstance(record["notebook"], str) and isinstance(record["model"], str)
    assert isinstance(record["standin"], bool)
    for photo, qa in record["answers"].items():
        assert isinstance(photo, str) and all(isinstance(q, str) and isinstance(a, str) for q, a in qa.items())
