"""The call log as the forecast needs it: offered calls per half hour of each past week,
the handle time, the callers' patience (for Erlang A) and, for the history page, the agents
logged in.

Everything a forecast reads of ``queue_visits`` comes from one statement
(:data:`SLOTS_SQL`): an index-only range scan of ``ix_queue_visits_queue_queued`` or
``ix_queue_visits_queued`` (the planner picks; the INCLUDE columns of both hold every column
it reads, so no new index is needed), grouped first by 15 minutes of UTC (``date_bin``:
integer arithmetic on each row) and only then, on the few thousand groups, turned into half
hours of the site's wall clock (15 minutes line up with every time zone's offset; the zone's
rules run once per group, not per call).
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from callcenter.planning import erlang
from callcenter.planning.forecast import (
    SLOTS_PER_DAY,
    SLOTS_PER_WEEK,
    Accuracy,
    backtest,
    backtest_mape,
    forecast,
    mape,
    since_first_calls,
)
from callcenter.reports import DEFAULT_SL_SECONDS
from callcenter.timespec import start_of_day

#: Per queue and half hour (of the site's wall clock, counted from :origin, a local midnight):
#: the offered calls (queue visits), and the sums the handle time and the patience come from.
SLOTS_SQL = """
SELECT queue,
       floor(extract(epoch FROM (bin AT TIME ZONE :tz) - CAST(:origin AS timestamp))
             / 1800)::int AS slot,
       sum(offered) AS offered, sum(handled) AS handled, sum(handle) AS handle,
       sum(abandons) AS abandons, sum(waited) AS waited
  FROM (SELECT queue, date_bin('15 minutes', queued_at, CAST(:since AS timestamptz)) AS bin,
               count(*) AS offered,
               count(*) FILTER (WHERE answered_at IS NOT NULL AND talk_seconds IS NOT NULL)
                   AS handled,
               coalesce(sum(coalesce(talk_seconds, 0) + coalesce(wrapup_seconds, 0))
                   FILTER (WHERE answered_at IS NOT NULL AND talk_seconds IS NOT NULL), 0)
                   AS handle,
               count(*) FILTER (WHERE outcome = 'abandoned') AS abandons,
               coalesce(sum(wait_seconds), 0) AS waited
          FROM queue_visits
         WHERE queued_at >= :since AND queued_at < :until {queue}
         GROUP BY 1, 2) AS bins
 GROUP BY 1, 2
"""

#: Each queue's SL threshold (seconds).
THRESHOLDS_SQL = "SELECT name, service_level_seconds FROM queues"

#: Seconds of agent login within each [since, until) (the half hours' bounds, as arrays),
#: from ``agent_sessions``; an open session counts up to :now. For one queue, only its
#: members (as configured now: memberships have no history). The sessions of the day are
#: those that ended after it began or are still open (an index on ``logout_at`` would make
#: that a range scan: without one it reads every session, 20-70 ms at two years of 300
#: agents).
LOGGED_IN_SQL = """
SELECT b.i::int AS i,
       -- (least and greatest skip NULLs: the half hours nobody was in must not count)
       coalesce(sum(greatest(extract(epoch FROM least(coalesce(s.logout_at, :now), b.until,
                                                       :now)
                                                 - greatest(s.login_at, b.since)), 0))
                    FILTER (WHERE s.login_at IS NOT NULL), 0) AS seconds
  FROM unnest(CAST(:starts AS timestamptz[]), CAST(:ends AS timestamptz[]))
       WITH ORDINALITY AS b(since, until, i)
  LEFT JOIN (SELECT login_at, logout_at FROM agent_sessions
              WHERE login_at < :day_end AND (logout_at > :day_start OR logout_at IS NULL)
                    {members}) AS s
         ON s.login_at < b.until AND coalesce(s.logout_at, :now) > b.since
        AND s.login_at < :now
 GROUP BY b.i
