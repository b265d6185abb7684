"""Typed AMI events: raw frames stop here, frozen dataclasses go beyond.

:func:`parse_event` turns one :class:`~callcenter.ami.protocol.Message` into one of the
dataclasses below, an :class:`UnknownEvent` (a name we do not model: most of the traffic,
``VarSet`` aside, is ``Newexten``, ``DeviceStateChange``, ``RTCPSent``...) or a
:class:`MalformedEvent` (a modelled name whose required fields are missing or not numbers). It
never raises, so one bad frame cannot stop the bridge.

Field names and units are Asterisk 22's, checked against ``apps/app_queue.c``,
``main/manager_channels.c``, ``main/stasis_bridges.c`` and the recorded traces:

- seconds: AgentConnect ``HoldTime``/``RingTime``, AgentComplete ``HoldTime``/``TalkTime``,
  QueueCallerAbandon ``HoldTime``, QueueEntry ``Wait``. They are differences of whole epoch
  seconds (an 8.4 s wait reads 9).
- **milliseconds**: AgentRingNoAnswer ``RingTime`` (hence ``ring_time_ms``).
- epoch seconds: ``LoginTime``, ``LastCall``, ``LastPause`` (0 = never).
- ``Wrapuptime`` of a member is the member's own override; 0 means "the queue's wrapuptime
  applies", which no queue event carries (not even QueueParams).

Every event carries ``node`` (which Asterisk it came from) and ``time``: the ``Timestamp``
header when manager.conf has ``timestampevents = yes``, else the receive time the caller passes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from callcenter.ami.protocol import MalformedMessage, Message

__all__ = [
    "EVENT_TYPES",
    "AgentCalled",
    "AgentComplete",
    "AgentConnect",
    "AgentDump",
    "AgentEvent",
    "AgentRingNoAnswer",
    "AttendedTransfer",
    "BlindTransfer",
    "CallRecording",
    "ChannelEvent",
    "CoreShowChannel",
    "CoreShowChannelsComplete",
    "DialEnd",
    "Event",
    "FullyBooted",
    "Hangup",
    "Hold",
    "MalformedEvent",
    "MemberEvent",
    "MixMonitorMute",
    "MixMonitorStop",
    "Newchannel",
    "Newstate",
    "OriginateResponse",
    "QueueCallerAbandon",
    "QueueCallerJoin",
    "QueueCallerLeave",
    "QueueEntry",
    "QueueMember",
    "QueueMemberAdded",
    "QueueMemberPause",
    "QueueMemberPenalty",
    "QueueMemberRemoved",
    "QueueMemberRinginuse",
    "QueueMemberStatus",
    "QueueParams",
    "QueueStatusComplete",
    "Shutdown",
    "Unhold",
    "UnknownEvent",
    "UserEvent",
    "VarSet",
    "parse_event",
]

Fields = Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Event:
    """Base of every event: the node it came from and its time (epoch seconds)."""

    node: str
    time: float


@dataclass(frozen=True, slots=True)
class UnknownEvent(Event):
    """An event we do not model; ``fields`` is the frame's header map (do not mutate it)."""

    name: str
    fields: Fields


@dataclass(frozen=True, slots=True)
class MalformedEvent(Event):
    """A frame we could not turn into its event: ``error`` says why, ``fields`` what we read.

    ``name`` is the ``Event`` header, or ``""`` when there was none (or the frame itself was
    malformed, in which case ``fields`` holds the lines that did parse).
    """

    name: str
    fields: Fields
    error: str


# --- system -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FullyBooted(Event):
    """Asterisk finished booting. Sent right after Login on a running system, and broadcast
    to clients that logged in while it was still booting (the two have different field
    orders; AMI accepts logins before boot ends). Persistent queue members are restored
    silently during boot: run QueueStatus after this."""

    status: str
    uptime: int | None
    last_reload: int | None


@dataclass(frozen=True, slots=True)
class Shutdown(Event):
    """Asterisk is stopping; the socket closes right after. ``shutdown`` is ``Cleanly`` or
    ``Uncleanly`` and means "were there active channels", not graceful vs now."""

    shutdown: str
    restart: bool


# --- channels -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChannelEvent(Event):
    """An event about one channel: the channel snapshot fields the core uses.

    Caller ID values are as sent: Asterisk writes ``<unknown>`` when none is set.
    """

    channel: str
    channel_state: int
    uniqueid: str
    linkedid: str
    caller_id_num: str
    caller_id_name: str
    connected_line_num: str
    connected_line_name: str
    context: str
    exten: str


