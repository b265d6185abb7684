"""What happened to each dial: AMI events in, the attempt's facts and outcome out. Pure.

The dialer originates every call with ``Async``, a ``ChannelId`` (the attempt's id, made by
:func:`new_channel_id`: Asterisk makes it the channel's Uniqueid, so every channel, queue and
agent event of the call carries it, and the ``Linkedid`` of every channel of the call), an
``ActionID`` equal to it (the OriginateResponse carries the ActionID even when no channel was
ever made), and for a Local channel an ``OtherChannelId`` (:func:`other_id`) for its ``;2``
half, whose Hangup cause is the customer's. Every id begins with :data:`CHANNEL_PREFIX`, so
that the dialer's AMI user is sent the events of its own calls only (callcenter/ami/wanted.py
``DIALER``). :func:`route` finds the attempt an
event belongs to; :func:`step` folds the event into the attempt's :class:`Track` and says
what changed for the attempt record (:class:`AttemptUpdate`) and when it ended
(:class:`AttemptEnded`).

Asterisk 22's behaviour, from the recorded traces (originate-outcomes, amd) and our own:

- An answered call: Newchannel, Newstate Ringing, OriginateResponse Success Reason 4, then the
  dialplan ([outbound-campaign]): UserEvent DialerAMD (Status/Cause: AMDSTATUS/AMDCAUSE),
  QueueCallerJoin, AgentConnect (the agent, by MemberName), ... Hangup.
- Not answered: OriginateResponse Failure, before or after the channel's Hangup. Its Reason
  says 3 no answer, 5 busy, 8 congestion, but a PJSIP 486 gives Reason 0 with Hangup cause 17:
  the cause (the Local ``;2``'s, or the channel's) and DialEnd's DialStatus decide. An
  endpoint that does not exist gives an OriginateResponse and no channel at all.
- UserEvent DialerMessage (Kind abandon | machine | agentless; Phase start | end) brackets the
  information message, the machine's message and the agentless flow. A caller who hangs up
  during one gets no ``end``: the Hangup ends it.

Outcomes: an agent reached -> ``connected``; the information message -> ``abandoned``; a
person who hung up in the queue before it -> ``hung_up`` (within the grace: Queue()'s timeout
is shorter than the 2 s); AMD MACHINE -> ``machine`` (or ``machine_message``); the agentless
flow -> ``delivered``; not answered -> ``busy``, ``no_answer`` or ``failed``. A call hung up
during AMD is ``hung_up`` with no ``human_at``: it was never known to be a person and counts
as no live answer.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace

from callcenter.ami import events as ev
from callcenter.ami import wanted

#: Q.850 causes of a call that was not answered.
BUSY_CAUSES = frozenset({17})
NO_ANSWER_CAUSES = frozenset({18, 19, 21})
#: OriginateResponse Reason codes (main/manager.c: the control frame that ended the dial).
REASON_NO_ANSWER, REASON_ANSWERED, REASON_BUSY, REASON_CONGESTION = 3, 4, 5, 8
#: Phases of a call the pacer counts as in flight (before an agent or a message).
IN_FLIGHT = frozenset({"dialling", "ringing", "answered", "queued"})


#: How every channel id of the dialer begins: its AMI user's eventfilter takes the events
#: whose ``Linkedid`` (or the OriginateResponse's ``ActionID``) begins with it.
CHANNEL_PREFIX = wanted.DIALER_PREFIX


def new_channel_id() -> str:
    """A new attempt's ChannelId: :data:`CHANNEL_PREFIX` and a uuid4, 43 characters (the
    attempt's column holds 64; :func:`other_id` adds 2; Asterisk keeps uniqueids of up to
    149, ``AST_MAX_PUBLIC_UNIQUEID``)."""
    return f"{CHANNEL_PREFIX}{uuid.uuid4()}"


def other_id(channel_id: str) -> str:
    """The Uniqueid given to a Local channel's ``;2`` half (``OtherChannelId``)."""
    return f"{channel_id}-2"


