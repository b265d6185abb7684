"""Derived views: one AgentState per agent, one snapshot per queue. Pure functions of records."""

from __future__ import annotations

from collections.abc import Mapping

from callcenter.core.records import (
    STATUS_BUSY,
    STATUS_GONE,
    STATUS_RINGING,
    Agent,
    Queue,
    QueueSnapshot,
)
from callcenter.domain import AgentState


def agent_state(agent: Agent) -> tuple[AgentState, str | None]:
    """The one state of an agent across all their queues, and its reason (pauses only).

    First rule that holds wins:

    1. no membership: ``logged_out``;
    2. connected to a queue call (AgentConnect seen, or a member event with InCall 1):
       ``on_call``;
    3. an agent leg is ringing (AgentCalled without its end yet), or a member Status is
       RINGING/RINGINUSE: ``ringing``. Agent legs count because a Local member reports
       INUSE, not RINGING, while it rings;
    4. paused in *every* queue: ``paused`` with the PausedReason (a pause in some queues
       only leaves the agent available to the others);
    5. inside the wrap-up after a queue call: ``wrap_up``;
    6. a member Status INUSE/BUSY/ONHOLD without a queue call (the phone is busy with
       something else): ``on_call``;
    7. every Status INVALID/UNAVAILABLE (phone unregistered): ``unavailable``;
    8. otherwise ``available``.
    """
    members = agent.memberships.values()
    if not members:
        return AgentState.LOGGED_OUT, None
    if agent.call is not None or any(m.in_call for m in members):
        return AgentState.ON_CALL, None
    if agent.legs or any(m.status in STATUS_RINGING for m in members):
        return AgentState.RINGING, None
    if all(m.paused for m in members):
        reasons = sorted(m.paused_reason for m in members if m.paused_reason)
        return AgentState.PAUSED, (reasons[0] if reasons else None)
    if agent.wrapup_until is not None:
        return AgentState.WRAP_UP, None
    if any(m.status in STATUS_BUSY for m in members):
        return AgentState.ON_CALL, None
    if all(m.status in STATUS_GONE for m in members):
        return AgentState.UNAVAILABLE, None
    return AgentState.AVAILABLE, None


_IDLE_STATES = (AgentState.AVAILABLE, AgentState.WRAP_UP, AgentState.UNAVAILABLE)


def queue_snapshot(node: str, queue: Queue, agents: Mapping[str, Agent]) -> QueueSnapshot:
    counts = dict.fromkeys(AgentState, 0)
    for name in queue.members:
        agent = agents.get(name)
        if agent is None:
            continue
        state = agent.state
        member = agent.memberships.get(queue.name)
        if member is not None and member.paused and state in _IDLE_STATES:
            state = AgentState.PAUSED
        counts[state] += 1
    callers = queue.callers.values()
    return QueueSnapshot(
        node=node,
        queue=queue.name,
        waiting=len(callers),
        longest_wait_since=min((c.joined_at for c in callers), default=None),
        logged_in=sum(counts.values()) - counts[AgentState.LOGGED_OUT],
        available=counts[AgentState.AVAILABLE],
        ringing=counts[AgentState.RINGING],
        on_call=counts[AgentState.ON_CALL],
        wrap_up=counts[AgentState.WRAP_UP],
        paused=counts[AgentState.PAUSED],
        unavailable=counts[AgentState.UNAVAILABLE],
    )
