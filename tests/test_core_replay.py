"""Replay each recorded scenario through parse_event + apply and check the result against
Asterisk's own queue_log and the scenario.md descriptions.

Expected numbers are read from the scenario's queue_log (parsed here) wherever it has them;
the few literals cite the scenario.md or README line they come from.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import pytest

from callcenter.ami import events as ev
from callcenter.core import (
    AgentChanged,
    AgentLoggedIn,
    AgentLoggedOut,
    AgentStateChanged,
    Call,
    CallChanged,
    CallPhase,
    Change,
    CoreConfig,
    QueueChanged,
    QueueConfig,
    QueueLogEntry,
    State,
    apply,
    ignores_var_set,
    initial_state,
    parse_queue_log_line,
    reconcile_call,
    resync_channels,
    resync_queues,
    tick,
)
from callcenter.domain import AgentState, CallOutcome, Direction
from tests import traces

SETTLE = 3600.0
C = TypeVar("C", bound=Change)
T = TypeVar("T")  # a tick this long after the last event ends every wrap-up


@dataclass
class Replay:
    state: State
    changes: list[Change]
    times: list[float]  # the time of the event (or tick) that produced each change

    def calls(self) -> dict[str, Call]:
        """The last snapshot of every call, by Uniqueid."""
        return {c.call.uniqueid: c.call for c in self.changes if isinstance(c, CallChanged)}

    def states(self, agent: str) -> list[AgentStateChanged]:
        return [c for c in self.changes if isinstance(c, AgentStateChanged) and c.agent == agent]

    def of(self, cls: type[C]) -> list[C]:
        return [c for c in self.changes if isinstance(c, cls)]


def replay(
    events: Iterable[ev.Event], config: CoreConfig | None = None, *, settle: bool = True
) -> Replay:
    state = initial_state(traces.NODE, config if config is not None else traces.core_config())
    result = Replay(state, [], [])
    last = 0.0
    for event in events:
        state, changes = apply(state, event)
        result.changes.extend(changes)
        result.times.extend([event.time] * len(changes))
        last = event.time
    if settle:
        state, changes = tick(state, last + SETTLE)
        result.changes.extend(changes)
        result.times.extend([last + SETTLE] * len(changes))
    result.state = state
    return result


def qlog(scenario: str, event: str) -> list[QueueLogEntry]:
    return [e for e in traces.queue_log(scenario) if e.event == event]


def only(items: Sequence[T]) -> T:
    assert len(items) == 1, items
    return items[0]


def closed_calls(scenario: str) -> dict[str, Call]:
    calls = replay(traces.events(scenario)).calls()
    assert all(c.closed for c in calls.values())
    return calls


# --- every scenario --------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", traces.scenarios())
def test_replay_ends_clean_and_agrees_with_queue_log(scenario: str) -> None:
    """Whole trace: nothing left open, and every call equals its queue_log reconciliation
    (so AMI alone gave the same outcome, wait, talk, agent, positions and ring attempts)."""
    result = replay(traces.events(scenario))
    assert dict(result.state.calls) == {}
    assert dict(result.state.legs) == {}
    assert dict(result.state.channels) == {}
    assert dict(result.state.lists) == {}
    calls = result.calls()
    logged = traces.queue_log_calls(scenario)
    assert set(logged) <= set(calls)
    for uid, call in calls.items():
        assert call.closed
        assert call.node == traces.NODE
        assert reconcile_call(call, logged.get(uid, [])) == call, uid


@pytest.mark.parametrize("scenario", traces.scenarios())
def test_changes_are_consistent(scenario: str) -> None:
    """Each call reports ``closed`` exactly once, last; each agent's state spans chain up
    (previous = last reported, times never go back); sessions open and close in turn."""
    result = replay(traces.events(scenario))
    closed: set[str] = set()
    for call_change in result.of(CallChanged):
        assert call_change.call.uniqueid not in closed
        if call_change.call.closed:
            closed.add(call_change.call.uniqueid)
    last: dict[str, AgentStateChanged] = {}
    for span in result.of(AgentStateChanged):
        before = last.get(span.agent)
        if before is None:
            assert span.previous_state is AgentState.LOGGED_OUT
        else:
            assert span.previous_state is before.state
            assert span.previous_started_at == before.started_at
            assert span.started_at >= before.started_at
        assert span.state is not span.previous_state or span.reason != span.previous_reason
        last[span.agent] = span
    sessions: dict[str, int] = {}
    for change in result.changes:
        if isinstance(change, AgentLoggedIn):
            assert sessions.get(change.agent, 0) == 0
            sessions[change.agent] = 1
        elif isinstance(change, AgentLoggedOut):
            assert sessions.pop(change.agent) == 1
    assert set(sessions) == set(result.state.agents)
    for queue_change in result.of(QueueChanged):
        snap = queue_change.queue
        assert min(snap.waiting, snap.logged_in, snap.available, snap.paused) >= 0
        parts = snap.available + snap.ringing + snap.on_call + snap.wrap_up + snap.paused
        assert parts + snap.unavailable == snap.logged_in


# --- inbound calls ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scenario", "complete"),
    [("inbound-answered", "COMPLETECALLER"), ("inbound-agent-hangup", "COMPLETEAGENT")],
)
def test_answered_call(scenario: str, complete: str) -> None:
    (call,) = closed_calls(scenario).values()
    enter = only(qlog(scenario, "ENTERQUEUE"))
    connect = only(qlog(scenario, "CONNECT"))
    done = only(qlog(scenario, complete))
    assert call.uniqueid == enter.callid
    assert call.outcome is CallOutcome.ANSWERED
    assert call.direction is Direction.INBOUND
    assert (call.queue, call.agent) == (enter.queue, connect.agent)  # sales, Alice
    assert call.wait_seconds == float(connect.datum(1))
    assert call.talk_seconds == float(done.datum(2))
    assert call.agent_uniqueid == connect.datum(2)
    assert call.original_position == int(enter.datum(3))
    assert call.caller_number == enter.datum(2)
    assert call.caller_name == "Carol Caller"  # scenario.md: "Carol Caller" <5551230001>
    assert call.did == "100"  # scenario.md: INVITE for 100
    assert call.ring_attempts == 1
    assert call.hangup_cause == 16  # scenario.md: both Hangup Cause 16
    assert call.wrapup_seconds == 2.0  # queues.conf [sales] wrapuptime = 2
    assert call.channel == "PJSIP/trunk-00000000"
    assert call.agent_channel == "PJSIP/agent1001-00000001"
    assert call.started_at < call.queued_at < call.answered_at < call.ended_at  # type: ignore[operator]
    # the whole seconds of queue_log against our sub-second times
    assert abs(call.answered_at - connect.time) < 1  # type: ignore[operator]
    assert call.ivr_seconds == pytest.approx(call.queued_at - call.started_at)  # type: ignore[operator]


@pytest.mark.parametrize("scenario", ["inbound-answered", "inbound-agent-hangup"])
def test_agent_states_through_an_answered_call(scenario: str) -> None:
    """scenario.md timeline: added (available), AgentCalled (ringing), AgentConnect
    (on_call), AgentComplete (wrap_up for queues.conf wrapuptime = 2 s), then available."""
    result = replay(traces.events(scenario))
    states = result.states("Alice")
    assert [s.state for s in states] == [
        AgentState.AVAILABLE,
        AgentState.RINGING,
        AgentState.ON_CALL,
        AgentState.WRAP_UP,
        AgentState.AVAILABLE,
    ]
    (complete,) = [e for e in traces.events(scenario) if isinstance(e, ev.AgentComplete)]
    assert states[3].started_at == complete.time
    assert states[4].started_at == complete.time + 2.0  # wrap-up end, exact
    added = next(e for e in traces.events(scenario) if isinstance(e, ev.QueueMemberAdded))
    assert states[0].started_at == added.time
    # sessions start at LoginTime, whole seconds, the same whether learnt live or by resync
    assert only(result.of(AgentLoggedIn)) == AgentLoggedIn(
        traces.NODE, "Alice", "PJSIP/agent1001", float(added.login_time)
    )


def test_abandoned_after_two_ring_attempts() -> None:
    scenario = "inbound-abandon"
    (call,) = closed_calls(scenario).values()
    abandon = only(qlog(scenario, "ABANDON"))
    rings = qlog(scenario, "RINGNOANSWER") + qlog(scenario, "RINGCANCELED")
    assert call.outcome is CallOutcome.ABANDONED
    assert call.ring_attempts == len(rings) == 2
    assert call.wait_seconds == float(abandon.datum(3))  # 9: the 8.4 s wait, whole seconds
    assert call.original_position == int(abandon.datum(2))
    assert call.agent is None
    assert call.answered_at is None
    assert call.hangup_cause == 0  # README: a caller hanging up while queued has Cause 0
    assert call.queue_status is None  # no QUEUESTATUS: Queue() did not return


def test_abandon_rings_the_agent_twice() -> None:
    """Each attempt rings Alice; the second is cancelled by the caller's hang-up. DialEnd
    comes twice per leg (NOANSWER+CANCEL, then CANCEL+CANCEL) and changes nothing twice."""
    result = replay(traces.events("inbound-abandon"))
    assert [s.state for s in result.states("Alice")] == [
        AgentState.AVAILABLE,
        AgentState.RINGING,
        AgentState.AVAILABLE,
        AgentState.RINGING,
        AgentState.AVAILABLE,
    ]


def test_timeout_is_timed_out_not_abandoned() -> None:
    scenario = "inbound-timeout"
    (call,) = closed_calls(scenario).values()
    timeout = only(qlog(scenario, "EXITWITHTIMEOUT"))
    assert qlog(scenario, "ABANDON") == []
    assert call.outcome is CallOutcome.TIMED_OUT
    assert call.queue_status == "TIMEOUT"
    assert call.wait_seconds == float(timeout.datum(3))
    assert call.ring_attempts == 0


def _without_vars(scenario: str, *names: str) -> list[ev.Event]:
    return [
        e for e in traces.events(scenario) if not (isinstance(e, ev.VarSet) and e.variable in names)
    ]


def test_timeout_signals() -> None:
    """Which signal decides timed_out (see core.queues.abandon_outcome): QUEUESTATUS alone;
    without it the wait against the QTIMEOUT variable; without both the queue's configured
    max wait; with nothing known, the QueueCallerAbandon reads as an abandon."""
    no_status = _without_vars("inbound-timeout", "QUEUESTATUS")
    (call,) = replay(no_status).calls().values()
    assert call.outcome is CallOutcome.TIMED_OUT

    no_signal = _without_vars("inbound-timeout", "QUEUESTATUS", "QTIMEOUT")
    (call,) = replay(no_signal).calls().values()
    assert call.outcome is CallOutcome.ABANDONED

    configured = CoreConfig(queues={"sales": QueueConfig(wrapup_seconds=2, max_wait_seconds=5)})
    (call,) = replay(no_signal, configured).calls().values()
    assert call.outcome is CallOutcome.TIMED_OUT

    only_status = _without_vars("inbound-timeout", "QTIMEOUT")
    (call,) = replay(only_status).calls().values()
    assert call.outcome is CallOutcome.TIMED_OUT


def test_real_abandon_stays_abandoned_with_a_timeout_known() -> None:
    (call,) = replay(traces.events("inbound-abandon")).calls().values()
    assert call.queue_timeout == 30.0  # QTIMEOUT VarSet; HoldTime 9 < 30
    assert call.outcome is CallOutcome.ABANDONED


# --- burst -----------------------------------------------------------------------------------


def test_burst_outcomes_and_durations_equal_queue_log() -> None:
    scenario = "burst"
    calls = closed_calls(scenario)
    enter = qlog(scenario, "ENTERQUEUE")
    connects = {e.callid: e for e in qlog(scenario, "CONNECT")}
    completes = {
        e.callid: e for e in qlog(scenario, "COMPLETEAGENT") + qlog(scenario, "COMPLETECALLER")
    }
    timeouts = {e.callid: e for e in qlog(scenario, "EXITWITHTIMEOUT")}
    assert set(calls) == {e.callid for e in enter}
    assert (len(connects), len(timeouts)) == (12, 8)  # scenario.md: 12 answered, 8 timeouts
    for uid, call in calls.items():
        if uid in connects:
            assert call.outcome is CallOutcome.ANSWERED
            assert call.agent == connects[uid].agent
            assert call.wait_seconds == float(connects[uid].datum(1))
            assert call.talk_seconds == float(completes[uid].datum(2))
        else:
            assert call.outcome is CallOutcome.TIMED_OUT
            assert call.wait_seconds == float(timeouts[uid].datum(3))
            assert call.original_position == int(timeouts[uid].datum(2))
            assert call.queue_status == "TIMEOUT"
    by_agent = {a: sum(1 for c in calls.values() if c.agent == a) for a in ("Alice", "Bob")}
    assert by_agent == {a: sum(1 for e in connects.values() if e.agent == a) for a in by_agent}


def test_burst_wrap_up_holds_between_calls() -> None:
    """With ring 1 s + talk 2 s + wrapuptime 2 s (scenario.md), every wrap-up lasts exactly
    2 s and the next call rings the agent only after it."""
    result = replay(traces.events("burst"))
    for agent in ("Alice", "Bob"):
        states = result.states(agent)
        for before, after in itertools.pairwise(states):
            if before.state is AgentState.WRAP_UP:
                assert after.state is AgentState.AVAILABLE
                assert after.started_at == pytest.approx(before.started_at + 2.0)
        assert sum(s.state is AgentState.ON_CALL for s in states) == 6


def test_burst_queue_snapshot() -> None:
    """20 callers join within ~1 s (scenario.md); the longest wait starts at the first join."""
    result = replay(traces.events("burst"))
    snaps = [c.queue for c in result.of(QueueChanged)]
    assert max(s.waiting for s in snaps) == len(qlog("burst", "ENTERQUEUE"))
    assert snaps[-1].waiting == 0
    assert snaps[-1].logged_in == snaps[-1].available == 2
    joins = [e.time for e in traces.events("burst") if isinstance(e, ev.QueueCallerJoin)]
    assert min(s.longest_wait_since for s in snaps if s.longest_wait_since) == joins[0]


def test_queue_params_count_timeouts_as_abandoned() -> None:
    """README quirk: QueueParams.Abandoned counts the 8 timeouts (0 real abandons)."""
    params = [e for e in traces.events("burst") if isinstance(e, ev.QueueParams)][-1]
    outcomes = [c.outcome for c in closed_calls("burst").values()]
    assert params.completed == outcomes.count(CallOutcome.ANSWERED)
    assert params.abandoned == outcomes.count(CallOutcome.TIMED_OUT)
    assert CallOutcome.ABANDONED not in outcomes


# --- agents ----------------------------------------------------------------------------------


def test_agent_lifecycle_pauses_with_reason() -> None:
    """queue_log: Alice PAUSE lunch / UNPAUSE; Bob PAUSEALL lunch (+ PAUSE) / UNPAUSEALL."""
    scenario = "agent-lifecycle"
    result = replay(traces.events(scenario))
    for agent in ("Alice", "Bob"):
        logged = [
            e for e in qlog(scenario, "PAUSE") + qlog(scenario, "UNPAUSE") if e.agent == agent
        ]
        logged.sort(key=lambda e: e.time)
        pauses = [
            (s.state, s.reason)
            for s in result.states(agent)
            if AgentState.PAUSED in (s.state, s.previous_state)
        ]
        expected = [
            (AgentState.PAUSED, e.datum(1)) if e.event == "PAUSE" else (AgentState.AVAILABLE, None)
            for e in logged
        ]
        assert pauses == expected
    assert pauses[0] == (AgentState.PAUSED, "lunch")


def test_agent_lifecycle_call_and_logouts() -> None:
    scenario = "agent-lifecycle"
    result = replay(traces.events(scenario))
    (call,) = result.calls().values()
    connect = only(qlog(scenario, "CONNECT"))
    assert (call.agent, call.wait_seconds) == (connect.agent, float(connect.datum(1)))
    assert call.ring_attempts == len(qlog(scenario, "RINGNOANSWER")) + 1  # Alice, then Bob
    assert call.did == "100"  # the Local ;1 runs from-trunk 100 (scenario.md step 6)
    assert call.started_at < call.queued_at  # type: ignore[operator]
    outs = result.of(AgentLoggedOut)
    assert [(o.agent, o.reason) for o in outs] == [
        ("Alice", "removed"),
        ("Bob", "removed"),
    ]
    assert len(outs) == len(qlog(scenario, "REMOVEMEMBER"))
    assert result.state.agents == {}
    assert all(s.state is AgentState.LOGGED_OUT for s in (result.states("Alice")[-1],))


def test_penalty_and_ringinuse_update_the_membership() -> None:
    result = replay(traces.events("agent-lifecycle"), settle=False)
    snapshots = [c.agent for c in result.of(AgentChanged) if c.agent.name == "Alice"]
    penalties = [a.memberships["sales"].penalty for a in snapshots if "sales" in a.memberships]
    assert penalties[0] == 0
    assert 2 in penalties  # QueuePenalty Alice 2 (queue_log PENALTY|2)


def test_local_member_rings_although_its_status_says_in_use() -> None:
    """README: a Local member goes straight to Status 2 (INUSE) while ringing."""
    result = replay(traces.events("local-channels"))
    statuses = [
        e.status for e in traces.events("local-channels") if isinstance(e, ev.QueueMemberStatus)
    ]
    assert statuses[0] == 2
    assert [s.state for s in result.states("Alice")][:4] == [
        AgentState.AVAILABLE,
        AgentState.RINGING,
        AgentState.ON_CALL,
        AgentState.WRAP_UP,
    ]
    (call,) = result.calls().values()
    assert call.outcome is CallOutcome.ANSWERED
    assert call.agent_channel == "Local/1001@agents-00000001;1"
    assert call.caller_number == only(qlog("local-channels", "ENTERQUEUE")).datum(2)


def test_member_status_before_or_after_agent_connect() -> None:
    """README: the order of QueueMemberStatus (Status 2) and AgentConnect varies. Swapping
    them gives the same agent states and the same call."""
    events = list(traces.events("inbound-answered"))
    connect = next(i for i, e in enumerate(events) if isinstance(e, ev.AgentConnect))
    status = next(
        i
        for i, e in enumerate(events)
        if i > connect and isinstance(e, ev.QueueMemberStatus) and e.status == 2
    )
    swapped = list(events)
    swapped[connect], swapped[status] = events[status], events[connect]
    # the recorded trial run had InCall 0 when the status came first
    early = swapped[connect]
    assert isinstance(early, ev.QueueMemberStatus)
    swapped[connect] = dataclasses.replace(early, in_call=False, time=events[connect].time)
    plain, other = replay(events), replay(swapped)
    assert [s.state for s in plain.states("Alice")] == [s.state for s in other.states("Alice")]
    assert plain.calls() == other.calls()


def test_same_member_event_twice_changes_nothing() -> None:
    state = initial_state(traces.NODE)
    added = next(e for e in traces.events("inbound-answered") if isinstance(e, ev.QueueMemberAdded))
    state, first = apply(state, added)
    assert first
    again, second = apply(state, added)
    assert second == []
    assert again is state


def test_unknown_and_malformed_events_change_nothing() -> None:
    state = initial_state(traces.NODE)
    for event in (
        ev.UnknownEvent(traces.NODE, 1.0, "Newexten", {}),
        ev.MalformedEvent(traces.NODE, 1.0, "Hangup", {}, "missing field Uniqueid"),
    ):
        assert apply(state, event) == (state, [])


# --- restart and resync -----------------------------------------------------------------------


def test_restart_rebuilds_from_queue_status() -> None:
    """Persistent members come back paused with no QueueMemberAdded (README): after the
    Shutdown, the next connection's QueueStatus is the only source and is taken as truth."""
    events = traces.events("restart")
    booted = [i for i, e in enumerate(events) if isinstance(e, ev.FullyBooted)]
    assert len(booted) == 3
    second_conn = events[booted[1] :]
    assert not any(isinstance(e, ev.QueueMemberAdded) for e in second_conn)

    full = replay(events)
    alice = full.state.agents["Alice"]
    assert (alice.state, alice.reason) == (AgentState.PAUSED, "lunch")
    assert full.state.up

    shutdown = next(i for i, e in enumerate(events) if isinstance(e, ev.Shutdown))
    down = replay(events[: shutdown + 1], settle=False).state
    assert not down.up
    assert down.agents["Alice"].state is AgentState.PAUSED  # kept until Asterisk says

    fresh = replay(second_conn)
    alice = fresh.state.agents["Alice"]
    assert (alice.state, alice.reason) == (AgentState.PAUSED, "lunch")
    (login,) = fresh.of(AgentLoggedIn)
    member = next(e for e in second_conn if isinstance(e, ev.QueueMember))
    assert login.at == member.login_time
    assert fresh.states("Alice")[0].started_at == member.last_pause  # the pause's own start


