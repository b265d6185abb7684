"""What the core reports: the only output of ``apply``, ``tick`` and the resync functions.

The shell turns these into rows (``calls``, ``agent_state_changes``, ``agent_sessions``) and
MQTT messages. Each is emitted only when something really changed; replaying the same events
on the same state yields the same changes, so writers can upsert.
"""

from __future__ import annotations

from dataclasses import dataclass

from callcenter.core.records import Agent, Call, QueueSnapshot
from callcenter.domain import AgentState


@dataclass(frozen=True, slots=True)
class CallChanged:
    """A call's snapshot changed (upsert the ``calls`` row on ``(node, uniqueid)``).
    ``call.closed`` marks the last one for this call."""

    call: Call


@dataclass(frozen=True, slots=True)
class VisitChanged:
    """A queue visit that is no longer the call's current one changed: ``call`` is the call
    as of that visit (``call.visit`` names it). ``final``: its outcome is known (upsert the
    ``queue_visits`` row on ``(node, uniqueid, visit)`` with it); otherwise it still waits
    for its AgentComplete. The current visit rides on :class:`CallChanged`."""

    call: Call
    final: bool


@dataclass(frozen=True, slots=True)
class MemberPauseChanged:
    """The agent's pause in one queue began, ended or changed reason, at ``at``.

    ``paused``/``reason``: the pause from ``at`` on (``paused`` False: none). ``previous_*``:
    the pause that ended at ``at``, if any, with when it began. These are app_queue's
    per-queue pauses (queue_log PAUSE/UNPAUSE), whatever the agent's overall state: a pause
    in one queue, or one that began during a call, counts from its PAUSE."""

    node: str
    agent: str
    queue: str
    at: float
    paused: bool
    reason: str
    previous_paused: bool
    previous_reason: str
    previous_started_at: float | None


@dataclass(frozen=True, slots=True)
class AgentStateChanged:
    """An agent entered ``state`` at ``started_at``; the previous state (``None`` when the
    core had not seen the agent) ended at that same instant (close the open
    ``agent_state_changes`` span, open a new one)."""

    node: str
    agent: str
    state: AgentState
    reason: str | None
    started_at: float
    previous_state: AgentState | None
    previous_reason: str | None
    previous_started_at: float | None


@dataclass(frozen=True, slots=True)
class AgentLoggedIn:
    """An agent session began (first queue membership): open an ``agent_sessions`` row."""

    node: str
    agent: str
    interface: str
    at: float


@dataclass(frozen=True, slots=True)
class AgentLoggedOut:
    """The session ended (last membership gone). ``reason``: ``removed`` (QueueMemberRemoved)
    or ``resync`` (QueueStatus no longer lists the agent)."""

    node: str
    agent: str
    interface: str
    at: float
    reason: str


@dataclass(frozen=True, slots=True)
class AgentChanged:
    """The agent's snapshot changed (state, memberships, current call...)."""

    agent: Agent


@dataclass(frozen=True, slots=True)
class QueueChanged:
    """The queue's wallboard snapshot changed."""

    queue: QueueSnapshot


Change = (
    CallChanged
    | VisitChanged
    | AgentStateChanged
    | MemberPauseChanged
    | AgentLoggedIn
    | AgentLoggedOut
    | AgentChanged
    | QueueChanged
)