"""
MEMBERS = """AND agent IN (SELECT a.name FROM agents a
                             JOIN queue_members m ON m.agent_id = a.id
                             JOIN queues q ON q.id = m.queue_id
                            WHERE q.name = :queue)"""


@dataclass(slots=True)
class Log:
    """One queue's call log by week (oldest first): offered calls per half hour of the week,
    and per week the sums behind the handle time and the patience."""

    offered: list[list[float]]
    handled: list[int]
    handle: list[float]
    abandons: list[int]
    waited: list[float]

    @classmethod
    def empty(cls, weeks: int) -> Log:
        return cls([[0.0] * SLOTS_PER_WEEK for _ in range(weeks)], [0] * weeks,
                   [0.0] * weeks, [0] * weeks, [0.0] * weeks)  # fmt: skip

    def aht(self, weeks: slice, default: float = 180.0) -> float:
        """Mean handle time (talk and wrap-up of answered visits) over ``weeks``."""
        handled = sum(self.handled[weeks])
        return sum(self.handle[weeks]) / handled if handled else default

    def patience(self, weeks: slice) -> float:
        """Mean patience: abandons over all time waited (inf: nobody gave up)."""
        abandons = sum(self.abandons[weeks])
        return sum(self.waited[weeks]) / abandons if abandons else math.inf


def load(
    session: Session, queue: str | None, origin: dt.datetime, weeks: int, tz: zoneinfo.ZoneInfo,
    until: dt.datetime | None = None,
) -> dict[str, Log]:  # fmt: skip
    """Each queue's log (one queue's, or every queue's) of the ``weeks`` weeks from
    ``origin`` (a naive local midnight), up to ``until`` (default: their end)."""
    since = origin.replace(tzinfo=tz).astimezone(dt.UTC)
    end = (origin + dt.timedelta(weeks=weeks)).replace(tzinfo=tz).astimezone(dt.UTC)
    sql = SLOTS_SQL.format(queue="AND queue = :queue" if queue is not None else "")
    params = {"queue": queue, "since": since, "until": min(until or end, end), "tz": str(tz),
              "origin": origin}  # fmt: skip
    logs: dict[str, Log] = {}
    for q, slot, offered, handled, handle, abandons, waited in session.execute(
        sa.text(sql), params
    ):
        if not 0 <= slot < weeks * SLOTS_PER_WEEK:
            continue  # the hour a clock going back repeats, at the very edge
        log = logs.get(q) or logs.setdefault(q, Log.empty(weeks))
        w, s = divmod(slot, SLOTS_PER_WEEK)
        log.offered[w][s] += float(offered)
        log.handled[w] += int(handled)
        log.handle[w] += float(handle)
        log.abandons[w] += int(abandons)
        log.waited[w] += float(waited)
    return logs


@dataclass(frozen=True, slots=True)
class Plan:
    queue: str
    start: dt.date
    days: int
    weeks: int
    aht: float
    patience: float
    growth_per_week: float
    backtest: dict[str, float | None]
    #: one row per half hour: start (local ISO), calls, agents by Erlang C and by Erlang A
    slots: list[dict[str, Any]]


def monday_of(day: dt.date) -> dt.datetime:
    """The naive local midnight that begins ``day``'s week: weeks start on a Monday, so the
    slot numbering is by weekday."""
    return dt.datetime.combine(day - dt.timedelta(days=day.weekday()), dt.time(0))


def plan(
    session: Session,
    queue: str,
    start: dt.date,
    days: int,
    *,
    tz: zoneinfo.ZoneInfo,
    weeks: int = 8,
    target_seconds: float = 20.0,
    service_level: float = 0.8,
) -> Plan:
    """The forecast for ``days`` days from ``start`` (site-local), from the ``weeks`` weeks
    before it, and the agents needed per half hour."""
    if not 1 <= days <= 28 or not 2 <= weeks <= 104:
        raise erlang.PlanningError("days must be 1 to 28 and weeks 2 to 104")
    begin = dt.datetime.combine(start, dt.time(0))
    monday = monday_of(start)
    log = load(session, queue, monday - dt.timedelta(weeks=weeks), weeks, tz).get(queue)
    log = log or Log.empty(weeks)
    history = log.offered
    aht = log.aht(slice(None))
    patience = log.patience(slice(None))
    first_week = (begin - monday).days // 7
    fc = [forecast(history, ahead=1 + w).calls for w in range(first_week + days // 7 + 2)]
    slots = []
    for d in range(days):
        day = begin + dt.timedelta(days=d)
        week = (day - monday).days // 7
        for half in range(SLOTS_PER_DAY):
            at = day + dt.timedelta(minutes=30 * half)
            calls = fc[week][day.weekday() * SLOTS_PER_DAY + half]
            c, a = staffing(calls, aht, patience, target_seconds, service_level)
            slots.append({"start": at.isoformat(timespec="minutes"), "calls": round(calls, 2),
                          "agents_erlang_c": c.agents, "agents_erlang_a": a.agents,
                          "service_level_c": round(c.service_level, 4),
                          "service_level_a": round(a.service_level, 4)})  # fmt: skip
    growth = forecast(history).growth_per_week
    checked = dict(backtest(since_first_calls(history)))
    # The same held-out weeks by the history page's measure (MAPE over the half hours with
    # calls).
    accuracy = backtest_mape([history], held_out=2, history=weeks)
    checked.update(mape=accuracy.mape, seasonal_naive_mape=accuracy.naive_mape)
    return Plan(queue, start, days, weeks, round(aht, 1), patience, growth, checked, slots)


def staffing(
    calls: float, aht: float, patience: float, target: float, service_level: float
) -> tuple[erlang.Staffing, erlang.Staffing]:
    """The agents ``calls`` in half an hour need, by Erlang C and by Erlang A."""
    rate = calls / 1800.0
    c = erlang.agents_needed(rate, aht, target, service_level)
    a = erlang.agents_needed(rate, aht, target, service_level, patience=patience)
    return c, a


# --- the history page: the forecast for a day against what came -----------------------------


@dataclass(frozen=True, slots=True)
class QueueModel:
    """What the forecast learned of one queue for one week: its calls per half hour of the
    week, the handle time, the patience, and its SL threshold (seconds)."""

    name: str
    calls: tuple[float, ...]
    aht: float
    patience: float
    threshold: float


@dataclass(frozen=True, slots=True)
class Model:
    """The forecast of the week that begins on ``monday`` from the ``weeks`` weeks before
    it, for the queues that had calls in them (none: no history to forecast from), and its
    backtest. It reads only weeks gone by, so it can be kept while the week's days go on."""

    monday: dt.date
    queue: str | None
    weeks: int
    queues: tuple[QueueModel, ...]
    backtest: Accuracy


