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
- ``header(<name>)`` looks at every line of the event starting with ``<name>:`` (the ``:``
  is appended to the name; ``DestLinkedid:`` does not start with ``Linkedid:``): the rest of
  the line, CR stripped, leading blanks (every byte below ``!``) skipped, is compared if not
  empty, and one matching line is enough. ``method(exact)``: equal to the filter's value,
  one value per filter, hence one :class:`Include` per value. ``method(starts_with)``
  (``match_eventdata``: ``ast_begins_with``): begins with it. An empty value never matches
  (the line is skipped), and a filter's value is never empty (Asterisk refuses one with a
  method other than ``none``).
- A filter tests one header: two conditions cannot be joined by "and". Prefix filters
  (:attr:`Reader.prefixed`) are how a user is sent the events of its own calls only: the
  dialer gives each call a ``ChannelId`` beginning with
  :data:`DIALER_PREFIX`, which every channel of the call
  carries as ``Linkedid``, and uses it as the Originate's ``ActionID``; the IVR's callback
  placeholders' uniqueids and Originate ActionIDs begin with :data:`CALLBACK_PREFIX`.
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
  DialerAMD/DialerMessage, ``QueueCallerJoin``, ``AgentConnect``, ``Hangup``, each only of
  the calls it originated (:data:`DIALER`);
- the IVR's callbacks: ``AgentConnect``, ``DialEnd``, ``Hangup``, ``OriginateResponse``, each
  only of their placeholder calls (:data:`IVR`);
- ``callcenter simulate``: caller and agent events, ``Hangup``, ``OriginateResponse``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

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


#: The prefixes of our own calls' ids, which the IVR's and the dialer's users are filtered by
#: (kept here, the one place the filters are made of; the code that makes the ids imports
#: them). Every channel id and Originate ActionID of the dialer (callcenter/campaigns/tracker.py
#: ``new_channel_id``), and the uniqueids of the IVR's callback placeholders and the ActionIDs
#: of their Originates (callcenter/agi/callback.py).
DIALER_PREFIX = "dialer-"
CALLBACK_PREFIX = "cb-"

#: The ``method(...)`` of a header filter this module renders (Asterisk has more).
METHODS = ("exact", "starts_with")


