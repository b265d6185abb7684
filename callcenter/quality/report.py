"""QA scores per agent, per queue, per ISO week (and per agent and week), in SQL.

Over the evaluations saved in [since, until): ``created_at``, when the call was scored, not
when it was made (a call scored late counts in the week it was scored, and last week's
figures stay as they were read). Each row: the number of evaluations, the mean score (of
all, critical failures counted as their 0), the lowest and highest, and the critical
failures. Weeks are ISO weeks (Monday to Sunday) in the site's time zone. An evaluation of a
call without a queue (a campaign's) has queue None.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

REPORT_SQL = """
WITH e AS (
  SELECT agent, queue,
         to_char(created_at AT TIME ZONE :tz, 'IYYY-"W"IW') AS week,
         score, critical_failed
    FROM qa_evaluations
   WHERE created_at >= :since AND created_at < :until
     AND (CAST(:agent AS text) IS NULL OR agent = :agent)
     AND (CAST(:queue AS text) IS NULL OR queue = :queue)
)
SELECT GROUPING(agent, queue, week) AS g, agent, queue, week,
       count(*) AS n, avg(score) AS mean, min(score) AS low, max(score) AS high,
       count(*) FILTER (WHERE critical_failed) AS critical
  FROM e
 GROUP BY GROUPING SETS ((agent), (queue), (week), (agent, week), ())
 ORDER BY g, agent NULLS LAST, queue NULLS LAST, week
"""

# GROUPING(agent, queue, week): a bit per column, 1 where the row is NOT grouped by it.
BY_AGENT_WEEK, BY_AGENT, BY_QUEUE, BY_WEEK, TOTAL = 0b010, 0b011, 0b101, 0b110, 0b111


@dataclass(frozen=True, slots=True)
class Figures:
    evaluations: int
    mean: float | None
    lowest: float | None
    highest: float | None
    critical_failed: int


@dataclass(frozen=True, slots=True)
class Row:
    agent: str | None
    queue: str | None
    week: str | None
    figures: Figures

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"agent": self.agent, "queue": self.queue, "week": self.week}
        return {**out, **asdict(self.figures)}


@dataclass(frozen=True, slots=True)
class QaReport:
    since: dt.datetime
    until: dt.datetime
    total: Figures
    agents: list[Row] = field(default_factory=list)
    queues: list[Row] = field(default_factory=list)
    weeks: list[Row] = field(default_factory=list)
    agent_weeks: list[Row] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        def rows(rs: list[Row], *keys: str) -> list[dict[str, Any]]:
            return [
                {
                    k: v
                    for k, v in r.as_dict().items()
                    if k in keys or k not in ("agent", "queue", "week")
                }
                for r in rs
            ]

        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "total": asdict(self.total),
            "agents": rows(self.agents, "agent"),
            "queues": rows(self.queues, "queue"),
            "weeks": rows(self.weeks, "week"),
            "agent_weeks": rows(self.agent_weeks, "agent", "week"),
        }


def _round(value: Any) -> float | None:
    return None if value is None else round(float(value), 2)


def build_qa_report(
    session: Session,
    since: dt.datetime,
    until: dt.datetime,
    *,
    tz: str,
    agent: str | None = None,
    queue: str | None = None,
) -> QaReport:
    params = {"since": since, "until": until, "tz": tz, "agent": agent, "queue": queue}
    groups: dict[int, list[Row]] = {}
    total = Figures(0, None, None, None, 0)
    for g, a, q, w, n, mean, low, high, crit in session.execute(sa.text(REPORT_SQL), params):
        figures = Figures(int(n), _round(mean), _round(low), _round(high), int(crit))
        if g == TOTAL:
            total = figures
            continue
        groups.setdefault(g, []).append(Row(a, q, w, figures))
    return QaReport(
        since,
        until,
        total,
        agents=groups.get(BY_AGENT, []),
        queues=groups.get(BY_QUEUE, []),
        weeks=groups.get(BY_WEEK, []),
        agent_weeks=groups.get(BY_AGENT_WEEK, []),
    )