@dataclass(frozen=True, slots=True)
class Newchannel(ChannelEvent):
    pass


@dataclass(frozen=True, slots=True)
class Newstate(ChannelEvent):
    pass


@dataclass(frozen=True, slots=True)
class Hangup(ChannelEvent):
    """``cause`` is the Q.850 cause: 16 normal, 17 busy, 19 no answer, 0 for a caller who
    hung up while queued and for cancelled agent legs."""

    cause: int
    cause_txt: str


@dataclass(frozen=True, slots=True)
class Hold(ChannelEvent):
    music_class: str


@dataclass(frozen=True, slots=True)
class Unhold(ChannelEvent):
    pass


@dataclass(frozen=True, slots=True)
class VarSet(Event):
    """A channel variable was set. The most frequent event by far (~60 % of the traffic), so
    it carries only what the core reads: QTIMEOUT-style Queue() timeouts, ``QUEUESTATUS``
    (set by app_queue when Queue() returns without a connected call) and IVR variables."""

    channel: str
    uniqueid: str
    linkedid: str
    context: str
    exten: str
    variable: str
    value: str


@dataclass(frozen=True, slots=True)
class DialEnd(Event):
    """End of one dial attempt. For an Originate there is no calling channel (``uniqueid`` is
    ``""``). Can come twice for one agent leg (NOANSWER then CANCEL, or CANCEL twice)."""

    channel: str
    uniqueid: str
    dest_channel: str
    dest_uniqueid: str
    dest_linkedid: str
    dial_status: str


@dataclass(frozen=True, slots=True)
class BlindTransfer(Event):
    result: str
    transferer_channel: str
    transferer_uniqueid: str
    transferee_channel: str
    transferee_uniqueid: str
    is_external: bool
    context: str
    extension: str


@dataclass(frozen=True, slots=True)
class AttendedTransfer(Event):
    result: str
    orig_transferer_channel: str
    orig_transferer_uniqueid: str
    second_transferer_channel: str
    second_transferer_uniqueid: str
    transferee_channel: str
    transferee_uniqueid: str
    transfer_target_channel: str
    transfer_target_uniqueid: str
    dest_type: str


@dataclass(frozen=True, slots=True)
class OriginateResponse(Event):
    """Result of an ``Async: true`` Originate. ``reason``: 0 failed (also SIP 486 Busy on
    PJSIP: look at DialEnd BUSY / Hangup cause 17), 1 hung up, 3 no answer, 4 answered,
    5 busy, 8 congestion. ``uniqueid`` is ``None`` when Asterisk sends ``<unknown>``."""

    action_id: str
    response: str
    channel: str
    context: str
    exten: str
    application: str
    data: str
    reason: int
    uniqueid: str | None
    caller_id_num: str
    caller_id_name: str


@dataclass(frozen=True, slots=True)
class UserEvent(Event):
    """``UserEvent()`` from the dialplan: ``user_event`` is its name (the ``UserEvent``
    header), ``uniqueid`` and ``channel`` those of the channel that ran it, ``fields`` the
    whole frame (the dialplan's own headers, e.g. the dialer's ``Status``, are in it)."""

    user_event: str
    channel: str
    uniqueid: str
    fields: Fields


#: Our own UserEvent: a MixMonitor started (dialplans/recording.conf.j2, [recording-start]).
CALL_RECORDING = "CallRecording"


@dataclass(frozen=True, slots=True)
class CallRecording(UserEvent):
    """``UserEvent(CallRecording)``, raised by our dialplan on the channel MixMonitor records
    (the agent's leg; ``channel``/``uniqueid`` are that leg's) right after MixMonitor started.

    ``file`` is relative to the recordings directory; ``call_uniqueid``/``call_linkedid`` the
    caller's channel (the ``calls`` row); ``queue``/``campaign`` ("" when none) and ``agent``
    (app_queue's MEMBERNAME) what the row is filed under; ``reason`` policy | sampled |
    on_demand; ``requested_by`` who asked for an on-demand recording ("" otherwise). No
    Asterisk event names a MixMonitor's file (MixMonitorStart carries the channel only):
    this one is ours for that reason."""

    file: str
    call_uniqueid: str
    call_linkedid: str
    queue: str
    campaign: str
    agent: str
    reason: str
    requested_by: str