def test_lost_call_is_closed_by_channel_resync_and_fixed_by_queue_log() -> None:
    """A connection lost mid-call: CoreShowChannels without the caller closes the call as
    ``lost`` (end unknown) and frees the agent; queue_log then tells how it really ended.
    (Cut right after AgentConnect, before the member's Status 2 event.)"""
    scenario = "inbound-answered"
    events = traces.events(scenario)
    connect = next(i for i, e in enumerate(events) if isinstance(e, ev.AgentConnect))
    state = replay(events[: connect + 1], settle=False).state
    assert state.agents["Alice"].state is AgentState.ON_CALL
    at = events[-1].time
    state, changes = resync_channels(state, [], at)
    (call,) = [c.call for c in changes if isinstance(c, CallChanged)]
    assert (call.closed, call.outcome, call.ended_at) == (True, CallOutcome.LOST, None)
    # The agent no longer holds the call; her member Status (still RINGING as last
    # reported) waits for the QueueStatus that a reconnect sends with CoreShowChannels.
    assert state.agents["Alice"].call is None
    assert state.agents["Alice"].state is AgentState.RINGING
    assert state.calls == {}
    fixed = reconcile_call(call, traces.queue_log(scenario))
    done = only(qlog(scenario, "COMPLETECALLER"))
    assert fixed.outcome is CallOutcome.ANSWERED
    assert fixed.talk_seconds == float(done.datum(2))
    assert fixed.ended_at == done.time


