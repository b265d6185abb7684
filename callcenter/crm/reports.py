"""CRM measures over an interval [since, until), computed in SQL.

Definitions:

- **First-contact resolution**: of the cases resolved in the interval (``resolved_at``; a
  case closed since counts), those whose timeline has exactly one call. ``rate`` is over the
  resolved cases that have at least one call (a case opened and resolved without a call
  says nothing about contacts); ``resolved`` counts them all.
- **Repeat callers within N days**, per queue: an inbound call of the interval is a
  *repeat* when the same caller number called the same queue in the N days before it
  (earlier calls before the interval count as the first). ``calls`` and ``callers``
  (distinct numbers) are the interval's calls with a caller number; ``repeat_callers`` the
  numbers with at least one repeat call. The number is compared as the call log has it.
- **Dispositions** given in the interval (``at``), per queue, agent and campaign, by code.
- **Undocumented calls**: marks made in the interval (``undocumented_at``), per queue and
  agent: ``undocumented`` still have no disposition, ``documented_late`` got one after.
- **Open cases by age** (open or pending, as of ``now``): buckets of ``now - created_at``;
  ``overdue`` have a due time before ``now``.
- **Time to resolution**: ``resolved_at - created_at`` of the cases resolved in the
  interval: median and 90th percentile in seconds (linear interpolation, as
  ``percentile_cont``), None when there are none.

The queue and agent filters apply to what has a queue or an agent: repeat callers (queue),
dispositions and undocumented calls; cases are the customer's, not a queue's.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from callcenter.crm import CrmError

#: Bucket edges of open cases' age, in days: [0, 1), [1, 3), [3, 7), [7, 30), [30, ...).
AGE_EDGES = (1, 3, 7, 30)
REPEAT_DAYS = 7


def age_buckets() -> list[str]:
    labels = []
    low = 0
    for high in AGE_EDGES:
        labels.append(f"{low}-{high}d")
        low = high
    labels.append(f"{low}d+")
    return labels


@dataclass(slots=True)
class FirstContact:
    resolved: int = 0
    with_calls: int = 0
    first_contact: int = 0
    rate: float | None = None


@dataclass(slots=True)
class RepeatCallers:
    queue: str
    calls: int
    callers: int
    repeat_calls: int
    repeat_callers: int
    repeat_rate: float | None


@dataclass(slots=True)
class CodeCount:
    by: str | None
    code: str
    effect: str | None
    count: int


@dataclass(slots=True)
class Undocumented:
    undocumented: int = 0
    documented_late: int = 0
    by_queue: dict[str, int] = field(default_factory=dict)
    by_agent: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class OpenCases:
    total: int = 0
    overdue: int = 0
    #: bucket -> {"open": n, "pending": n}
    by_age: dict[str, dict[str, int]] = field(default_factory=dict)


@dataclass(slots=True)
class Resolution:
    resolved: int = 0
    median_seconds: float | None = None
    p90_seconds: float | None = None


@dataclass(slots=True)
class CrmReport:
    since: dt.datetime
    until: dt.datetime
    now: dt.datetime
    repeat_days: int
    first_contact: FirstContact
    repeat_callers: list[RepeatCallers]
    dispositions_by_queue: list[CodeCount]
    dispositions_by_agent: list[CodeCount]
    dispositions_by_campaign: list[CodeCount]
    undocumented: Undocumented
    open_cases: OpenCases
    resolution: Resolution

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("since", "until", "now"):
            out[key] = getattr(self, key).astimezone(dt.UTC).isoformat()
        return out


FCR_SQL = """
SELECT count(*) AS resolved,
       count(*) FILTER (WHERE calls > 0) AS with_calls,
       count(*) FILTER (WHERE calls = 1) AS first_contact
  FROM (SELECT (SELECT count(*) FROM case_events e
                 WHERE e.case_id = c.id AND e.kind = 'call') AS calls
          FROM cases c
         WHERE c.resolved_at >= :since AND c.resolved_at < :until
           AND c.status IN ('resolved', 'closed')) r
"""

REPEAT_SQL = """
WITH c AS (
    SELECT queue, caller_number, started_at,
           lag(started_at) OVER (PARTITION BY queue, caller_number
                                 ORDER BY started_at, id) AS previous
      FROM calls
     WHERE started_at >= :lookback AND started_at < :until
       AND queue IS NOT NULL AND caller_number <> '' AND direction = 'inbound'
       {queue_filter}
), r AS (
    SELECT queue, caller_number,
           coalesce(previous >= started_at - make_interval(days => :days), false) AS repeat
      FROM c
     WHERE started_at >= :since
)
SELECT queue,
       count(*) AS calls,
       count(DISTINCT caller_number) AS callers,
       count(*) FILTER (WHERE repeat) AS repeat_calls,
       count(DISTINCT caller_number) FILTER (WHERE repeat) AS repeat_callers
  FROM r
 GROUP BY queue
 ORDER BY queue
"""

CODES_SQL = """
SELECT {by} AS by, d.code, d.effect, count(*) AS n
  FROM call_dispositions d
  LEFT JOIN campaigns k ON k.id = d.campaign_id
 WHERE d.at >= :since AND d.at < :until AND d.code IS NOT NULL {filters}
 GROUP BY 1, 2, 3
 ORDER BY 1 NULLS LAST, 4 DESC, 2
