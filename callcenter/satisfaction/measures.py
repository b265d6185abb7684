"""CSAT and NPS from survey answers: the definitions, with no I/O.

An answer is on one of two scales (``survey_answers.scale``, fixed by the question's kind):

- **CSAT** questions (scale 5, answers 1-5). CSAT = the share of CSAT answers that are 4 or
  5 (the "top-two-box" share), 0..1, over ``csat_n`` answers.
- **NPS** questions (scale 10, "how likely are you to recommend us", answers 0-10).
  Promoters answer 9 or 10, passives 7 or 8, detractors 0 to 6. NPS = % promoters - %
  detractors over the NPS answers, from -100 to +100, over ``nps_n`` answers.

Every answer counts once: a survey of two CSAT questions answered by one caller gives two
CSAT answers (the figure is of answers, not of callers). A group with no answer of a scale has
no figure for it (``None``, shown as "—" with n=0), never 0%: nobody said they were unhappy.

Weeks are ISO 8601 weeks (Monday to Sunday, week 1 holds the year's first Thursday) of the
answer's date in the site's time zone, written ``2026-W48``; the last days of December can
belong to week 1 of the next ISO year and the first days of January to week 52 or 53 of the
previous one.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar
from zoneinfo import ZoneInfo

#: A question's kind and the scale its answers are stored on (``survey_answers.scale``).
Kind = Literal["csat", "nps"]
SCALES: dict[str, int] = {"csat": 5, "nps": 10}
CSAT_SCALE = SCALES["csat"]
NPS_SCALE = SCALES["nps"]
#: The lowest and highest answer of each scale (the table's check constraint).
RANGES: dict[int, tuple[int, int]] = {CSAT_SCALE: (1, 5), NPS_SCALE: (0, 10)}
#: CSAT's "satisfied" answers (top two boxes of 1-5); NPS's promoters and detractors.
SATISFIED = frozenset({4, 5})
PROMOTERS = frozenset({9, 10})
DETRACTORS = frozenset(range(7))
#: What the board, the report and the API show for a figure nobody answered.
NO_FIGURE = "—"
#: How ``callcenter report --satisfaction`` can group the answers.
Dimension = Literal["queue", "agent", "campaign", "week"]
DIMENSIONS: tuple[Dimension, ...] = ("queue", "agent", "campaign", "week")

K = TypeVar("K")


@dataclass(frozen=True, slots=True)
class Csat:
    """CSAT answers: how many, and how many were 4 or 5."""

    answers: int = 0
    satisfied: int = 0

    @property
    def score(self) -> float | None:
        """The top-two-box share, 0..1; None with no answer."""
        return self.satisfied / self.answers if self.answers else None


@dataclass(frozen=True, slots=True)
class Nps:
    """NPS answers: how many, how many promoters (9-10) and detractors (0-6)."""

    answers: int = 0
    promoters: int = 0
    detractors: int = 0

    @property
    def passives(self) -> int:
        return self.answers - self.promoters - self.detractors

    @property
    def score(self) -> float | None:
        """% promoters - % detractors, -100..100 (not rounded); None with no answer."""
        if not self.answers:
            return None
        return 100.0 * (self.promoters - self.detractors) / self.answers


@dataclass(frozen=True, slots=True)
class Satisfaction:
    """The CSAT and NPS of one group of answers. Groups add up (``a + b``)."""

    csat: Csat = field(default_factory=Csat)
    nps: Nps = field(default_factory=Nps)

    def __add__(self, other: Satisfaction) -> Satisfaction:
        return Satisfaction(
            Csat(
                self.csat.answers + other.csat.answers, self.csat.satisfied + other.csat.satisfied
            ),
            Nps(
                self.nps.answers + other.nps.answers,
                self.nps.promoters + other.nps.promoters,
                self.nps.detractors + other.nps.detractors,
            ),
        )

    @property
    def answers(self) -> int:
        return self.csat.answers + self.nps.answers

    def figures(self) -> dict[str, Any]:
        """The four numbers a board shows: ``csat`` (0..1 or None), ``csat_n``, ``nps``
        (-100..100 or None) and ``nps_n``."""
        return {
            "csat": self.csat.score,
            "csat_n": self.csat.answers,
            "nps": self.nps.score,
            "nps_n": self.nps.answers,
        }

    def as_dict(self) -> dict[str, Any]:
        """:meth:`figures` and the counts behind them."""
        return {
            **self.figures(),
            "csat_satisfied": self.csat.satisfied,
            "promoters": self.nps.promoters,
            "passives": self.nps.passives,
            "detractors": self.nps.detractors,
        }


def counted(scale: int, score: int, count: int = 1) -> Satisfaction:
    """``count`` answers ``score`` on ``scale``. Raises ValueError for an answer outside its
    scale (the table's check constraint forbids it: a bug, not data to skip)."""
    if scale not in RANGES:
        raise ValueError(f"survey scale {scale} is not 5 (CSAT) or 10 (NPS)")
    low, high = RANGES[scale]
    if not low <= score <= high or count < 0:
        raise ValueError(f"{count} answers of {score} on the scale {scale} (allowed {low}-{high})")
    if scale == CSAT_SCALE:
        return Satisfaction(csat=Csat(count, count if score in SATISFIED else 0))
    return Satisfaction(
        nps=Nps(
            count,
            count if score in PROMOTERS else 0,
            count if score in DETRACTORS else 0,
        )
    )


def tally(rows: Iterable[tuple[K, int, int, int]]) -> dict[K, Satisfaction]:
    """Fold ``(group, scale, score, count)`` rows (one SQL ``GROUP BY``) into each group's
    satisfaction."""
    out: dict[K, Satisfaction] = {}
    for key, scale, score, count in rows:
        out[key] = out.get(key, Satisfaction()) + counted(scale, score, count)
    return out


def total(groups: Iterable[Satisfaction]) -> Satisfaction:
    out = Satisfaction()
    for g in groups:
        out = out + g
    return out


# --- weeks ---------------------------------------------------------------------------------


def iso_week(day: dt.date) -> str:
    """``2026-W48``: the ISO year and week of ``day``."""
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def week_of(at: dt.datetime, tz: ZoneInfo) -> str:
    """The ISO week of an aware time, by its date in ``tz``."""
    if at.tzinfo is None:
        raise ValueError("week_of needs an aware datetime")
    return iso_week(at.astimezone(tz).date())


def week_starts(
    since: dt.datetime, until: dt.datetime, tz: ZoneInfo
) -> list[tuple[str, dt.datetime]]:
    """Every ISO week that [since, until) touches in ``tz``, in order: its name and when it
    starts (Monday 00:00 there, as an aware UTC time; a week around a change of daylight
    saving time lasts an hour more or less). The first starts at or before ``since``."""
    first = since.astimezone(tz).date()
    last = (until - dt.timedelta(microseconds=1)).astimezone(tz).date()
    monday = first - dt.timedelta(days=first.weekday())
    out = []
    while monday <= last:
        start = dt.datetime.combine(monday, dt.time(), tzinfo=tz).astimezone(dt.UTC)
        out.append((iso_week(monday), start))
        monday += dt.timedelta(days=7)
    return out


def weeks_between(since: dt.datetime, until: dt.datetime, tz: ZoneInfo) -> list[str]:
    """The names of :func:`week_starts`."""
    return [name for name, _ in week_starts(since, until, tz)]


def ordered(groups: Mapping[str | None, Satisfaction]) -> Iterator[tuple[str | None, Satisfaction]]:
    """Groups by name; the group without one (answers with no queue, agent or campaign) last."""
    for key in sorted(groups, key=lambda k: (k is None, k or "")):
        yield key, groups[key]


# --- how figures read ------------------------------------------------------------------------


def _half_up(value: float) -> int:
    """Rounded half up (84.5 -> 85, -20.5 -> -20), exactly as JavaScript's Math.round: the
    board's server render and its live updates (static/board.js) must agree."""
    low = math.floor(value)
    return low + 1 if value - low >= 0.5 else low


def fmt_csat(ratio: float | None) -> str:
    """``80%``; "—" with no answer."""
    return NO_FIGURE if ratio is None else f"{_half_up(ratio * 100)}%"


def fmt_nps(value: float | None) -> str:
    """``+35``, ``0``, ``-12``; "—" with no answer."""
    if value is None:
        return NO_FIGURE
    n = _half_up(value)
    return f"+{n}" if n > 0 else str(n)
