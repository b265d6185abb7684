"""app_queue's queue_log: a pure line parser and the reconciliation of a call with its lines.

queue_log is Asterisk's own record of queue calls and the authority where AMI is ambiguous:
AMI sends QueueCallerAbandon for a timeout as well as for an abandon, and a call that ended
while the bridge was disconnected is only ``lost`` to the core. Line format (file backend):

    epoch|callid|queue|agent|event|data1|data2|...

``callid`` is the caller channel's Uniqueid (``MANAGER``/``NONE``/``CLI`` for member actions),
``agent`` the MemberName for call events (CONNECT, COMPLETE*, RING*) and the interface for
ADDMEMBER/REMOVEMEMBER (with ``log_membername_as_agent = no``). Durations are whole seconds,
RINGNOANSWER/RINGCANCELED milliseconds. Data by event (from ``apps/app_queue.c``):

========================== =========================================================
ENTERQUEUE                 url, callerid, original position
CONNECT                    holdtime, agent channel uniqueid, ringtime
COMPLETECALLER/AGENT       holdtime, talktime, original position
ABANDON/EXITWITHTIMEOUT/   position, original position, waittime
EXITEMPTY
EXITWITHKEY                key, position, original position, waittime
BLINDTRANSFER              extension, context, holdtime, talktime, original position
ATTENDEDTRANSFER           BRIDGE|<bridge id>, APP|<app> or LINK|<chan>|<chan> (the target),
                           then holdtime, talktime, original position
========================== =========================================================
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from callcenter.core.records import Call, CallPhase
from callcenter.domain import CallOutcome, Direction


@dataclass(frozen=True, slots=True)
class QueueLogEntry:
    time: float
    callid: str
    queue: str
    agent: str
    event: str
    data: tuple[str, ...]

    def datum(self, n: int) -> str:
        """``data<n>`` (1-based), ``""`` when the line has fewer fields."""
        return self.data[n - 1] if 0 < n <= len(self.data) else ""


def parse_queue_log_line(line: str) -> QueueLogEntry:
    """Parse one line; raises :class:`ValueError` when it is not a queue_log line."""
    parts = line.rstrip("\r\n").split("|")
    if len(parts) < 5:
        raise ValueError(f"queue_log line has {len(parts)} fields, expected at least 5")
    try:
        time = float(parts[0])
    except ValueError:
        raise ValueError(f"queue_log time is not a number: {parts[0][:40]!r}") from None
    if not parts[4]:
        raise ValueError("queue_log line has no event")
    return QueueLogEntry(time, parts[1], parts[2], parts[3], parts[4], tuple(parts[5:]))


def parse_queue_log(text: str) -> list[QueueLogEntry]:
    """Every line of a queue_log file; blank lines are skipped, a bad line raises."""
    return [parse_queue_log_line(line) for line in text.splitlines() if line.strip()]


def _int(value: str) -> int | None:
    try:
        return int(value)
    except ValueError:
        return None


def _seconds(value: str) -> float | None:
    number = _int(value)
    return None if number is None else float(number)


_EXITS = {
    "ABANDON": CallOutcome.ABANDONED,
    "EXITWITHTIMEOUT": CallOutcome.TIMED_OUT,
    "EXITEMPTY": CallOutcome.EXIT_EMPTY,
}
_RINGS = ("RINGNOANSWER", "RINGCANCELED", "CONNECT")


_TERMINAL = frozenset(
    {
        "COMPLETECALLER",
        "COMPLETEAGENT",
        "ABANDON",
        "EXITWITHTIMEOUT",
        "EXITEMPTY",
        "EXITWITHKEY",
        "BLINDTRANSFER",
        "ATTENDEDTRANSFER",
    }
)


@dataclass
class _Visit:
    queue: str
    lines: list[QueueLogEntry]
    agent: str = ""
    ended: bool = False


def split_visits(entries: Iterable[QueueLogEntry]) -> list[list[QueueLogEntry]]:
    """The lines of one callid, one list per queue visit, in the order of their ENTERQUEUE.

    Each ENTERQUEUE opens a visit. Every other line belongs to a visit of its queue that is
    not over yet -- the newest such, and for a line that names the agent who answered
    (COMPLETE*, *TRANSFER) the one that agent answered: after an AMI Redirect, the first
    visit's COMPLETECALLER is written only when the caller leaves the second one. A line
    with no visit to go to (its ENTERQUEUE came before the file began) opens one.
    """
    visits: list[_Visit] = []
    for entry in entries:
        if entry.event == "ENTERQUEUE":
            visits.append(_Visit(entry.queue, [entry]))
            continue
        candidates = [v for v in visits if v.queue == entry.queue and not v.ended]
        if entry.event in _TERMINAL and entry.agent:
            answered = [v for v in candidates if v.agent == entry.agent]
            candidates = answered or [v for v in candidates if not v.agent] or candidates
        if entry.event == "CONNECT":
            candidates = [v for v in candidates if not v.agent] or candidates
        if candidates:
            visit = candidates[-1]
        else:
            visit = _Visit(entry.queue, [])
            visits.append(visit)
        visit.lines.append(entry)
        if entry.event == "CONNECT":
            visit.agent = entry.agent
        if entry.event in _TERMINAL:
            visit.ended = True
    return [v.lines for v in visits]


def visit_lines(call: Call, entries: Iterable[QueueLogEntry]) -> list[QueueLogEntry]:
    """The queue_log lines of the visit ``call`` describes: of its callid, in its queue, the
    visit whose ENTERQUEUE is nearest its ``queued_at`` (the newest when that is unknown).
    Matching by queue and time rather than by number keeps it right for a bridge that
    joined mid-call and numbers the visits it saw from 1."""
    lines = [e for e in entries if e.callid == call.uniqueid]
    if not lines:
        return []
    visits = split_visits(lines)
    if call.queue is None:
        return visits[0] if len(visits) == 1 else []
    mine = [v for v in visits if v and v[0].queue == call.queue]
    if not mine:
        return []
    queued_at = call.queued_at
    if queued_at is None:
        return mine[-1]
    return min(mine, key=lambda v: abs(v[0].time - queued_at))


def reconcile_call(call: Call, entries: Iterable[QueueLogEntry]) -> Call:
    """``call`` corrected by the queue_log lines of its visit (:func:`visit_lines`; other
    lines are ignored).

    queue_log wins for what it records: outcome (EXITWITHTIMEOUT vs ABANDON...), exit key,
    wait, talk, agent, original position and the number of ring attempts (RINGNOANSWER +
    RINGCANCELED + CONNECT lines). Times the core measured itself (queued, answered, ended:
    sub-second) are kept; a missing one is taken from the line (whole seconds), and a call
    without an end time (closed as ``lost``) ends at its last exit/complete/transfer line.
    Nothing else changes: a call with no queue_log line comes back equal.
    """
    lines = visit_lines(call, entries)
    if not lines:
        return call
    rings = sum(1 for e in lines if e.event in _RINGS)
    result = call
    end: float | None = None
    for entry in lines:
        result, line_end = _apply_line(result, entry)
        end = line_end if line_end is not None else end
    if rings > result.ring_attempts:
        result = replace(result, ring_attempts=rings)
    if result.ended_at is None and end is not None and result.closed:
        result = replace(result, ended_at=end)
    if result.visit_ended_at is None and end is not None:
        result = replace(result, visit_ended_at=end)
    return result


def _apply_line(call: Call, e: QueueLogEntry) -> tuple[Call, float | None]:
    """Apply one line; also return the time it ends the queue part of the call, if it does."""
    event = e.event
    if event == "ENTERQUEUE":
        return replace(
            call,
            queue=call.queue or e.queue,
            queued_at=call.queued_at if call.queued_at is not None else e.time,
            original_position=_int(e.datum(3)) or call.original_position,
            caller_number=call.caller_number or e.datum(2),
        ), None
    if event == "CONNECT":
        return replace(
            call,
            agent=e.agent,
            agent_uniqueid=call.agent_uniqueid or e.datum(2) or None,
            answered_at=call.answered_at if call.answered_at is not None else e.time,
            wait_seconds=_seconds(e.datum(1)),
            outcome=CallOutcome.ANSWERED,
        ), None
    if event in ("COMPLETECALLER", "COMPLETEAGENT"):
        return replace(
            call,
            agent=e.agent,
            wait_seconds=_seconds(e.datum(1)),
            talk_seconds=_seconds(e.datum(2)),
            original_position=_int(e.datum(3)) or call.original_position,
            outcome=call.outcome
            if call.outcome is CallOutcome.TRANSFERRED
            else CallOutcome.ANSWERED,
        ), e.time
    if event in _EXITS:
        return replace(
            call,
            wait_seconds=_seconds(e.datum(3)),
            original_position=_int(e.datum(2)) or call.original_position,
            outcome=_EXITS[event],
        ), e.time
    if event == "EXITWITHKEY":
        return replace(
            call,
            exit_key=e.datum(1) or None,
            wait_seconds=_seconds(e.datum(4)),
            original_position=_int(e.datum(3)) or call.original_position,
            outcome=CallOutcome.EXIT_KEY,
        ), e.time
    if event == "BLINDTRANSFER":
        call = replace(call, transfer_target=call.transfer_target or f"{e.datum(1)}@{e.datum(2)}")
        return _transferred(call, e)
    if event == "ATTENDEDTRANSFER":
        return _transferred(call, e)
    return call, None


def _transferred(call: Call, e: QueueLogEntry) -> tuple[Call, float | None]:
    """A transfer line: its target takes one to three fields (``exten|context``,
    ``BRIDGE|<id>``, ``APP|<app>``, ``LINK|<chan>|<chan>``), so the last three are read from
    the end: holdtime, calltime, original position."""
    wait, talk, position = e.data[-3:] if len(e.data) >= 3 else ("", "", "")
    return replace(
        call,
        agent=e.agent,
        wait_seconds=_seconds(wait),
        talk_seconds=_seconds(talk),
        original_position=_int(position) or call.original_position,
        outcome=CallOutcome.TRANSFERRED,
    ), e.time


#: An Asterisk Uniqueid (``<epoch>.<n>``): what an inbound caller's channel has. The dialer
#: and callbacks originate with a ChannelId of their own (``dialer-<uuid>``,
#: ``cb-<id>-<epoch>``), so a callid that is not one is an outbound call.
_UNIQUEID = re.compile(r"\d+\.\d+")


def unseen_calls(
    node: str, entries: Iterable[QueueLogEntry], since: float, until: float
) -> dict[str, list[QueueLogEntry]]:
    """The queue visits queue_log shows entering a queue at ``since`` or later and over by
    ``until``, by callid, with their lines (one visit per callid: the first; a call of several
    visits the bridge missed entirely keeps its other visits for the next live event or
    reconciliation to bring). For the calls a bridge could not see: those that began and
    ended while it was not connected."""
    by_call: dict[str, list[QueueLogEntry]] = {}
    for entry in entries:
        if entry.callid and entry.callid not in ("NONE", "MANAGER"):
            by_call.setdefault(entry.callid, []).append(entry)
    out: dict[str, list[QueueLogEntry]] = {}
    for callid, lines in by_call.items():
        visits = split_visits(lines)
        if not visits:
            continue
        first = visits[0]
        enter = next((e for e in first if e.event == "ENTERQUEUE"), None)
        end = next((e for e in first if e.event in _TERMINAL), None)
        if enter is None or end is None or enter.time < since or end.time > until:
            continue
        out[callid] = first
    return out


def call_from_queue_log(node: str, callid: str, lines: Sequence[QueueLogEntry]) -> Call:
    """A closed call made from its queue_log lines alone (:func:`unseen_calls`): what
    queue_log records (queue, caller number, wait, talk, agent, outcome, position, rings),
    started at its ENTERQUEUE (the time before the queue is not in queue_log), no channel, DID
    or caller name (not there either)."""
    enter = lines[0]
    direction = Direction.INBOUND if _UNIQUEID.fullmatch(callid) else Direction.OUTBOUND
    skeleton = Call(
        node=node, uniqueid=callid, linkedid=callid, direction=direction, channel="",
        caller_number="", caller_name="", did="", started_at=enter.time,
        phase=CallPhase.POST_QUEUE, queue=enter.queue, queued_at=enter.time, visit=1,
        closed=True,
    )  # fmt: skip
    return reconcile_call(skeleton, lines)
