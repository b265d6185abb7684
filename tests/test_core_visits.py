"""Queue visits, the bare AgentComplete and per-queue pauses, replayed from recorded traffic
and compared with Asterisk's queue_log of the same run.

Every scenario in ``tests/fixtures/asterisk-traces`` goes through the generic checks: each
queue visit the core reports equals its queue_log reconciliation (outcome, queue, agent,
wait, talk, positions, ring attempts), there are as many visits as ENTERQUEUE lines, and the
per-queue pauses equal queue_log's PAUSE -> UNPAUSE. The scenarios recorded for this
(transfers, Redirect, the agent hanging up under load, pauses in one queue and during a
call, a bridge joining mid-stream) have checks of their own below.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import pytest

from callcenter.ami import events as ev
from callcenter.ami.protocol import AmiParser, Message
from callcenter.core import (
    AgentStateChanged,
    Call,
    CallChanged,
    MemberPauseChanged,
    QueueLogEntry,
    VisitChanged,
    apply,
    initial_state,
    reconcile_call,
    split_visits,
)
from callcenter.domain import AgentState, CallOutcome
from tests import traces
from tests.test_core_replay import Replay, replay


def final_visits(result: Replay) -> dict[tuple[str, int], Call]:
    """The last snapshot of every visit that is over, by (uniqueid, visit)."""
    out: dict[tuple[str, int], Call] = {}
    for change in result.changes:
        final = isinstance(change, VisitChanged) and change.final
        last = isinstance(change, CallChanged) and change.call.closed and change.call.queue
        if final or last:
            assert isinstance(change, (VisitChanged, CallChanged))
            out[(change.call.uniqueid, change.call.visit)] = change.call
    return out


def enterqueues(scenario: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for uid, lines in traces.queue_log_calls(scenario).items():
        counts[uid] = len(split_visits(lines))
    return counts


@pytest.mark.parametrize("scenario", traces.scenarios())
def test_every_visit_equals_queue_log(scenario: str) -> None:
    result = replay(traces.events(scenario))
    assert dict(result.state.open_visits) == {}
    visits = final_visits(result)
    logged = traces.queue_log_calls(scenario)
    for (uid, number), visit in visits.items():
        assert visit.visit == number >= 1
        assert visit.queue is not None
        assert reconcile_call(visit, logged.get(uid, [])) == visit, (uid, number)
    seen: dict[str, int] = {}
    for uid, _ in visits:
        seen[uid] = seen.get(uid, 0) + 1
    for uid, count in enterqueues(scenario).items():
        assert seen.get(uid, 0) == count, uid


# --- pauses ----------------------------------------------------------------------------------

Pause = tuple[str, str, str, float, float | None]  # agent, queue, reason, start, end


def queue_log_pauses(entries: Iterable[QueueLogEntry]) -> list[Pause]:
    """PAUSE -> UNPAUSE per (agent, queue), as queue_log has them (its agent field is the
    member name for these lines); a pause still open at the end has no end."""
    open_: dict[tuple[str, str], tuple[str, float]] = {}
    out: list[Pause] = []
    for e in entries:
        key = (e.agent, e.queue)
        if e.event == "PAUSE":
            if key in open_:
                reason, start = open_.pop(key)
                out.append((*key, reason, start, e.time))
            open_[key] = (e.datum(1), e.time)
        elif e.event == "UNPAUSE" and key in open_:
            reason, start = open_.pop(key)
            out.append((*key, reason, start, e.time))
    out.extend((*key, reason, start, None) for key, (reason, start) in open_.items())
    return out


def core_pauses(result: Replay) -> list[Pause]:
    open_: dict[tuple[str, str], tuple[str, float]] = {}
    out: list[Pause] = []
    for c in result.changes:
        if not isinstance(c, MemberPauseChanged):
            continue
        key = (c.agent, c.queue)
        if c.previous_paused:
            reason, start = open_.pop(key)
            assert (reason, start) == (c.previous_reason, c.previous_started_at)
            out.append((*key, reason, start, c.at))
        if c.paused:
            open_[key] = (c.reason, c.at)
    out.extend((*key, reason, start, None) for key, (reason, start) in open_.items())
    return out


def near(a: float | None, b: float | None) -> bool:
    # queue_log times are whole epoch seconds; AMI's carry microseconds.
    if a is None or b is None:
        return a is b
    return abs(a - b) <= 1.0


@pytest.mark.parametrize("scenario", traces.scenarios())
def test_pauses_per_queue_equal_queue_log(scenario: str) -> None:
    ours = core_pauses(replay(traces.events(scenario), settle=False))
    theirs = queue_log_pauses(traces.queue_log(scenario))
    for agent, queue, reason, start, end in theirs:
        match = [
            p
            for p in ours
            if p[:3] == (agent, queue, reason) and near(p[3], start) and near(p[4], end)
        ]
        assert len(match) == 1, (agent, queue, reason, start, end, ours)
    # Ours may also hold pauses queue_log has no PAUSE line for: a member added paused
    # (ADDMEMBER|PAUSED) or restored paused after a restart; every other one must match.
    added_paused = [e.time for e in traces.queue_log(scenario) if e.event == "ADDMEMBER"]
    for p in ours:
        if not any(t[:3] == p[:3] and near(t[3], p[3]) for t in theirs):
            assert any(near(t, p[3]) for t in added_paused) or scenario == "restart", p


# --- the bare AgentComplete ------------------------------------------------------------------


def _bare(event: ev.AgentComplete) -> ev.AgentComplete:
    """The form Asterisk sends when the caller's channel is gone (see ev.AgentComplete)."""
    return ev.AgentComplete(
        event.node, event.time, "", 0, "", "", "", "", "", "", "", "", "", "",
        event.queue, event.member_name, event.interface,
        event.hold_time, event.talk_time, event.reason,
    )  # fmt: skip


