"""The call center's shared vocabulary: the enums every layer (core, database, CLI) agrees on.

The string values are stored in the database and published on MQTT, so they are part of the
public contract: add values, never rename them.
"""

from __future__ import annotations

import enum


class AgentState(enum.StrEnum):
    """What an agent is doing, as derived from Asterisk's queue membership.

    One agent has one state across all the queues they are a member of: an agent paused in
    every queue is ``paused``; an agent in a call from any queue is ``on_call``.
    """

    LOGGED_OUT = "logged_out"
    AVAILABLE = "available"
    RINGING = "ringing"
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"
    PAUSED = "paused"
    UNAVAILABLE = "unavailable"  # logged in, but the phone is unregistered / invalid


class CallOutcome(enum.StrEnum):
    """How a call ended, from the point of view of the call center.

    ``timed_out``, ``exit_key`` and ``exit_empty`` are the queue_log EXITWITHTIMEOUT,
    EXITWITHKEY and EXITEMPTY; ``abandoned`` is ABANDON (caller hung up while waiting).
    ``ivr_hangup`` is a call that ended before it reached a queue or agent.
    ``lost`` is a call that vanished while the bridge was disconnected and whose end could not
    be recovered from queue_log: we say so instead of guessing.
    """

    ANSWERED = "answered"
    ABANDONED = "abandoned"
    TIMED_OUT = "timed_out"
    EXIT_KEY = "exit_key"
    EXIT_EMPTY = "exit_empty"
    TRANSFERRED = "transferred"
    IVR_HANGUP = "ivr_hangup"
    CALLBACK = "callback"
    LOST = "lost"


class Direction(enum.StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"
    INTERNAL = "internal"


class QueueStrategy(enum.StrEnum):
    """app_queue's ring strategies (queues.conf ``strategy``)."""

    RINGALL = "ringall"
    LEASTRECENT = "leastrecent"
    FEWESTCALLS = "fewestcalls"
    RANDOM = "random"
    RRMEMORY = "rrmemory"
    RRORDERED = "rrordered"
    LINEAR = "linear"
    WRANDOM = "wrandom"
