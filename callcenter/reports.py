"""Queue and agent measures over an interval, computed in SQL from the call log.

Definitions (the vocabulary of call-center practice), and the rules we chose where it leaves
a choice:

- Queue figures count **queue visits** (``queue_visits``): a call transferred or redirected
  from one queue into another is offered in each, as queue_log and app_queue count it.
  ``calls_by_caller`` style questions (how many calls, repeat callers) count ``calls``, one
  row per call.
- A visit belongs to the interval in which it *entered the queue* (``queued_at``).
- **Offered** = visits that entered a queue, less *short abandons* (abandoned after waiting
  less than ``short_abandon_seconds``; 0 keeps them all).
- **Answered** = offered visits an agent answered (``answered_at`` set; transferred visits
  were answered first and count). **Abandoned** = the caller hung up while waiting (short
  abandons left out). **Timed out** = Queue()'s timeout (EXITWITHTIMEOUT). **Exited** = left
  with a key, because the queue was empty, or for a callback. **Lost** = the bridge could
  not learn the end. **Transferred** = answered visits the agent transferred.
- A visit **still waiting** has no outcome and no answer yet; its wait so far runs to
  ``now`` (whole seconds, as Asterisk counts waits). It is offered and in progress.
- **Service level** = answered within the queue's threshold (wait <= threshold) / (offered
  less those still waiting and not past the threshold, or also less abandoned when
  ``abandons_count_against_sl`` is false). A caller still waiting within the threshold may
  yet be answered in time: not yet missed, in neither the numerator nor the denominator
  (``sl_pending``); one still waiting past it is missed (in the denominator only). An
  answered visit counts by its wait whether or not its call is over.
- **Talk** = total talk time of answered visits that are over (queue_log's
  COMPLETE*/TRANSFER calltime); a call still talking has no talk time yet.
- **ASA** = mean wait of answered visits (the wait is known at the answer, so a call still
  talking counts). **AHT** = mean (talk + hold + wrap-up) of answered visits that are *over*
  (talk time known: app_queue reported their end); the talk of a call still going is
  unknown, so it is left out rather than counted as 0 (``finished`` is AHT's count; None
  when no answered visit is over). **Abandon rate** = abandoned / offered. **Longest
  wait** = the longest wait of any visit that entered the queue, short abandons included,
  and a caller still waiting by their wait so far (a supervisor wants to see it).
- Per agent: **calls** answered (visits: an agent who answered a call that was then
  transferred to another agent answered it, and so did the other) and **talk** time by
  ``answered_at``; the agent's **AHT** over the calls that are over, as for queues.
- **Pause** time by reason, per queue and for all queues, from app_queue's own per-queue
  pauses (``agent_pauses``: queue_log PAUSE -> UNPAUSE), clipped to the interval: a pause in
  one queue only, and the part of a pause that overlaps a call, count. For all queues, the
  time paused in *at least one* queue (a PAUSEALL over three queues is its length once).
- **Occupancy** = handling / (handling + available) from the agent state spans, each clipped
  to the interval: handling is ``on_call`` + ``wrap_up``; available is ``available`` +
  ``ringing``. The agent state is one per agent across queues: ``paused`` only when paused
  in every queue, and a call outranks a pause -- so pause time (above) and the state spans
  behind occupancy measure different things, and pause time is not occupancy's complement.
  Spans still open end at ``now``.
- Per queue, **CSAT** and **NPS** of the survey answers given in the interval with that queue
  (by ``answered_at``), each with its number of answers: :mod:`callcenter.satisfaction`
  (``callcenter report --satisfaction`` groups them by agent, campaign or week too).

Durations are seconds (floats); ratios are 0..1 or None when their denominator is 0.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from callcenter.config import ReportingSettings
from callcenter.satisfaction import measures as satisfaction
from callcenter.satisfaction import store as satisfaction_store

DEFAULT_SL_SECONDS = 20

QUEUE_SQL = """
WITH c AS (
    SELECT v.queue,
           v.outcome,
           v.queued_at,
           v.answered_at IS NOT NULL AS answered,
           -- Still in the queue: no outcome, no answer; its wait so far runs to :now.
           v.outcome IS NULL AND v.answered_at IS NULL AS waiting,
           coalesce(v.wait_seconds, 0) AS wait,
           v.wait_seconds AS known_wait,
           -- Over: app_queue reported its end (AgentComplete, queue_log COMPLETE*/TRANSFER),
           -- so its talk time is known. A call still talking has none yet.
           v.talk_seconds IS NOT NULL AS finished,
           coalesce(v.talk_seconds, 0) AS talk,
           coalesce(v.talk_seconds, 0) + coalesce(v.hold_seconds, 0)
             + coalesce(v.wrapup_seconds, 0) AS handle,
           coalesce(q.service_level_seconds, :default_sl) AS sl_threshold,
           -- coalesce: a call still waiting (outcome NULL) is offered, not a short abandon.
           coalesce(v.outcome = 'abandoned'
                    AND coalesce(v.wait_seconds, 0) < :short_abandon, false) AS short_abandon
      FROM queue_visits v
      LEFT JOIN queues q ON q.name = v.queue
     WHERE v.queued_at >= :since AND v.queued_at < :until
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
       count(*) FILTER (WHERE outcome = 'transferred') AS transferred,
       count(*) FILTER (WHERE outcome IS NULL) AS in_progress,
       -- Waiting, and in whole seconds not past the threshold yet: floor(:now - queued_at)
       -- <= threshold, i.e. queued less than threshold + 1 s before :now.
       count(*) FILTER (WHERE waiting AND queued_at > CAST(:now AS timestamptz)
                                          - make_interval(secs => sl_threshold + 1)
                       ) AS sl_pending,
       count(*) FILTER (WHERE answered AND wait <= sl_threshold) AS answered_in_sl,
       sum(known_wait) FILTER (WHERE answered) AS answered_wait,
       count(known_wait) FILTER (WHERE answered) AS answered_waits,
       count(*) FILTER (WHERE answered AND finished) AS finished,
       sum(handle) FILTER (WHERE answered AND finished) AS finished_handle,
       sum(talk) FILTER (WHERE answered) AS answered_talk,
       max(wait) AS longest_wait,
       min(queued_at) FILTER (WHERE waiting) AS oldest_waiting
  FROM c
 GROUP BY queue
 ORDER BY queue
"""
# Two statements rather than ":queue IS NULL OR queue = :queue": the planner then picks the
# (queue, queued_at) index for one queue and the (queued_at) index for all of them.
QUEUE_SQL_ALL = sa.text(QUEUE_SQL.format(queue_filter=""))
QUEUE_SQL_ONE = sa.text(QUEUE_SQL.format(queue_filter="AND v.queue = :queue"))

AGENT_CALLS_SQL = sa.text(
    """
SELECT agent,
       count(*) AS calls,
       sum(coalesce(talk_seconds, 0)) AS talk,
       -- AHT over the calls that are over (talk known), as for queues.
       count(*) FILTER (WHERE talk_seconds IS NOT NULL) AS finished,
       sum(talk_seconds + coalesce(hold_seconds, 0) + coalesce(wrapup_seconds, 0))
         FILTER (WHERE talk_seconds IS NOT NULL) AS handle
  FROM queue_visits
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

AGENT_PAUSES_SQL = sa.text(
    """
SELECT agent, queue, reason,
       greatest(started_at, :since) AS s,
       least(coalesce(ended_at, :now), :until) AS e
  FROM agent_pauses
 WHERE started_at < :until
   AND (ended_at > :since OR (ended_at IS NULL AND :now > :since))
   AND started_at < :now
   AND (CAST(:agent AS text) IS NULL OR agent = :agent)
 ORDER BY agent, reason, s
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
    transferred: int
    in_progress: int
    service_level_threshold: int
    service_level: float | None
    asa: float | None
    aht: float | None
    talk: float
    abandon_rate: float | None
    longest_wait: float | None
    #: SL's numerator: answered within the threshold.
    answered_in_sl: int = 0
    #: Still waiting and not past the threshold yet: neither in SL's numerator nor its
    #: denominator (not yet missed).
    sl_pending: int = 0
    #: SL's denominator: offered, less ``sl_pending`` (and less abandoned when abandons do
    #: not count against SL).
    sl_base: int = 0
    #: Answered visits that are over (talk time known): AHT's denominator.
    finished: int = 0
    #: Satisfaction of the survey answers given in the interval with this queue (by
    #: ``answered_at``, not by the visit: callcenter.satisfaction): CSAT 0..1 and NPS
    #: -100..100, None when nobody answered, with their numbers of answers.
    csat: float | None = None
    csat_n: int = 0
    nps: float | None = None
    nps_n: int = 0


@dataclass(frozen=True, slots=True)
class AgentFigures:
    agent: str
    calls: int
    talk: float
    aht: float | None
    pause_by_reason: dict[str, float]
    pause_by_queue: dict[str, dict[str, float]]
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
    *,
    now: dt.datetime | None = None,
) -> list[QueueFigures]:
    """Per queue, the visits that entered it in [since, until). ``now`` (default: the
    clock) is how far the wait of a caller still waiting has run."""
    return queue_figures_and_total(session, since, until, rules, queue, now=now)[0]


def queue_figures_and_total(
    session: Session,
    since: dt.datetime,
    until: dt.datetime,
    rules: ReportingSettings,
    queue: str | None = None,
    *,
    now: dt.datetime | None = None,
) -> tuple[list[QueueFigures], QueueFigures]:
    """:func:`queue_figures`, and the same figures over all those queues together (queue
    ``""``; each visit is judged by its own queue's SL threshold, so the total's
    ``service_level_threshold`` is 0). The total adds up the queues' counts and sums: every
    figure is a ratio of those."""
    now = now or dt.datetime.now(dt.UTC)
    rows = session.execute(
        QUEUE_SQL_ONE if queue else QUEUE_SQL_ALL,
        {
            "since": since,
            "until": until,
            "now": now,
            "queue": queue,
            "short_abandon": rules.short_abandon_seconds,
            "default_sl": DEFAULT_SL_SECONDS,
        },
    ).mappings()
    out = []
    total: dict[str, Any] = {"queue": "", "sl_threshold": 0, "longest_wait": None,
                             "oldest_waiting": None, **dict.fromkeys(_SUMMED, 0)}  # fmt: skip
    for r in rows:
        out.append(_figures(r, rules, now))
        for key in _SUMMED:
            total[key] += r[key] or 0
        for key, pick in (("longest_wait", max), ("oldest_waiting", min)):
            if r[key] is not None:
                total[key] = r[key] if total[key] is None else pick(total[key], r[key])
    return out, _figures(total, rules, now)


#: The columns of QUEUE_SQL that add up over queues.
_SUMMED = (
    "offered", "answered", "abandoned", "short_abandoned", "timed_out", "exited", "lost",
    "transferred", "in_progress", "sl_pending", "answered_in_sl", "answered_wait",
    "answered_waits", "finished", "finished_handle", "answered_talk",
)  # fmt: skip


def _figures(r: Mapping[Any, Any], rules: ReportingSettings, now: dt.datetime) -> QueueFigures:
    offered = int(r["offered"])
    abandoned = int(r["abandoned"])
    pending = int(r["sl_pending"])
    sl_base = offered - pending - (0 if rules.abandons_count_against_sl else abandoned)
    in_sl = int(r["answered_in_sl"])
    finished = int(r["finished"])
    longest = float(r["longest_wait"]) if r["longest_wait"] is not None else None
    if r["oldest_waiting"] is not None:  # a caller still waiting, by their wait so far
        so_far = float(max(0, math.floor((now - r["oldest_waiting"]).total_seconds())))
        longest = so_far if longest is None else max(longest, so_far)
    return QueueFigures(
        queue=r["queue"],
        offered=offered,
        answered=int(r["answered"]),
        abandoned=abandoned,
        short_abandoned=int(r["short_abandoned"]),
        timed_out=int(r["timed_out"]),
        exited=int(r["exited"]),
        lost=int(r["lost"]),
        transferred=int(r["transferred"]),
        in_progress=int(r["in_progress"]),
        service_level_threshold=int(r["sl_threshold"]),
        service_level=_ratio(in_sl, sl_base),
        asa=_ratio(float(r["answered_wait"] or 0), int(r["answered_waits"])),
        aht=_ratio(float(r["finished_handle"] or 0), finished),
        talk=float(r["answered_talk"] or 0),
        abandon_rate=_ratio(abandoned, offered),
        longest_wait=longest,
        answered_in_sl=in_sl,
        sl_pending=pending,
        sl_base=sl_base,
        finished=finished,
    )


def _union_seconds(spans: list[tuple[dt.datetime, dt.datetime]]) -> float:
    """The length of the union of ``spans`` (sorted by start)."""
    total = 0.0
    end: dt.datetime | None = None
    start: dt.datetime | None = None
    for s, e in spans:
        if end is None or s > end:
            if end is not None and start is not None:
                total += (end - start).total_seconds()
            start, end = s, e
        elif e > end:
            end = e
    if end is not None and start is not None:
        total += (end - start).total_seconds()
    return total


def pause_figures(
    session: Session,
    since: dt.datetime,
    until: dt.datetime,
    now: dt.datetime,
    agent: str | None = None,
) -> dict[str, tuple[dict[str, float], dict[str, dict[str, float]], float]]:
    """Per agent, from ``agent_pauses`` clipped to the interval: pause seconds by reason
    over all queues (time paused in at least one queue for that reason), by queue and
    reason, and in all (time paused in at least one queue, whatever the reason)."""
    params = {"since": since, "until": until, "now": now, "agent": agent}
    spans: dict[str, dict[str, list[tuple[dt.datetime, dt.datetime]]]] = {}
    by_queue: dict[str, dict[str, dict[str, float]]] = {}
    for r in session.execute(AGENT_PAUSES_SQL, params).mappings():
        start, end = r["s"], r["e"]
        if end <= start:
            continue
        reason = r["reason"] or "(none)"
        spans.setdefault(r["agent"], {}).setdefault(reason, []).append((start, end))
        queues = by_queue.setdefault(r["agent"], {}).setdefault(r["queue"], {})
        queues[reason] = queues.get(reason, 0.0) + (end - start).total_seconds()
    return {
        name: (
            {reason: _union_seconds(sorted(s)) for reason, s in sorted(reasons.items())},
            {q: dict(sorted(r.items())) for q, r in sorted(by_queue[name].items())},
            _union_seconds(sorted(x for s in reasons.values() for x in s)),
        )
        for name, reasons in spans.items()
    }


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
    pauses = pause_figures(session, since, until, now, agent)
    out = []
    for name in sorted(set(calls) | set(states) | set(pauses)):
        spans = states.get(name, {})

        def total(*wanted: str, spans: dict[tuple[str, str], float] = spans) -> float:
            return sum(sec for (state, _), sec in spans.items() if state in wanted)

        by_reason, by_queue, paused_total = pauses.get(name, ({}, {}, 0.0))
        handling = total("on_call", "wrap_up")
        available = total("available", "ringing")
        row = calls.get(name)
        n_calls = int(row["calls"]) if row else 0
        talk = float(row["talk"]) if row else 0.0
        finished = int(row["finished"]) if row else 0
        handle = float(row["handle"] or 0) if row else 0.0
        out.append(
            AgentFigures(
                agent=name,
                calls=n_calls,
                talk=talk,
                aht=_ratio(handle, finished),
                pause_by_reason=by_reason,
                pause_by_queue=by_queue,
                paused=paused_total,
                available=available,
                handling=handling,
                occupancy=_ratio(handling, handling + available),
            )
        )
    return out


def _with_satisfaction(
    session: Session, since: dt.datetime, until: dt.datetime, queues: list[QueueFigures]
) -> list[QueueFigures]:
    """Each queue's figures with the CSAT and NPS of the survey answers of the interval."""
    answers = satisfaction_store.counts(session, since, until, "queue")
    return [
        replace(q, **answers.get(q.queue, satisfaction.Satisfaction()).figures()) for q in queues
    ]


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
        queues=_with_satisfaction(
            session, since, until, queue_figures(session, since, until, rules, queue, now=now)
        )
        if agent is None
        else [],
        agents=agent_figures(session, since, until, now, agent) if queue is None else [],
    )