def test_a_bare_agent_complete_parses() -> None:
    frame = (
        b"Asterisk Call Manager/11.0.0\r\n"
        b"Event: AgentComplete\r\nPrivilege: agent,all\r\nQueue: sales\r\n"
        b"Interface: PJSIP/agent1001\r\nMemberName: Alice\r\nHoldTime: 3\r\nTalkTime: 12\r\n"
        b"Reason: agent\r\n\r\n"
    )
    *_, message = AmiParser().feed(frame)
    assert isinstance(message, Message)
    event = ev.parse_event(message, 100.0, "pbx")
    assert isinstance(event, ev.AgentComplete)
    assert (event.uniqueid, event.channel, event.dest_uniqueid) == ("", "", "")
    assert (event.queue, event.member_name, event.hold_time, event.talk_time) == (
        "sales",
        "Alice",
        3,
        12,
    )


def test_a_bare_agent_complete_after_the_hangup_closes_the_call_and_frees_the_agent() -> None:
    """``inbound-agent-hangup`` with its AgentComplete in the bare form and moved after the
    caller's Hangup, as Asterisk sends it under load: the call still closes answered with
    queue_log's wait and talk, and the agent's on-call span ends."""
    events = list(traces.events("inbound-agent-hangup"))
    (i,) = [n for n, e in enumerate(events) if isinstance(e, ev.AgentComplete)]
    complete = events.pop(i)
    assert isinstance(complete, ev.AgentComplete)
    caller = complete.uniqueid
    (h,) = [n for n, e in enumerate(events) if isinstance(e, ev.Hangup) and e.uniqueid == caller]
    late = dataclasses.replace(_bare(complete), time=events[h].time)
    events.insert(h + 1, late)
    result = replay(events)
    (call,) = result.calls().values()
    assert call.closed
    assert call.outcome is CallOutcome.ANSWERED
    assert reconcile_call(call, traces.queue_log("inbound-agent-hangup")) == call
    assert dict(result.state.calls) == {}
    spans = [c for c in result.changes if isinstance(c, AgentStateChanged)]
    assert spans[-1].state is not AgentState.ON_CALL


