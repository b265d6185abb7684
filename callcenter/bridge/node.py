"""One Asterisk node: its AMI stream through the pure core, out to the call log and MQTT.

The node owns its core :class:`~callcenter.core.State` and nothing else; the writer and the
publisher only consume the core's changes (one source of truth for agent state: Asterisk's
queue membership as the core sees it).

On every ``FullyBooted`` (Asterisk sends one right after each login, and broadcasts one when a
restart finishes booting) the node resynchronises: QueueStatus and CoreShowChannels replace
what the core believed, calls that vanished are closed as ``lost``, and queue_log (Asterisk's
file, or its realtime table) then corrects those calls with what Asterisk recorded.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

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

log = logging.getLogger(__name__)


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
        elif isinstance(item, Disconnected):
            self.session = None
            self.state = core.connection_lost(self.state)
            self.counters.last_error = item.reason
            if item.attempt <= 1:
                log.warning("ami %s: disconnected: %s", self.name, item.reason)
            self.publisher.node_status(self.name, False, item.reason, item.at)

    def _key(self) -> str:
        self._seq += 1
        return f"{self._conn_key}:{self._seq}"

    def receive(self, frame: Frame, at: float) -> list[core.CallChanged | core.VisitChanged]:
        """Handle one received frame (synchronously: this is the hot path). Returns the
        calls that a finished resync closed as lost, for :meth:`_reconcile`."""
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
            return []
        try:
            self.state, changes = core.apply(self.state, event)
        except Exception as exc:  # a bug in one transition must not stop the call log
            log.exception("ami %s: cannot apply %s", self.name, kind.__name__)
            self.counters.malformed += 1
            self.counters.last_error = f"{kind.__name__}: {exc!r}"
            self._audit_raw(event.time, kind.__name__, frame.text, f"core: {exc!r}")
            return []
        self.emit(changes)
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
            session.send_into_stream({"Action": "QueueStatus", "ActionID": "resync-queues"})
            session.send_into_stream({"Action": "CoreShowChannels", "ActionID": "resync-chans"})
        except AmiDisconnected:
            return

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
