"""QA scorecards, the pure part: the score (hand-computed cases and properties), the rules of
questions, answers read from a web form, ISO weeks, and a form's TOML file."""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.quality import QaError
from callcenter.quality.scoring import (
    Question,
    check_comment,
    check_form_name,
    check_question,
    parse_form_file,
    parse_week,
    read_answers,
    recent_weeks,
    score,
    week_of,
    week_span,
)


def q(
    qid: int, max_points: int = 1, weight: float = 1.0, critical: bool = False, text: str = ""
) -> Question:
    kind = "yes_no" if max_points == 1 else "scale"
    return Question(qid, qid, text or f"question {qid}", kind, max_points, weight, critical)


# --- hand-computed scores -------------------------------------------------------------------


def test_scores_computed_by_hand() -> None:
    form = [q(1), q(2, max_points=5, weight=3), q(3, weight=2)]
    # yes (1*1/1) + 4 of 5 at weight 3 (3*0.8 = 2.4) + no (0): 3.4 of 6 = 56.67%
    assert score(form, {1: 1, 2: 4, 3: 0}).score == 56.67
    assert score(form, {1: 1, 2: 5, 3: 1}).score == 100.0
    assert score(form, {1: 0, 2: 0, 3: 0}).score == 0.0
    # 2 of 5 at weight 3 = 1.2, plus yes at weight 2: 3.2 of 6 = 53.33%
    result = score(form, {1: 0, 2: 2, 3: 1})
    assert (result.score, result.critical_failed, result.failed) == (53.33, False, ())
    # Weights are relative: doubling them all changes nothing.
    doubled = [q(1, weight=2), q(2, max_points=5, weight=6), q(3, weight=4)]
    assert score(doubled, {1: 1, 2: 4, 3: 0}).score == 56.67
    # One question of 0..10 with weight 0.5 alone: its share is the score.
    assert score([q(7, max_points=10, weight=0.5)], {7: 7}).score == 70.0


def test_a_critical_question_at_zero_zeroes_the_score() -> None:
    form = [q(1, critical=True), q(2, max_points=5, weight=3), q(3, max_points=4, critical=True)]
    ok = score(form, {1: 1, 2: 5, 3: 1})
    assert ok.score == pytest.approx(100 * (1 + 3 + 0.25) / 5, abs=0.005)
    assert not ok.critical_failed
    failed = score(form, {1: 0, 2: 5, 3: 4})
    assert (failed.score, failed.critical_failed, failed.failed) == (0.0, True, (1,))
    both = score(form, {1: 0, 2: 5, 3: 0})
    assert both.failed == (1, 3)
    # A critical scale question fails only at 0: 1 of 4 passes.
    assert not score(form, {1: 1, 2: 0, 3: 1}).critical_failed


def test_every_question_must_be_answered_and_the_error_names_it() -> None:
    form = [q(1, text="Greeted the caller"), q(2, max_points=5, text="Solved the need")]
    with pytest.raises(QaError, match=r"question 2 \('Solved the need'\) is not answered"):
        score(form, {1: 1})
    with pytest.raises(QaError, match=r"question 1 \('Greeted the caller'\) is not answered"):
        score(form, {})
    with pytest.raises(QaError, match=r"question 2 .*must be 0-5 \(got 6\)"):
        score(form, {1: 1, 2: 6})
    with pytest.raises(QaError, match=r"question 1 .*must be 0-1 \(got -1\)"):
        score(form, {1: -1, 2: 3})
    with pytest.raises(QaError, match="not on this form"):
        score(form, {1: 1, 2: 3, 99: 1})
    with pytest.raises(QaError, match="no questions"):
        score([], {})
    with pytest.raises(QaError, match="whole number"):
        score(form, {1: True, 2: 3})


