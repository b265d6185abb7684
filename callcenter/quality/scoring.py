"""The pure part of QA scorecards: a form's rules, the score of an evaluation, ISO weeks and
the TOML file that describes a form. No I/O here.

The score (percent, 0-100) of an evaluation::

    score = 100 * sum(weight * points / max_points) / sum(weight)

over every question of the form. **Every question must be answered**: an evaluation with a
question left out is refused (:class:`~callcenter.quality.QaError` naming the question), not
scored over the answered ones, so that two scores of one form always weigh the same
questions. A yes/no question is worth 0 (no) or 1 (yes) point; a scale question 0..N. When a
**critical** question gets 0 points the evaluation fails: its score is 0 and it is marked
``critical_failed``, whatever the other answers.

Scores are rounded to 2 decimals (half to even) after clamping to [0, 100]; both steps are
monotone, so more points never give a lower score.
"""

from __future__ import annotations

import datetime as dt
import math
import tomllib
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from callcenter.db.models_quality import QA_KINDS
from callcenter.quality import QaError

NAME_MAX = 64
TEXT_MAX = 500
COMMENT_MAX = 4000
MAX_POINTS = 100  # the table's check: max_points BETWEEN 1 AND 100
MAX_WEIGHT = 1000.0
MAX_QUESTIONS = 100


# --- forms and questions ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QuestionSpec:
    """A question before it is stored: what ``qa questions add`` and a form file give."""

    text: str
    kind: str = "yes_no"
    max_points: int = 1
    weight: float = 1.0
    critical: bool = False


@dataclass(frozen=True, slots=True)
class Question:
    """A stored question of a form, as scoring needs it."""

    id: int
    position: int
    text: str
    kind: str
    max_points: int
    weight: float
    critical: bool = False

    def label(self) -> str:
        """How an error names the question: its number on the form and its text."""
        return f"question {self.position} ({self.text!r})"

    def choices(self) -> list[int]:
        return list(range(self.max_points + 1))


@dataclass(frozen=True, slots=True)
class FormSpec:
    """A form as a file describes it (``qa forms import``)."""

    name: str
    queue: str | None
    questions: tuple[QuestionSpec, ...]
    active: bool = True


def _no_controls(text: str, what: str) -> str:
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs") for c in text):
        raise QaError(f"{what} must not contain control or invisible characters")
    return text


def check_form_name(name: str) -> str:
    """A form's name: 1-64 characters, no control characters; spaces inside are fine."""
    name = unicodedata.normalize("NFC", name.strip())
    if not name or len(name) > NAME_MAX:
        raise QaError(f"a form's name has 1 to {NAME_MAX} characters (got {len(name)})")
    return _no_controls(name, "a form's name")


def check_question(
    text: str,
    kind: str = "yes_no",
    max_points: int | None = None,
    weight: float = 1.0,
    critical: bool = False,
) -> QuestionSpec:
    """A valid question, or :class:`QaError` saying what is wrong.

    A yes/no question is worth 1 point (``max_points`` absent or 1); a scale question needs
    its top ``max_points`` (1-100: the answers are 0..max_points). The weight is a positive
    finite number (at most 1000); it counts relative to the other questions' weights.
    """
    text = unicodedata.normalize("NFC", " ".join(text.split()))
    if not text:
        raise QaError("a question needs its text")
    if len(text) > TEXT_MAX:
        raise QaError(f"a question's text has at most {TEXT_MAX} characters (got {len(text)})")
    _no_controls(text, "a question's text")
    if kind not in QA_KINDS:
        raise QaError(f"kind {kind!r} is not one of {', '.join(QA_KINDS)}")
    if kind == "yes_no":
        if max_points not in (None, 1):
            raise QaError("a yes_no question is worth 1 point: leave out --max (or use kind scale)")
        max_points = 1
    elif max_points is None:
        raise QaError(f"a scale question needs its top: --max N (1-{MAX_POINTS})")
    if isinstance(max_points, bool) or not isinstance(max_points, int):
        raise QaError(f"max must be a whole number 1-{MAX_POINTS}")
    if not 1 <= max_points <= MAX_POINTS:
        raise QaError(f"max must be 1-{MAX_POINTS} (got {max_points})")
    if isinstance(weight, bool) or not isinstance(weight, int | float):
        raise QaError("weight must be a number")
    weight = float(weight)
    if not math.isfinite(weight) or not 0 < weight <= MAX_WEIGHT:
        raise QaError(f"weight must be above 0 and at most {MAX_WEIGHT:g} (got {weight:g})")
    if not isinstance(critical, bool):
        raise QaError("critical must be true or false")
    return QuestionSpec(text, kind, max_points, weight, critical)


