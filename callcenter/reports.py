"""Queue and agent measures over an interval, computed in SQL from the call log.

Definitions (shared/docs/call-center.md), and the rules we chose where it leaves a choice:

- A call belongs to the interval in which it *entered the queue* (``queued_at``).
- **Offered** = calls that entered a queue, less *short abandons* (abandoned after waiting
  less than ``short_abandon_seconds``; 0 keeps them all).
- **Answered** = offered calls an agent answered (``answered_at`` set; transferred calls were
  answered first and count). **Abandoned** = the caller hung up while waiting (short abandons
  left out). **Timed out** = Queue()'s timeout (EXITWITHTIMEOUT). **Exited** = left with a key,
  because the queue was empty, or for a callback. **Lost** = the bridge could not learn the end.
- **Service level** = answered within the queue's threshold / (offered, or offered less
  abandoned when ``abandons_count_against_sl`` is false).
- **ASA** = total wait of answered calls / answered. **AHT** = (talk + hold + wrap-up) /
  answered. **Abandon rate** = abandoned / offered. **Longest wait** = the longest wait of any
  call that entered the queue, short abandons included (a supervisor wants to see it).
- Per agent: **calls** answered and **talk** time by ``answered_at``; **pause** time by reason
  and **occupancy** = handling / (handling + available) from the agent state spans, each span
  clipped to the interval. Handling is ``on_call`` + ``wrap_up``; available is ``available`` +
  ``ringing`` (a ringing agent is still waiting for work). Spans still open end at ``now``.

Durations are seconds (floats); ratios are 0..1 or None when their denominator is 0.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from callcenter.config import ReportingSettings

DEFAULT_SL_SECONDS = 20

QUEUE_SQL = """
WITH c AS (
    SELECT calls.queue,
           calls.outcome,
           calls.answered_at IS NOT NULL AS answered,
           coalesce(calls.wait_seconds, 0) AS wait,
           coalesce(calls.talk_seconds, 0) + coalesce(calls.hold_seconds, 0)
             + coalesce(calls.wrapup_seconds, 0) AS handle,
           coalesce(q.service_level_seconds, :default_sl) AS sl_threshold,
           -- coalesce: a call still waiting (outcome NULL) is offered, not a short abandon.
           coalesce(calls.outcome = 'abandoned'
                    AND coalesce(calls.wait_seconds, 0) < :short_abandon, false) AS short_abandon
      FROM calls
      LEFT JOIN queues q ON q.name = calls.queue
     WHERE calls.queue IS NOT NULL
       AND calls.queued_at >= :since AND calls.queued_at < :until
       {queue_filter}
)
SELECT queue,
       min(sl_threshold) AS sl_threshold,
       count(*) FILTER (WHERE NOT short_abandon) AS offered,
       count(*) FILTER (WHERE answered) AS answered,
       count(*) FILTER (WHERE outcome = 'abandoned' AND NOT short_abandon) AS abandoned,
       count(*) FILTER (WHERE short_abandon) AS short_abandoned,
       count(*) FILTER (WHERE outcome = 'timed_out') AS timed_out,
       count(*) FILTER (WHERE outcome IN ('exit_key', 'exit_empty', 'callback')) AS exited,
       count(*) FILTER (WHERE outcome = 'lost') AS lost,
       count(*) FILTER (WHERE outcome IS NULL) AS in_progress,
       count(*) FILTER (WHERE answered AND wait <= sl_threshold) AS answered_in_sl,
       sum(wait) FILTER (WHERE answered) AS answered_wait,
       sum(handle) FILTER (WHERE answered) AS answered_handle,
       max(wait) AS longest_wait
  FROM c
 GROUP BY queue
 ORDER BY queue
"""
# Two statements rather than ":queue IS NULL OR queue = :queue": the planner then picks the
# (queue, queued_at) index for one queue and the (queued_at) index for all of them.
QUEUE_SQL_ALL = sa.text(QUEUE_SQL.format(queue_filter=""))
QUEUE_SQL_ONE = sa.text(QUEUE_SQL.format(queue_filter="AND calls.queue = :queue"))

AGENT_CALLS_SQL = sa.text(
    """
SELECT agent,
       count(*) AS calls,
       sum(coalesce(talk_seconds, 0)) AS talk,
       sum(coalesce(hold_seconds, 0)) AS hold,
       sum(coalesce(wrapup_seconds, 0)) AS wrapup
  FROM calls
 WHERE agent IS NOT NULL
   AND answered_at >= :since AND answered_at < :until
   AND (CAST(:agent AS text) IS NULL OR agent = :agent)
 GROUP BY agent
"""
)

AGENT_STATES_SQL = sa.text(
    """
SELECT agent, state, coalesce(reason, '') AS reason,
       sum(extract(epoch FROM
             least(coalesce(ended_at, :now), :until) - greatest(started_at, :since)
           )) AS seconds
  FROM agent_state_changes
 WHERE started_at < :until
   AND (ended_at > :since OR (ended_at IS NULL AND :now > :since))
   AND started_at < :now
   AND (CAST(:agent AS text) IS NULL OR agent = :agent)
 GROUP BY agent, state, coalesce(reason, '')