@dataclass(frozen=True, slots=True)
class MixMonitorMute(ChannelEvent):
    """A MixMonitor was muted or unmuted (AMI action MixMonitorMute; main/manager_channels.c).
    ``direction``: read (what the channel says), write (what it hears) or both; ``muted``:
    State 1. Asterisk raises it even when the channel has no MixMonitor (it mutes nothing
    then), so it proves nothing by itself."""

    direction: str
    muted: bool


@dataclass(frozen=True, slots=True)
class MixMonitorStop(ChannelEvent):
    """StopMixMonitor (app or AMI action) stopped the channel's MixMonitor. Not raised when
    the channel hangs up: the file is closed by the mixmonitor thread a moment later, without
    any event."""


# --- queue members --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MemberEvent(Event):
    """The member fields every QueueMember* event (and QueueStatus' QueueMember) carries.

    ``member_name`` is the agent identity; ``status`` is the device state (0 unknown,
    1 not in use, 2 in use, 3 busy, 4 invalid, 5 unavailable, 6 ringing, 7 ring+in use,
    8 on hold). A Local member shows 2, not 6, while it rings. ``ringinuse`` is ``None``
    where the event does not carry it (QueueMember).
    """

    queue: str
    member_name: str
    interface: str
    state_interface: str
    membership: str
    penalty: int
    calls_taken: int
    last_call: int
    last_pause: int
    login_time: int
    in_call: bool
    status: int
    paused: bool
    paused_reason: str
    ringinuse: bool | None
    wrapuptime: int


@dataclass(frozen=True, slots=True)
class QueueMemberAdded(MemberEvent):
    pass


@dataclass(frozen=True, slots=True)
class QueueMemberRemoved(MemberEvent):
    pass


@dataclass(frozen=True, slots=True)
class QueueMemberPause(MemberEvent):
    """One per queue: a QueuePause without ``Queue`` (queue_log PAUSEALL) sends one of these
    for every queue the member is in."""


@dataclass(frozen=True, slots=True)
class QueueMemberStatus(MemberEvent):
    """Device state or in-call change. Its order relative to AgentConnect varies."""


@dataclass(frozen=True, slots=True)
class QueueMemberPenalty(MemberEvent):
    pass


@dataclass(frozen=True, slots=True)
class QueueMemberRinginuse(MemberEvent):
    pass


@dataclass(frozen=True, slots=True)
class QueueMember(MemberEvent):
    """A QueueStatus list item: ``Name``/``Location`` on the wire, no ``Ringinuse``."""

    action_id: str


# --- queue callers --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueueCallerJoin(ChannelEvent):
    queue: str
    position: int
    count: int


@dataclass(frozen=True, slots=True)
class QueueCallerLeave(ChannelEvent):
    """The caller left the queue, whatever the reason. On an answered call it comes *before*
    AgentConnect; on an abandon or timeout it follows QueueCallerAbandon."""

    queue: str
    position: int
    count: int


@dataclass(frozen=True, slots=True)
class QueueCallerAbandon(ChannelEvent):
    """The caller left without an agent. **Also sent for a Queue() timeout** (and for
    leavewhenempty, withdraw): app_queue's ``record_abandoned`` serves them all. Only
    queue_log (ABANDON vs EXITWITHTIMEOUT) or the caller's QUEUESTATUS tells them apart."""

    queue: str
    position: int
    original_position: int
    hold_time: int


# --- agent legs -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AgentEvent(ChannelEvent):
    """An event about app_queue ringing a member for a caller: the channel fields are the
    caller's, ``dest_*`` the agent leg's."""

    dest_channel: str
    dest_uniqueid: str
    queue: str
    member_name: str
    interface: str


@dataclass(frozen=True, slots=True)
class AgentCalled(AgentEvent):
    pass


@dataclass(frozen=True, slots=True)
class AgentDump(AgentEvent):
    """The member hung up on the caller before being bridged."""


@dataclass(frozen=True, slots=True)
class AgentRingNoAnswer(AgentEvent):
    ring_time_ms: int


@dataclass(frozen=True, slots=True)
class AgentConnect(AgentEvent):
    hold_time: int
    ring_time: int