def test_answers_are_read_from_the_web_form() -> None:
    form = [
        Question(11, 1, "Greeted", "yes_no", 1, 1.0),
        Question(12, 2, "Empathy", "scale", 5, 1.0),
    ]
    assert read_answers(form, {"q11": "1", "q12": " 3 ", "csrf": "x", "q99": "1"}) == {
        11: 1,
        12: 3,
    }
    assert read_answers(form, {"q11": "", "q12": "0"}) == {12: 0}  # empty: not answered
    for bad in ("-1", "2.5", "three", "٣", "1e3", "0x1", "1000"):
        with pytest.raises(QaError, match=r"question 2 \('Empathy'\).*whole number"):
            read_answers(form, {"q11": "1", "q12": bad})


# --- properties -----------------------------------------------------------------------------

questions_st = st.lists(
    st.tuples(
        st.integers(1, 10),  # max points
        st.floats(0.01, 1000, allow_nan=False, allow_infinity=False),  # weight
        st.booleans(),  # critical
    ),
    min_size=1,
    max_size=12,
).map(lambda qs: [q(i, m, w, c) for i, (m, w, c) in enumerate(qs, 1)])


@st.composite
def form_and_answers(draw: st.DrawFn) -> tuple[list[Question], dict[int, int]]:
    form = draw(questions_st)
    answers = {x.id: draw(st.integers(0, x.max_points)) for x in form}
    return form, answers


@given(form_and_answers())
def test_the_score_is_between_0_and_100(case: tuple[list[Question], dict[int, int]]) -> None:
    form, answers = case
    result = score(form, answers)
    assert 0.0 <= result.score <= 100.0
    assert result.critical_failed == any(x.critical and answers[x.id] == 0 for x in form)
    if result.critical_failed:
        assert result.score == 0.0
    if all(answers[x.id] == x.max_points for x in form):
        assert result.score == 100.0


@given(form_and_answers(), st.data())
def test_more_points_never_lower_the_score(
    case: tuple[list[Question], dict[int, int]], data: st.DataObject
) -> None:
    form, answers = case
    which = data.draw(st.sampled_from(form))
    if answers[which.id] == which.max_points:
        return
    more = {**answers, which.id: data.draw(st.integers(answers[which.id] + 1, which.max_points))}
    assert score(form, more).score >= score(form, answers).score


@given(form_and_answers())
def test_a_missing_answer_is_always_refused(case: tuple[list[Question], dict[int, int]]) -> None:
    form, answers = case
    first = form[0]
    del answers[first.id]
    with pytest.raises(QaError, match=f"question {first.position} "):
        score(form, answers)


# --- questions and forms --------------------------------------------------------------------


def test_question_rules() -> None:
    assert check_question("  Greeted   the caller ") == check_question("Greeted the caller")
    yes_no = check_question("Greeted", "yes_no")
    assert (yes_no.max_points, yes_no.weight, yes_no.critical) == (1, 1.0, False)
    scale = check_question("Empathy", "scale", 5, 2.5, True)
    assert (scale.kind, scale.max_points, scale.weight, scale.critical) == ("scale", 5, 2.5, True)
    for args, message in (
        (("",), "needs its text"),
        (("x" * 501,), "at most 500"),
        (("a\x07b",), "control"),
        (("x", "stars"), "not one of yes_no, scale"),
        (("x", "yes_no", 5), "worth 1 point"),
        (("x", "scale"), "needs its top"),
        (("x", "scale", 0), "1-100"),
        (("x", "scale", 101), "1-100"),
        (("x", "scale", 5, 0), "above 0"),
        (("x", "scale", 5, -1), "above 0"),
        (("x", "scale", 5, float("nan")), "above 0"),
        (("x", "scale", 5, float("inf")), "above 0"),
        (("x", "scale", 5, 1001), "at most 1000"),
    ):
        with pytest.raises(QaError, match=message):
            check_question(*args)
    assert check_form_name("  Sales v1 ") == "Sales v1"
    for bad in ("", "   ", "x" * 65, "tab\there"):
        with pytest.raises(QaError):
            check_form_name(bad)
    assert check_comment(" good call\r\nthanks ") == "good call\nthanks"
    with pytest.raises(QaError, match="at most 4000"):
        check_comment("x" * 4001)
    with pytest.raises(QaError, match="control"):
        check_comment("bell\x07")


