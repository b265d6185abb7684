"""Failed logins per source address over a sliding window: alerts and block decisions.

:class:`Detector` has no I/O and no clock: time comes from the events (and from the shell's
:meth:`Detector.tick`), so the same events give the same changes, in a test as in the bridge.
It is an incremental state machine (as the AMI parser is) rather than ``apply(state, event)``
on frozen state: under a flood, copying a map of ten thousand addresses per event would cost
more than the flood.

Rules, per address (the key is the address as text, :attr:`SecurityEvent.address`):

- every event of :data:`~callcenter.security.events.FAILURES` counts one failure; others
  change nothing. One guess at an account that does not exist is three failures on Asterisk
  22 (InvalidAccountID for the REGISTER and for its authenticated retry, then
  ChallengeResponseFailed), a wrong password for a real account one (ChallengeResponseFailed);
- ``threshold`` failures within ``window`` seconds raise an alert (:class:`AlertRaised`); with
  ``block``, an address outside the allow-list is also to be blocked (:class:`BlockDecided`,
  once: the shell writes it down and renders the ACL). An allowed address may alert, never
  block: the operator's own office is then told, not cut off;
- while alerted, further failures are reported at most every ``update_every`` seconds
  (:class:`AlertUpdated`); an alert ends ``alert_hold`` seconds after its last failure
  (:class:`AlertCleared`, from :meth:`tick`). A blocked address sends no more events (the ACL
  refuses it silently), so its alert ends that way too; the block stays in the table;
- :meth:`set_blocked` takes what is blocked now (the table, read by the shell): an address no
  longer blocked (an operator's ``security unblock``) starts counting from nothing, so a
  scanner that comes back is blocked again after another ``threshold`` failures.

Memory stays bounded whatever arrives: at most ``max_tracked`` counting addresses (the least
recently seen is forgotten first: a flood of spoofed addresses costs the counts of addresses
with few failures, never an alert), at most ``max_alerts`` alerts (past that the oldest is
cleared), ``threshold`` timestamps per address, and ``MAX_ACCOUNTS`` account names per alert.
An address idle for ``window`` seconds can no longer reach the threshold with its old
failures and is forgotten at the next :meth:`tick`.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable
from dataclasses import dataclass, field

from callcenter.security.acl import AllowList, Network, covered, parse_network
from callcenter.security.events import FAILURES, SecurityEvent

#: Account names kept per alert (the last distinct ones tried).
MAX_ACCOUNTS = 5


@dataclass(frozen=True, slots=True)
class DetectorConfig:
    threshold: int = 10
    window: float = 60.0
    block: bool = False
    allow: AllowList = field(default_factory=lambda: AllowList.parse(("127.0.0.1", "::1")))
    alert_hold: float = 900.0
    max_tracked: int = 10_000
    max_alerts: int = 1_000
    update_every: float = 5.0


@dataclass(frozen=True, slots=True)
class Offender:
    """An alerted address as the detector knows it: ``failures`` since it was first seen
    (while tracked), by event name in ``kinds``; ``accounts`` the last distinct ones tried;
    ``node`` where the last failure came from; ``allowed``: in the allow-list (never
    blocked); ``blocked``: blocked now (decided here, or in the table)."""

    address: str
    node: str
    first_seen: float
    last_seen: float
    failures: int
    kinds: tuple[tuple[str, int], ...]
    accounts: tuple[str, ...]
    services: tuple[str, ...]
    allowed: bool
    blocked: bool


@dataclass(frozen=True, slots=True)
class AlertRaised:
    offender: Offender


@dataclass(frozen=True, slots=True)
class AlertUpdated:
    offender: Offender


@dataclass(frozen=True, slots=True)
class BlockDecided:
    offender: Offender


@dataclass(frozen=True, slots=True)
class AlertCleared:
    offender: Offender


Change = AlertRaised | AlertUpdated | BlockDecided | AlertCleared


class _Track:
    """One address's counts (mutable, private to the detector)."""

    __slots__ = (
        "accounts", "address", "alerted", "allowed", "failures", "first_seen", "kinds",
        "last_seen", "node", "recent", "reported", "services",
    )  # fmt: skip

    def __init__(self, address: str, node: str, at: float, threshold: int, allowed: bool) -> None:
        self.address = address
        self.node = node
        self.first_seen = at
        self.last_seen = at
        self.failures = 0
        self.recent: collections.deque[float] = collections.deque(maxlen=threshold)
        self.kinds: dict[str, int] = {}
        self.accounts: list[str] = []
        self.services: list[str] = []
        self.allowed = allowed
        self.alerted = False
        self.reported = at  # when the last AlertRaised/AlertUpdated went out

    def count(self, event: SecurityEvent) -> None:
        self.node = event.node
        self.last_seen = max(self.last_seen, event.time)
        self.failures += 1
        self.recent.append(event.time)
        self.kinds[event.name] = self.kinds.get(event.name, 0) + 1
        if event.account and event.account != "<unknown>":
            _remember(self.accounts, event.account, MAX_ACCOUNTS)
        if event.service:
            _remember(self.services, event.service, MAX_ACCOUNTS)

    def offender(self, blocked: bool) -> Offender:
        return Offender(
            address=self.address, node=self.node, first_seen=self.first_seen,
            last_seen=self.last_seen, failures=self.failures,
            kinds=tuple(sorted(self.kinds.items())), accounts=tuple(self.accounts),
            services=tuple(self.services), allowed=self.allowed, blocked=blocked,
        )  # fmt: skip


