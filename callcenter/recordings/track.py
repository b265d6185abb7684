"""The recordings of one node, folded from AMI events: ``apply(state, event) -> (state, changes)``.

Pure, like the call core (:mod:`callcenter.core`): no I/O, no clock (time comes from the
events), the input state untouched. What happens to a recording, and the event that says so:

- it starts: our ``UserEvent(CallRecording)`` (:class:`~callcenter.ami.events.CallRecording`),
  raised on the agent's leg right after MixMonitor started. Its row is created (state
  ``recording``).
- it is muted and unmuted: ``MixMonitorMute`` on that leg. Muted time is counted while any
  direction is muted (``both`` mutes read and write; a ``read`` unmute after a ``both`` mute
  leaves ``write`` muted): ``muted_since`` holds the start, ``muted_ms`` adds each muted
  stretch when it ends, ``mutes`` counts them. Asterisk raises the event for any channel,
  recorded or not: one on a leg we do not record changes nothing.
- it stops: the leg's ``Hangup`` (or ``MixMonitorStop``, from StopMixMonitor only). The row
  gets ``ended_at`` and the shell is told to look at the file (:class:`CheckFile`): no event
  says when MixMonitor closed it.
- it is complete: the shell found the file closed (:func:`file_checked`: duration, size,
  checksum; state ``done``), or gave up on it (state ``missing``). The recording then leaves
  the state.

After a reconnect, the resync's CoreShowChannels says which channels still live:
:func:`channels_gone` stops the recordings of the others. After a restart of the bridge, the
rows the database holds in state ``recording`` come back through :func:`restore`.

Each :class:`RecordingChanged` is the recording's whole row (the writer upserts it on
``path``), so writing one twice, or a later one after an earlier, is harmless.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from callcenter.ami import events as ev
from callcenter.db.models_quality import RECORD_REASONS
from callcenter.recordings.paths import PathError, check_relative
from callcenter.recordings.wav import FileFacts

#: MixMonitorMute's directions, and what each one mutes.
DIRECTIONS: Mapping[str, frozenset[str]] = {
    "read": frozenset({"read"}),
    "write": frozenset({"write"}),
    "both": frozenset({"read", "write"}),
}


@dataclass(frozen=True, slots=True)
class Recording:
    """One MixMonitor file and its row. ``leg`` is the uniqueid of the channel MixMonitor
    runs on (the agent's leg), ``uniqueid`` the caller's (the ``calls`` row). Times are epoch
    seconds."""

    node: str
    path: str
    uniqueid: str
    linkedid: str
    visit: int | None
    queue: str | None
    campaign: str | None
    agent: str | None
    channel: str
    leg: str
    reason: str
    requested_by: str | None
    started_at: float
    state: str = "recording"
    ended_at: float | None = None
    duration_ms: int | None = None
    size_bytes: int | None = None
    sha256: str | None = None
    muted_ms: int = 0
    mutes: int = 0
    muted_since: float | None = None
    muted_dirs: frozenset[str] = frozenset()

    @property
    def muted(self) -> bool:
        return bool(self.muted_dirs)


@dataclass(frozen=True, slots=True)
class RecordingChanged:
    """Upsert this recording's row."""

    recording: Recording


@dataclass(frozen=True, slots=True)
class CheckFile:
    """The recording stopped at ``at``: look at its file until it is closed."""

    node: str
    path: str
    at: float


@dataclass(frozen=True, slots=True)
class Rejected:
    """A CallRecording event that cannot be a row (its file name is not ours): log it."""

    node: str
    path: str
    reason: str


Change = RecordingChanged | CheckFile | Rejected


@dataclass(frozen=True, slots=True)
class Recordings:
    """The recordings of a node not yet complete, by path, and the paths of each leg still
    up (a leg may carry two: one stopped by StopMixMonitor, then one started on demand)."""

    node: str
    by_path: Mapping[str, Recording] = field(default_factory=dict)
    by_leg: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def on_leg(self, leg: str) -> list[Recording]:
        return [self.by_path[p] for p in self.by_leg.get(leg, ())]


Result = tuple[Recordings, list[Change]]


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


def _put(state: Recordings, rec: Recording, *, leg_up: bool) -> Recordings:
    by_path = {**state.by_path, rec.path: rec}
    by_leg = dict(state.by_leg)
    paths = tuple(p for p in by_leg.get(rec.leg, ()) if p != rec.path)
    if leg_up:
        paths += (rec.path,)
    if paths:
        by_leg[rec.leg] = paths
    else:
        by_leg.pop(rec.leg, None)
    return replace(state, by_path=by_path, by_leg=by_leg)


def _drop(state: Recordings, path: str) -> Recordings:
    rec = state.by_path.get(path)
    if rec is None:
        return state
    by_path = {k: v for k, v in state.by_path.items() if k != path}
    by_leg = dict(state.by_leg)
    paths = tuple(p for p in by_leg.get(rec.leg, ()) if p != path)
    if paths:
        by_leg[rec.leg] = paths
    else:
        by_leg.pop(rec.leg, None)
    return replace(state, by_path=by_path, by_leg=by_leg)


def _reason(event: ev.CallRecording) -> str:
    if event.reason in RECORD_REASONS:
        return event.reason
    return "on_demand" if event.requested_by else "policy"


def on_call_recording(state: Recordings, event: ev.CallRecording, visit: int | None) -> Result:
    """A MixMonitor started on ``event.uniqueid`` (the agent's leg). ``visit`` is the caller's
    queue visit at that moment, as the call core knows it (None: unknown)."""
    try:
        path = check_relative(event.file)
    except PathError as exc:
        return state, [Rejected(state.node, event.file[:400], str(exc))]
    if path in state.by_path:
        return state, []  # the same event twice
    reason = _reason(event)
    requested = event.requested_by or (event.agent if reason == "on_demand" else "")
    rec = Recording(
        node=state.node, path=path, uniqueid=event.call_uniqueid[:64],
        linkedid=event.call_linkedid[:64], visit=visit, queue=event.queue[:64] or None,
        campaign=event.campaign[:64] or None, agent=event.agent[:64] or None,
        channel=event.channel[:128], leg=event.uniqueid, reason=reason,
        requested_by=requested[:64] or None, started_at=event.time,
    )  # fmt: skip
    return _put(state, rec, leg_up=True), [RecordingChanged(rec)]


def on_mute(state: Recordings, event: ev.MixMonitorMute) -> Result:
    recs = state.on_leg(event.uniqueid)
    if not recs:
        return state, []
    dirs = DIRECTIONS.get(event.direction.lower(), DIRECTIONS["both"])
    changes: list[Change] = []
    for rec in recs:
        now = rec.muted_dirs | dirs if event.muted else rec.muted_dirs - dirs
        if bool(now) == rec.muted:
            if now != rec.muted_dirs:
                state = _put(state, replace(rec, muted_dirs=now), leg_up=True)
            continue
        if now:
            new = replace(rec, muted_dirs=now, muted_since=event.time, mutes=rec.mutes + 1)
        else:
            since = rec.muted_since if rec.muted_since is not None else event.time
            new = replace(rec, muted_dirs=now, muted_since=None,
                          muted_ms=rec.muted_ms + _ms(event.time - since))  # fmt: skip
        state = _put(state, new, leg_up=True)
        changes.append(RecordingChanged(new))
    return state, changes


def _stop(state: Recordings, rec: Recording, at: float) -> Result:
    """End ``rec`` at ``at`` (its leg hung up): a mute still on ends there too."""
    muted_ms = rec.muted_ms
    if rec.muted_since is not None:
        muted_ms += _ms(at - rec.muted_since)
    new = replace(rec, ended_at=max(at, rec.started_at), muted_since=None, muted_ms=muted_ms)
    return _put(state, new, leg_up=False), [RecordingChanged(new), CheckFile(rec.node, rec.path,
                                                                              at)]  # fmt: skip


def on_leg_end(state: Recordings, event: ev.ChannelEvent) -> Result:
    """The leg hung up, or StopMixMonitor stopped its recordings."""
    recs = state.on_leg(event.uniqueid)
    changes: list[Change] = []
    for rec in recs:
        state, more = _stop(state, rec, event.time)
        changes += more
    return state, changes


Handler = Callable[[Recordings, Any], Result]
HANDLERS: Mapping[type[ev.Event], Handler] = {
    ev.MixMonitorMute: on_mute,
    ev.Hangup: on_leg_end,
    ev.MixMonitorStop: on_leg_end,
}


def apply(state: Recordings, event: ev.Event, visit: int | None = None) -> Result:
    """Fold one event in; events about nothing recorded cost a dict lookup. ``visit``: see
    :func:`on_call_recording` (only read for a CallRecording)."""
    if type(event) is ev.CallRecording:
        return on_call_recording(state, event, visit)
    handler = HANDLERS.get(type(event))
    if handler is None:
        return state, []
    uniqueid = getattr(event, "uniqueid", "")
    if uniqueid not in state.by_leg:
        return state, []
    return handler(state, event)


def channels_gone(state: Recordings, live: Iterable[str], at: float) -> Result:
    """After a resync's CoreShowChannels: the recordings whose leg Asterisk no longer lists
    stopped while we were not listening; they end at ``at`` (the best we know)."""
    alive = set(live)
    changes: list[Change] = []
    for leg in [leg for leg in state.by_leg if leg not in alive]:
        for rec in state.on_leg(leg):
            state, more = _stop(state, rec, at)
            changes += more
    return state, changes


def restore(state: Recordings, recs: Iterable[Recording]) -> Result:
    """Take back the recordings the database holds unfinished (a stop of the bridge cut
    them). Those already stopped get their file checked at once; the others wait for their
    leg's Hangup, or for the resync to find the leg gone."""
    changes: list[Change] = []
    for rec in recs:
        if rec.path in state.by_path:
            continue
        if rec.muted_since is not None and not rec.muted_dirs:
            rec = replace(rec, muted_dirs=DIRECTIONS["both"])
        state = _put(state, rec, leg_up=rec.ended_at is None)
        if rec.ended_at is not None:
            changes.append(CheckFile(rec.node, rec.path, rec.ended_at))
    return state, changes


def file_checked(state: Recordings, path: str, facts: FileFacts | None, *, give_up: bool
                 ) -> Result:  # fmt: skip
    """What the shell found: the closed file's ``facts`` (the row is done), or nothing yet
    (``give_up``: the file never came; the row is missing). The recording leaves the state
    once it is complete."""
    rec = state.by_path.get(path)
    if rec is None or rec.ended_at is None:
        return state, []
    if facts is not None:
        done = replace(rec, state="done", duration_ms=facts.duration_ms,
                       size_bytes=facts.size_bytes, sha256=facts.sha256)  # fmt: skip
    elif give_up:
        done = replace(rec, state="missing")
    else:
        return state, []
    return _drop(state, path), [RecordingChanged(done)]


# --- rows -----------------------------------------------------------------------------------

#: The ``recordings`` columns the bridge owns. ``legal_hold``, ``hold_reason`` and
#: ``purged_at`` belong to the operators (CLI, web) and are never written from AMI.
ROW_COLUMNS = (
    "node", "uniqueid", "linkedid", "visit", "queue", "campaign", "agent", "channel", "path",
    "reason", "requested_by", "state", "started_at", "ended_at", "duration_ms", "size_bytes",
    "sha256", "muted_ms", "mutes", "muted_since",
)  # fmt: skip
ROW_TIME_COLUMNS = frozenset({"started_at", "ended_at", "muted_since"})


def row(rec: Recording) -> dict[str, Any]:
    """The row of ``rec``, JSON-safe (times as epoch seconds), for the writer and its spool."""
    return {col: getattr(rec, col) for col in ROW_COLUMNS}


def from_row(node: str, data: Mapping[str, Any], leg: str) -> Recording:
    """A recording the database holds (times as epoch seconds), back in the state. ``leg`` is
    the uniqueid of its channel, which the table does not keep: the caller finds it (the
    call log's agent leg) or passes "" (then only the resync can end it)."""

    def t(key: str) -> float | None:
        v = data.get(key)
        return None if v is None else float(v)

    started = t("started_at")
    return Recording(
        node=node, path=str(data["path"]), uniqueid=str(data["uniqueid"]),
        linkedid=str(data.get("linkedid") or ""), visit=data.get("visit"),
        queue=data.get("queue"), campaign=data.get("campaign"), agent=data.get("agent"),
        channel=str(data.get("channel") or ""), leg=leg, reason=str(data["reason"]),
        requested_by=data.get("requested_by"),
        started_at=started if started is not None and math.isfinite(started) else 0.0,
        ended_at=t("ended_at"), muted_ms=int(data.get("muted_ms") or 0),
        mutes=int(data.get("mutes") or 0), muted_since=t("muted_since"),
    )  # fmt: skip
