"""The AMI events our services read: the one list the manager.conf ``eventfilter`` is made of.

Asterisk sends an AMI session every event of the classes its user may read: on a busy system
mostly ``Newexten`` (one per dialplan step), ``VarSet`` (every ``Set()`` and every variable
an application sets), ``DialBegin``/``DialState``, ``Bridge*``, ``NewConnectedLine``,
``DeviceStateChange``, ``SoftHangupRequest``... None of them changes anything we keep, yet
each was read, split, typed and written to the audit table. The rendered manager.conf asks
Asterisk for only :data:`INCLUDES` (``eventfilter``, the "advanced" syntax of Asterisk 22's
``main/manager.c``: an event-name hash compare, then at most a plain string compare of one
header; no regular expression).

Rules of Asterisk 22 this relies on (``main/manager.c``, ``should_send_event``,
``filter_cmp_fn``, ``action_login``):

- With include filters only, an event is sent when ANY include matches; no filter at all
  sends everything. The filters belong to the manager.conf user and are copied into every
  session of it at login. The bridge and ``callcenter simulate`` log in as ``[nodes.*]
  username``, whose filter is :data:`INCLUDES` (everything any of us reads); the IVR and the
  dialer log in as ``ivr_username`` and ``dialer_username`` where those are set, users of
  their own with only the events they read (:data:`IVR`, :data:`DIALER`): without them,
  every Queue*, Agent*, Newchannel... of every call was read three times over, and that
  reading was most of our CPU under load.
- ``header(<name>)`` compares the value of every line starting with ``<name>:`` (blanks
  skipped, CR stripped) with ``method(exact)``; one value per filter, hence one
  :class:`Include` per value.
- The replies of an action (QueueStatus' ``QueueParams``/``QueueMember``/``QueueEntry``/
  ``QueueStatusComplete``, CoreShowChannels' ``CoreShowChannel``/``...Complete``) are written
  to the session directly: no filter and no ``Events`` mask applies to them
  (:data:`REPLY_EVENTS`). So is the ``FullyBooted`` right after a Login (no filter; only to a
  session whose ``Events`` include ``system``); the ``FullyBooted`` broadcast when a restart
  finishes booting is an event like any other: it is included.
- ``Events: <classes>`` at Login narrows one session further, by class
  (:data:`IVR_EVENT_CLASSES`, :data:`DIALER_EVENT_CLASSES`); an event is sent only if the
  session takes ALL of its classes.

What the code reads, by consumer (a test checks each table against this list, and that every
AMI event name in the code's string literals is in it):

- the bridge's core (:data:`callcenter.core.state.HANDLERS`): system, member, caller, agent,
  channel and transfer events; ``VarSet`` only of the variables it keeps
  (:data:`TIMEOUT_VARIABLE`, :data:`IVR_PATH_VARIABLE`, ``QUEUESTATUS``) or in a call context
  (:data:`CALL_CONTEXTS`: the first VarSet of an originated channel there makes it a call) --
  exactly the VarSets :func:`callcenter.core.calls.var_set_matters` can act on;
- the recordings keeper: ``UserEvent`` CallRecording, ``MixMonitorMute``, ``MixMonitorStop``,
  ``Hangup``;
- SIP attack detection: the four security events that count as a failed login
  (:data:`callcenter.security.events.FAILURES`); the others (``ChallengeSent``,
  ``SuccessfulAuth``, one per authenticated SIP request) only ever raised a counter;
- the dialer's tracker: ``OriginateResponse``, ``Newchannel``, ``Newstate`` (only
  ChannelState 5 Ringing and 6 Up mean anything to it), ``DialEnd``, ``UserEvent``
  DialerAMD/DialerMessage, ``QueueCallerJoin``, ``AgentConnect``, ``Hangup``;
- the IVR's callbacks: ``AgentConnect``, ``DialEnd``, ``Hangup``, ``OriginateResponse``;
- ``callcenter simulate``: caller and agent events, ``Hangup``, ``OriginateResponse``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from callcenter.domain import Direction

#: What our dialplans (dialplans/*.conf.j2) tell the bridge's core, by context and channel
#: variable: calls enter at [from-trunk] (inbound) or [outbound-campaign] (the dialer's
#: Originate); [inbound-queue] passes Queue()'s explicit timeout in QUEUE_TIMEOUT; the IVR sets
#: IVR_PATH. (:func:`callcenter.bridge.app.load_core_config` builds the core's config from them.)
CALL_CONTEXTS: Mapping[str, Direction] = {
    "from-trunk": Direction.INBOUND,
    "outbound-campaign": Direction.OUTBOUND,
}
TIMEOUT_VARIABLE = "QUEUE_TIMEOUT"
IVR_PATH_VARIABLE = "IVR_PATH"
#: Set by app_queue when Queue() returns without an agent (callcenter.core.calls).
QUEUE_STATUS_VARIABLE = "QUEUESTATUS"


@dataclass(frozen=True, slots=True)
class Include:
    """One ``eventfilter`` include: events named ``event``; with ``header``, only those
    whose ``header`` is exactly ``value``."""

    event: str
    header: str = ""
    value: str = ""

    def criteria(self) -> str:
        """The ``eventfilter(...)`` key of manager.conf."""
        if not self.header:
            return f"eventfilter(action(include),name({self.event}))"
        return (
            f"eventfilter(action(include),name({self.event}),header({self.header}),method(exact))"
        )

    def line(self) -> str:
        """The whole manager.conf line (nothing right of ``=`` for a name-only filter: the
        config parser needs the ``=``, ``method(none)`` is implied)."""
        return f"{self.criteria()} = {self.value}".rstrip()


#: Events taken whole, by name (see the module's doc for who reads which).
EVENTS: tuple[str, ...] = (
    # system: resync after a (re)boot; Asterisk going away
    "FullyBooted",
    "Shutdown",
    # channels and transfers
    "Newchannel",
    "Hangup",
    "Hold",
    "Unhold",
    "DialEnd",
    "BlindTransfer",
    "AttendedTransfer",
    "OriginateResponse",
    # the dialplan's own events (CallRecording, DialerAMD, DialerMessage)
    "UserEvent",
    "MixMonitorMute",
    "MixMonitorStop",
    # queue members (agents)
    "QueueMemberAdded",
    "QueueMemberRemoved",
    "QueueMemberPause",
    "QueueMemberStatus",
    "QueueMemberPenalty",
    "QueueMemberRinginuse",
    # callers in queues, and app_queue ringing members for them
    "QueueCallerJoin",
    "QueueCallerLeave",
    "QueueCallerAbandon",
    "AgentCalled",
    "AgentDump",
    "AgentRingNoAnswer",
    "AgentConnect",
    "AgentComplete",
    # security: the failed logins callcenter.security counts (its FAILURES)
    "InvalidAccountID",
    "ChallengeResponseFailed",
    "InvalidPassword",
    "FailedACL",
)

Narrowed = Mapping[str, tuple[tuple[str, tuple[str, ...]], ...]]


def narrowed(call_contexts: Iterable[str], variables: Iterable[str | None]) -> Narrowed:
    """Events taken only when one header has one of a few values: event -> (header, values).

    ``VarSet``: of ``variables`` (the ones the core keeps), or set while the channel runs in
    one of ``call_contexts`` (the first such VarSet of an originated channel makes it a call).
    ``Newstate``: ChannelState 5 Ringing and 6 Up (main/channel.c's numbers), all the dialer's
    tracker reads."""
    return {
        "VarSet": (
            ("Variable", tuple(v for v in variables if v)),
            ("Context", tuple(call_contexts)),
        ),
        "Newstate": (("ChannelState", ("5", "6")),),
    }


#: The narrowed events of our dialplans and the bridge's core configuration.
NARROWED: Narrowed = narrowed(
    CALL_CONTEXTS, (QUEUE_STATUS_VARIABLE, TIMEOUT_VARIABLE, IVR_PATH_VARIABLE)
)

#: The replies of the list actions we send (QueueStatus, CoreShowChannels): not events of the
#: stream, so no filter applies to them.
REPLY_EVENTS: tuple[str, ...] = (
    "QueueParams",
    "QueueMember",
    "QueueEntry",
    "QueueStatusComplete",
    "CoreShowChannel",
    "CoreShowChannelsComplete",
)

#: Every event name that reaches us, from the stream (filtered) or as a reply.
NAMES: frozenset[str] = frozenset({*EVENTS, *NARROWED, *REPLY_EVENTS})

#: ``Events:`` of the IVR's AMI link (its callbacks read AgentConnect: class agent; DialEnd,
#: Hangup, OriginateResponse: class call).
IVR_EVENT_CLASSES = "agent,call"
#: ``Events:`` of the dialer's AMI link: its tracker reads class call and agent events and the
#: dialplan's UserEvents (class user).
DIALER_EVENT_CLASSES = "agent,call,user"


@dataclass(frozen=True, slots=True)
class Reader:
    """What one AMI user of ours is sent: ``events`` whole, ``narrow`` by a header's value.
    ``read``: the classes of its manager.conf ``read =`` (and of ``Events:`` at login);
    ``write``: the action classes it needs."""

    events: tuple[str, ...]
    narrow: Narrowed
    read: str
    write: str

    def includes(self) -> tuple[Include, ...]:
        return (
            *(Include(name) for name in self.events),
            *(
                Include(name, header, value)
                for name, rules in self.narrow.items()
                for header, values in rules
                for value in values
            ),
        )

    def manager_lines(self) -> list[str]:
        """The ``eventfilter`` lines of this user's section of manager.conf."""
        return [include.line() for include in self.includes()]

    def passes(self, fields: Mapping[str, str]) -> bool:
        """Whether Asterisk sends this user an event with these headers."""
        name = fields.get("Event")
        if name is None:
            return False
        if name in self.events:
            return True
        rules = self.narrow.get(name)
        return rules is not None and any(
            fields.get(header, "").strip() in values for header, values in rules
        )


#: The bridge (and ``callcenter simulate``): every event any of our services reads.
BRIDGE = Reader(
    EVENTS, NARROWED, read="agent,call,dialplan,security,system,user",
    write="agent,call,originate,reporting",
)  # fmt: skip
#: The IVR's own user: its callbacks follow the placeholder call they originate (AgentConnect,
#: DialEnd, Hangup, OriginateResponse). Actions: Originate and Hangup of callbacks,
#: CoreShowChannels after a reconnect, QueueAdd/Remove/Pause/Status of the agents' feature
#: codes (callcenter/agi/features.py).
IVR = Reader(
    ("AgentConnect", "DialEnd", "Hangup", "OriginateResponse"), {},
    read=IVR_EVENT_CLASSES, write="agent,call,originate,reporting",
)  # fmt: skip
#: The dialer's own user: what its tracker (callcenter/campaigns/tracker.py) folds in, the
#: dialplan's UserEvents only when they are the dialer's. Actions: Originate, and
#: CoreShowChannels after a reconnect.
DIALER = Reader(
    ("OriginateResponse", "Newchannel", "DialEnd", "QueueCallerJoin", "AgentConnect", "Hangup"),
    {
        "Newstate": NARROWED["Newstate"],
        "UserEvent": (("UserEvent", ("DialerAMD", "DialerMessage")),),
    },
    read=DIALER_EVENT_CLASSES, write="originate,reporting",
)  # fmt: skip


#: Every include filter of the bridge's user, in the order manager.conf lists them.
INCLUDES: tuple[Include, ...] = BRIDGE.includes()


def passes(fields: Mapping[str, str], narrow: Narrowed = NARROWED) -> bool:
    """Whether Asterisk sends an event with these headers through :data:`EVENTS` and
    ``narrow`` (default :data:`NARROWED`, i.e. the bridge's user): ``should_send_event``
    with include filters only, for tests and replays. An empty header value never matches
    (Asterisk skips it)."""
    return Reader(EVENTS, narrow, read="", write="").passes(fields)


def manager_lines() -> list[str]:
    """The ``eventfilter`` lines of the bridge's user's section of manager.conf."""
    return BRIDGE.manager_lines()
