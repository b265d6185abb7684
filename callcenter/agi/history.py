"""Caller history (the 360° view): the caller's last calls from the call log.

At IVR time, :func:`lookup` reads the caller's recent calls (``calls``, by the
``ix_calls_caller_started`` index). The flow puts a summary in channel variables, for the
dialplan and for anything that reads them later (agents' phones, AMI), and the whole of it in
the screen-pop (:mod:`callcenter.agi.screenpop`).

Channel variables (all set, empty when there is no history):

- ``CALLER_HISTORY_CALLS``: calls from this number within ``agi.history_days`` (at most
  ``agi.history_calls``);
- ``CALLER_HISTORY_ANSWERED``: how many of those an agent answered;
- ``CALLER_HISTORY_LAST_AT``: start of the last one, ISO 8601 UTC;
- ``CALLER_HISTORY_LAST_OUTCOME``: its outcome (answered, abandoned, timed_out, ...);
- ``CALLER_HISTORY_LAST_QUEUE``: its queue;
- ``CALLER_HISTORY_LAST_AGENT``: the agent of the last *answered* call.

The preferred agent: a caller whose last answered call (within
``agi.preferred_agent_days``) was with an agent who is still a member of the queue the IVR
chose rings that agent first, when the IVR allows it (``preferred_agent = true``).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from callcenter.db.models import Agent, Call, Queue, QueueMember

UTC = dt.UTC


@dataclass(frozen=True, slots=True)
class PastCall:
    uniqueid: str
    started_at: dt.datetime
    queue: str | None
    agent: str | None
    outcome: str | None
    wait_seconds: float | None
    talk_seconds: float | None
    ivr_path: str
    survey_score: int | None

    def as_json(self) -> dict[str, Any]:
        return {
            "uniqueid": self.uniqueid,
            "started_at": self.started_at.astimezone(UTC).isoformat(),
            "queue": self.queue,
            "agent": self.agent,
            "outcome": self.outcome,
            "wait_seconds": self.wait_seconds,
            "talk_seconds": self.talk_seconds,
            "ivr_path": self.ivr_path,
            "survey_score": self.survey_score,
        }


@dataclass(frozen=True, slots=True)
class History:
    number: str
    calls: tuple[PastCall, ...] = ()

    @property
    def answered(self) -> list[PastCall]:
        return [c for c in self.calls if c.agent and c.outcome in ("answered", "transferred")]

    @property
    def last_agent(self) -> str | None:
        answered = self.answered
        return answered[0].agent if answered else None

    def variables(self) -> dict[str, str]:
        last = self.calls[0] if self.calls else None
        return {
            "CALLER_HISTORY_CALLS": str(len(self.calls)),
            "CALLER_HISTORY_ANSWERED": str(len(self.answered)),
            "CALLER_HISTORY_LAST_AT": last.started_at.astimezone(UTC).isoformat() if last else "",
            "CALLER_HISTORY_LAST_OUTCOME": (last.outcome or "") if last else "",
            "CALLER_HISTORY_LAST_QUEUE": (last.queue or "") if last else "",
            "CALLER_HISTORY_LAST_AGENT": self.last_agent or "",
        }


#: Built once: building the statement for every caller was a tenth of a busy IVR's CPU (the
#: soak's profile); SQLAlchemy caches its compiled form by the statement's shape anyway.
_LOOKUP = (
    sa.select(
        Call.uniqueid,
        Call.started_at,
        Call.queue,
        Call.agent,
        Call.outcome,
        Call.wait_seconds,
        Call.talk_seconds,
        Call.ivr_path,
        Call.survey_score,
    )
    .where(Call.caller_number == sa.bindparam("number"), Call.started_at >= sa.bindparam("since"))
    .where(Call.uniqueid != sa.bindparam("exclude"))
    .order_by(Call.started_at.desc())
    .limit(sa.bindparam("limit"))
)


def lookup(
    engine: Engine,
    number: str,
    *,
    exclude_uniqueid: str,
    days: int,
    limit: int,
    now: dt.datetime,
) -> History:
    """The caller's last ``limit`` calls within ``days`` (newest first), not this one.
    Blocking: run it in a thread."""
    if not number or limit <= 0:
        return History(number)
    since = now - dt.timedelta(days=days)
    params = {"number": number, "since": since, "exclude": exclude_uniqueid, "limit": limit}
    with engine.connect() as conn:
        rows = conn.execute(_LOOKUP, params).all()
    return History(number, tuple(PastCall(*row) for row in rows))


@dataclass(frozen=True, slots=True)
class PreferredAgent:
    name: str
    interface: str


def preferred_agent(
    engine: Engine, history: History, queue: str, *, days: int, now: dt.datetime
) -> PreferredAgent | None:
    """The caller's last agent, if within ``days``, enabled and a member of ``queue``."""
    if days <= 0:
        return None
    since = now - dt.timedelta(days=days)
    recent = [c for c in history.answered if c.started_at >= since]
    if not recent or not recent[0].agent:
        return None
    query = (
        sa.select(Agent.name, Agent.extension)
        .join(QueueMember, QueueMember.agent_id == Agent.id)
        .join(Queue, Queue.id == QueueMember.queue_id)
        .where(Agent.name == recent[0].agent, Agent.enabled.is_(True), Queue.name == queue)
    )
    with engine.connect() as conn:
        row = conn.execute(query).first()
    if row is None:
        return None
    return PreferredAgent(row.name, f"PJSIP/{row.extension}")


class MaxWaits:
    """:func:`queue_max_wait` of each queue, read again once ``ttl`` seconds old: every caller
    the IVR routes needs its queue's, and a query per call was a tenth of a busy IVR's CPU
    (the soak's profile). A change an operator makes reaches new callers within ``ttl``.
    Blocking, as queue_max_wait: call it in a thread."""

    def __init__(
        self, engine: Engine, *, ttl: float = 5.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.engine = engine
        self.ttl = ttl
        self.clock = clock
        self._read: dict[str, tuple[float, int | None]] = {}

    def __call__(self, queue: str) -> int | None:
        now = self.clock()
        held = self._read.get(queue)
        if held is not None and now - held[0] < self.ttl:
            return held[1]
        value = queue_max_wait(self.engine, queue)
        self._read[queue] = (now, value)
        return value


def queue_max_wait(engine: Engine, queue: str) -> int | None:
    """The queue's ``max_wait_seconds`` (QUEUE_TIMEOUT), None for a queue we do not know."""
    with engine.connect() as conn:
        value = conn.scalar(sa.select(Queue.max_wait_seconds).where(Queue.name == queue))
    return int(value) if value is not None else None


def screenpop_payload(
    *,
    node: str,
    uniqueid: str,
    caller_number: str,
    caller_name: str,
    ivr: str,
    ivr_path: str,
    target: str,
    queue: str,
    language: str,
    history: History,
    preferred: PreferredAgent | None,
    at: dt.datetime,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The screen-pop message (``"v": 1``, ``"type": "screenpop"``)."""
    calls: Sequence[PastCall] = history.calls
    return {
        "v": 1,
        "type": "screenpop",
        "node": node,
        "uniqueid": uniqueid,
        "caller_number": caller_number,
        "caller_name": caller_name,
        "ivr": ivr,
        "ivr_path": ivr_path,
        "target": target,
        "queue": queue,
        "language": language,
        "returning": bool(calls),
        "last_agent": history.last_agent,
        "preferred_agent": preferred.name if preferred else None,
        "history": [c.as_json() for c in calls],
        "at": at.astimezone(UTC).isoformat(),
        **(extra or {}),
    }