def test_hold_time_is_summed() -> None:
    """Hold/Unhold (main/manager_channels.c; not in the traces) on the connected call."""
    events = list(traces.events("inbound-answered"))
    connect = next(e for e in events if isinstance(e, ev.AgentConnect))
    index = events.index(connect)
    hold = ev.Hold(*_channel_args(connect, connect.time + 0.5), music_class="default")
    unhold = ev.Unhold(*_channel_args(connect, connect.time + 1.75))
    events[index + 1 : index + 1] = [hold, unhold]
    (call,) = replay(events).calls().values()
    assert call.hold_seconds == pytest.approx(1.25)
    assert call.on_hold_since is None


def test_transfer_reason_marks_the_call_transferred() -> None:
    events = [
        dataclasses.replace(e, reason="transfer") if isinstance(e, ev.AgentComplete) else e
        for e in traces.events("inbound-agent-hangup")
    ]
    (call,) = replay(events).calls().values()
    assert call.outcome is CallOutcome.TRANSFERRED


def _channel_args(
    event: ev.ChannelEvent, time: float
) -> tuple[str, float, str, int, str, str, str, str, str, str, str, str]:
    return (
        event.node,
        time,
        event.channel,
        event.channel_state,
        event.uniqueid,
        event.linkedid,
        event.caller_id_num,
        event.caller_id_name,
        event.connected_line_num,
        event.connected_line_name,
        event.context,
        event.exten,
    )


