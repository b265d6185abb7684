"""The call log as the forecast needs it: offered calls per half hour of each past week,
the handle time, and the callers' patience (for Erlang A)."""

from __future__ import annotations

import datetime as dt
import math
import zoneinfo
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from callcenter.planning import erlang
from callcenter.planning.forecast import SLOTS_PER_DAY, SLOTS_PER_WEEK, backtest, forecast

#: Offered calls (queue visits) per half hour of the weeks before ``start``.
OFFERED_SQL = """
SELECT floor(extract(epoch FROM (queued_at AT TIME ZONE :tz)
                     - (CAST(:start AS timestamp) - make_interval(weeks => :weeks)))
             / 1800)::int AS slot,
       count(*) AS n
  FROM queue_visits
 WHERE queue = :queue AND queued_at >= :since AND queued_at < :until
 GROUP BY 1
"""

#: Handle time of answered visits, and patience: abandons over all time waited.
FIGURES_SQL = """
SELECT avg(coalesce(talk_seconds, 0) + coalesce(wrapup_seconds, 0))
           FILTER (WHERE answered_at IS NOT NULL AND talk_seconds IS NOT NULL) AS aht,
       count(*) FILTER (WHERE outcome = 'abandoned') AS abandons,
       coalesce(sum(wait_seconds), 0) AS waited
  FROM queue_visits
 WHERE queue = :queue AND queued_at >= :since AND queued_at < :until
"""


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
    # Weeks start on a Monday: the slot numbering is by weekday.
    monday = begin - dt.timedelta(days=begin.weekday())
    since = (monday - dt.timedelta(weeks=weeks)).replace(tzinfo=tz)
    until = monday.replace(tzinfo=tz)
    params = {"queue": queue, "since": since, "until": until, "tz": str(tz), "weeks": weeks,
              "start": monday}  # fmt: skip
    history = [[0.0] * SLOTS_PER_WEEK for _ in range(weeks)]
    for slot, n in session.execute(sa.text(OFFERED_SQL), params):
        if 0 <= slot < weeks * SLOTS_PER_WEEK:
            history[slot // SLOTS_PER_WEEK][slot % SLOTS_PER_WEEK] = float(n)
    row = session.execute(sa.text(FIGURES_SQL), params).one()
    aht = float(row.aht) if row.aht else 180.0
    patience = float(row.waited) / row.abandons if row.abandons else math.inf
    first_week = (begin - monday).days // 7
    fc = [forecast(history, ahead=1 + w).calls for w in range(first_week + days // 7 + 2)]
    slots = []
    for d in range(days):
        day = begin + dt.timedelta(days=d)
        week = (day - monday).days // 7
        for half in range(SLOTS_PER_DAY):
            at = day + dt.timedelta(minutes=30 * half)
            calls = fc[week][day.weekday() * SLOTS_PER_DAY + half]
            rate = calls / 1800.0
            c = erlang.agents_needed(rate, aht, target_seconds, service_level)
            a = erlang.agents_needed(rate, aht, target_seconds, service_level,
                                     patience=patience)  # fmt: skip
            slots.append({"start": at.isoformat(timespec="minutes"), "calls": round(calls, 2),
                          "agents_erlang_c": c.agents, "agents_erlang_a": a.agents,
                          "service_level_c": round(c.service_level, 4),
                          "service_level_a": round(a.service_level, 4)})  # fmt: skip
    growth = forecast(history).growth_per_week
    checked = dict(backtest(history))
    return Plan(queue, start, days, weeks, round(aht, 1), patience, growth, checked, slots)