@dataclass(frozen=True, slots=True)
class HalfHour:
    label: str  # "HH:MM", the site's wall clock
    forecast: float
    #: the calls offered; None while the half hour is not over
    offered: int | None
    agents_c: int
    agents_a: int
    #: the mean number of agents logged in over the half hour; None before it began
    logged_in: float | None


@dataclass(frozen=True, slots=True)
class DayForecast:
    day: dt.date
    queue: str | None
    #: the queues forecast (added up for all queues): those with calls in the weeks learned
    queues: tuple[str, ...]
    #: the weeks before the day's week the forecast learned from
    weeks: int
    service_level: float
    slots: tuple[HalfHour, ...] = ()
    #: MAPE of the day's forecast over its half hours that had calls
    day_mape: float | None = None
    backtest: Accuracy = field(default_factory=lambda: Accuracy(None, None, 0))

    @property
    def has_history(self) -> bool:
        return bool(self.queues)


def learn(
    session: Session,
    queue: str | None,
    day: dt.date,
    *,
    tz: zoneinfo.ZoneInfo,
    weeks: int = 8,
    held_out: int = 4,
) -> Model:
    """The forecast of ``day``'s week (``queue``'s, or each queue's), from the ``weeks``
    weeks before it, as ``callcenter forecast --from`` a day of that week says it; and its
    MAPE on the ``held_out`` weeks before (each forecast from the ``weeks`` before it)."""
    start = monday_of(day)
    logs = load(session, queue, start - dt.timedelta(weeks=weeks + held_out), weeks + held_out,
                tz)  # fmt: skip
    learned = slice(held_out, held_out + weeks)
    names = sorted(q for q, log in logs.items() if any(map(any, log.offered[learned])))
    if not names:
        return Model(start.date(), queue, weeks, (), Accuracy(None, None, 0))
    thresholds = {str(q): int(t) for q, t in session.execute(sa.text(THRESHOLDS_SQL))}
    models = tuple(
        QueueModel(q, forecast(logs[q].offered[learned]).calls, logs[q].aht(learned),
                   logs[q].patience(learned), float(thresholds.get(q, DEFAULT_SL_SECONDS)))
        for q in names
    )  # fmt: skip
    checked = backtest_mape([logs[q].offered for q in names], held_out=held_out, history=weeks)
    return Model(start.date(), queue, weeks, models, checked)


