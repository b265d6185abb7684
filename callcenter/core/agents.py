"""Queue membership: logins, logouts, pauses, penalties and device status.

Handles QueueMemberAdded/Removed/Pause/Status/Penalty/Ringinuse. Each of them carries the
member's full record, so every one is an upsert: an agent first seen through a
QueueMemberStatus (the bridge joined mid-stream) is logged in right there. The agent identity
is ``MemberName``; ``Interface`` is kept as the agent's interface (and in ``State.interfaces``).

A QueuePause without ``Queue`` (queue_log PAUSEALL) arrives as one QueueMemberPause per queue;
the agent counts as ``paused`` once paused in all of them.
"""

from __future__ import annotations

from dataclasses import replace

from callcenter.ami.events import MemberEvent, QueueMemberRemoved
from callcenter.core.records import Membership, State
from callcenter.core.tx import Result, Tx


def membership_of(event: MemberEvent) -> Membership:
    return Membership(
        queue=event.queue,
        interface=event.interface,
        state_interface=event.state_interface,
        membership=event.membership,
        penalty=event.penalty,
        paused=event.paused,
        paused_reason=event.paused_reason,
        status=event.status,
        in_call=event.in_call,
        calls_taken=event.calls_taken,
        last_call=event.last_call,
        last_pause=event.last_pause,
        login_time=event.login_time,
        wrapuptime=event.wrapuptime,
        ringinuse=event.ringinuse,
    )


def login_time(event: MemberEvent) -> float:
    """When the session began: the member's LoginTime (whole epoch seconds), else the event's
    time. LoginTime rather than the QueueMemberAdded's own time so that a bridge that restarts
    and learns the agent from QueueStatus reports the *same* session start (sessions are keyed
    by it). Asterisk resets LoginTime when it restores persistent members after a restart."""
    return float(event.login_time) if event.login_time else event.time


def state_since(event: MemberEvent) -> float:
    """Best start time of the state of an agent we did not see before: LastPause for a
    paused member, else now."""
    if event.paused and event.last_pause:
        return float(event.last_pause)
    return event.time


def on_member(state: State, event: MemberEvent) -> Result:
    member = membership_of(event)
    agent = state.agents.get(event.member_name)
    if (
        agent is not None
        and agent.interface == event.interface
        and agent.memberships.get(event.queue) == member
    ):
        return state, []
    tx = Tx(state, event.time)
    since: float | None = None
    if agent is None:
        agent = tx.new_agent(event.member_name, event.interface, login_time(event))
        since = state_since(event)
    memberships = dict(agent.memberships)
    memberships[event.queue] = member
    tx.put_agent(replace(agent, interface=event.interface, memberships=memberships), since=since)
    return tx.commit()


def on_member_removed(state: State, event: QueueMemberRemoved) -> Result:
    agent = state.agents.get(event.member_name)
    if agent is None or event.queue not in agent.memberships:
        return state, []
    tx = Tx(state, event.time)
    memberships = {q: m for q, m in agent.memberships.items() if q != event.queue}
    tx.put_agent(replace(agent, memberships=memberships))
    return tx.commit()
