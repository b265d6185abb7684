"""Satisfaction, the pure part: CSAT and NPS on hand-computed answers, empty groups, ISO weeks
in the site's time zone, how figures read; the survey's question kinds in the IVR loader and
how keys become answers."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from callcenter.agi.ivr import IvrError, Question, load_ivrs
from callcenter.agi.survey import answer_of, call_score
from callcenter.satisfaction import measures as m
from callcenter.satisfaction.measures import Csat, Nps, Satisfaction
from tests.test_agi_ivr import RAW

NEW_YORK = ZoneInfo("America/New_York")


def answers(scale: int, *scores: int) -> Satisfaction:
    return m.total(m.counted(scale, s) for s in scores)


# --- definitions ------------------------------------------------------------------------------


def test_csat_is_the_share_of_fours_and_fives() -> None:
    s = answers(5, 5, 4, 3, 1, 5)
    assert s.csat == Csat(answers=5, satisfied=3)
    assert s.csat.score == pytest.approx(0.6)
    assert s.nps == Nps()  # no NPS answer: no NPS
    assert s.nps.score is None


def test_nps_is_promoters_less_detractors_in_percent() -> None:
    s = answers(10, 10, 9, 8, 7, 6, 0, 9)
    assert (s.nps.answers, s.nps.promoters, s.nps.passives, s.nps.detractors) == (7, 3, 2, 2)
    assert s.nps.score == pytest.approx(100 * (3 - 2) / 7)  # 14.29
    assert s.csat.score is None
    assert answers(10, 0, 6).nps.score == -100
    assert answers(10, 7, 8).nps.score == 0  # passives only: 0, and there are answers
    assert answers(10, 9, 10).nps.score == 100


@pytest.mark.parametrize(
    ("score", "satisfied"), [(1, 0), (2, 0), (3, 0), (4, 1), (5, 1)]
)  # fmt: skip
def test_every_csat_box(score: int, satisfied: int) -> None:
    assert m.counted(5, score) == Satisfaction(csat=Csat(1, satisfied))


@pytest.mark.parametrize("score", range(11))
def test_every_nps_box(score: int) -> None:
    nps = m.counted(10, score).nps
    assert (nps.promoters, nps.passives, nps.detractors) == (
        (1, 0, 0) if score >= 9 else (0, 1, 0) if score >= 7 else (0, 0, 1)
    )


def test_an_empty_group_has_no_figure_not_zero() -> None:
    empty = Satisfaction()
    assert empty.figures() == {"csat": None, "csat_n": 0, "nps": None, "nps_n": 0}
    assert m.fmt_csat(empty.csat.score) == "—"
    assert m.fmt_nps(empty.nps.score) == "—"
    assert m.total([]) == empty
    # A real 0 is shown as one: everybody answered 1 to 3.
    assert m.fmt_csat(answers(5, 1, 2, 3).csat.score) == "0%"


def test_answers_outside_their_scale_are_a_bug_not_data() -> None:
    for scale, score in ((5, 0), (5, 6), (10, -1), (10, 11), (7, 3)):
        with pytest.raises(ValueError, match="scale"):
            m.counted(scale, score)


def test_tally_folds_grouped_counts() -> None:
    rows = [("sales", 5, 5, 3), ("sales", 5, 2, 1), ("sales", 10, 9, 2), ("sales", 10, 3, 2),
            (None, 5, 4, 1), ("support", 10, 8, 4)]  # fmt: skip
    groups = m.tally(rows)
    assert groups["sales"].csat == Csat(4, 3)
    assert groups["sales"].nps == Nps(4, 2, 2)
    assert groups["sales"].nps.score == 0
    assert groups[None].figures() == {"csat": 1.0, "csat_n": 1, "nps": None, "nps_n": 0}
    assert groups["support"].nps.score == 0
    assert groups["support"].csat.score is None
    assert [k for k, _ in m.ordered(groups)] == ["sales", "support", None]
    everyone = m.total(groups.values())
    assert (everyone.csat.answers, everyone.nps.answers) == (5, 8)
    assert everyone.as_dict() == {
        "csat": 0.8, "csat_n": 5, "csat_satisfied": 4, "nps": 0.0, "nps_n": 8,
        "promoters": 2, "passives": 4, "detractors": 2,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("value", "csat", "nps"),
    [(0.845, "85%", "+1"), (0.5, "50%", "+1"), (0.0, "0%", "0"), (1.0, "100%", "+1"),
     (-0.4, None, "0"), (-20.5, None, "-20"), (14.2857, None, "+14"), (-99.6, None, "-100")],
)  # fmt: skip
def test_figures_read_rounded_half_up_as_the_board_script_does(
    value: float, csat: str | None, nps: str
) -> None:
    if csat is not None:
        assert m.fmt_csat(value) == csat
    assert m.fmt_nps(value) == nps


# --- weeks in the site's time zone ---------------------------------------------------------------


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def test_the_week_is_the_local_one() -> None:
    # Monday 2026-11-23 03:00 UTC is Sunday 22:00 in New York: still week 47 there.
    assert m.week_of(utc("2026-11-23T03:00"), NEW_YORK) == "2026-W47"
    assert m.week_of(utc("2026-11-23T03:00"), ZoneInfo("UTC")) == "2026-W48"
    assert m.week_of(utc("2026-11-23T05:00"), NEW_YORK) == "2026-W48"  # local midnight
    with pytest.raises(ValueError, match="aware"):
        m.week_of(dt.datetime(2026, 11, 23, 3), NEW_YORK)


def test_weeks_across_the_iso_year() -> None:
    # 2026 has 53 ISO weeks: 2027-01-01 to 01-03 are in 2026-W53, 01-04 starts 2027-W01.
    assert m.iso_week(dt.date(2026, 12, 31)) == "2026-W53"
    assert m.iso_week(dt.date(2027, 1, 1)) == "2026-W53"
    assert m.week_of(utc("2027-01-04T04:59"), NEW_YORK) == "2026-W53"
    assert m.week_of(utc("2027-01-04T05:00"), NEW_YORK) == "2027-W01"
    assert m.iso_week(dt.date(2026, 1, 1)) == "2026-W01"  # a Thursday
    assert m.iso_week(dt.date(2021, 1, 3)) == "2020-W53"


def test_weeks_between_lists_every_week_touched_once() -> None:
    since = dt.datetime(2026, 11, 20, tzinfo=NEW_YORK)  # a Friday
    until = dt.datetime(2026, 12, 7, tzinfo=NEW_YORK)  # a Monday, excluded
    assert m.weeks_between(since, until, NEW_YORK) == ["2026-W47", "2026-W48", "2026-W49"]
    one_day = m.weeks_between(since, since + dt.timedelta(days=1), NEW_YORK)
    assert one_day == ["2026-W47"]
    new_year = m.weeks_between(
        dt.datetime(2026, 12, 28, tzinfo=NEW_YORK), dt.datetime(2027, 1, 12, tzinfo=NEW_YORK),
        NEW_YORK,
    )  # fmt: skip
    assert new_year == ["2026-W53", "2027-W01", "2027-W02"]


def test_weeks_start_on_local_mondays_across_a_change_of_time() -> None:
    # New York left daylight saving time on Sunday 1 November 2026: the week that holds it
    # starts at 04:00 UTC (EDT) and the next at 05:00 UTC (EST).
    starts = m.week_starts(utc("2026-10-28T12:00"), utc("2026-11-10T12:00"), NEW_YORK)
    assert starts == [
        ("2026-W44", utc("2026-10-26T04:00")),
        ("2026-W45", utc("2026-11-02T05:00")),
        ("2026-W46", utc("2026-11-09T05:00")),
    ]
    assert starts[0][1] <= utc("2026-10-28T12:00")  # the first starts at or before since
    assert (starts[1][1] - starts[0][1]) == dt.timedelta(days=7, hours=1)


# --- the survey's questions -------------------------------------------------------------------


def survey_raw(*questions: dict[str, Any]) -> dict[str, Any]:
    raw = copy.deepcopy(RAW)
    raw["main"]["survey"]["questions"] = list(questions)
    return raw


def test_questions_are_csat_unless_nps() -> None:
    ivr = load_ivrs(
        survey_raw(
            {"name": "agent", "prompt": "q-agent"},
            {"name": "recommend", "prompt": ["q-recommend", "then-press-pound"], "kind": "nps"},
            {"name": "fix", "prompt": "q-fix", "kind": "csat"},
        ),
        "UTC",
    )["main"]
    assert ivr.survey is not None
    kinds = [(q.name, q.kind, q.scale) for q in ivr.survey.questions]
    assert kinds == [("agent", "csat", 5), ("recommend", "nps", 10), ("fix", "csat", 5)]
    assert ("survey question 'recommend'", "then-press-pound") in list(ivr.prompts())


@pytest.mark.parametrize(
    ("question", "message"),
    [
        ({"name": "r", "prompt": "x", "kind": "ces"},
         "ivr main: survey: question 'r': kind = 'ces' is not csat (answered 1-5) or nps"),
        ({"name": "r", "prompt": "x", "kind": 10}, "kind = 10 is not csat"),
        ({"name": "r", "prompt": "x", "scale": 10}, "needs name and prompt, and may have kind"),
        ({"name": "r", "kind": "nps"}, "needs name and prompt"),
    ],
)  # fmt: skip
def test_a_bad_question_kind_is_refused_by_name(question: dict[str, Any], message: str) -> None:
    with pytest.raises(IvrError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_ivrs(survey_raw(question), "UTC")


@pytest.mark.parametrize(
    ("digits", "kind", "answer"),
    [("1", "csat", 1), ("5", "csat", 5), ("0", "csat", None), ("6", "csat", None),
     ("*", "csat", None), ("0", "nps", 0), ("1", "nps", 1), ("7", "nps", 7), ("10", "nps", 10),
     ("11", "nps", None), ("05", "nps", None), ("00", "nps", None), ("1*", "nps", None),
     ("", "nps", None)],
)  # fmt: skip
def test_keys_to_answers(digits: str, kind: str, answer: int | None) -> None:
    assert answer_of(digits, kind) == answer


def test_the_call_score_averages_csat_answers_only() -> None:
    agent, fix = Question("agent", ("a",)), Question("fix", ("f",))
    recommend = Question("recommend", ("r",), "nps")
    assert call_score([(recommend, 10)], "average") is None
    assert call_score([(recommend, 0), (agent, 4)], "average") == 4
    assert call_score([(agent, 4), (recommend, 0), (fix, 5)], "average") == 5  # 4.5 half up
    assert call_score([(recommend, 2), (fix, 3), (agent, 5)], "first") == 3
