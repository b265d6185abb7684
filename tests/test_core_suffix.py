"""Joining the stream mid-way: every suffix of every trace replays without an exception,
and a suffix that starts with a QueueStatus resync agrees with the full replay on agents.

What is covered (all scenarios, events parsed once per scenario):

- every suffix start of every scenario. That is O(n^2): ``burst`` alone (~1,550 events)
  is ~1.2 M applications, ~11 s here. Scenarios longer than ``FULL_UP_TO`` events would
  use every ``LONG_STEP``-th start (none is, today), always plus every resync point (the
  first item of each QueueStatus answer);
- for each resync start: from the QueueStatusComplete on, after every event, the agents of
  the suffix replay equal those of the full replay (state, reason, interface, and per queue
  paused/reason/penalty/status), and at the end so do the queue snapshots;
- a byte-level join: the AMI bytes from arbitrary offsets (mid-frame), parsed without a
  banner, through parse_event and apply -- the torn first frame must not break anything;
- (hypothesis) events dropped anywhere and neighbours swapped: no exception, and every
  queue snapshot's counts add up.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter.ami import events as ev
from callcenter.ami.protocol import AmiParser, Banner, FrameTooLarge, Message
from callcenter.core import QueueChanged, State, apply, initial_state, tick
from tests import traces

FULL_UP_TO = 2_000
LONG_STEP = 4

AgentView = dict[str, tuple[object, ...]]


def agent_view(state: State) -> AgentView:
    """What must agree: the fields a resync can know (not the times states began)."""
    return {
        name: (
            agent.state,
            agent.reason,
            agent.interface,
            tuple(
                (q, m.paused, m.paused_reason, m.penalty, m.status)
                for q, m in sorted(agent.memberships.items())
            ),
        )
        for name, agent in state.agents.items()
    }


def resync_starts(events: Sequence[ev.Event]) -> list[int]:
    """Indices of the first list item of each QueueStatus answer."""
    starts = []
    seen: set[str] = set()
    for i, event in enumerate(events):
        if isinstance(event, (ev.QueueParams, ev.QueueMember, ev.QueueEntry)):
            if event.action_id not in seen:
                seen.add(event.action_id)
                starts.append(i)
        elif isinstance(event, ev.QueueStatusComplete):
            seen.discard(event.action_id)
    return starts


def suffix_starts(events: Sequence[ev.Event]) -> list[int]:
    step = 1 if len(events) <= FULL_UP_TO else LONG_STEP
    return sorted(set(range(0, len(events), step)) | set(resync_starts(events)))


def replay_from(events: Sequence[ev.Event], start: int) -> State:
    state = initial_state(traces.NODE, traces.core_config())
    for event in events[start:]:
        state, changes = apply(state, event)
        for change in changes:
            if isinstance(change, QueueChanged):
                assert change.queue.waiting >= 0
    if events:
        state, _ = tick(state, events[-1].time + 3600)
    return state


@pytest.mark.parametrize("scenario", traces.scenarios())
def test_every_suffix_replays(scenario: str) -> None:
    events = traces.events(scenario)
    for start in suffix_starts(events):
        state = replay_from(events, start)
        for call in state.calls.values():
            assert not call.closed
        for leg in state.legs.values():
            assert leg.caller


@pytest.mark.parametrize(
    "scenario",
    [s for s in traces.scenarios() if resync_starts(traces.events(s))],
)
def test_suffix_from_a_resync_agrees_on_agents(scenario: str) -> None:
    events = traces.events(scenario)
    full: list[AgentView] = []
    state = initial_state(traces.NODE, traces.core_config())
    for event in events:
        state, _ = apply(state, event)
        full.append(agent_view(state))
    full_final = state
    starts = resync_starts(events)
    assert starts
    for start in starts:
        action_id = getattr(events[start], "action_id", None)
        done = next(
            i
            for i in range(start, len(events))
            if isinstance(events[i], ev.QueueStatusComplete)
            and getattr(events[i], "action_id", None) == action_id
        )
        state = initial_state(traces.NODE, traces.core_config())
        for i in range(start, len(events)):
            state, _ = apply(state, events[i])
            if i >= done:
                assert agent_view(state) == full[i], (start, i)
        snapshots = {q.name: q.snapshot for q in state.queues.values()}
        expected = {q.name: q.snapshot for q in full_final.queues.values()}
        for name, snapshot in snapshots.items():
            assert snapshot == expected.get(name), (start, name)


@pytest.mark.parametrize("scenario", traces.scenarios())
def test_joining_mid_frame_at_the_byte_level(scenario: str) -> None:
    data = traces.ami_bytes(scenario)[0]
    for k in range(1, 26):
        offset = len(data) * k // 26
        parser = AmiParser(expect_banner=False)
        state = initial_state(traces.NODE, traces.core_config())
        for frame in parser.feed(data[offset:]):
            assert not isinstance(frame, (Banner, FrameTooLarge))
            if isinstance(frame, Message) and frame.event is None:
                continue
            state, _ = apply(state, ev.parse_event(frame, 0.0, traces.NODE))


SHUFFLED = ["inbound-answered", "inbound-abandon", "agent-lifecycle", "local-channels"]


@pytest.mark.skipif(not traces.have_traces(), reason="recorded Asterisk traces not found")
@settings(max_examples=80, deadline=None, database=None)
@given(st.data())
def test_lost_and_reordered_events_never_break_the_core(data: st.DataObject) -> None:
    """Beyond suffixes: drop any events and swap neighbours (a bridge that missed some, the
    README's varying orders) -- the core keeps going and its snapshots stay consistent."""
    scenario = data.draw(
        st.sampled_from(
            ["inbound-answered", "inbound-abandon", "agent-lifecycle", "local-channels"]
        )
    )
    events = list(traces.events(scenario))
    dropped = data.draw(st.sets(st.integers(0, len(events) - 1), max_size=len(events) // 4))
    events = [e for i, e in enumerate(events) if i not in dropped]
    for i in data.draw(st.lists(st.integers(0, max(0, len(events) - 2)), max_size=20)):
        events[i], events[i + 1] = events[i + 1], events[i]
    state = initial_state(traces.NODE, traces.core_config())
    for event in events:
        state, changes = apply(state, event)
        for change in changes:
            if isinstance(change, QueueChanged):
                snap = change.queue
                parts = snap.available + snap.ringing + snap.on_call + snap.wrap_up + snap.paused
                assert parts + snap.unavailable == snap.logged_in >= 0