@dataclass(frozen=True, slots=True)
class AgentComplete(AgentEvent):
    """``reason``: caller, agent or transfer.

    Asterisk 22 quirk: when the caller's channel is gone by the time app_queue reports the
    end of the call (the agent hung up under load; the first visit of a caller that an AMI
    Redirect sent into another queue), the event has only Queue, Interface, MemberName,
    HoldTime, TalkTime and Reason: then ``uniqueid`` and every other channel and ``dest_*``
    field is ``""``, and the call is found through the member (``queue`` + ``member_name``).
    """

    hold_time: int
    talk_time: int
    reason: str


# --- list responses -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueueParams(Event):
    """A QueueStatus list item. ``abandoned`` counts Queue() timeouts too."""

    action_id: str
    queue: str
    max: int
    strategy: str
    calls: int
    holdtime: int
    talktime: int
    completed: int
    abandoned: int
    service_level: int
    service_level_perf: float
    service_level_perf2: float
    weight: int


@dataclass(frozen=True, slots=True)
class QueueEntry(Event):
    """A caller waiting, from QueueStatus. ``connected_line_*`` is the member being rung;
    ``priority`` is the queue priority, not the dialplan one."""

    action_id: str
    queue: str
    position: int
    channel: str
    uniqueid: str
    caller_id_num: str
    caller_id_name: str
    connected_line_num: str
    connected_line_name: str
    wait: int
    priority: int


@dataclass(frozen=True, slots=True)
class QueueStatusComplete(Event):
    action_id: str
    list_items: int


@dataclass(frozen=True, slots=True)
class CoreShowChannel(ChannelEvent):
    """A live channel, from CoreShowChannels; ``duration`` in seconds."""

    action_id: str
    application: str
    application_data: str
    duration: int
    bridge_id: str


@dataclass(frozen=True, slots=True)
class CoreShowChannelsComplete(Event):
    action_id: str
    list_items: int


# --- parsing --------------------------------------------------------------------------------


class _FieldError(ValueError):
    pass


def _req(f: Fields, key: str) -> str:
    try:
        return f[key]
    except KeyError:
        raise _FieldError(f"missing field {key}") from None


def _int(f: Fields, key: str, default: int | None = None) -> int:
    """An integer field; ``default`` (when given) stands in for a missing or empty one."""
    value = f.get(key)
    if value is None or value == "":
        if default is None:
            raise _FieldError(f"missing field {key}")
        return default
    try:
        return int(value)
    except ValueError:
        raise _FieldError(f"field {key} is not an integer: {value[:40]!r}") from None


def _float(f: Fields, key: str) -> float:
    value = f.get(key)
    if not value:
        return 0.0
    try:
        return float(value)
    except ValueError:
        raise _FieldError(f"field {key} is not a number: {value[:40]!r}") from None


_TRUE = frozenset({"1", "true", "yes", "True", "Yes", "TRUE", "YES", "on"})
_FALSE = frozenset({"0", "false", "no", "False", "No", "FALSE", "NO", "off", ""})


def _bool(f: Fields, key: str) -> bool:
    value = f.get(key, "")
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise _FieldError(f"field {key} is not a boolean: {value[:40]!r}")


def _duration(f: Fields, key: str) -> int:
    """``HH:MM:SS`` (CoreShowChannel Duration) as seconds."""
    value = f.get(key, "")
    if not value:
        return 0
    try:
        h, m, s = value.split(":")
        return int(h) * 3600 + int(m) * 60 + int(s)
    except ValueError:
        raise _FieldError(f"field {key} is not HH:MM:SS: {value[:40]!r}") from None


# Positional arguments of the base dataclasses, spelled out so mypy checks the star-calls.
_ChanArgs = tuple[str, float, str, int, str, str, str, str, str, str, str, str]
_AgentArgs = tuple[
    str, float, str, int, str, str, str, str, str, str, str, str, str, str, str, str, str
]
_MemberArgs = tuple[
    str,
    float,
    str,
    str,
    str,
    str,
    str,
    int,
    int,
    int,
    int,
    int,
    bool,
    int,
    bool,
    str,
    bool | None,
    int,
]


def _chan(f: Fields, node: str, t: float) -> _ChanArgs:
    """The positional arguments of :class:`ChannelEvent`, in field order."""
    return (
        node,
        t,
        f.get("Channel", ""),
        _int(f, "ChannelState", 0),
        _req(f, "Uniqueid"),
        f.get("Linkedid", ""),
        f.get("CallerIDNum", ""),
        f.get("CallerIDName", ""),
        f.get("ConnectedLineNum", ""),
        f.get("ConnectedLineName", ""),
        f.get("Context", ""),
        f.get("Exten", ""),
    )