def test_a_bare_agent_complete_for_no_known_call_still_ends_the_agents_call() -> None:
    """The bridge joined after the call's start and never learnt it: the member's call ends
    and the wrap-up starts all the same."""
    events = list(traces.events("inbound-agent-hangup"))
    (i,) = [n for n, e in enumerate(events) if isinstance(e, ev.AgentComplete)]
    complete = events[i]
    assert isinstance(complete, ev.AgentComplete)
    state = initial_state(traces.NODE, traces.core_config())
    for event in events[:i]:
        state, _ = apply(state, event)
    agent = state.agents[complete.member_name]
    assert agent.call == complete.uniqueid
    # Forget the call, as a bridge that never saw it would.
    state = dataclasses.replace(state, calls={})
    state, _ = apply(state, _bare(complete))
    assert state.agents[complete.member_name].call is None


# --- a call first seen mid-stream ------------------------------------------------------------


@pytest.mark.parametrize("scenario", ["inbound-answered", "burst", "local-channels"])
def test_a_call_first_seen_at_agent_connect_is_placed_by_its_hold_time(scenario: str) -> None:
    """Replayed from each AgentConnect on (the bridge started during the ring), the call is
    in its queue's figures by when it entered the queue: queue_log's ENTERQUEUE time."""
    events = traces.events(scenario)
    logged = traces.queue_log_calls(scenario)
    starts = [n for n, e in enumerate(events) if isinstance(e, ev.AgentConnect)]
    assert starts
    for n in starts:
        connect = events[n]
        assert isinstance(connect, ev.AgentConnect)
        calls = replay(events[n:]).calls()
        call = calls[connect.uniqueid]
        (enter,) = [e for e in logged[connect.uniqueid] if e.event == "ENTERQUEUE"]
        assert call.queue == enter.queue
        assert call.queued_at is not None
        assert near(call.queued_at, enter.time), scenario
        assert reconcile_call(call, logged[connect.uniqueid]).queued_at == call.queued_at


# --- the recorded transfers and the Redirect -------------------------------------------------


def test_redirect_into_another_queue_frees_the_first_agent_at_once() -> None:
    """``redirect-queue``: Alice (sales) is connected when AMI Redirect sends the caller into
    support, where Bob answers. app_queue ends Alice's call at the Redirect (her member turns
    Status 1, InCall 0) but reports her AgentComplete only when the caller hangs up: she is
    not on a call meanwhile, and both visits end as queue_log says."""
    result = replay(traces.events("redirect-queue"))
    joins = [e for e in traces.events("redirect-queue") if isinstance(e, ev.QueueCallerJoin)]
    assert [j.queue for j in joins] == ["sales", "support"]
    redirect_at = joins[1].time
    alice = [c for c in result.states("Alice") if c.started_at >= redirect_at]
    assert alice
    assert alice[0].started_at == redirect_at
    assert alice[0].state is not AgentState.ON_CALL
    visits = final_visits(result)
    uid = joins[0].uniqueid
    first, second = visits[(uid, 1)], visits[(uid, 2)]
    assert (first.queue, first.agent, first.outcome) == ("sales", "Alice", CallOutcome.ANSWERED)
    assert (second.queue, second.agent) == ("support", "Bob")
    complete = [e for e in traces.queue_log("redirect-queue") if e.event == "COMPLETECALLER"]
    assert {(e.queue, float(e.datum(2))) for e in complete} == {
        (first.queue, first.talk_seconds),
        (second.queue, second.talk_seconds),
    }


@pytest.mark.parametrize("scenario", ["xfer-blind-refer", "xfer-blind-ami"])
def test_a_blind_transfer_to_a_queue_is_two_visits_and_says_where(scenario: str) -> None:
    result = replay(traces.events(scenario))
    (line,) = [e for e in traces.queue_log(scenario) if e.event == "BLINDTRANSFER"]
    visits = final_visits(result)
    first, second = visits[(line.callid, 1)], visits[(line.callid, 2)]
    assert first.outcome is CallOutcome.TRANSFERRED
    assert first.transfer_target == f"{line.datum(1)}@{line.datum(2)}"
    assert (first.queue, second.queue) == ("sales", "support")
    assert second.outcome is CallOutcome.ANSWERED
    (call,) = [c for c in result.calls().values() if c.uniqueid == line.callid]
    assert call.visit == 2
    assert call.closed