"""
)


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


@dataclass(frozen=True, slots=True)
class QueueFigures:
    queue: str
    offered: int
    answered: int
    abandoned: int
    short_abandoned: int
    timed_out: int
    exited: int
    lost: int
    in_progress: int
    service_level_threshold: int
    service_level: float | None
    asa: float | None
    aht: float | None
    abandon_rate: float | None
    longest_wait: float | None


@dataclass(frozen=True, slots=True)
class AgentFigures:
    agent: str
    calls: int
    talk: float
    aht: float | None
    pause_by_reason: dict[str, float]
    paused: float
    available: float
    handling: float
    occupancy: float | None


@dataclass(frozen=True, slots=True)
class Report:
    since: dt.datetime
    until: dt.datetime
    rules: dict[str, Any]
    queues: list[QueueFigures]
    agents: list[AgentFigures]

    def as_dict(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "rules": self.rules,
            "queues": [asdict(q) for q in self.queues],
            "agents": [asdict(a) for a in self.agents],
        }


def queue_figures(
    session: Session,
    since: dt.datetime,
    until: dt.datetime,
    rules: ReportingSettings,
    queue: str | None = None,
) -> list[QueueFigures]:
    rows = session.execute(
        QUEUE_SQL_ONE if queue else QUEUE_SQL_ALL,
        {
            "since": since,
            "until": until,
            "queue": queue,
            "short_abandon": rules.short_abandon_seconds,
            "default_sl": DEFAULT_SL_SECONDS,
        },
    ).mappings()
    out = []
    for r in rows:
        offered = int(r["offered"])
        answered = int(r["answered"])
        abandoned = int(r["abandoned"])
        sl_den = offered if rules.abandons_count_against_sl else offered - abandoned
        out.append(
            QueueFigures(
                queue=r["queue"],
                offered=offered,
                answered=answered,
                abandoned=abandoned,
                short_abandoned=int(r["short_abandoned"]),
                timed_out=int(r["timed_out"]),
                exited=int(r["exited"]),
                lost=int(r["lost"]),
                in_progress=int(r["in_progress"]),
                service_level_threshold=int(r["sl_threshold"]),
                service_level=_ratio(int(r["answered_in_sl"]), sl_den),
                asa=_ratio(float(r["answered_wait"] or 0), answered),
                aht=_ratio(float(r["answered_handle"] or 0), answered),
                abandon_rate=_ratio(abandoned, offered),
                longest_wait=float(r["longest_wait"]) if r["longest_wait"] is not None else None,
            )
        )
    return out


def agent_figures(
    session: Session,
    since: dt.datetime,
    until: dt.datetime,
    now: dt.datetime,
    agent: str | None = None,
) -> list[AgentFigures]:
    params = {"since": since, "until": until, "now": now, "agent": agent}
    calls = {r["agent"]: r for r in session.execute(AGENT_CALLS_SQL, params).mappings()}
    states: dict[str, dict[tuple[str, str], float]] = {}
    for r in session.execute(AGENT_STATES_SQL, params).mappings():
        states.setdefault(r["agent"], {})[(r["state"], r["reason"])] = max(0.0, float(r["seconds"]))
    out = []
    for name in sorted(set(calls) | set(states)):
        spans = states.get(name, {})

        def total(*wanted: str, spans: dict[tuple[str, str], float] = spans) -> float:
            return sum(sec for (state, _), sec in spans.items() if state in wanted)

        pauses = {
            reason or "(none)": sec
            for (state, reason), sec in sorted(spans.items())
            if state == "paused"
        }
        handling = total("on_call", "wrap_up")
        available = total("available", "ringing")
        row = calls.get(name)
        n_calls = int(row["calls"]) if row else 0
        talk = float(row["talk"]) if row else 0.0
        handle = talk + (float(row["hold"]) + float(row["wrapup"]) if row else 0.0)
        out.append(
            AgentFigures(
                agent=name,
                calls=n_calls,
                talk=talk,
                aht=_ratio(handle, n_calls),
                pause_by_reason=pauses,
                paused=sum(pauses.values()),
                available=available,
                handling=handling,
                occupancy=_ratio(handling, handling + available),
            )
        )
    return out


def build_report(
    session: Session,
    since: dt.datetime,
    until: dt.datetime,
    rules: ReportingSettings,
    *,
    now: dt.datetime | None = None,
    queue: str | None = None,
    agent: str | None = None,
) -> Report:
    if until <= since:
        raise ValueError("the interval's end must come after its start")
    now = now or dt.datetime.now(dt.UTC)
    return Report(
        since=since,
        until=until,
        rules={
            "short_abandon_seconds": rules.short_abandon_seconds,
            "abandons_count_against_sl": rules.abandons_count_against_sl,
        },
        queues=queue_figures(session, since, until, rules, queue) if agent is None else [],
        agents=agent_figures(session, since, until, now, agent) if queue is None else [],
    )