def test_originates_and_ivr_hangups() -> None:
    """Originated agent legs are not calls (no call context); the AGI error call never
    reaches a queue: ``ivr_hangup`` (and queue_log has no line for it)."""
    assert replay(traces.events("originate-outcomes")).calls() == {}
    assert replay(traces.events("amd")).calls() == {}
    (call,) = closed_calls("agi-errors").values()
    assert call.outcome is CallOutcome.IVR_HANGUP
    assert call.did == "7000"  # README dialplan: 7000 is the AGI error scenario
    assert call.queue is None
    assert traces.queue_log_calls("agi-errors") == {}
    assert call.phase is CallPhase.ENDED


# --- tick, resync, queue_log -------------------------------------------------------------------


def test_tick_ends_wrap_up_at_its_exact_time() -> None:
    scenario = "inbound-answered"
    state = replay(traces.events(scenario), settle=False).state
    (complete,) = [e for e in traces.events(scenario) if isinstance(e, ev.AgentComplete)]
    assert state.agents["Alice"].state is AgentState.WRAP_UP
    assert tick(state, complete.time + 1.0) == (state, [])
    later, changes = tick(state, complete.time + 5.0)
    (span,) = [c for c in changes if isinstance(c, AgentStateChanged)]
    assert (span.state, span.started_at) == (AgentState.AVAILABLE, complete.time + 2.0)
    assert any(isinstance(c, QueueChanged) for c in changes)
    assert state.agents["Alice"].state is AgentState.WRAP_UP  # the input is untouched
    assert later.agents["Alice"].state is AgentState.AVAILABLE
    assert tick(later, complete.time + 9.0) == (later, [])