def test_an_attended_transfer_ends_with_the_bare_agent_complete() -> None:
    """``xfer-attended``: Atxfer from Alice to the support queue. Alice's visit ends
    ``transferred`` (queue_log ATTENDEDTRANSFER); the consultation call is a Local channel
    that queue_log logs as a call of its own in support, answered by Bob. When the caller
    hangs up, the Local channel is gone first and Bob's AgentComplete comes in the bare
    form: that visit still closes with queue_log's talk, and Bob leaves his call."""
    scenario = "xfer-attended"
    frames = traces.events(scenario)
    bare = [e for e in frames if isinstance(e, ev.AgentComplete) and not e.uniqueid]
    assert [(e.member_name, e.queue) for e in bare] == [("Bob", "support")]
    result = replay(frames)
    visits = final_visits(result)
    (line,) = [e for e in traces.queue_log(scenario) if e.event == "ATTENDEDTRANSFER"]
    alice = visits[(line.callid, 1)]
    assert alice.outcome is CallOutcome.TRANSFERRED
    assert alice.talk_seconds == float(line.data[-2])
    assert alice.transfer_target
    (bobs,) = [e for e in traces.queue_log(scenario) if e.event == "COMPLETECALLER"]
    bob = visits[(bobs.callid, 1)]
    assert (bob.agent, bob.outcome) == ("Bob", CallOutcome.ANSWERED)
    assert bob.talk_seconds == float(bobs.datum(2))
    after = [c for c in result.states("Bob") if c.started_at >= bare[0].time]
    assert after
    assert after[0].state is not AgentState.ON_CALL


# --- the bridge joining while calls wait and talk --------------------------------------------


def test_a_bridge_that_joins_mid_stream_places_every_call_in_its_queue() -> None:
    """``bridge-midstream``, second connection only: it logs in while two calls talk and
    three wait, and learns them from QueueStatus and CoreShowChannels. Every queue visit
    still ends as queue_log says (outcome, queue, agent, wait, talk), and each is in its
    queue's figures by when it entered the queue: the waiting ones by QueueEntry's Wait, the
    talking ones by AgentComplete's HoldTime + TalkTime. (What no event of the second
    connection says -- a talking call's original position and ring attempts -- only
    queue_log has.)"""
    scenario = "bridge-midstream"
    assert traces.sequential_connections(scenario) == ("conn1",)
    result = replay(traces.events(scenario, conn="conn2"))
    assert dict(result.state.calls) == {}
    visits = final_visits(result)
    logged = traces.queue_log_calls(scenario)
    assert {uid for uid, _ in visits} == set(logged)
    for (uid, _), visit in visits.items():
        told = reconcile_call(visit, logged[uid])
        fields = ("outcome", "queue", "agent", "wait_seconds", "talk_seconds")
        assert [getattr(visit, f) for f in fields] == [getattr(told, f) for f in fields], uid
        (enter,) = [e for e in logged[uid] if e.event == "ENTERQUEUE"]
        assert visit.queued_at is not None
        assert near(visit.queued_at, enter.time), uid
    agents = {c.agent for c in result.changes if isinstance(c, AgentStateChanged)}
    assert agents == {"Alice", "Bob"}


def test_a_pause_in_one_queue_counts_there_while_the_agent_takes_the_other_queues_calls() -> None:
    """``pause-one-queue``: Alice paused in sales (lunch) answers a support call meanwhile.
    Her sales pause runs from PAUSE to UNPAUSE all the same, call included; the PAUSEALL
    (break) is one pause in each queue."""
    scenario = "pause-one-queue"
    result = replay(traces.events(scenario), settle=False)
    pauses = core_pauses(result)
    lunch = [p for p in pauses if p[:3] == ("Alice", "sales", "lunch")]
    line = next(e for e in traces.queue_log(scenario) if e.event == "PAUSE" and e.queue == "sales")
    assert len(lunch) == 1
    assert near(lunch[0][3], line.time)
    connect = next(e for e in traces.events(scenario) if isinstance(e, ev.AgentConnect))
    assert connect.queue == "support"
    assert connect.member_name == "Alice"
    start, end = lunch[0][3], lunch[0][4]
    assert end is not None
    assert start < connect.time < end  # the call happened inside the sales pause
    breaks = sorted(p[1] for p in pauses if p[:1] == ("Alice",) and p[2] == "break")
    assert breaks == ["sales", "support"]