@dataclass(frozen=True, slots=True)
class Track:
    """One attempt in progress, as far as its events tell. Times are epoch seconds."""

    channel_id: str
    campaign: str
    dialled_at: float
    amd: bool = True
    #: Preview: the channel is the agent's phone, the customer is dialled from the dialplan.
    preview: bool = False
    phase: str = "dialling"
    seen_channel: bool = False
    ringing_at: float | None = None
    answered_at: float | None = None
    amd_status: str = ""
    amd_cause: str = ""
    human_at: float | None = None
    queued_at: float | None = None
    agent: str = ""
    agent_at: float | None = None
    message: str = ""
    message_kind: str = ""
    message_started_at: float | None = None
    message_ended_at: float | None = None
    originate_response: str = ""
    originate_reason: int | None = None
    dial_status: str = ""
    #: Preview: the customer's leg was dialled (``dial_status`` is then the customer's).
    customer_leg: bool = False
    other_cause: int | None = None
    ended_at: float | None = None
    hangup_cause: int | None = None
    outcome: str | None = None
    reason: str = ""

    @property
    def in_flight(self) -> bool:
        return self.phase in IN_FLIGHT

    @property
    def waiting_since(self) -> float | None:
        """When a live person began waiting for an agent (None: not a live person yet)."""
        return self.human_at if self.phase in ("answered", "queued") else None


@dataclass(frozen=True, slots=True)
class AttemptUpdate:
    """New facts for the attempt record: column -> value (times as epoch seconds)."""

    channel_id: str
    columns: Mapping[str, object]


@dataclass(frozen=True, slots=True)
class AttemptEnded:
    """The attempt is over; ``track`` holds every fact and the outcome."""

    track: Track


Change = AttemptUpdate | AttemptEnded


#: The raw headers :func:`route` takes its keys from (``ActionID`` of an OriginateResponse).
_ROUTE_HEADERS = ("Uniqueid", "DestUniqueid", "ActionID")


def may_route(fields: Mapping[str, str], tracks: Mapping[str, Track]) -> bool:
    """Whether :func:`route` could find an attempt for an event with these raw headers: a
    cheap test on the text, so that the events of other channels are not typed at all (with
    its own AMI user the dialer is sent its calls' events only, the agents' channels among
    them; sharing the bridge's, every call's). Never False where :func:`route` would give a
    key."""
    if not tracks:
        return False
    for header in _ROUTE_HEADERS:
        key = fields.get(header)
        if key and (key in tracks or (key.endswith("-2") and key[:-2] in tracks)):
            return True
    return False


def route(event: ev.Event, tracks: Mapping[str, Track]) -> str | None:
    """The channel id of the attempt ``event`` is about, or None."""
    if isinstance(event, ev.OriginateResponse):
        key = event.action_id
        return key if key in tracks else None
    if isinstance(event, ev.DialEnd):
        # The originate's own leg (DestUniqueid), or a preview call's customer leg, dialled
        # from the attempt's channel (Uniqueid).
        key = event.dest_uniqueid if event.dest_uniqueid in tracks else event.uniqueid
    elif isinstance(event, ev.ChannelEvent | ev.UserEvent):
        key = event.uniqueid
    else:
        return None
    if key in tracks:
        return key
    if key.endswith("-2") and key[:-2] in tracks:
        return key[:-2]
    return None