def test_queue_status_without_a_member_logs_them_out() -> None:
    """QueueStatus is the truth: a member it does not list is logged out (reason resync)."""
    events = traces.events("agent-lifecycle")
    first = next(i for i, e in enumerate(events) if isinstance(e, ev.QueueParams))
    state = replay(events[:first], settle=False).state
    assert set(state.agents) == {"Alice", "Bob"}
    params = [e for e in events if isinstance(e, ev.QueueParams)][:1]
    members = [
        e for e in events if isinstance(e, ev.QueueMember) and e.action_id == params[0].action_id
    ]
    alice = [m for m in members if m.member_name == "Alice"]
    state, changes = resync_queues(state, params, alice, [], params[0].time)
    (out,) = [c for c in changes if isinstance(c, AgentLoggedOut)]
    assert (out.agent, out.reason) == ("Bob", "resync")
    assert set(state.agents) == {"Alice"}
    assert state.queues["sales"].members == frozenset({"Alice"})
    # the caller waiting in sales is not in this QueueStatus answer: out of the queue
    assert state.queues["sales"].callers == {}


def test_exit_by_key_is_what_is_left() -> None:
    """Leaving the queue with no agent, no QueueCallerAbandon and no QUEUESTATUS is
    app_queue's exit by key (valid_exit records neither); only queue_log has the key."""
    events = [
        e
        for e in traces.events("inbound-timeout")
        if not isinstance(e, ev.QueueCallerAbandon)
        and not (isinstance(e, ev.VarSet) and e.variable == "QUEUESTATUS")
    ]
    (call,) = replay(events).calls().values()
    assert call.outcome is CallOutcome.EXIT_KEY
    assert call.exit_key is None
    enter = only(qlog("inbound-timeout", "ENTERQUEUE"))
    key = QueueLogEntry(
        enter.time + 3, call.uniqueid, "sales", "NONE", "EXITWITHKEY", ("1", "1", "1", "3")
    )
    fixed = reconcile_call(call, [enter, key])
    assert (fixed.outcome, fixed.exit_key, fixed.wait_seconds) == (CallOutcome.EXIT_KEY, "1", 3.0)


