"""The campaign queue's agents as the pacer sees them, read off the bridge's MQTT snapshots.

One source of truth for agent state: Asterisk's queue membership as the bridge publishes it
(``<prefix>/<node>/agents/<agent>``, docs/events.md). The dialer keeps the latest payload of
each agent and turns them into :class:`~callcenter.campaigns.pacer.AgentView` here, on every
tick; it keeps no agent model of its own. Pure.

One correction, and why: the dialer hears AgentConnect for its own call on its own AMI
connection a few milliseconds before the bridge's snapshot of that agent says ``on_call``.
In that gap the call is no longer in flight and the agent still looks free, and the pacer
would dial for them twice. An agent the dialer connected within :data:`SETTLE_SECONDS` whose
snapshot still says ``available`` is therefore taken as busy since that connect.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from callcenter.campaigns.pacer import AgentState, AgentView

#: How long a connect the dialer saw outranks a snapshot that says the agent is free.
SETTLE_SECONDS = 5.0


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def agent_view(
    payload: Mapping[str, Any], queue: str, *, now: float, connected_at: float | None = None
) -> AgentView | None:
    """One agent's view for ``queue``; None when not a logged-in, reachable member of it."""
    name = payload.get("agent")
    queues = payload.get("queues")
    if not isinstance(name, str) or not isinstance(queues, Mapping):
        return None
    member = queues.get(queue)
    if not isinstance(member, Mapping):
        return None
    state = payload.get("state")
    since = _number(payload.get("since")) or now
    if state in ("logged_out", "unavailable") or not isinstance(state, str):
        return None
    paused = bool(member.get("paused")) or state == "paused"
    if state == "available":
        if connected_at is not None and now - connected_at < SETTLE_SECONDS:
            return AgentView(name, AgentState.BUSY, since=connected_at, paused=paused)
        return AgentView(name, AgentState.FREE, since=since, paused=paused)
    if state == "wrap_up":
        until = _number(payload.get("wrapup_until"))
        return AgentView(name, AgentState.WRAPUP, since=since, until=until, paused=paused)
    if state == "paused":
        return AgentView(name, AgentState.FREE, since=since, paused=True)
    # on_call, ringing: the handle time has begun.
    return AgentView(name, AgentState.BUSY, since=since, paused=paused)


def agent_views(
    payloads: Iterable[Mapping[str, Any]],
    queue: str,
    *,
    now: float,
    connected: Mapping[str, float] | None = None,
) -> list[AgentView]:
    """The members of ``queue`` that are logged in and reachable, in the payloads' order.
    ``connected``: agent name -> when the dialer last connected a call to them."""
    seen = connected or {}
    views = []
    for payload in payloads:
        name = payload.get("agent")
        at = seen.get(name) if isinstance(name, str) else None
        view = agent_view(payload, queue, now=now, connected_at=at)
        if view is not None:
            views.append(view)
    return views


def interface_of(payload: Mapping[str, Any]) -> str | None:
    """The agent's phone (``PJSIP/agent1001``) for a preview call, or None."""
    value = payload.get("interface")
    return value if isinstance(value, str) and value else None


def counts(views: Iterable[AgentView]) -> dict[str, int]:
    """For the campaign snapshot: logged_in, free, busy, wrap_up, paused."""
    out = {"logged_in": 0, "free": 0, "busy": 0, "wrap_up": 0, "paused": 0}
    for v in views:
        out["logged_in"] += 1
        if v.paused:
            out["paused"] += 1
        elif v.state is AgentState.FREE:
            out["free"] += 1
        elif v.state is AgentState.WRAPUP:
            out["wrap_up"] += 1
        else:
            out["busy"] += 1
    return out
