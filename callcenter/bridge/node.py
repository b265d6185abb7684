"""One Asterisk node: its AMI stream through the pure core, out to the call log and MQTT.

The node owns its core :class:`~callcenter.core.State` and nothing else; the writer and the
publisher only consume the core's changes (one source of truth for agent state: Asterisk's
queue membership as the core sees it).

On every ``FullyBooted`` (Asterisk sends one right after each login, and broadcasts one when a
restart finishes booting) the node resynchronises: QueueStatus and CoreShowChannels replace
what the core believed, calls that vanished are closed as ``lost``, and queue_log (Asterisk's
file, or its realtime table) then corrects those calls with what Asterisk recorded.

Two things make the resync hold across a restart of the bridge itself, not only a lost link:

- on its first connection the node hands the core the calls the call log still holds open
  (a stop of the services cut them, and the bridge never saw their end), so that the resync
  closes them as well -- and queue_log corrects them;
- after QueueStatus, the queues Asterisk no longer lists are forgotten, and the retained MQTT
  snapshots of the node's agents and queues are made exactly the state's
  (:meth:`Publisher.reconcile_snapshots`): what Asterisk no longer has is cleared.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from operator import attrgetter
from pathlib import Path

import psycopg

from callcenter import core
from callcenter.ami import events as ev
from callcenter.ami.connection import (
    AmiDisconnected,
    AmiSession,
    Connected,
    Disconnected,
    Received,
    StreamItem,
)
from callcenter.ami.protocol import Frame, FrameTooLarge, MalformedMessage, Message
from callcenter.bridge.publisher import Publisher
from callcenter.bridge.rows import event_row
from callcenter.bridge.store import CallLogWriter
from callcenter.config import NodeSettings
from callcenter.core.queue_log import QueueLogEntry, parse_queue_log_line
from callcenter.domain import CallOutcome
from callcenter.recordings.keeper import EVENT_TYPES as KEEPER_EVENTS
from callcenter.recordings.keeper import RecordingKeeper
from callcenter.security.events import NAMES as SECURITY_EVENTS

log = logging.getLogger(__name__)

#: Seconds a first connection waits for the spool to be written before reading the calls
#: the call log holds open.
SPOOL_WAIT = 5.0

#: Seconds after a (re)connection before queue_log is read for the calls that began and ended
#: while the bridge was not connected (:meth:`NodeBridge.fill_gaps`): those still up then are
#: followed live (the resync's CoreShowChannels) and closed by their own events.
GAP_SETTLE = 10.0
#: Seconds before the last frame seen (or, at a start, the call log's last call) that the
#: look back covers: a frame in flight, clocks of the file and of the stream.
GAP_MARGIN = 30.0

#: What queue_log records of a call and the call log must agree on (the soak's comparison).
_FIGURES = attrgetter("outcome", "agent", "wait_seconds", "talk_seconds")

#: The ActionID of the resync's QueueStatus (sent without a filter: it lists every queue).
RESYNC_QUEUES = "resync-queues"
#: The ActionID of the resync's CoreShowChannels (every live channel).
RESYNC_CHANS = "resync-chans"
#: The events the recordings keeper takes (callcenter.recordings.keeper.EVENT_TYPES).
RECORDING_EVENTS = KEEPER_EVENTS


class QueueLogFile:
    """Asterisk's queue_log file, read for the lines of given call ids.

    Reads only what was appended since the last call (and starts over when the file shrank,
    i.e. was rotated), keeping the lines of the last ``keep_seconds`` in memory by callid.
    """

    def __init__(self, path: Path, keep_seconds: float = 6 * 3600) -> None:
        self.path = path
        self.keep_seconds = keep_seconds
        self._offset = 0
        self._by_callid: dict[str, list[QueueLogEntry]] = {}
        self._partial = b""

    def _read_new(self) -> None:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return
        if size < self._offset:
            self._offset, self._partial = 0, b""
        with self.path.open("rb") as f:
            f.seek(self._offset)
            data = self._partial + f.read()
            self._offset = f.tell()
        lines = data.split(b"\n")
        self._partial = lines.pop()
        newest = 0.0
        for raw in lines:
            try:
                entry = parse_queue_log_line(raw.decode("utf-8", "replace"))
            except ValueError:
                continue
            newest = max(newest, entry.time)
            self._by_callid.setdefault(entry.callid, []).append(entry)
        if newest:
            horizon = newest - self.keep_seconds
            self._by_callid = {k: v for k, v in self._by_callid.items() if v[-1].time >= horizon}

    def lines_for(self, callids: Sequence[str]) -> list[QueueLogEntry]:
        self._read_new()
        return [e for cid in callids for e in self._by_callid.get(cid, ())]

    def lines_since(self, since: float) -> list[QueueLogEntry]:
        """Every line of the calls with a line at ``since`` or later (in file order by call)."""
        self._read_new()
        return [e for lines in self._by_callid.values() if lines[-1].time >= since for e in lines]


@dataclass
class NodeCounters:
    events: int = 0
    unknown: int = 0
    malformed: int = 0
    resyncs: int = 0
    reconciled: int = 0
    connects: int = 0
    last_error: str = ""
    by_malformed: dict[str, int] = field(default_factory=dict)


class NodeBridge:
    """Handles one node's stream items, in order (it is the AMI client's handler)."""

    def __init__(
        self,
        node: NodeSettings,
        writer: CallLogWriter,
        publisher: Publisher,
        *,
        config: core.CoreConfig | None = None,
        audit: bool = True,
        queue_log: QueueLogFile | None = None,
        clock: Callable[[], float] = time.time,
        recordings: RecordingKeeper | None = None,
        security: Callable[[ev.UnknownEvent], None] | None = None,
    ) -> None:
        self.node = node
        self.name = node.name
        self.state = core.initial_state(node.name, config)
        self.writer = writer
        self.publisher = publisher
        self.audit = audit
        self.queue_log = queue_log
        self.clock = clock
        self.session: AmiSession | None = None
        self.counters = NodeCounters()
        # Names each received frame for the audit log: connection start, then a sequence.
        self._conn_key = "0"
        self._seq = 0
        # Whether the calls the call log held open at start are in the core (see handle).
        self.restored = False
        # The node's call recordings (callcenter.recordings.keeper); None: not followed.
        self.recordings = recordings
        # Asterisk's security events (failed SIP logins): callcenter.security's monitor.
        self.security = security
        # When the last frame came (None before the first in this process), and the gaps
        # to fill from queue_log: since when, one per (re)connection (fill_gaps).
        self.last_frame_at: float | None = None
        self._gaps: asyncio.Queue[float | None] = asyncio.Queue()

    # --- the core's output ------------------------------------------------------------

    def emit(self, changes: list[core.Change]) -> None:
        if not changes:
            return
        batch = self.writer.batch
        for change in changes:
            batch.add(change)
        self.writer.poke()
        self.publisher.publish_changes(self.name, changes)

    def set_config(self, config: core.CoreConfig) -> None:
        """New queue settings (wrap-up, max wait) from the database; state is kept."""
        self.state = replace(self.state, config=config)

    def tick(self) -> None:
        self.state, changes = core.tick(self.state, self.clock())
        self.emit(changes)

    # --- the handler ------------------------------------------------------------------

    async def handle(self, item: StreamItem) -> None:
        if isinstance(item, Received):
            if not self.writer.writable.is_set():
                await self.writer.writable.wait()  # the spool is full: let Asterisk buffer
            lost = self.receive(item.frame, item.at)
            if lost:
                await self._reconcile(lost)
        elif isinstance(item, Connected):
            self.session = item.session
            self._conn_key, self._seq = f"{item.at:.6f}", 0
            self.counters.connects += 1
            log.info("ami %s: connected (%s)", self.name, item.banner)
            self.publisher.node_status(self.name, True, item.banner, item.at)
            # Calls that began and ended while we were not connected: since the last frame
            # of this process, or at a start since the call log's last call (fill_gaps).
            self._gaps.put_nowait(self.last_frame_at)
            if not self.restored:
                await self._restore_open_calls()
            if self.recordings is not None and not self.recordings.restored:
                await self._restore_recordings()
        elif isinstance(item, Disconnected):
            self.session = None
            self.state = core.connection_lost(self.state)
            self.counters.last_error = item.reason
            if item.attempt <= 1:
                log.warning("ami %s: disconnected: %s", self.name, item.reason)
            self.publisher.node_status(self.name, False, item.reason, item.at)

    async def _restore_open_calls(self) -> None:
        """Hand the core the calls the call log holds open from before this process (the
        handler is awaited before the next frame: they are in before the resync runs). With
        the database away, the next connection tries again; so it does while the spool
        holds rows the database has not seen (they may have closed some of those calls)."""
        for _ in range(round(SPOOL_WAIT / 0.1)):
            if not self.writer.spool:
                break
            await asyncio.sleep(0.1)  # the writer drains it first when the database is up
        if self.writer.spool:
            log.warning(
                "ami %s: the call log's spool is not written yet; the calls left open are "
                "closed at a later connection", self.name,
            )  # fmt: skip
            return
        try:
            calls = await self.writer.open_calls(self.name)
        except (OSError, TimeoutError, psycopg.Error) as exc:
            log.warning(
                "ami %s: cannot read the calls left open (%s); they are closed at a later "
                "connection", self.name, (str(exc).strip().splitlines() or [repr(exc)])[0],
            )  # fmt: skip
            return
        self.restored = True
        if calls:
            log.info(
                "ami %s: %d calls left open by a stop; the resync closes those gone",
                self.name, len(calls),
            )  # fmt: skip
            self.state = core.restore_calls(self.state, calls)

    async def _restore_recordings(self) -> None:
        """Hand the recordings keeper the rows left unfinished by a stop (as the calls above;
        the spool was waited for there). A failure is retried at the next connection."""
        assert self.recordings is not None
        if self.writer.spool:
            return
        try:
            rows = await self.writer.open_recordings(self.name)
        except (OSError, TimeoutError, psycopg.Error) as exc:
            log.warning(
                "ami %s: cannot read the recordings left unfinished (%s); retried at the next "
                "connection", self.name, (str(exc).strip().splitlines() or [repr(exc)])[0],
            )  # fmt: skip
            return
        self.recordings.restore(rows)

    def _key(self) -> str:
        self._seq += 1
        return f"{self._conn_key}:{self._seq}"

    def receive(self, frame: Frame, at: float) -> list[core.CallChanged | core.VisitChanged]:
        """Handle one received frame (synchronously: this is the hot path). Returns the
        calls that a finished resync closed as lost, for :meth:`_reconcile`."""
        self.last_frame_at = at
        if type(frame) is not Message:
            return self._receive_bad(frame, at)
        fields = frame.fields
        name = fields.get("Event")
        if (
            name is None
            and fields.get("Response") == "Success"
            and (fields.get("ActionID") or "").startswith("resync-")
        ):
            # The "EventList: start" answer of our resync actions; anything else
            # unsolicited is worth keeping.
            return []
        if name == "VarSet":
            # Half of all traffic, and the core reads few of them: ask it before typing one.
            variable = fields.get("Variable")
            t = ev.event_time(fields, at)
            if variable is not None and core.ignores_var_set(
                self.state, variable, fields.get("Uniqueid", ""), t
            ):
                self.counters.events += 1
                self._audit(frame, name, t)
                return []
        event = ev.parse_event(frame, at, self.name)
        self.counters.events += 1
        if isinstance(event, ev.MalformedEvent):
            self._malformed(event, frame.text)
            return []
        kind = type(event)
        self._audit(frame, name or "", event.time)
        if kind is ev.UnknownEvent:
            self.counters.unknown += 1
            # Failed SIP logins and the like: callcenter.security counts them per address.
            security = self.security
            if (
                security is not None
                and isinstance(event, ev.UnknownEvent)
                and event.name in SECURITY_EVENTS
            ):
                security(event)
            return []
        listed = self._listed_queues(event) if kind is ev.QueueStatusComplete else None
        live = self._listed_channels(event) if kind is ev.CoreShowChannelsComplete else None
        try:
            self.state, changes = core.apply(self.state, event)
        except Exception as exc:  # a bug in one transition must not stop the call log
            log.exception("ami %s: cannot apply %s", self.name, kind.__name__)
            self.counters.malformed += 1
            self.counters.last_error = f"{kind.__name__}: {exc!r}"
            self._audit_raw(event.time, kind.__name__, frame.text, f"core: {exc!r}")
            return []
        self.emit(changes)
        if self.recordings is not None:
            if kind in RECORDING_EVENTS:
                self._recording(event)
            elif live is not None:
                self.recordings.channels_gone(live, event.time)
        if listed is not None:
            self._retire(listed, event.time)
        if kind is ev.FullyBooted:
            self.resync()
        elif kind is ev.QueueStatusComplete or kind is ev.CoreShowChannelsComplete:
            self.counters.resyncs += kind is ev.CoreShowChannelsComplete
            # Calls closed as lost, and visits a resync had to close without their
            # AgentComplete: queue_log can tell how they ended.
            return [
                c for c in changes
                if (isinstance(c, core.CallChanged) and c.call.closed
                    and c.call.outcome is CallOutcome.LOST)
                or (isinstance(c, core.VisitChanged) and c.final
                    and c.call.talk_seconds is None)
            ]  # fmt: skip
        return []

    def _listed_queues(self, event: ev.Event) -> set[str] | None:
        """Every queue our resync's QueueStatus named (a QueueParams, or a member or caller
        of it; it has no filter: a queue it leaves out is gone from Asterisk), read before
        the core consumes the list; ``None`` for a list that is not our resync's."""
        if not isinstance(event, ev.QueueStatusComplete) or event.action_id != RESYNC_QUEUES:
            return None
        names: set[str] = set()
        chain = self.state.lists.get(RESYNC_QUEUES)
        while chain is not None:
            item, chain = chain
            if isinstance(item, ev.QueueParams | ev.QueueMember | ev.QueueEntry):
                names.add(item.queue)
        return names

    def _listed_channels(self, event: ev.Event) -> set[str] | None:
        """The uniqueids our resync's CoreShowChannels listed (every live channel), read
        before the core consumes the list; None for a list that is not our resync's."""
        if not isinstance(event, ev.CoreShowChannelsComplete) or event.action_id != RESYNC_CHANS:
            return None
        found: set[str] = set()
        chain = self.state.lists.get(RESYNC_CHANS)
        while chain is not None:
            item, chain = chain
            if isinstance(item, ev.CoreShowChannel):
                found.add(item.uniqueid)
        return found

    def _recording(self, event: ev.Event) -> None:
        """An event for the recordings keeper; a CallRecording learns the caller's current
        queue visit from the core (the visit the recording belongs to)."""
        assert self.recordings is not None
        visit = None
        if isinstance(event, ev.CallRecording):
            call = self.state.calls.get(event.call_uniqueid)
            visit = call.visit or None if call is not None else None
        try:
            self.recordings.handle(event, visit)
        except Exception as exc:  # as for the core: a bug here must not stop the call log
            log.exception("ami %s: recordings cannot take %s", self.name, type(event).__name__)
            self.counters.last_error = f"recordings: {exc!r}"

    def _retire(self, listed: set[str], at: float) -> None:
        """After our resync's QueueStatus: forget the queues Asterisk no longer has, then
        make the retained snapshots of this node's agents and queues exactly the state's."""
        try:
            self.state, changes = core.retire_queues(self.state, listed, at)
        except Exception as exc:  # as in receive: a bug here must not stop the call log
            log.exception("ami %s: cannot retire the queues Asterisk no longer has", self.name)
            self.counters.last_error = f"retire_queues: {exc!r}"
            return
        self.emit(changes)
        self.publisher.reconcile_snapshots(self.name, self.state.agents, self.state.queues)

    def _audit(self, frame: Message, name: str, at: float) -> None:
        """The audit row of a frame that parsed (``audit_events``)."""
        if self.audit:
            f = frame.fields
            self.writer.batch.events.append(
                event_row(self.name, self._key(), at, name, frame.text, None,
                          f.get("Uniqueid"), f.get("Linkedid"))
            )  # fmt: skip

    def _receive_bad(self, frame: Frame, at: float) -> list[core.CallChanged | core.VisitChanged]:
        if isinstance(frame, FrameTooLarge):
            self._audit_raw(at, "", frame.prefix, f"frame over {frame.limit} chars")
            self.counters.malformed += 1
        elif isinstance(frame, MalformedMessage):
            event = ev.parse_event(frame, at, self.name)
            self.counters.events += 1
            assert isinstance(event, ev.MalformedEvent)
            self._malformed(event, frame.raw)
        return []

    def _malformed(self, event: ev.MalformedEvent, raw: str) -> None:
        self.counters.malformed += 1
        self.counters.by_malformed[event.name] = self.counters.by_malformed.get(event.name, 0) + 1
        self._audit_raw(event.time, event.name, raw, event.error, event.fields)

    def _audit_raw(
        self, at: float, name: str, raw: str, error: str,
        fields: Mapping[str, str] | None = None,
    ) -> None:  # fmt: skip
        f = fields or {}
        self.writer.batch.events.append(
            event_row(self.name, self._key(), at, name or "(malformed)", raw, error,
                      f.get("Uniqueid"), f.get("Linkedid"))
        )  # fmt: skip

    # --- resync -------------------------------------------------------------------------

    def resync(self) -> None:
        """Ask for QueueStatus and CoreShowChannels; their answers come back through the
        stream and the core applies them there (``...Complete`` runs the resync). Calls the
        resync closes as ``lost`` are then corrected from queue_log (:meth:`_reconcile`)."""
        session = self.session
        if session is None:
            return
        try:
            session.send_into_stream({"Action": "QueueStatus", "ActionID": RESYNC_QUEUES})
            session.send_into_stream({"Action": "CoreShowChannels", "ActionID": RESYNC_CHANS})
        except AmiDisconnected:
            return

    async def fill_gaps(self) -> None:
        """Until cancelled: after each (re)connection, the queue visits queue_log shows begun
        and ended while the bridge was away (stopped, killed, or its link down), which no
        event will ever tell it of: a row for each one the call log lacks, and queue_log's
        figures for each it has otherwise (a restart between a QueueCallerAbandon and the
        QUEUESTATUS that tells a time-out from an abandon). Asterisk wins, as in
        :meth:`_reconcile`; without a queue_log, nothing to read."""
        while True:
            since = await self._gaps.get()
            if self.queue_log is None:
                continue
            try:
                # At a start: where the call log stops, read now -- not after the settling,
                # when it holds calls of this process, which would move the look forward.
                if since is None:
                    since = await self.writer.last_call_at(self.name)
                if since is None:
                    continue
                await asyncio.sleep(GAP_SETTLE)
                await self._fill_gap(since - GAP_MARGIN, self.clock() - 3.0)
            except (OSError, TimeoutError, psycopg.Error) as exc:
                log.warning(
                    "ami %s: cannot look for calls missed while away (%s)",
                    self.name, (str(exc).strip().splitlines() or [repr(exc)])[0],
                )  # fmt: skip

    async def _fill_gap(self, since: float, until: float) -> None:
        assert self.queue_log is not None
        entries = await asyncio.to_thread(self.queue_log.lines_since, since)
        visits = core.unseen_calls(self.name, entries, since, until)
        for callid in [c for c in visits if c in self.state.calls]:
            del visits[callid]  # followed live: its own events close it
        if not visits:
            return
        known = await self.writer.calls_by_id(self.name, list(visits))
        fixed: list[core.Change] = []
        for callid, lines in visits.items():
            ours = known.get(callid)
            if ours is None:
                fixed.append(core.CallChanged(core.call_from_queue_log(self.name, callid, lines)))
                continue
            better = replace(core.reconcile_call(ours, lines), closed=True)
            if _FIGURES(better) != _FIGURES(ours):
                fixed.append(core.CallChanged(better))
        if fixed:
            log.info("ami %s: %d calls missed or mistaken while away, taken from queue_log",
                     self.name, len(fixed))  # fmt: skip
            self.counters.reconciled += len(fixed)
            self.emit(fixed)

    async def _reconcile(self, gone: list[core.CallChanged | core.VisitChanged]) -> None:
        calls = [change.call for change in gone]
        if self.queue_log is None:
            log.info(
                "ami %s: %d calls lost while disconnected; no queue_log to fill the gap "
                "(set nodes.%s.queue_log_path)",
                self.name,
                len(calls),
                self.name,
            )
            return
        entries = await asyncio.to_thread(self.queue_log.lines_for, [c.uniqueid for c in calls])
        fixed: list[core.Change] = []
        for change in gone:
            better = core.reconcile_call(change.call, entries)
            if better == change.call:
                continue
            if isinstance(change, core.VisitChanged):
                fixed.append(core.VisitChanged(better, final=True))
            else:
                fixed.append(core.CallChanged(better))
        self.counters.reconciled += len(fixed)
        self.emit(list(fixed))
