"""From the core's changes to call-log rows: pure, and JSON-safe so a batch can be spooled.

A :class:`Batch` collects what one flush writes. Rows are keyed so that writing a batch twice
changes nothing (see :mod:`callcenter.bridge.store`): a call is its latest snapshot keyed by
(node, uniqueid), a queue visit its latest snapshot keyed by (node, uniqueid, visit); a
state span by (node, agent, started_at, state); a per-queue pause by (node, agent, queue)
while open; a session by (node, agent, login_at); an audit event by (node, dedup_key); a
recording by its path.
"""

from __future__ import annotations

import datetime as dt
import functools
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from callcenter.core.changes import (
    AgentLoggedIn,
    AgentLoggedOut,
    AgentStateChanged,
    CallChanged,
    Change,
    MemberPauseChanged,
    VisitChanged,
)
from callcenter.core.records import Call, CallPhase
from callcenter.domain import CallOutcome, Direction

#: The ``calls`` columns the bridge owns; ``survey_score`` belongs to the IVR and is never
#: overwritten by an upsert from AMI.
CALL_COLUMNS = (
    "node", "uniqueid", "linkedid", "direction", "caller_number", "caller_name", "did",
    "channel", "ivr_path", "ivr_seconds", "queue", "agent", "agent_channel", "started_at",
    "queued_at", "answered_at", "ended_at", "wait_seconds", "talk_seconds", "hold_seconds",
    "wrapup_seconds", "ring_attempts", "original_position", "outcome", "exit_key",
    "hangup_cause",
)  # fmt: skip
TIME_COLUMNS = frozenset({"started_at", "queued_at", "answered_at", "ended_at"})


def call_row(call: Call) -> dict[str, Any]:
    """The ``calls`` row of a snapshot. ``outcome`` stays NULL until the call is closed: an
    open call is "in progress" to the reports, whatever the core provisionally thinks."""
    row = {col: getattr(call, col) for col in CALL_COLUMNS}
    row["direction"] = str(call.direction)
    row["outcome"] = str(call.outcome) if call.closed and call.outcome else None
    return row