def _remember(items: list[str], item: str, limit: int) -> None:
    if item in items:
        items.remove(item)
    items.append(item)
    del items[:-limit]


class Detector:
    """See the module's doc. :meth:`observe` per event, :meth:`tick` about once a second."""

    def __init__(self, config: DetectorConfig | None = None) -> None:
        self.config = config or DetectorConfig()
        # Both ordered by last failure, oldest first (moved to the end on each failure).
        self._counting: collections.OrderedDict[str, _Track] = collections.OrderedDict()
        self._alerts: collections.OrderedDict[str, _Track] = collections.OrderedDict()
        self._blocked: set[str] = set()
        self._blocked_nets: tuple[Network, ...] = ()
        self.forgotten = 0  # counting addresses dropped to stay under max_tracked

    # --- what the shell asks --------------------------------------------------------------

    def alerts(self) -> list[Offender]:
        """Every active alert, the most recent failure first."""
        return [self._offender(t) for t in reversed(self._alerts.values())]

    def alert_count(self) -> int:
        return len(self._alerts)

    def tracked(self) -> int:
        return len(self._counting) + len(self._alerts)

    def is_blocked(self, address: str) -> bool:
        if address in self._blocked:
            return True
        if not self._blocked_nets:
            return False
        try:
            ip = parse_network(address).network_address
        except ValueError:
            return False
        return covered(ip, self._blocked_nets)

    # --- input ------------------------------------------------------------------------------

    def observe(self, event: SecurityEvent) -> list[Change]:
        """Count ``event`` if it is a failure; what that changed."""
        if event.name not in FAILURES:
            return []
        key = event.address
        track = self._alerts.get(key)
        if track is not None:
            self._alerts.move_to_end(key)
            track.count(event)
            if event.time - track.reported >= self.config.update_every:
                track.reported = event.time
                return [AlertUpdated(self._offender(track))]
            return []
        track = self._counting.get(key)
        if track is None:
            allowed = event.remote.ip in self.config.allow
            track = _Track(key, event.node, event.time, self.config.threshold, allowed)
            self._counting[key] = track
            while len(self._counting) > self.config.max_tracked:
                self._counting.popitem(last=False)
                self.forgotten += 1
        else:
            self._counting.move_to_end(key)
        track.count(event)
        recent = track.recent
        if len(recent) < self.config.threshold or recent[-1] - recent[0] > self.config.window:
            return []
        # Over the threshold: an alert from now on.
        del self._counting[key]
        self._alerts[key] = track
        track.alerted, track.reported = True, event.time
        changes: list[Change] = []
        blocked = self.is_blocked(key)
        if self.config.block and not track.allowed and not blocked:
            self._blocked.add(key)
            blocked = True
            changes.append(AlertRaised(track.offender(blocked)))
            changes.append(BlockDecided(track.offender(blocked)))
        else:
            changes.append(AlertRaised(track.offender(blocked)))
        while len(self._alerts) > self.config.max_alerts:
            _, oldest = self._alerts.popitem(last=False)
            changes.append(AlertCleared(self._offender(oldest)))
        return changes

    def tick(self, now: float) -> list[Change]:
        """Forget counts that can no longer reach the threshold; end alerts ``alert_hold``
        seconds after their last failure."""
        horizon = now - self.config.window
        while self._counting:
            key, track = next(iter(self._counting.items()))
            if track.last_seen >= horizon:
                break
            del self._counting[key]
        changes: list[Change] = []
        hold = now - self.config.alert_hold
        while self._alerts:
            key, track = next(iter(self._alerts.items()))
            if track.last_seen > hold:
                break
            del self._alerts[key]
            changes.append(AlertCleared(self._offender(track)))
        return changes

    def set_blocked(self, blocks: Iterable[str]) -> list[Change]:
        """What is blocked now (addresses and networks, as ``sip_blocks`` keys). An alerted
        address no longer blocked ends its alert and counts afresh (AlertCleared); one that
        became blocked (``security block``) shows so at its next update."""
        keys = set(blocks)
        lone = {k for k in keys if "/" not in k}
        nets: list[Network] = []
        for k in keys - lone:
            try:
                nets.append(parse_network(k))
            except ValueError:
                continue  # the table's check keeps these out; one bad row blocks nothing
        gone = self._blocked - lone
        self._blocked, self._blocked_nets = lone, tuple(nets)
        changes: list[Change] = []
        for key in sorted(gone):
            if self.is_blocked(key):
                continue
            self._counting.pop(key, None)
            track = self._alerts.pop(key, None)
            if track is not None:
                changes.append(AlertCleared(track.offender(False)))
        return changes

    def _offender(self, track: _Track) -> Offender:
        return track.offender(self.is_blocked(track.address))