# --- ISO weeks ------------------------------------------------------------------------------


def test_iso_weeks() -> None:
    assert week_of(dt.date(2026, 11, 23)) == "2026-W48"
    assert week_of(dt.date(2027, 1, 1)) == "2026-W53"  # a Friday: still 2026's last week
    assert week_of(dt.date(2025, 12, 29)) == "2026-W01"  # a Monday: 2026's first week
    assert parse_week("2026-W48") == dt.date(2026, 11, 23)
    assert parse_week("2026w48") == parse_week("2026-48") == dt.date(2026, 11, 23)
    assert parse_week("2026-W53") == dt.date(2026, 12, 28)
    for bad in ("2025-W53", "2026-W00", "2026", "W48", "", "yesterday", "2026-W4x"):
        with pytest.raises(QaError, match="ISO week"):
            parse_week(bad)
    tz = ZoneInfo("America/New_York")
    since, until = week_span(dt.date(2026, 11, 25), dt.date(2026, 12, 2), tz)
    assert since == dt.datetime(2026, 11, 23, tzinfo=tz)
    assert until == dt.datetime(2026, 12, 7, tzinfo=tz)
    with pytest.raises(QaError, match="comes before"):
        week_span(dt.date(2026, 12, 2), dt.date(2026, 11, 25), tz)
    assert recent_weeks(dt.date(2026, 11, 26), 4) == (dt.date(2026, 11, 2), dt.date(2026, 11, 23))
    assert recent_weeks(dt.date(2026, 11, 26), 1) == (dt.date(2026, 11, 23), dt.date(2026, 11, 23))


# --- a form's file --------------------------------------------------------------------------

FORM = """
name = "Sales calls v1"
queue = "sales"

[[question]]
text = "Greeted the caller with the company's name"
critical = true

[[question]]
text = "Found out what the caller needed"
kind = "scale"
max = 5
weight = 3
"""


def test_a_form_file_is_read() -> None:
    spec = parse_form_file(FORM)
    assert (spec.name, spec.queue, spec.active) == ("Sales calls v1", "sales", True)
    first, second = spec.questions
    assert (first.kind, first.max_points, first.weight, first.critical) == ("yes_no", 1, 1.0, True)
    assert (second.kind, second.max_points, second.weight) == ("scale", 5, 3.0)
    bare = parse_form_file('name = "Any"\nactive = false\n[[question]]\ntext = "Polite"\n')
    assert (bare.queue, bare.active, len(bare.questions)) == (None, False, 1)


def test_a_bad_form_file_gets_one_line_naming_what_is_wrong() -> None:
    cases = {
        "name = ": "not valid TOML",
        '[[question]]\ntext = "x"\n': "needs its name",
        'name = "x"\n': "at least one",
        'name = "x"\nqueues = "sales"\n[[question]]\ntext = "x"\n': "unknown key(s) queues",
        'name = "x"\n[[question]]\ntext = "a"\n[[question]]\ntxt = "b"\n': "question 2: unknown",
        'name = "x"\n[[question]]\ntext = "a"\nkind = "scale"\n': "question 1: a scale question",
        'name = "x"\n[[question]]\ntext = "a"\nweight = "heavy"\n': "question 1: weight",
        'name = "x"\nactive = "yes"\n[[question]]\ntext = "a"\n': "active must be",
        'name = "x"\nqueue = 5\n[[question]]\ntext = "a"\n': "queue must be",
        'name = "x"\nquestion = "a"\n': "at least one",
    }
    for text, message in cases.items():
        with pytest.raises(QaError, match=re.escape(message)) as info:
            parse_form_file(text, "f.toml")
        assert "\n" not in str(info.value), text
        assert str(info.value).startswith("f.toml")