def test_a_pause_that_begins_during_a_call_counts_from_its_pause() -> None:
    """``pause-during-call``: QueuePause ("café ☕") while Alice talks. The agent stays
    on the call (a call outranks a pause) and is paused after it; the pause runs from the
    PAUSE, not from the end of the call."""
    scenario = "pause-during-call"
    result = replay(traces.events(scenario), settle=False)
    ((agent, queue, reason, start, end),) = core_pauses(result)
    (pause,) = [e for e in traces.queue_log(scenario) if e.event == "PAUSE"]
    (unpause,) = [e for e in traces.queue_log(scenario) if e.event == "UNPAUSE"]
    assert (agent, queue, reason) == ("Alice", "sales", "café ☕")
    assert near(start, pause.time)
    assert near(end, unpause.time)
    states = [(c.state, c.reason) for c in result.states("Alice")]
    on_call = states.index((AgentState.ON_CALL, None))
    assert (AgentState.PAUSED, "café ☕") in states[on_call:]


def test_a_restart_mid_call_ends_calls_as_queue_log_does_and_keeps_the_pause() -> None:
    """``restart-midcall``: ``core restart now`` while two calls talk and two wait. Asterisk
    reports every one of them (AgentComplete, QueueCallerAbandon) before its Shutdown, so
    none is lost; after the restart QueueStatus brings the members back, Bob still paused,
    with no event and no queue_log line: his pause goes on, as in queue_log."""
    scenario = "restart-midcall"
    assert traces.sequential_connections(scenario) == ("conn1", "conn2")
    result = replay(traces.events(scenario), settle=False)
    visits = final_visits(result)
    logged = traces.queue_log_calls(scenario)
    assert {uid for uid, _ in visits} == set(logged)
    outcomes = sorted(str(v.outcome) for v in visits.values())
    assert outcomes == ["abandoned", "abandoned", "answered", "answered", "answered"]
    ((agent, queue, reason, _, end),) = core_pauses(result)
    assert (agent, queue, reason, end) == ("Bob", "sales", "lunch", None)


def test_unseen_calls_are_the_visits_begun_and_over_within_the_gap() -> None:
    """What a bridge back from an absence takes from queue_log alone: visits entered at or
    after ``since`` and over by ``until``; one still going on, or entered before, is left to
    the live stream and the resync."""
    from callcenter.core import call_from_queue_log, parse_queue_log, unseen_calls
    from callcenter.domain import CallOutcome, Direction

    log = ("1000|a1|sales|NONE|ENTERQUEUE||5551|1\n"
           "1001|a1|sales|NONE|EXITWITHTIMEOUT|1|1|1\n"
           "1000|1000.5|sales|NONE|ENTERQUEUE||5552|2\n"
           "1002|1000.5|sales|alice|CONNECT|2|1000.6|1\n"
           "1030|1000.5|sales|alice|COMPLETECALLER|2|28|2\n"
           "990|early|sales|NONE|ENTERQUEUE||5553|1\n"
           "995|early|sales|NONE|ABANDON|1|1|5\n"
           "1040|open|sales|NONE|ENTERQUEUE||5554|1\n"
           "1000|NONE|NONE|NONE|QUEUESTART|\n")  # fmt: skip
    found = unseen_calls("pbx", parse_queue_log(log), 999, 1035)
    assert sorted(found) == ["1000.5", "a1"]
    timed_out = call_from_queue_log("pbx", "a1", found["a1"])
    assert (timed_out.outcome, timed_out.wait_seconds, timed_out.direction, timed_out.closed,
            timed_out.ended_at, timed_out.caller_number) == (
        CallOutcome.TIMED_OUT, 1.0, Direction.OUTBOUND, True, 1001.0, "5551")  # fmt: skip
    answered = call_from_queue_log("pbx", "1000.5", found["1000.5"])
    assert (answered.outcome, answered.agent, answered.wait_seconds, answered.talk_seconds,
            answered.direction, answered.ring_attempts) == (
        CallOutcome.ANSWERED, "alice", 2.0, 28.0, Direction.INBOUND, 1)  # fmt: skip
    assert unseen_calls("pbx", parse_queue_log(log), 999, 1029) == {"a1": found["a1"]}
