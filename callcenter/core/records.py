"""The state of one Asterisk node as the core sees it: immutable records.

Every record is a frozen, slotted dataclass. The maps inside them (``State.calls``,
``Agent.memberships``...) are plain dicts that are never mutated once a record is built: a
transition copies the maps it changes (copy-on-write, see :mod:`callcenter.core.tx`) and shares
the rest. One Asterisk handles a few hundred concurrent calls, so a copied map stays small.

Records are also the snapshots that changes carry: a field marked ``compare=False`` is
bookkeeping of the core, not part of the snapshot, and a change to it alone is not reported.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from callcenter.ami.events import Event
from callcenter.core.config import CoreConfig
from callcenter.domain import AgentState, CallOutcome, Direction

#: Member ``Status`` values (app_queue's device states), by what the agent is doing.
STATUS_BUSY = frozenset({2, 3, 8})  # INUSE, BUSY, ONHOLD
STATUS_RINGING = frozenset({6, 7})  # RINGING, RINGINUSE
STATUS_GONE = frozenset({4, 5})  # INVALID, UNAVAILABLE


class CallPhase(enum.StrEnum):
    """Where a call is now. ``post_queue``: it left the queue (answered call over, timed
    out...) and the caller is still in the dialplan."""

    IVR = "ivr"
    QUEUED = "queued"
    RINGING = "ringing"
    CONNECTED = "connected"
    POST_QUEUE = "post_queue"
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class Call:
    """One call that entered the call center, keyed by the caller channel's Uniqueid.

    Carries every column of the ``calls`` table that AMI can fill (``survey_score`` is not
    AMI's). Times are epoch seconds; ``wait``/``talk`` are Asterisk's whole seconds.
    ``outcome`` is provisional while the call is open (``answered`` from AgentConnect,
    ``timed_out``/``abandoned`` from QueueCallerAbandon) and final once ``closed``.
    ``ringing`` lists the agents being rung right now; ``queue_status`` is the QUEUESTATUS
    app_queue set when Queue() returned without a connected call.
    """

    node: str
    uniqueid: str
    linkedid: str
    direction: Direction
    channel: str
    caller_number: str
    caller_name: str
    did: str
    started_at: float
    phase: CallPhase = CallPhase.IVR
    ivr_path: str = ""
    ivr_seconds: float | None = None
    queue: str | None = None
    queued_at: float | None = None
    original_position: int | None = None
    ringing: tuple[str, ...] = ()
    ring_attempts: int = 0
    agent: str | None = None
    agent_channel: str | None = None
    agent_uniqueid: str | None = None
    answered_at: float | None = None
    wait_seconds: float | None = None
    talk_seconds: float | None = None
    hold_seconds: float | None = None
    wrapup_seconds: float | None = None
    on_hold_since: float | None = None
    ended_at: float | None = None
    outcome: CallOutcome | None = None
    exit_key: str | None = None
    hangup_cause: int | None = None
    queue_status: str | None = None
    closed: bool = False
    #: Which queue visit of the call the queue fields describe: 0 before the first queue,
    #: then 1, 2... -- each QueueCallerJoin (a transfer, a Redirect, an overflow into
    #: another queue) starts a new visit; the visit before it is reported on its own
    #: (:class:`~callcenter.core.changes.VisitChanged`).
    visit: int = 0
    #: When this visit left the queue (an exit, or the end of the agent's call); the
    #: caller may stay in the dialplan after it (a survey, another queue).
    visit_ended_at: float | None = None
    #: Where a transfer of this visit went, as Asterisk says: ``exten@context`` for a blind
    #: transfer, the target channel for an attended one.
    transfer_target: str | None = None
    #: The Queue() timeout of this call, from the dialplan's timeout variable.
    queue_timeout: float | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Membership:
    """An agent's membership of one queue, as app_queue last reported it."""

    queue: str
    interface: str
    state_interface: str
    membership: str
    penalty: int
    paused: bool
    paused_reason: str
    status: int
    in_call: bool
    calls_taken: int
    last_call: int
    last_pause: int
    login_time: int
    wrapuptime: int
    ringinuse: bool | None
    #: When the current pause in this queue began (``None`` when not paused): bookkeeping
    #: for the per-queue pause spans, kept by :class:`~callcenter.core.tx.Tx`.
    paused_since: float | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Agent:
    """One agent (app_queue MemberName) across all the queues they are a member of.

    ``state``/``reason``/``since`` are derived by :func:`callcenter.core.derive.agent_state`
    whenever the facts change; ``since`` is when the current state began. ``call`` is the
    caller Uniqueid of the queue call the agent is connected to; ``wrapup_until`` when the
    current wrap-up ends. ``legs`` (bookkeeping) are the Uniqueids of agent legs ringing now.
    """

    node: str
    name: str
    interface: str
    state: AgentState
    reason: str | None
    since: float
    logged_in_at: float
    memberships: Mapping[str, Membership]
    call: str | None = None
    call_queue: str | None = None
    wrapup_until: float | None = None
    legs: tuple[str, ...] = field(default=(), compare=False)


@dataclass(frozen=True, slots=True)
class Caller:
    """A caller waiting in a queue; ``position`` is 1-based, ``joined_at`` when they joined."""

    uniqueid: str
    channel: str
    caller_number: str
    caller_name: str
    position: int
    joined_at: float


@dataclass(frozen=True, slots=True)
class QueueSnapshot:
    """What a wallboard shows of a queue. Member counts are by agent state; an agent paused
    in this queue who is not ringing or on a call counts as ``paused`` here even when
    available in another queue."""

    node: str
    queue: str
    waiting: int
    longest_wait_since: float | None
    logged_in: int
    available: int
    ringing: int
    on_call: int
    wrap_up: int
    paused: int
    unavailable: int


@dataclass(frozen=True, slots=True)
class Queue:
    name: str
    callers: Mapping[str, Caller]
    members: frozenset[str]
    #: The last snapshot reported; compared to decide whether a QueueChanged is due.
    snapshot: QueueSnapshot | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Leg:
    """An agent leg app_queue created for a caller (AgentCalled), until its Hangup."""

    uniqueid: str
    agent: str
    caller: str
    channel: str
    connected: bool = False


@dataclass(frozen=True, slots=True)
class Channel:
    """A root channel (Uniqueid == Linkedid) that is not a call (yet): an Originate, a Local
    ``;1`` half... It becomes a call if it runs in a call context or joins a queue."""

    uniqueid: str
    channel: str
    started_at: float
    context: str
    exten: str
    caller_number: str
    caller_name: str


#: A list response being collected: items newest first, as linked pairs (O(1) append).
ListItems = tuple[Event, "ListItems"] | None


@dataclass(frozen=True, slots=True)
class State:
    """Everything the core knows about one node. Build the first one with
    :func:`callcenter.core.initial_state`; every other comes from ``apply``/``tick``/resync.

    ``up`` is False between a Shutdown and the next FullyBooted. ``wrapup_due`` is a lower
    bound of the earliest ``Agent.wrapup_until`` (``inf`` when none), so that most events
    need not look at agents at all.
    """

    node: str
    config: CoreConfig
    up: bool = True
    agents: Mapping[str, Agent] = field(default_factory=dict)
    interfaces: Mapping[str, str] = field(default_factory=dict)
    queues: Mapping[str, Queue] = field(default_factory=dict)
    calls: Mapping[str, Call] = field(default_factory=dict)
    channels: Mapping[str, Channel] = field(default_factory=dict)
    legs: Mapping[str, Leg] = field(default_factory=dict)
    #: Queue visits that left their queue while still connected to an agent (an AMI
    #: Redirect into another queue): app_queue reports their AgentComplete only when the
    #: caller finally hangs up, without channel fields. Keyed by (queue, member name).
    open_visits: Mapping[tuple[str, str], Call] = field(default_factory=dict)
    lists: Mapping[str, ListItems] = field(default_factory=dict, compare=False)
    wrapup_due: float = field(default=math.inf, compare=False)


def clean_caller_id(value: str) -> str:
    """Asterisk writes ``<unknown>`` for an unset caller ID; we store an empty string."""
    return "" if value == "<unknown>" else value