def step(track: Track, event: ev.Event) -> tuple[Track, list[Change]]:
    """Fold one event of this attempt in. An ended track ignores everything."""
    if track.outcome is not None:
        return track, []
    cid = track.channel_id
    if isinstance(event, ev.OriginateResponse):
        return _originate_response(track, event)
    is_other = isinstance(event, ev.ChannelEvent | ev.UserEvent) and event.uniqueid != cid
    if isinstance(event, ev.Hangup):
        if is_other:
            return replace(track, other_cause=event.cause), []
        return _end(replace(track, ended_at=event.time, hangup_cause=event.cause))
    if isinstance(event, ev.Newchannel):
        return (track, []) if is_other else (replace(track, seen_channel=True), [])
    if isinstance(event, ev.Newstate):
        if event.channel_state == 5 and track.ringing_at is None and track.answered_at is None:
            t = replace(track, ringing_at=event.time, seen_channel=True, phase="ringing")
            return t, [AttemptUpdate(cid, {"phase": "ringing"})]
        if event.channel_state == 6 and not is_other and track.answered_at is None:
            return _answered(track, event.time)
        return track, []
    if isinstance(event, ev.DialEnd):
        if event.uniqueid == cid and track.preview:
            return _customer_leg(track, event)
        if event.dest_uniqueid != cid or event.dial_status == track.dial_status:
            return track, []
        t = replace(track, dial_status=event.dial_status)
        return t, [AttemptUpdate(cid, {"dial_status": event.dial_status[:16]})]
    if isinstance(event, ev.UserEvent):
        if is_other:
            return track, []
        return _user_event(track, event)
    if isinstance(event, ev.QueueCallerJoin):
        human = track.human_at
        if human is None:  # AMD off: the person is known from the answer
            human = track.answered_at if track.answered_at is not None else event.time
        t = replace(track, queued_at=event.time, human_at=human, phase="queued")
        return t, [AttemptUpdate(cid, {"phase": "queued", "queued_at": event.time,
                                       "human_at": human})]  # fmt: skip
    if isinstance(event, ev.AgentConnect):
        t = replace(track, agent=event.member_name, agent_at=event.time, phase="connected")
        cols = {"phase": "connected", "agent": event.member_name, "agent_at": event.time}
        return t, [AttemptUpdate(cid, cols)]
    return track, []


def _answered(track: Track, at: float) -> tuple[Track, list[Change]]:
    if track.answered_at is not None:
        return track, []
    human = None if track.amd or track.preview else at
    t = replace(track, answered_at=at, human_at=human, phase="answered", seen_channel=True)
    cols: dict[str, object] = {"phase": "answered", "answered_at": at}
    if human is not None:
        cols["human_at"] = human
    return t, [AttemptUpdate(track.channel_id, cols)]


def _originate_response(track: Track, event: ev.OriginateResponse) -> tuple[Track, list[Change]]:
    t = replace(track, originate_response=event.response, originate_reason=event.reason)
    if event.response == "Success":
        return _answered(t, event.time)
    if not t.seen_channel or t.ended_at is not None:
        # No channel was ever made (no such endpoint), or its Hangup came first (a PJSIP 486).
        return _end(replace(t, ended_at=t.ended_at or event.time))
    return t, [AttemptUpdate(t.channel_id, {"originate_reason": event.reason})]


def _user_event(track: Track, event: ev.UserEvent) -> tuple[Track, list[Change]]:
    cid, f = track.channel_id, event.fields
    if event.user_event == "DialerAMD":
        status, cause = f.get("Status", ""), f.get("Cause", "")
        human = event.time if status in ("HUMAN", "NOTSURE") else None
        t = replace(track, amd_status=status, amd_cause=cause, human_at=human)
        cols: dict[str, object] = {"amd_status": status[:16], "amd_cause": cause[:64]}
        if human is not None:
            cols["human_at"] = human
        return t, [AttemptUpdate(cid, cols)]
    if event.user_event == "DialerMessage":
        kind, phase, message = f.get("Kind", ""), f.get("Phase", ""), f.get("Message", "")
        if phase == "start":
            t = replace(track, message=message, message_kind=kind,
                        message_started_at=event.time, phase="message")  # fmt: skip
            return t, [AttemptUpdate(cid, {"phase": "message", "message": message[:200],
                                           "message_started_at": event.time})]  # fmt: skip
        if phase == "end":
            t = replace(track, message_ended_at=event.time)
            return t, [AttemptUpdate(cid, {"message_ended_at": event.time})]
        return track, []
    return track, []


def _customer_leg(track: Track, event: ev.DialEnd) -> tuple[Track, list[Change]]:
    """Preview: the agent's channel dialled the customer; ANSWER connects them at once."""
    t = replace(track, dial_status=event.dial_status, customer_leg=True)
    if event.dial_status != "ANSWER" or track.agent_at is not None:
        return t, []
    at = event.time
    t = replace(t, human_at=at, agent_at=at, phase="connected")
    cols = {"phase": "connected", "human_at": at, "agent_at": at}
    return t, [AttemptUpdate(track.channel_id, cols)]