def _agent(f: Fields, node: str, t: float) -> _AgentArgs:
    return (
        *_chan(f, node, t),
        f.get("DestChannel", ""),
        f.get("DestUniqueid", ""),
        _req(f, "Queue"),
        _req(f, "MemberName"),
        f.get("Interface", ""),
    )


def _member(f: Fields, node: str, t: float, name_key: str, iface_key: str) -> _MemberArgs:
    return (
        node,
        t,
        _req(f, "Queue"),
        _req(f, name_key),
        _req(f, iface_key),
        f.get("StateInterface", ""),
        f.get("Membership", ""),
        _int(f, "Penalty", 0),
        _int(f, "CallsTaken", 0),
        _int(f, "LastCall", 0),
        _int(f, "LastPause", 0),
        _int(f, "LoginTime", 0),
        _bool(f, "InCall"),
        _int(f, "Status", 0),
        _bool(f, "Paused"),
        f.get("PausedReason", ""),
        _bool(f, "Ringinuse") if "Ringinuse" in f else None,
        _int(f, "Wrapuptime", 0),
    )


Builder = Callable[[Fields, str, float], Event]


def _member_builder(cls: type[MemberEvent]) -> Builder:
    def build(f: Fields, node: str, t: float) -> Event:
        return cls(*_member(f, node, t, "MemberName", "Interface"))

    return build


def _chan_builder(cls: type[ChannelEvent]) -> Builder:
    def build(f: Fields, node: str, t: float) -> Event:
        return cls(*_chan(f, node, t))

    return build


def _agent_builder(cls: type[AgentEvent]) -> Builder:
    def build(f: Fields, node: str, t: float) -> Event:
        return cls(*_agent(f, node, t))

    return build


def _fully_booted(f: Fields, node: str, t: float) -> Event:
    uptime = f.get("Uptime")
    reload = f.get("LastReload")
    return FullyBooted(
        node,
        t,
        f.get("Status", ""),
        _int(f, "Uptime") if uptime else None,
        _int(f, "LastReload") if reload else None,
    )


def _shutdown(f: Fields, node: str, t: float) -> Event:
    return Shutdown(node, t, f.get("Shutdown", ""), _bool(f, "Restart"))


def _hangup(f: Fields, node: str, t: float) -> Event:
    return Hangup(*_chan(f, node, t), _int(f, "Cause", 0), f.get("Cause-txt", ""))


def _hold(f: Fields, node: str, t: float) -> Event:
    return Hold(*_chan(f, node, t), f.get("MusicClass", ""))


def _var_set(f: Fields, node: str, t: float) -> Event:
    return VarSet(
        node,
        t,
        f.get("Channel", ""),
        f.get("Uniqueid", ""),
        f.get("Linkedid", ""),
        f.get("Context", ""),
        f.get("Exten", ""),
        _req(f, "Variable"),
        f.get("Value", ""),
    )


def _dial_end(f: Fields, node: str, t: float) -> Event:
    return DialEnd(
        node,
        t,
        f.get("Channel", ""),
        f.get("Uniqueid", ""),
        f.get("DestChannel", ""),
        _req(f, "DestUniqueid"),
        f.get("DestLinkedid", ""),
        f.get("DialStatus", ""),
    )


def _blind_transfer(f: Fields, node: str, t: float) -> Event:
    return BlindTransfer(
        node,
        t,
        f.get("Result", ""),
        f.get("TransfererChannel", ""),
        f.get("TransfererUniqueid", ""),
        f.get("TransfereeChannel", ""),
        f.get("TransfereeUniqueid", ""),
        _bool(f, "IsExternal"),
        f.get("Context", ""),
        f.get("Extension", ""),
    )


def _attended_transfer(f: Fields, node: str, t: float) -> Event:
    return AttendedTransfer(
        node,
        t,
        f.get("Result", ""),
        f.get("OrigTransfererChannel", ""),
        f.get("OrigTransfererUniqueid", ""),
        f.get("SecondTransfererChannel", ""),
        f.get("SecondTransfererUniqueid", ""),
        f.get("TransfereeChannel", ""),
        f.get("TransfereeUniqueid", ""),
        f.get("TransferTargetChannel", ""),
        f.get("TransferTargetUniqueid", ""),
        f.get("DestType", ""),
    )


