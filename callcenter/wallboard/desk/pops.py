"""Screen-pops: which agent's phone a call rings. Pure: call messages in, pops out.

The bridge publishes every change of a call on ``<prefix>/<node>/calls/<uniqueid>``
(docs/events.md). app_queue's AgentCalled puts the agent in the call's ``ringing`` list, so
the message that says "ringing alice" is the moment alice's phone rings: that is the pop,
pushed to her page at once. An agent connected without a ring seen (a reconnecting page, a
message lost) gets the pop with the connected message. Each (call, agent) pops once; a call
that closes is forgotten.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Open calls remembered; beyond this the oldest are forgotten (a call whose end was missed).
MAX_CALLS = 20_000


@dataclass(frozen=True, slots=True)
class Pop:
    """What the page shows at once, before the history arrives."""

    agent: str
    node: str
    uniqueid: str
    direction: str
    caller_number: str
    caller_name: str
    did: str
    ivr_path: str
    queue: str
    queued_at: float | None
    visit: int
    #: When the pop was decided (the call message's arrival, our clock).
    at: float

    def view(self) -> dict[str, Any]:
        return {
            "agent": self.agent, "node": self.node, "uniqueid": self.uniqueid,
            "direction": self.direction, "caller_number": self.caller_number,
            "caller_name": self.caller_name, "did": self.did, "ivr_path": self.ivr_path,
            "queue": self.queue, "queued_at": self.queued_at, "visit": self.visit,
            "at": self.at,
        }  # fmt: skip


def _text(payload: Mapping[str, Any], key: str) -> str:
    value = payload.get(key)
    return value if isinstance(value, str) else ""


def call_ended_for(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> tuple[str, str] | None:
    """(call uniqueid, queue) when an agent's snapshot says their queue call just ended: it
    was ``on_call`` with that call and now is not on it. None otherwise."""
    if old is None or old.get("state") != "on_call":
        return None
    call, queue = old.get("call"), old.get("call_queue")
    if not isinstance(call, str) or not call or not isinstance(queue, str) or not queue:
        return None
    if new.get("state") == "on_call" and new.get("call") == call:
        return None
    return call, queue


class PopTracker:
    """Remembers which agents each open call has popped for."""

    def __init__(self, max_calls: int = MAX_CALLS) -> None:
        self.max_calls = max_calls
        self._popped: dict[tuple[str, str], set[str]] = {}

    def on_call(self, payload: Mapping[str, Any], at: float) -> list[Pop]:
        """The pops a call message causes (a malformed one causes none)."""
        if payload.get("type") != "call":
            return []
        node, uniqueid = _text(payload, "node"), _text(payload, "uniqueid")
        if not node or not uniqueid:
            return []
        key = (node, uniqueid)
        if payload.get("closed") is True:
            self._popped.pop(key, None)
            return []
        agents: list[str] = []
        ringing = payload.get("ringing")
        if isinstance(ringing, list):
            agents += [a for a in ringing if isinstance(a, str) and a]
        connected = _text(payload, "agent")
        if connected and payload.get("phase") == "connected":
            agents.append(connected)
        if not agents:
            return []
        done = self._popped.get(key)
        if done is None:
            done = self._popped[key] = set()
            while len(self._popped) > self.max_calls:
                del self._popped[next(iter(self._popped))]
        queued = payload.get("queued_at")
        visit = payload.get("visit")
        pops = []
        for agent in agents:
            if agent in done:
                continue
            done.add(agent)
            pops.append(
                Pop(
                    agent,
                    node,
                    uniqueid,
                    _text(payload, "direction"),
                    _text(payload, "caller_number"),
                    _text(payload, "caller_name"),
                    _text(payload, "did"),
                    _text(payload, "ivr_path"),
                    _text(payload, "queue"),
                    float(queued) if isinstance(queued, int | float) else None,
                    visit if isinstance(visit, int) else 0,
                    at,
                )
            )
        return pops