# --- the score ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Score:
    """The score in percent (0-100), whether a critical question failed, and which."""

    score: float
    critical_failed: bool
    failed: tuple[int, ...] = ()


def check_answers(questions: Sequence[Question], answers: Mapping[int, int]) -> None:
    """:class:`QaError` unless ``answers`` (question id -> points) answers every question of
    the form with 0..max_points, and nothing else. The error names the first question (in
    the form's order) that is wrong."""
    if not questions:
        raise QaError("the form has no questions: add some before scoring calls with it")
    for q in questions:
        if q.id not in answers:
            raise QaError(f"{q.label()} is not answered: every question must be")
        points = answers[q.id]
        if isinstance(points, bool) or not isinstance(points, int):
            raise QaError(f"{q.label()}: the answer must be a whole number")
        if not 0 <= points <= q.max_points:
            raise QaError(f"{q.label()}: the answer must be 0-{q.max_points} (got {points})")
    known = {q.id for q in questions}
    extra = sorted(set(answers) - known)
    if extra:
        raise QaError(f"answers to questions that are not on this form (ids {extra})")


def score(questions: Sequence[Question], answers: Mapping[int, int]) -> Score:
    """The score of a complete set of answers (see the module's docstring); raises
    :class:`QaError` as :func:`check_answers` does."""
    check_answers(questions, answers)
    failed = tuple(q.id for q in questions if q.critical and answers[q.id] == 0)
    if failed:
        return Score(0.0, True, failed)
    total = math.fsum(q.weight for q in questions)
    got = math.fsum(q.weight * answers[q.id] / q.max_points for q in questions)
    value = min(100.0, max(0.0, 100.0 * got / total))
    return Score(round(value, 2), False)


def read_answers(questions: Iterable[Question], fields: Mapping[str, str]) -> dict[int, int]:
    """The answers of a web form whose field ``q<id>`` holds a question's points. A field
    left empty or absent is no answer (:func:`score` then names the question); one that is
    not a whole number is :class:`QaError` naming the question."""
    out: dict[int, int] = {}
    for q in questions:
        raw = fields.get(f"q{q.id}", "").strip()
        if not raw:
            continue
        if not raw.isdigit() or not raw.isascii() or len(raw) > 3:
            raise QaError(f"{q.label()}: the answer must be a whole number 0-{q.max_points}")
        out[q.id] = int(raw)
    return out


def check_comment(comment: str) -> str:
    comment = comment.replace("\r\n", "\n").strip()
    if len(comment) > COMMENT_MAX:
        raise QaError(f"the comment has at most {COMMENT_MAX} characters (got {len(comment)})")
    if any(unicodedata.category(c) == "Cc" and c not in "\n\t" for c in comment):
        raise QaError("the comment must not contain control characters")
    return comment


# --- ISO weeks ------------------------------------------------------------------------------


def week_of(day: dt.date) -> str:
    """``2026-W48``: the ISO 8601 week (Monday to Sunday; week 1 holds the year's first
    Thursday, so 2027-01-01 is in 2026-W53)."""
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def parse_week(text: str) -> dt.date:
    """The Monday of ISO week ``YYYY-Www`` (as ``<input type=week>`` sends it; ``2026w48``
    and ``2026-48`` are read too); :class:`QaError` otherwise."""
    raw = text.strip().upper().replace("-W", "-").replace("W", "-")
    year, _, week = raw.partition("-")
    try:
        return dt.date.fromisocalendar(int(year), int(week), 1)
    except ValueError:
        raise QaError(f"{text!r} is not an ISO week: write it as 2026-W48") from None


