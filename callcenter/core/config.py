"""What the core must be told because no AMI event says it.

Asterisk never sends a queue's ``wrapuptime`` (members report their own override, 0 meaning
"the queue's"; QueueParams has no such field), and the Queue() timeout is an argument of the
dialplan application. Both come from our own configuration of the queues.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from callcenter.domain import Direction


@dataclass(frozen=True, slots=True)
class QueueConfig:
    """Per-queue facts: ``wrapup_seconds`` (queues.conf ``wrapuptime``) and
    ``max_wait_seconds`` (the timeout passed to Queue(); ``None`` when there is none)."""

    wrapup_seconds: float = 0.0
    max_wait_seconds: float | None = None


def _default_contexts() -> Mapping[str, Direction]:
    return {"from-trunk": Direction.INBOUND}


@dataclass(frozen=True, slots=True)
class CoreConfig:
    """Input of :func:`callcenter.core.initial_state`.

    - ``queues``: per-queue :class:`QueueConfig`; ``default_queue`` for any other queue.
    - ``call_contexts``: a root channel (Uniqueid == Linkedid) created in, or later running
      in, one of these dialplan contexts is a call of that direction from its first event
      (so an IVR hang-up is recorded). Any channel that joins a queue becomes a call anyway.
    - ``timeout_variable``: the channel variable the dialplan sets to the Queue() timeout
      before calling Queue() (``QTIMEOUT`` in our dialplan); it overrides
      ``max_wait_seconds`` for that call. ``None`` to ignore.
    - ``ivr_path_variable``: a channel variable whose value is the IVR path of the call
      (copied to ``Call.ivr_path``); ``None`` to ignore.
    """

    queues: Mapping[str, QueueConfig] = field(default_factory=dict)
    default_queue: QueueConfig = QueueConfig()
    call_contexts: Mapping[str, Direction] = field(default_factory=_default_contexts)
    timeout_variable: str | None = "QTIMEOUT"
    ivr_path_variable: str | None = None

    def queue(self, name: str) -> QueueConfig:
        return self.queues.get(name, self.default_queue)