@dataclass(frozen=True, slots=True)
class Include:
    """One ``eventfilter`` include: events named ``event``; with ``header``, only those
    whose ``header`` is ``value`` (``method`` "exact") or begins with it ("starts_with")."""

    event: str
    header: str = ""
    value: str = ""
    method: str = "exact"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"eventfilter method {self.method!r} is not one of {METHODS}")
        if bool(self.header) != bool(self.value):
            # Asterisk refuses a header filter with no value (method(none) is name-only).
            raise ValueError(f"{self.event}: a header filter needs a header and a value")

    def criteria(self) -> str:
        """The ``eventfilter(...)`` key of manager.conf."""
        if not self.header:
            return f"eventfilter(action(include),name({self.event}))"
        return (
            f"eventfilter(action(include),name({self.event}),header({self.header}),"
            f"method({self.method}))"
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


#: Events taken only when one header begins with a prefix: event -> ((header, prefix), ...),
#: any of which suffices.
Prefixed = Mapping[str, tuple[tuple[str, str], ...]]


#: What ``ast_skip_blanks`` skips: every byte below ``!``.
_BLANKS = "".join(map(chr, range(33)))


def header_value(fields: Mapping[str, str], header: str) -> str:
    """The value ``filter_cmp_fn`` compares: the header's, leading blanks skipped, CR already
    stripped by the parser; "" when absent. ``fields`` holds the first value of a repeated
    header where Asterisk tests each: no header filtered on here repeats in an event."""
    return fields.get(header, "").lstrip(_BLANKS)


@dataclass(frozen=True, slots=True)
class Reader:
    """What one AMI user of ours is sent: ``events`` whole, ``narrow`` when a header has one
    of some values, ``prefixed`` when a header begins with a prefix. ``read``: the classes of
    its manager.conf ``read =`` (and of ``Events:`` at login); ``write``: the action classes
    it needs."""

    events: tuple[str, ...]
    narrow: Narrowed
    read: str
    write: str
    prefixed: Prefixed = field(default_factory=dict)

    def includes(self) -> tuple[Include, ...]:
        return (
            *(Include(name) for name in self.events),
            *(
                Include(name, header, value)
                for name, rules in self.narrow.items()
                for header, values in rules
                for value in values
            ),
            *(
                Include(name, header, prefix, "starts_with")
                for name, prefix_rules in self.prefixed.items()
                for header, prefix in prefix_rules
            ),
        )

    def manager_lines(self) -> list[str]:
        """The ``eventfilter`` lines of this user's section of manager.conf."""
        return [include.line() for include in self.includes()]

    def passes(self, fields: Mapping[str, str]) -> bool:
        """Whether Asterisk sends this user an event with these headers (include filters
        only: any one that matches; see the module's doc for how one matches)."""
        name = fields.get("Event")
        if name is None:
            return False
        if name in self.events:
            return True
        for header, values in self.narrow.get(name, ()):
            value = header_value(fields, header)
            if value and value in values:
                return True
        for header, prefix in self.prefixed.get(name, ()):
            if header_value(fields, header).startswith(prefix):  # prefix is never empty
                return True
        return False


#: The bridge (and ``callcenter simulate``): every event any of our services reads.
BRIDGE = Reader(
    EVENTS, NARROWED, read="agent,call,dialplan,security,system,user",
    write="agent,call,originate,reporting",
)  # fmt: skip
#: The IVR's own user: its callbacks follow the placeholder calls they originate. Their
#: AgentConnect (the caller: the ;2 half ``cb-...-q``), DialEnd (the ;1 half dialling the
#: customer) and Hangup (either half) by ``Uniqueid``; OriginateResponse by its ``ActionID``
#: (CallbackService gives its Originates one beginning with the prefix too). Actions:
#: Originate and Hangup of callbacks, CoreShowChannels after a reconnect (a reply: not
#: filtered), QueueAdd/Remove/Pause/Status of the agents' feature codes
#: (callcenter/agi/features.py: replies too).
IVR = Reader(
    (), {}, read=IVR_EVENT_CLASSES, write="agent,call,originate,reporting",
    prefixed={
        "AgentConnect": (("Uniqueid", CALLBACK_PREFIX),),
        "DialEnd": (("Uniqueid", CALLBACK_PREFIX),),
        "Hangup": (("Uniqueid", CALLBACK_PREFIX),),
        "OriginateResponse": (("ActionID", CALLBACK_PREFIX),),
    },
)  # fmt: skip
#: The dialer's own user: what its tracker (callcenter/campaigns/tracker.py) folds in, of the
#: calls it originated only. Every channel of such a call (the Local ;1 and ;2 halves, the
#: agent's channel app_queue dials, a preview's customer leg dialled from the agent's phone)
#: has the originated channel's id as ``Linkedid``; but the DialEnd of the Originate itself
#: has no calling channel, only ``Dest*`` headers (``DestLinkedid``). The OriginateResponse
#: has no Linkedid: it carries the ActionID, which is the channel id. The dialplan's
#: UserEvents are taken by name: DialerAMD and DialerMessage are only ever raised in the
#: dialer's contexts (dialplans/outbound.conf.j2), so the name alone keeps them to its calls
#: and leaves out the other UserEvents of its calls (CallRecording). Actions: Originate, and
#: CoreShowChannels after a reconnect.
DIALER = Reader(
    (), {"UserEvent": (("UserEvent", ("DialerAMD", "DialerMessage")),)},
    read=DIALER_EVENT_CLASSES, write="originate,reporting",
    prefixed={
        "OriginateResponse": (("ActionID", DIALER_PREFIX),),
        "Newchannel": (("Linkedid", DIALER_PREFIX),),
        "Newstate": (("Linkedid", DIALER_PREFIX),),
        "DialEnd": (("Linkedid", DIALER_PREFIX), ("DestLinkedid", DIALER_PREFIX)),
        "QueueCallerJoin": (("Linkedid", DIALER_PREFIX),),
        "AgentConnect": (("Linkedid", DIALER_PREFIX),),
        "Hangup": (("Linkedid", DIALER_PREFIX),),
    },
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