@pytest.mark.parametrize("scenario", traces.scenarios())
def test_queue_log_files_parse(scenario: str) -> None:
    entries = traces.queue_log(scenario)
    assert entries[0].event == "QUEUESTART"  # README: every process start writes one
    assert all(e.time > 1.7e9 for e in entries)


def test_queue_log_line_parser() -> None:
    entry = parse_queue_log_line("1795342832|1795342827.0|sales|Alice|CONNECT|2|1795342830.1|2\n")
    assert entry == QueueLogEntry(
        1795342832.0, "1795342827.0", "sales", "Alice", "CONNECT", ("2", "1795342830.1", "2")
    )
    assert (entry.datum(1), entry.datum(3), entry.datum(4)) == ("2", "2", "")
    assert parse_queue_log_line("1795342827|NONE|NONE|NONE|QUEUESTART|").data == ("",)
    for bad in ("", "garbage", "x|a|b|c|EVENT", "1|a|b|c|"):
        with pytest.raises(ValueError, match="queue_log"):
            parse_queue_log_line(bad)


@pytest.mark.parametrize("scenario", traces.scenarios())
def test_a_var_set_the_core_says_it_ignores_changes_nothing(scenario: str) -> None:
    """The bridge skips typing and applying a VarSet when ``ignores_var_set`` says so: at
    every VarSet of every trace, that answer must be exact (same state object, no change),
    and the trace must hold both kinds, or the test proves nothing."""
    state = initial_state(traces.NODE, traces.core_config())
    skipped = kept = 0
    for event in traces.events(scenario):
        if isinstance(event, ev.VarSet) and ignores_var_set(
            state, event.variable, event.uniqueid, event.time
        ):
            after, changes = apply(state, event)
            assert after is state, event
            assert changes == [], event
            skipped += 1
        elif isinstance(event, ev.VarSet):
            kept += 1
        state, _ = apply(state, event)
    if scenario in ("inbound-answered", "burst", "inbound-timeout"):
        # Both answers occur: most VarSets are skipped; QUEUESTATUS, the Queue() timeout
        # variable and a tracked channel's are not.
        assert skipped > kept > 0