def _unanswered_outcome(t: Track) -> tuple[str, str]:
    cause = t.other_cause if t.other_cause not in (None, 0) else t.hangup_cause
    dial, reason = t.dial_status, t.originate_reason
    if dial == "BUSY" or reason == REASON_BUSY or cause in BUSY_CAUSES:
        return "busy", ""
    if dial == "NOANSWER" or reason == REASON_NO_ANSWER or cause in NO_ANSWER_CAUSES:
        return "no_answer", ""
    if t.preview and t.answered_at is not None and not t.customer_leg:
        return "failed", "the agent hung up before the customer was dialled"
    what = dial or (f"originate reason {reason}" if reason is not None else "")
    return "failed", (what or f"hangup cause {cause}")


def outcome_of(t: Track) -> tuple[str, str]:
    """The final outcome of an ended call, and a note for ``reason``."""
    if t.preview:
        if t.agent_at is not None:
            return "connected", ""
        if t.answered_at is None:
            return "failed", "the agent's phone did not answer"
        return _unanswered_outcome(t)
    if t.agent_at is not None:
        return "connected", ""
    if t.message_kind == "abandon":
        return "abandoned", "no agent within 2 s: information message"
    if t.message_kind == "machine":
        return "machine_message", t.amd_cause
    if t.message_kind == "agentless":
        return "delivered", ""
    if t.amd_status == "MACHINE":
        return "machine", t.amd_cause
    if t.answered_at is None:
        return _unanswered_outcome(t)
    if t.human_at is None:
        return "hung_up", "hung up during answering-machine detection"
    return "hung_up", "hung up before an agent could take the call"


def _end(t: Track) -> tuple[Track, list[Change]]:
    outcome, note = outcome_of(t)
    done = replace(t, outcome=outcome, reason=note, phase="ended")
    return done, [AttemptEnded(done)]


def expire(track: Track, now: float, limit: float) -> tuple[Track, list[Change]]:
    """End an attempt Asterisk never answered for: no OriginateResponse and no channel
    ``limit`` seconds after the dial (an Originate refused outright never gets one)."""
    if track.outcome is not None or track.seen_channel or track.originate_response:
        return track, []
    if now - track.dialled_at < limit:
        return track, []
    done = replace(track, ended_at=now, outcome="failed", phase="ended",
                   reason="Asterisk never reported the originate")  # fmt: skip
    return done, [AttemptEnded(done)]


def gone(
    track: Track, now: float, *, call_agent: str | None = None, call_outcome: str | None = None
) -> tuple[Track, list[Change]]:
    """End an attempt whose channel Asterisk no longer has (learnt after a reconnect or a
    restart of the dialer, when its Hangup was missed). ``call_agent`` and ``call_outcome``
    are the bridge's call log for the channel, when it has a row: an agent there means the
    call was connected; ``timed_out`` means no agent took it in time, so [outbound-campaign]
    played the information message; ``abandoned`` that the person hung up while queued.
    Without an answer and without a call-log row, the outcome is ``lost``."""
    if track.outcome is not None:
        return track, []
    ended = replace(track, ended_at=now)
    if call_agent:
        ended = replace(ended, agent=call_agent, agent_at=ended.agent_at or now)
    elif call_outcome == "timed_out":
        ended = replace(ended, message_kind="abandon")
    elif call_outcome == "abandoned" and ended.human_at is None:
        ended = replace(ended, human_at=ended.queued_at or now)
    if ended.answered_at is None and ended.agent_at is None and not call_outcome:
        done = replace(ended, outcome="lost", phase="ended",
                       reason="the channel was gone when the dialer looked again")  # fmt: skip
        return done, [AttemptEnded(done)]
    if ended.answered_at is None:
        ended = replace(ended, answered_at=ended.queued_at or ended.agent_at or now)
    return _end(ended)