"""

UNDOCUMENTED_SQL = """
SELECT coalesce(d.queue, '') AS queue, coalesce(d.agent, '') AS agent,
       count(*) FILTER (WHERE d.code IS NULL) AS undocumented,
       count(*) FILTER (WHERE d.code IS NOT NULL) AS late
  FROM call_dispositions d
 WHERE d.undocumented_at >= :since AND d.undocumented_at < :until {filters}
 GROUP BY 1, 2
"""

OPEN_BUCKETS_SQL = """
SELECT width_bucket(extract(epoch FROM CAST(:now AS timestamptz) - created_at) / 86400,
                    CAST(:edges AS double precision[])) AS bucket,
       status,
       count(*) AS n,
       count(*) FILTER (WHERE due_at IS NOT NULL AND due_at < :now) AS overdue
  FROM cases
 WHERE status IN ('open', 'pending')
 GROUP BY 1, 2
"""

RESOLUTION_SQL = """
SELECT count(*) AS resolved,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM resolved_at - created_at))
         AS median,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM resolved_at - created_at))
         AS p90
  FROM cases
 WHERE resolved_at >= :since AND resolved_at < :until AND status IN ('resolved', 'closed')
"""


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def build_crm_report(
    session: Session,
    since: dt.datetime,
    until: dt.datetime,
    *,
    now: dt.datetime,
    repeat_days: int = REPEAT_DAYS,
    queue: str | None = None,
    agent: str | None = None,
) -> CrmReport:
    if until <= since:
        raise CrmError("the interval must end after it starts")
    if not 1 <= repeat_days <= 365:
        raise CrmError(f"repeat days = {repeat_days} must be between 1 and 365")
    params: dict[str, Any] = {"since": since, "until": until, "now": now}
    execute = session.execute

    fcr_row = execute(sa.text(FCR_SQL), params).one()
    fcr = FirstContact(
        resolved=int(fcr_row.resolved),
        with_calls=int(fcr_row.with_calls),
        first_contact=int(fcr_row.first_contact),
        rate=_ratio(int(fcr_row.first_contact), int(fcr_row.with_calls)),
    )

    queue_filter = "AND queue = :queue" if queue is not None else ""
    repeat_rows = execute(
        sa.text(REPEAT_SQL.format(queue_filter=queue_filter)),
        {
            **params,
            "lookback": since - dt.timedelta(days=repeat_days),
            "days": repeat_days,
            "queue": queue,
        },
    ).all()
    repeats = [
        RepeatCallers(
            queue=r.queue,
            calls=int(r.calls),
            callers=int(r.callers),
            repeat_calls=int(r.repeat_calls),
            repeat_callers=int(r.repeat_callers),
            repeat_rate=_ratio(int(r.repeat_calls), int(r.calls)),
        )
        for r in repeat_rows
    ]

    filters = ""
    if queue is not None:
        filters += " AND d.queue = :queue"
    if agent is not None:
        filters += " AND d.agent = :agent"
    code_params = {**params, "queue": queue, "agent": agent}

    def codes(by: str) -> list[CodeCount]:
        rows = execute(sa.text(CODES_SQL.format(by=by, filters=filters)), code_params).all()
        return [CodeCount(by=r.by, code=r.code, effect=r.effect, count=int(r.n)) for r in rows]

    undocumented = Undocumented()
    for r in execute(sa.text(UNDOCUMENTED_SQL.format(filters=filters)), code_params):
        undocumented.undocumented += int(r.undocumented)
        undocumented.documented_late += int(r.late)
        if r.undocumented:
            undocumented.by_queue[r.queue] = undocumented.by_queue.get(r.queue, 0) + int(
                r.undocumented
            )
            undocumented.by_agent[r.agent] = undocumented.by_agent.get(r.agent, 0) + int(
                r.undocumented
            )

    labels = age_buckets()
    open_cases = OpenCases(by_age={label: {"open": 0, "pending": 0} for label in labels})
    for r in execute(sa.text(OPEN_BUCKETS_SQL), {"now": now, "edges": list(AGE_EDGES)}):
        # width_bucket: 0 below the first edge (a younger case, or one created after now),
        # i for [edge i, edge i+1), len(edges) from the last edge on: the label's index.
        label = labels[int(r.bucket)]
        open_cases.by_age[label][r.status] += int(r.n)
        open_cases.total += int(r.n)
        open_cases.overdue += int(r.overdue)

    res_row = execute(sa.text(RESOLUTION_SQL), params).one()
    resolution = Resolution(
        resolved=int(res_row.resolved),
        median_seconds=None if res_row.median is None else float(res_row.median),
        p90_seconds=None if res_row.p90 is None else float(res_row.p90),
    )

    return CrmReport(
        since=since,
        until=until,
        now=now,
        repeat_days=repeat_days,
        first_contact=fcr,
        repeat_callers=repeats,
        dispositions_by_queue=codes("d.queue"),
        dispositions_by_agent=codes("d.agent"),
        dispositions_by_campaign=codes("k.name"),
        undocumented=undocumented,
        open_cases=open_cases,
        resolution=resolution,
    )
