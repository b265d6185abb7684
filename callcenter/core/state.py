"""The core's entry points: ``initial_state``, ``apply``, ``tick``, ``connection_lost``.

``apply(state, event) -> (state, changes)`` is a pure function: no I/O, no clock (time comes
from the event), the input state untouched. Events without a handler in :data:`HANDLERS`
(most of the traffic: Newexten, DeviceStateChange, RTCP..., unknown and malformed events)
return the same state object and no change.

Wrap-up ends have no event of their own. Since the core has no clock, a wrap-up ends at the
first event whose time is past its end (``apply`` runs :func:`tick` first), or when the shell
calls ``tick(state, now)`` -- about once a second -- and the change carries the exact end
time either way.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from callcenter.ami import events as ev
from callcenter.core import agents, calls, dialing, queues, resync
from callcenter.core.changes import Change
from callcenter.core.config import CoreConfig
from callcenter.core.records import State
from callcenter.core.tx import Result, Tx

Handler = Callable[[State, Any], Result]


def initial_state(node: str, config: CoreConfig | None = None) -> State:
    """An empty state for ``node``: no agents, queues or calls known yet."""
    return State(node=node, config=config if config is not None else CoreConfig())


def _on_fully_booted(state: State, event: ev.FullyBooted) -> Result:
    # A FullyBooted starts every connection: list responses of a previous one are dead.
    if state.up and not state.lists:
        return state, []
    return replace(state, up=True, lists={}), []


def _on_shutdown(state: State, event: ev.Shutdown) -> Result:
    """Asterisk is going away. Agents and calls stay as they are: after the restart,
    QueueStatus and CoreShowChannels say what survived (persistent members come back, every
    channel is gone and its call will be closed as lost)."""
    return replace(state, up=False, lists={}), []


def connection_lost(state: State) -> State:
    """The AMI connection dropped: forget half-received list responses."""
    return replace(state, lists={}) if state.lists else state


#: The one table from event type to handler. Types not listed change nothing.
HANDLERS: Mapping[type[ev.Event], Handler] = {
    ev.FullyBooted: _on_fully_booted,
    ev.Shutdown: _on_shutdown,
    ev.QueueMemberAdded: agents.on_member,
    ev.QueueMemberStatus: agents.on_member,
    ev.QueueMemberPause: agents.on_member,
    ev.QueueMemberPenalty: agents.on_member,
    ev.QueueMemberRinginuse: agents.on_member,
    ev.QueueMemberRemoved: agents.on_member_removed,
    ev.Newchannel: calls.on_newchannel,
    ev.VarSet: calls.on_var_set,
    ev.Hangup: calls.on_hangup,
    ev.Hold: calls.on_hold,
    ev.Unhold: calls.on_unhold,
    ev.BlindTransfer: calls.on_blind_transfer,
    ev.AttendedTransfer: calls.on_attended_transfer,
    ev.QueueCallerJoin: queues.on_join,
    ev.QueueCallerLeave: queues.on_leave,
    ev.QueueCallerAbandon: queues.on_abandon,
    ev.AgentCalled: dialing.on_agent_called,
    ev.AgentRingNoAnswer: dialing.on_ring_no_answer,
    ev.AgentDump: dialing.on_agent_dump,
    ev.DialEnd: dialing.on_dial_end,
    ev.AgentConnect: dialing.on_agent_connect,
    ev.AgentComplete: dialing.on_agent_complete,
    ev.QueueParams: resync.on_list_item,
    ev.QueueMember: resync.on_list_item,
    ev.QueueEntry: resync.on_list_item,
    ev.CoreShowChannel: resync.on_list_item,
    ev.QueueStatusComplete: resync.on_queue_status_complete,
    ev.CoreShowChannelsComplete: resync.on_channels_complete,
}


def apply(state: State, event: ev.Event) -> tuple[State, list[Change]]:
    """Apply one event; return the new state and what changed, in order."""
    changes: list[Change] = []
    if state.wrapup_due <= event.time:
        state, changes = tick(state, event.time)
    handler = HANDLERS.get(type(event))
    if handler is None:
        return state, changes
    state, more = handler(state, event)
    if changes:
        changes.extend(more)
        return state, changes
    return state, more


def ignores_var_set(state: State, variable: str, uniqueid: str, at: float) -> bool:
    """True when ``apply`` of a VarSet of ``variable`` on ``uniqueid`` at ``at`` would return
    ``state`` unchanged and no change: the shell may then skip typing and applying it (it
    still audits and counts it). Exact by construction: the same test ``on_var_set`` makes,
    and no wrap-up due by ``at`` (which ``apply`` would end first)."""
    return state.wrapup_due > at and not calls.var_set_matters(state, variable, uniqueid)


def tick(state: State, now: float) -> tuple[State, list[Change]]:
    """End every wrap-up due at ``now``; each change is stamped with its wrap-up's end."""
    if state.wrapup_due > now:
        return state, []
    due = sorted(
        (a.wrapup_until, a.name)
        for a in state.agents.values()
        if a.wrapup_until is not None and a.wrapup_until <= now
    )
    changes: list[Change] = []
    for until, name in due:
        tx = Tx(state, until)
        agent = tx.agent(name)
        if agent is not None:
            tx.put_agent(replace(agent, wrapup_until=None))
        state, more = tx.commit()
        changes.extend(more)
    pending = [a.wrapup_until for a in state.agents.values() if a.wrapup_until is not None]
    return replace(state, wrapup_due=min(pending, default=math.inf)), changes
