"""The pure state core of the AMI bridge, one state per Asterisk node.

``apply(state, event) -> (state, changes)`` folds typed AMI events
(:mod:`callcenter.ami.events`) into queues, agents and calls and says what changed; no I/O, no
clock. Modules, by what they do:

- :mod:`.state`: ``initial_state``, ``apply``, ``tick``, the event -> handler table;
- :mod:`.agents` (membership, pause, status), :mod:`.queues` (callers joining and leaving),
  :mod:`.dialing` (agent legs, connect, complete), :mod:`.calls` (the caller's channel);
- :mod:`.resync`: QueueStatus / CoreShowChannels as truth after a (re)connect;
- :mod:`.queue_log`: queue_log parsing and call reconciliation;
- :mod:`.records` (state records), :mod:`.changes` (output), :mod:`.config` (input),
  :mod:`.derive` (agent state, queue snapshot), :mod:`.tx` and :mod:`.edits` (plumbing).
"""

from callcenter.core.changes import (
    AgentChanged,
    AgentLoggedIn,
    AgentLoggedOut,
    AgentStateChanged,
    CallChanged,
    Change,
    MemberPauseChanged,
    QueueChanged,
    VisitChanged,
)
from callcenter.core.config import CoreConfig, QueueConfig
from callcenter.core.queue_log import (
    QueueLogEntry,
    call_from_queue_log,
    parse_queue_log,
    parse_queue_log_line,
    reconcile_call,
    split_visits,
    unseen_calls,
    visit_lines,
)
from callcenter.core.records import (
    Agent,
    Call,
    Caller,
    CallPhase,
    Membership,
    Queue,
    QueueSnapshot,
    State,
)
from callcenter.core.resync import (
    restore_calls,
    resync_channels,
    resync_queues,
    retire_queues,
)
from callcenter.core.state import apply, connection_lost, ignores_var_set, initial_state, tick

__all__ = [
    "Agent",
    "AgentChanged",
    "AgentLoggedIn",
    "AgentLoggedOut",
    "AgentStateChanged",
    "Call",
    "CallChanged",
    "CallPhase",
    "Caller",
    "Change",
    "CoreConfig",
    "MemberPauseChanged",
    "Membership",
    "Queue",
    "QueueChanged",
    "QueueConfig",
    "QueueLogEntry",
    "QueueSnapshot",
    "State",
    "VisitChanged",
    "apply",
    "call_from_queue_log",
    "connection_lost",
    "ignores_var_set",
    "initial_state",
    "parse_queue_log",
    "parse_queue_log_line",
    "reconcile_call",
    "restore_calls",
    "resync_channels",
    "resync_queues",
    "retire_queues",
    "split_visits",
    "tick",
    "unseen_calls",
    "visit_lines",
]