def _originate_response(f: Fields, node: str, t: float) -> Event:
    uniqueid = f.get("Uniqueid", "")
    return OriginateResponse(
        node,
        t,
        f.get("ActionID", ""),
        _req(f, "Response"),
        f.get("Channel", ""),
        f.get("Context", ""),
        f.get("Exten", ""),
        f.get("Application", ""),
        f.get("Data", ""),
        _int(f, "Reason", 0),
        None if uniqueid in ("", "<unknown>") else uniqueid,
        f.get("CallerIDNum", ""),
        f.get("CallerIDName", ""),
    )


def _user_event(f: Fields, node: str, t: float) -> Event:
    name = _req(f, "UserEvent")
    if name == CALL_RECORDING:
        return CallRecording(
            node, t, name, f.get("Channel", ""), _req(f, "Uniqueid"), f,
            _req(f, "File").strip(), _req(f, "CallUniqueid").strip(),
            f.get("CallLinkedid", "").strip(), f.get("Queue", "").strip(),
            f.get("Campaign", "").strip(), f.get("Agent", "").strip(),
            f.get("Reason", "").strip(), f.get("RequestedBy", "").strip(),
        )  # fmt: skip
    return UserEvent(node, t, name, f.get("Channel", ""), f.get("Uniqueid", ""), f)


def _mixmonitor_mute(f: Fields, node: str, t: float) -> Event:
    return MixMonitorMute(*_chan(f, node, t), f.get("Direction", "both"), _bool(f, "State"))


def _queue_member(f: Fields, node: str, t: float) -> Event:
    return QueueMember(*_member(f, node, t, "Name", "Location"), f.get("ActionID", ""))


def _caller_join(f: Fields, node: str, t: float) -> Event:
    return QueueCallerJoin(
        *_chan(f, node, t),
        _req(f, "Queue"),
        _int(f, "Position"),
        _int(f, "Count", 0),
    )


def _caller_leave(f: Fields, node: str, t: float) -> Event:
    return QueueCallerLeave(
        *_chan(f, node, t),
        _req(f, "Queue"),
        _int(f, "Position", 0),
        _int(f, "Count", 0),
    )


def _caller_abandon(f: Fields, node: str, t: float) -> Event:
    return QueueCallerAbandon(
        *_chan(f, node, t),
        _req(f, "Queue"),
        _int(f, "Position", 0),
        _int(f, "OriginalPosition", 0),
        _int(f, "HoldTime"),
    )


def _ring_no_answer(f: Fields, node: str, t: float) -> Event:
    return AgentRingNoAnswer(*_agent(f, node, t), _int(f, "RingTime"))


def _agent_connect(f: Fields, node: str, t: float) -> Event:
    return AgentConnect(*_agent(f, node, t), _int(f, "HoldTime"), _int(f, "RingTime", 0))


def _agent_complete(f: Fields, node: str, t: float) -> Event:
    if "Uniqueid" not in f:
        # The bare form (see AgentComplete): no channel fields at all, and that is not an error.
        f = {**f, "Uniqueid": ""}
    return AgentComplete(
        *_agent(f, node, t),
        _int(f, "HoldTime"),
        _int(f, "TalkTime"),
        f.get("Reason", ""),
    )


def _queue_params(f: Fields, node: str, t: float) -> Event:
    return QueueParams(
        node,
        t,
        f.get("ActionID", ""),
        _req(f, "Queue"),
        _int(f, "Max", 0),
        f.get("Strategy", ""),
        _int(f, "Calls", 0),
        _int(f, "Holdtime", 0),
        _int(f, "TalkTime", 0),
        _int(f, "Completed", 0),
        _int(f, "Abandoned", 0),
        _int(f, "ServiceLevel", 0),
        _float(f, "ServicelevelPerf"),
        _float(f, "ServicelevelPerf2"),
        _int(f, "Weight", 0),
    )


def _queue_entry(f: Fields, node: str, t: float) -> Event:
    return QueueEntry(
        node,
        t,
        f.get("ActionID", ""),
        _req(f, "Queue"),
        _int(f, "Position", 0),
        f.get("Channel", ""),
        _req(f, "Uniqueid"),
        f.get("CallerIDNum", ""),
        f.get("CallerIDName", ""),
        f.get("ConnectedLineNum", ""),
        f.get("ConnectedLineName", ""),
        _int(f, "Wait", 0),
        _int(f, "Priority", 0),
    )