def _epoch(value: dt.datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def open_call(row: Mapping[str, Any]) -> Call:
    """The core's record of a call the call log holds open (``outcome`` NULL): its ``calls``
    row plus ``visit``, ``visit_outcome``, ``visit_ended_at`` and ``transfer_target`` of its
    newest queue visit (NULL when it has none). The phase is the furthest the row says it
    got: a visit with its outcome is over (``post_queue``, that outcome stands); else
    answered: connected (``answered`` provisional, as the core has it while a call is open);
    queued: queued; else the IVR."""
    answered = row["answered_at"] is not None
    outcome: CallOutcome | None = CallOutcome.ANSWERED if answered else None
    visit_outcome = row.get("visit_outcome")
    if row["queue"] is None:
        phase = CallPhase.IVR
    elif visit_outcome is not None:
        phase = CallPhase.POST_QUEUE
        try:
            outcome = CallOutcome(visit_outcome)
        except ValueError:
            outcome = None
    elif answered:
        phase = CallPhase.CONNECTED
    else:
        phase = CallPhase.QUEUED
    started = _epoch(row["started_at"])
    try:
        direction = Direction(row["direction"])
    except ValueError:
        direction = Direction.INBOUND
    return Call(
        node=row["node"], uniqueid=row["uniqueid"], linkedid=row["linkedid"],
        direction=direction, channel=row["channel"] or "",
        caller_number=row["caller_number"] or "", caller_name=row["caller_name"] or "",
        did=row["did"] or "", started_at=started if started is not None else 0.0,
        phase=phase, ivr_path=row["ivr_path"] or "", ivr_seconds=row["ivr_seconds"],
        queue=row["queue"], queued_at=_epoch(row["queued_at"]),
        original_position=row["original_position"], ring_attempts=row["ring_attempts"] or 0,
        agent=row["agent"], agent_channel=row["agent_channel"],
        answered_at=_epoch(row["answered_at"]), wait_seconds=row["wait_seconds"],
        talk_seconds=row["talk_seconds"], hold_seconds=row["hold_seconds"],
        wrapup_seconds=row["wrapup_seconds"], ended_at=_epoch(row["ended_at"]),
        outcome=outcome, exit_key=row["exit_key"], hangup_cause=row["hangup_cause"],
        visit=row["visit"] if row.get("visit") is not None else (1 if row["queue"] else 0),
        visit_ended_at=_epoch(row.get("visit_ended_at")),
        transfer_target=row.get("transfer_target"),
    )  # fmt: skip


#: The ``queue_visits`` columns, all the bridge's.
VISIT_COLUMNS = (
    "node", "uniqueid", "visit", "linkedid", "direction", "caller_number", "caller_name",
    "queue", "agent", "agent_channel", "queued_at", "answered_at", "ended_at", "wait_seconds",
    "talk_seconds", "hold_seconds", "wrapup_seconds", "ring_attempts", "original_position",
    "outcome", "exit_key", "transfer_target",
)  # fmt: skip
VISIT_TIME_COLUMNS = frozenset({"queued_at", "answered_at", "ended_at"})


def visit_row(call: Call, final: bool) -> dict[str, Any]:
    """The ``queue_visits`` row of the visit ``call`` describes (``call.visit`` >= 1, in a
    queue). ``outcome`` and ``ended_at`` stay NULL until the visit is over (``final``)."""
    ended = call.visit_ended_at
    if ended is None and final:
        ended = call.ended_at
    return {
        "node": call.node, "uniqueid": call.uniqueid, "visit": call.visit,
        "linkedid": call.linkedid, "direction": str(call.direction),
        "caller_number": call.caller_number, "caller_name": call.caller_name,
        "queue": call.queue, "agent": call.agent, "agent_channel": call.agent_channel,
        "queued_at": call.queued_at, "answered_at": call.answered_at,
        "ended_at": ended if final else None,
        "wait_seconds": call.wait_seconds, "talk_seconds": call.talk_seconds,
        "hold_seconds": call.hold_seconds, "wrapup_seconds": call.wrapup_seconds,
        "ring_attempts": call.ring_attempts, "original_position": call.original_position,
        "outcome": str(call.outcome) if final and call.outcome else None,
        "exit_key": call.exit_key, "transfer_target": call.transfer_target,
    }  # fmt: skip


EVENT_COLUMNS = (
    "node", "received_at", "event", "uniqueid", "linkedid", "raw", "error", "dedup_key",
)  # fmt: skip


def _copy_text(value: str | None) -> str:
    """One field of PostgreSQL's COPY text format (NULL is ``\\N``). Cheap in the common
    cases: nothing to escape (``in`` tests are far cheaper than rewriting a value), or only
    line ends -- every raw frame has CRLFs, few have a backslash or a tab."""
    if value is None:
        return "\\N"
    if "\\" in value or "\t" in value:
        value = value.replace("\\", "\\\\").replace("\t", "\\t")
    if "\n" in value or "\r" in value:
        value = value.replace("\n", "\\n").replace("\r", "\\r")
    return value


@functools.lru_cache(maxsize=8)
def _utc_second(second: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(second))


def copy_timestamp(at: float) -> str:
    """``at`` (epoch seconds) as timestamptz text; events come many per second, so the
    formatted second is cached. Rounded to the microsecond, as Asterisk wrote it:
    1795343011.000001 is a float a hair below, which truncation would make .000000."""
    second, micro = divmod(round(at * 1_000_000), 1_000_000)
    return f"{_utc_second(second)}.{micro:06d}+00"


def event_row(
    node: str,
    key: str,
    at: float,
    name: str,
    raw: str,
    error: str | None,
    uniqueid: str | None,
    linkedid: str | None,
) -> str:
    """An audit row, as one line of COPY text for ``EVENT_COLUMNS``: formatted here, once,
    because the bridge writes one per AMI frame (tens of thousands a second).

    ``key`` names this one received frame (the connection it came on and its place there),
    so a batch spooled and written twice stores it once, while two identical frames Asterisk
    really sent twice (it does: DeviceStateChange) are both kept.
    """
    return (
        f"{_copy_text(node)}\t{copy_timestamp(at)}\t{_copy_text(name[:64])}\t"
        f"{_copy_text(uniqueid)}\t{_copy_text(linkedid)}\t{_copy_text(raw)}\t"
        f"{_copy_text(error)}\t{_copy_text(key)}\n"
    )


@dataclass
class Batch:
    calls: dict[str, dict[str, Any]] = field(default_factory=dict)
    visits: dict[str, dict[str, Any]] = field(default_factory=dict)
    spans: list[dict[str, Any]] = field(default_factory=list)
    pauses: list[dict[str, Any]] = field(default_factory=list)
    sessions: list[dict[str, Any]] = field(default_factory=list)
    events: list[str] = field(default_factory=list)  # COPY text lines, see event_row
    #: Recording rows by path, the latest snapshot of each (callcenter.recordings.track.row).
    recordings: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __len__(self) -> int:
        return (
            len(self.calls)
            + len(self.recordings)
            + len(self.visits)
            + len(self.spans)
            + len(self.pauses)
            + len(self.sessions)
            + len(self.events)
        )

    def add(self, change: Change) -> None:
        match change:
            case CallChanged(call=call):
                # Later snapshots of one call replace earlier ones within a batch.
                self.calls[f"{call.node}|{call.uniqueid}"] = call_row(call)
                if call.visit and call.queue is not None:
                    self._visit(call, call.closed)
            case VisitChanged(call=call, final=final):
                if call.queue is not None:
                    self._visit(call, final)
            case MemberPauseChanged():
                self.pauses.append({
                    "node": change.node, "agent": change.agent, "queue": change.queue,
                    "at": change.at, "paused": change.paused, "reason": change.reason,
                    "previous_paused": change.previous_paused,
                    "previous_reason": change.previous_reason,
                    "previous_started_at": change.previous_started_at,
                })  # fmt: skip
            case AgentStateChanged():
                self.spans.append({
                    "node": change.node, "agent": change.agent, "state": str(change.state),
                    "reason": change.reason or None, "started_at": change.started_at,
                    "previous_state": (
                        str(change.previous_state) if change.previous_state else None
                    ),
                    "previous_reason": change.previous_reason or None,
                    "previous_started_at": change.previous_started_at,
                })  # fmt: skip
            case AgentLoggedIn():
                self.sessions.append(
                    {
                        "op": "login",
                        "node": change.node,
                        "agent": change.agent,
                        "interface": change.interface,
                        "at": change.at,
                    }
                )
            case AgentLoggedOut():
                self.sessions.append(
                    {
                        "op": "logout",
                        "node": change.node,
                        "agent": change.agent,
                        "interface": change.interface,
                        "at": change.at,
                        "reason": change.reason,
                    }
                )
            case _:
                pass  # snapshots for MQTT only

    def _visit(self, call: Call, final: bool) -> None:
        # Later snapshots of one visit replace earlier ones within a batch.
        self.visits[f"{call.node}|{call.uniqueid}|{call.visit}"] = visit_row(call, final)

    def slices(self, max_events: int) -> Iterator[Batch]:
        """This batch as batches of at most ``max_events`` audit rows; calls, spans and
        sessions ride with the first (they are few, and in order)."""
        if len(self.events) <= max_events:
            if self:
                yield self
            return
        for start in range(0, len(self.events), max_events):
            part = Batch(events=self.events[start : start + max_events])
            if start == 0:
                part.calls, part.visits = self.calls, self.visits
                part.recordings = self.recordings
                part.spans, part.pauses, part.sessions = self.spans, self.pauses, self.sessions
            yield part

    def to_json(self) -> dict[str, Any]:
        return {
            "calls": list(self.calls.values()),
            "visits": list(self.visits.values()),
            "spans": self.spans,
            "pauses": self.pauses,
            "sessions": self.sessions,
            "events": self.events,
            "recordings": list(self.recordings.values()),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Batch:
        batch = cls(
            spans=list(data.get("spans", [])),
            pauses=list(data.get("pauses", [])),
            sessions=list(data.get("sessions", [])),
            events=list(data.get("events", [])),
        )
        for row in data.get("calls", []):
            batch.calls[f"{row['node']}|{row['uniqueid']}"] = row
        for row in data.get("visits", []):
            batch.visits[f"{row['node']}|{row['uniqueid']}|{row['visit']}"] = row
        for row in data.get("recordings", []):
            batch.recordings[row["path"]] = row
        return batch