def against(
    session: Session,
    model: Model,
    day: dt.date,
    *,
    tz: zoneinfo.ZoneInfo,
    now: dt.datetime,
    service_level: float = 0.8,
) -> DayForecast:
    """``day`` (in ``model``'s week) half hour by half hour: the forecast, the agents it
    needed to reach ``service_level`` within each queue's SL threshold (Erlang C and A),
    the calls offered and the agents logged in; the forecast's MAPE on the day. For all
    queues the queues' forecasts and agents are added up: each queue staffed on its own."""
    if not model.queues:
        return DayForecast(day, model.queue, (), model.weeks, service_level)
    if monday_of(day).date() != model.monday:
        raise ValueError(f"{day} is not in the week of {model.monday}")
    expected = [0.0] * SLOTS_PER_DAY
    agents_c = [0] * SLOTS_PER_DAY
    agents_a = [0] * SLOTS_PER_DAY
    first = day.weekday() * SLOTS_PER_DAY
    for q in model.queues:
        for half, calls in enumerate(q.calls[first : first + SLOTS_PER_DAY]):
            c, a = staffing(calls, q.aht, q.patience, q.threshold, service_level)
            expected[half] += calls
            agents_c[half] += c.agents
            agents_a[half] += a.agents
    day_start = start_of_day(day, tz)
    day_end = start_of_day(day + dt.timedelta(days=1), tz)
    logs = load(session, model.queue, dt.datetime.combine(day, dt.time(0)), 1, tz,
                until=min(day_end, now))  # fmt: skip
    bounds = half_hours(day, tz)
    offered = [
        int(sum(log.offered[0][half] for log in logs.values()))
        if bounds[half + 1] <= now else None
        for half in range(SLOTS_PER_DAY)
    ]  # fmt: skip
    present = logged_in(session, model.queue, bounds, day_start, day_end, now)
    slots = tuple(
        HalfHour(f"{half // 2:02d}:{half % 2 * 30:02d}", expected[half], offered[half],
                 agents_c[half], agents_a[half], present[half])
        for half in range(SLOTS_PER_DAY)
    )  # fmt: skip
    known = [(s.offered, s.forecast) for s in slots if s.offered is not None]
    return DayForecast(
        day, model.queue, tuple(q.name for q in model.queues), model.weeks, service_level,
        slots, mape([a for a, _ in known], [p for _, p in known]), model.backtest,
    )  # fmt: skip


def day_forecast(
    session: Session,
    queue: str | None,
    day: dt.date,
    *,
    tz: zoneinfo.ZoneInfo,
    now: dt.datetime,
    weeks: int = 8,
    held_out: int = 4,
    service_level: float = 0.8,
) -> DayForecast:
    """What the forecast (from the ``weeks`` weeks before ``day``'s week) expected of
    ``day`` against what came: :func:`learn`, then :func:`against`."""
    model = learn(session, queue, day, tz=tz, weeks=weeks, held_out=held_out)
    return against(session, model, day, tz=tz, now=now, service_level=service_level)


def half_hours(day: dt.date, tz: zoneinfo.ZoneInfo) -> list[dt.datetime]:
    """The 49 bounds (UTC) of ``day``'s 48 half hours of wall clock: each the first instant
    the clock shows it. Where the clock jumps forward, the half hours it skips are empty;
    where it goes back, the half hour before the jump lasts until the clock passes it
    again."""
    local = dt.datetime.combine(day, dt.time(0))
    bounds = [(local + dt.timedelta(minutes=30 * i)).replace(tzinfo=tz).astimezone(dt.UTC)
              for i in range(SLOTS_PER_DAY + 1)]  # fmt: skip
    # A time the clock skips converts past the jump: it is first shown at the jump itself.
    for i in range(SLOTS_PER_DAY - 1, -1, -1):
        bounds[i] = min(bounds[i], bounds[i + 1])
    return bounds


def logged_in(
    session: Session, queue: str | None, bounds: Sequence[dt.datetime],
    day_start: dt.datetime, day_end: dt.datetime, now: dt.datetime,
) -> list[float | None]:  # fmt: skip
    """The mean number of agents logged in (``queue``'s members, or all) over each interval
    between ``bounds``, up to ``now``; None for intervals not begun (or skipped by the
    clock)."""
    sql = LOGGED_IN_SQL.format(members=MEMBERS if queue is not None else "")
    seconds = {int(i): float(x) for i, x in session.execute(sa.text(sql), {
        "starts": list(bounds[:-1]), "ends": list(bounds[1:]), "now": now, "queue": queue,
        "day_start": day_start, "day_end": day_end,
    })}  # fmt: skip
    present: list[float | None] = []
    for i, (since, until) in enumerate(itertools.pairwise(bounds)):
        length = (min(until, now) - since).total_seconds()
        present.append(float(seconds.get(i + 1, 0)) / length if length > 0 else None)
    return present
