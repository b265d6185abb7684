"""The bridge's shell around the detector: security events in; MQTT, ``sip_blocks`` and the
ACL out.

:meth:`SecurityMonitor.handle` is called by each node's handler, in order, for every
security event (synchronous and cheap: parse, count, queue what is to be done). Everything
slow happens in :meth:`SecurityMonitor.run`, about once a second, in this order:

1. the detector's clock (:meth:`Detector.tick`: counts forgotten, alerts ended);
2. the table: alerts and blocks upserted in one transaction (each alert at most once a
   second, whatever the rate of failures); then, with ``[security] block`` on, acl.conf
   rendered from every block in the table and the private Asterisk reloaded if it changed;
3. what is blocked, read back from the table (each ``REFRESH`` seconds while something is
   alerted or blocking is on), so an operator's ``security unblock`` in another process
   lets the detector count that address afresh;
4. the retained alert list on MQTT, when it changed.

With the database away the alerts and blocks wait in memory (one entry per address) and go
out at the next try; the MQTT alert does not wait for them. A failure never stops the bridge.
No failure at all (the usual day) means no I/O here at all.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from callcenter.ami import events as ev
from callcenter.config import SecuritySettings, Settings
from callcenter.db import engine as db
from callcenter.security import alerts, blocklist, store
from callcenter.security.acl import AllowList
from callcenter.security.detector import (
    AlertCleared,
    AlertRaised,
    AlertUpdated,
    BlockDecided,
    Change,
    Detector,
    DetectorConfig,
    Offender,
)
from callcenter.security.events import SecurityEventError, from_event

log = logging.getLogger(__name__)

#: Seconds between reads of what is blocked (while it matters).
REFRESH = 10.0
#: Seconds between the monitor's rounds.
ROUND = 1.0


def detector_config(s: SecuritySettings) -> DetectorConfig:
    return DetectorConfig(
        threshold=s.threshold,
        window=s.window,
        block=s.block,
        allow=AllowList.parse(s.allow),
        alert_hold=s.alert_hold,
        max_tracked=s.max_tracked,
    )


@dataclass
class SecurityCounters:
    events: int = 0
    failures: int = 0
    malformed: int = 0
    alerts: int = 0
    blocks: int = 0
    acl_reloads: int = 0  # blocklists written into a running Asterisk and reloaded
    db_errors: int = 0
    last_error: str = ""


ApplyAcl = Callable[[list[str]], blocklist.Applied]


class AlertSink(Protocol):
    """Where alerts go: :class:`callcenter.bridge.publisher.Publisher` in the bridge (neither
    call does I/O: it queues the message), a list in tests."""

    def retain(self, topic: str, payload: dict[str, Any]) -> None: ...

    def event(self, topic: str, payload: dict[str, Any]) -> None: ...


@dataclass(frozen=True, slots=True)
class _Pending:
    """An address's row to write: its latest view, whether to block it, whether its alert
    ended (then the next alert of the address counts from nothing)."""

    offender: Offender
    block: bool
    ended: bool


class SecurityMonitor:
    """One per bridge (every node's events meet here: an address attacking two nodes is one
    attacker). ``apply_acl`` renders and reloads the blocklist (default: the private
    instance's, :func:`callcenter.security.blocklist.apply`)."""

    def __init__(
        self,
        settings: Settings,
        publisher: AlertSink,
        *,
        clock: Callable[[], float] = time.time,
        apply_acl: ApplyAcl | None = None,
    ) -> None:
        self.settings = settings
        self.publisher = publisher
        self.clock = clock
        self.detector = Detector(detector_config(settings.security))
        self.apply_acl: ApplyAcl = apply_acl or (lambda b: blocklist.apply(settings, b))
        self.counters = SecurityCounters()
        self.topic = alerts.topic(settings.mqtt.topic_prefix)
        self.events_topic = alerts.events_topic(settings.mqtt.topic_prefix)
        # Waiting for the table, by address: the latest view of each alert, and a block.
        self._pending: dict[str, _Pending] = {}
        # (first failure, failures) of each alert already in the table, by address.
        self._written: dict[str, tuple[float, int]] = {}
        self._blocked: list[str] | None = None  # as last read from the table
        self._refreshed = -REFRESH
        self._acl_synced = False
        self._list_dirty = True  # the first round publishes the (empty) list
        self._engine: Engine | None = None
        self._failing = False

    # --- the hot path ---------------------------------------------------------------------

    def handle(self, event: ev.UnknownEvent) -> None:
        """One security event from a node. Never raises: a bad one is counted and dropped
        (and a bug here must not stop the call log, whose handler this runs in)."""
        try:
            parsed = from_event(event)
        except SecurityEventError as exc:
            self.counters.malformed += 1
            self.counters.last_error = str(exc)
            log.debug("security: ignored %s", exc)
            return
        self.counters.events += 1
        self.counters.failures += parsed.failure
        try:
            self._take(self.detector.observe(parsed), parsed.time)
        except Exception as exc:
            log.exception("security: cannot count %s from %s", parsed.name, parsed.address)
            self.counters.last_error = f"{type(exc).__name__}: {exc}"

    def _take(self, changes: list[Change], at: float) -> None:
        for change in changes:
            o = change.offender
            match change:
                case AlertRaised():
                    self.counters.alerts += 1
                    log.warning(
                        "security: SIP login attack from %s (node %s): %s%s", o.address, o.node,
                        store.describe(o),
                        "; in [security] allow: not blocked" if o.allowed else "",
                    )  # fmt: skip
                    self.publisher.event(self.events_topic, alerts.event_payload("raised", o, at))
                case BlockDecided():
                    self.counters.blocks += 1
                    log.warning("security: blocking %s in the private Asterisk's SIP ACL",
                                o.address)  # fmt: skip
                    self.publisher.event(self.events_topic, alerts.event_payload("blocked", o, at))
                case AlertCleared():
                    log.info("security: the alert for %s ended (%d failed logins)", o.address,
                             o.failures)  # fmt: skip
                    self.publisher.event(self.events_topic, alerts.event_payload("cleared", o, at))
                case AlertUpdated():
                    pass
            before = self._pending.get(o.address)
            self._pending[o.address] = _Pending(
                o,
                block=isinstance(change, BlockDecided) or (before is not None and before.block),
                ended=isinstance(change, AlertCleared),
            )
            self._list_dirty = True

    # --- the rounds -----------------------------------------------------------------------

    async def run(self) -> None:
        """Rounds until cancelled (see the module's doc)."""
        try:
            while True:
                await self.round()
                await asyncio.sleep(ROUND)
        finally:
            if self._engine is not None:
                self._engine.dispose()

    async def round(self) -> None:
        now = self.clock()
        self._take(self.detector.tick(now), now)
        try:
            await self._storage(now)
        except Exception as exc:  # the database or Asterisk away: keep it all for next time
            self.counters.db_errors += 1
            self.counters.last_error = f"{type(exc).__name__}: {exc}"
            if not self._failing:
                log.warning(
                    "security: cannot write or apply SIP blocks (%s); %d addresses wait for "
                    "the next try", (str(exc).strip().splitlines() or [repr(exc)])[0],
                    len(self._pending),
                )  # fmt: skip
            self._failing = True
        else:
            if self._failing:
                log.info("security: SIP blocks written again")
            self._failing = False
        if self._list_dirty:
            self._list_dirty = False
            self.publisher.retain(self.topic, alerts.alerts_payload(self.detector.alerts(), now))

    async def _storage(self, now: float) -> None:
        blocking = self.settings.security.block
        watching = blocking or bool(self._blocked) or self.detector.alert_count() > 0
        due = watching and now - self._refreshed >= REFRESH
        if not self._pending and not due and (self._acl_synced or not blocking):
            return
        pending = dict(self._pending)
        blocked = await asyncio.to_thread(self._write, list(pending.values()), now)
        for address, item in pending.items():
            if self._pending.get(address) is item:  # no newer view came meanwhile
                del self._pending[address]
        self._refreshed = now
        if blocking and (
            any(p.block for p in pending.values()) or not self._acl_synced
            or blocked != self._blocked
        ):  # fmt: skip
            self._acl_synced = False
            result = await asyncio.to_thread(self.apply_acl, blocked)
            self._acl_synced = True
            self.counters.acl_reloads += result.reloaded
            if result.written:
                log.info("security: SIP blocklist: %s", result.detail)
        self._blocked = blocked
        waiting = [a for a, p in self._pending.items() if p.block]
        self._take(self.detector.set_blocked([*blocked, *waiting]), now)

    def _write(self, pending: list[_Pending], now: float) -> list[str]:
        """In a thread: upsert ``pending`` in one transaction; the addresses blocked now.
        Each row gets the failures of its alert not written before (by ``_written``, keyed by
        the alert's first failure, so a new alert of the same address counts anew)."""
        if self._engine is None:
            self._engine = db.make_engine(self.settings.database, poolclass=sa.pool.NullPool)
        written = dict(self._written)
        with Session(self._engine) as session, session.begin():
            for p in sorted(pending, key=lambda p: p.offender.address):
                o = p.offender
                first, count = written.get(o.address, (o.first_seen, 0))
                new = o.failures - count if first == o.first_seen else o.failures
                store.record(session, o, new, block=p.block, now=now)
                if p.ended:
                    written.pop(o.address, None)
                else:
                    written[o.address] = (o.first_seen, o.failures)
            blocked = store.active(session)
        self._written = written
        return blocked