def _status_complete(f: Fields, node: str, t: float) -> Event:
    return QueueStatusComplete(node, t, f.get("ActionID", ""), _int(f, "ListItems", 0))


def _core_show_channel(f: Fields, node: str, t: float) -> Event:
    return CoreShowChannel(
        *_chan(f, node, t),
        f.get("ActionID", ""),
        f.get("Application", ""),
        f.get("ApplicationData", ""),
        _duration(f, "Duration"),
        f.get("BridgeId", ""),
    )


def _channels_complete(f: Fields, node: str, t: float) -> Event:
    return CoreShowChannelsComplete(node, t, f.get("ActionID", ""), _int(f, "ListItems", 0))


#: The one table from AMI event name to constructor. A name not here is an UnknownEvent.
EVENT_TYPES: Mapping[str, Builder] = {
    "FullyBooted": _fully_booted,
    "Shutdown": _shutdown,
    "Newchannel": _chan_builder(Newchannel),
    "Newstate": _chan_builder(Newstate),
    "Hangup": _hangup,
    "Hold": _hold,
    "Unhold": _chan_builder(Unhold),
    "VarSet": _var_set,
    "DialEnd": _dial_end,
    "BlindTransfer": _blind_transfer,
    "AttendedTransfer": _attended_transfer,
    "OriginateResponse": _originate_response,
    "UserEvent": _user_event,
    "MixMonitorMute": _mixmonitor_mute,
    "MixMonitorStop": _chan_builder(MixMonitorStop),
    "QueueMemberAdded": _member_builder(QueueMemberAdded),
    "QueueMemberRemoved": _member_builder(QueueMemberRemoved),
    "QueueMemberPause": _member_builder(QueueMemberPause),
    "QueueMemberStatus": _member_builder(QueueMemberStatus),
    "QueueMemberPenalty": _member_builder(QueueMemberPenalty),
    "QueueMemberRinginuse": _member_builder(QueueMemberRinginuse),
    "QueueCallerJoin": _caller_join,
    "QueueCallerLeave": _caller_leave,
    "QueueCallerAbandon": _caller_abandon,
    "AgentCalled": _agent_builder(AgentCalled),
    "AgentDump": _agent_builder(AgentDump),
    "AgentRingNoAnswer": _ring_no_answer,
    "AgentConnect": _agent_connect,
    "AgentComplete": _agent_complete,
    "QueueParams": _queue_params,
    "QueueMember": _queue_member,
    "QueueEntry": _queue_entry,
    "QueueStatusComplete": _status_complete,
    "CoreShowChannel": _core_show_channel,
    "CoreShowChannelsComplete": _channels_complete,
}


#: The last second of the year 9999: ``datetime`` (and so the call log) ends there.
_TIME_LIMIT = 253_402_300_799.0


def event_time(fields: Fields, received_at: float) -> float:
    """The ``Timestamp`` header (``timestampevents = yes``) if valid, else ``received_at``.

    Valid means epoch seconds from 1970 to the year 9999: ``float`` also reads ``nan``,
    ``inf`` and ``1e300``, which no clock sends and the call log cannot store (formatting
    the audit row raised out of the bridge's handler: tests/test_fuzz_regressions.py).
    """
    stamp = fields.get("Timestamp")
    if stamp:
        try:
            value = float(stamp)
        except ValueError:
            pass
        else:
            if 0.0 <= value < _TIME_LIMIT:  # False for nan too
                return value
    return received_at


def parse_event(message: Message | MalformedMessage, received_at: float, node: str) -> Event:
    """Turn one frame into a typed event, :class:`UnknownEvent` or :class:`MalformedEvent`.

    Never raises for any input frame. An action response (no ``Event`` header) or a frame the
    parser flagged malformed becomes a :class:`MalformedEvent` that says so.
    """
    if isinstance(message, MalformedMessage):
        fields = dict(reversed(message.pairs))
        return MalformedEvent(
            node,
            event_time(fields, received_at),
            fields.get("Event", ""),
            fields,
            message.error,
        )
    f = message.fields
    t = event_time(f, received_at)
    name = f.get("Event")
    if name is None:
        return MalformedEvent(node, t, "", f, "not an event: no Event header")
    build = EVENT_TYPES.get(name)
    if build is None:
        return UnknownEvent(node, t, name, f)
    try:
        return build(f, node, t)
    except ValueError as exc:
        return MalformedEvent(node, t, name, f, str(exc))