def week_span(first: dt.date, last: dt.date, tz: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    """[Monday 00:00 of ``first``'s week, Monday 00:00 after ``last``'s week) in the site's
    time zone, as aware datetimes; :class:`QaError` when ``last`` comes before ``first``."""
    start = first - dt.timedelta(days=first.weekday())
    end = last - dt.timedelta(days=last.weekday()) + dt.timedelta(weeks=1)
    if end <= start:
        raise QaError(f"the last week ({week_of(last)}) comes before the first ({week_of(first)})")
    if (end - start).days > 7 * 520:
        raise QaError("at most 520 weeks at once")
    return (
        dt.datetime.combine(start, dt.time(), tzinfo=tz),
        dt.datetime.combine(end, dt.time(), tzinfo=tz),
    )


def recent_weeks(today: dt.date, weeks: int) -> tuple[dt.date, dt.date]:
    """The Mondays of the first and the last of the ``weeks`` weeks up to ``today``'s."""
    if not 1 <= weeks <= 520:
        raise QaError("weeks must be 1-520")
    monday = today - dt.timedelta(days=today.weekday())
    return monday - dt.timedelta(weeks=weeks - 1), monday


# --- a form's file --------------------------------------------------------------------------

FORM_KEYS = frozenset({"name", "queue", "active", "question"})
QUESTION_KEYS = frozenset({"text", "kind", "max", "weight", "critical"})


def parse_form_file(text: str, source: str = "the file") -> FormSpec:
    """A form described in TOML (``qa forms import``)::

        name = "Sales calls v1"
        queue = "sales"        # leave out: the form of every queue without its own
        active = true          # default: it becomes the queue's form at once

        [[question]]
        text = "Greeted the caller with the company's name"
        critical = true        # kind yes_no (the default), worth 1 point

        [[question]]
        text = "Found out what the caller needed"
        kind = "scale"
        max = 5
        weight = 3

    Unknown keys are an error (a typo must not pass silently); so is a form without
    questions. The error names the question by its number in the file.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise QaError(f"{source} is not valid TOML: {exc}") from None
    unknown = sorted(set(data) - FORM_KEYS)
    if unknown:
        raise QaError(
            f"{source}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(FORM_KEYS))})"
        )
    name = data.get("name")
    if not isinstance(name, str):
        raise QaError(f'{source}: the form needs its name (name = "...")')
    queue = data.get("queue")
    if queue is not None and (not isinstance(queue, str) or not queue.strip()):
        raise QaError(f"{source}: queue must be a queue's name (or left out)")
    active = data.get("active", True)
    if not isinstance(active, bool):
        raise QaError(f"{source}: active must be true or false")
    raw_questions = data.get("question", [])
    if not isinstance(raw_questions, list) or not raw_questions:
        raise QaError(f"{source}: the form needs at least one [[question]]")
    if len(raw_questions) > MAX_QUESTIONS:
        raise QaError(f"{source}: at most {MAX_QUESTIONS} questions")
    questions = []
    for number, item in enumerate(raw_questions, 1):
        questions.append(_question_of(item, f"{source}: question {number}"))
    return FormSpec(
        check_form_name(name), queue.strip() if queue else None, tuple(questions), active
    )


def _question_of(item: Any, where: str) -> QuestionSpec:
    if not isinstance(item, dict):
        raise QaError(f"{where} must be a table ([[question]])")
    unknown = sorted(set(item) - QUESTION_KEYS)
    if unknown:
        raise QaError(
            f"{where}: unknown key(s) {', '.join(unknown)} (known: "
            f"{', '.join(sorted(QUESTION_KEYS))})"
        )
    text = item.get("text")
    if not isinstance(text, str):
        raise QaError(f'{where}: needs its text (text = "...")')
    try:
        return check_question(
            text,
            item.get("kind", "yes_no"),
            item.get("max"),
            item.get("weight", 1.0),
            item.get("critical", False),
        )
    except QaError as exc:
        raise QaError(f"{where}: {exc}") from None