def test_a_campaign_call_times_out_without_its_queuestatus() -> None:
    """[outbound-campaign] sets QUEUE_TIMEOUT before Queue() (dialplans/outbound.conf.j2), as
    [inbound-queue] does: a QueueCallerAbandon whose HoldTime reached it is a time-out even
    when the QUEUESTATUS VarSet after it is never seen (a bridge restarting just then; the
    soak found two such calls). Without either it would read as an abandon."""
    from callcenter.ami import wanted

    config = CoreConfig(
        queues=traces.core_config().queues,
        call_contexts=wanted.CALL_CONTEXTS,
        timeout_variable=wanted.TIMEOUT_VARIABLE,
        ivr_path_variable=wanted.IVR_PATH_VARIABLE,
    )
    scenario = "dialer-abandon"
    assert qlog(scenario, "EXITWITHTIMEOUT")
    # The recording has the dialplan's own VarSet, before Queue() (1: CAMPAIGN_CONNECT_SECONDS
    # with AMD).
    (timeout,) = [
        e
        for e in traces.events(scenario)
        if isinstance(e, ev.VarSet) and e.variable == wanted.TIMEOUT_VARIABLE
    ]
    assert (timeout.context, timeout.value) == ("outbound-campaign", "1")
    (call,) = replay(_without_vars(scenario, "QUEUESTATUS"), config).calls().values()
    assert call.outcome is CallOutcome.TIMED_OUT
    blind_events = _without_vars(scenario, "QUEUESTATUS", wanted.TIMEOUT_VARIABLE)
    (blind,) = replay(blind_events, config).calls().values()
    assert blind.outcome is CallOutcome.ABANDONED
