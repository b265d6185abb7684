"""The pure detector: failures per address over a sliding window, alerts, block decisions, the
allow-list, unblocks, and memory that stays bounded under a flood of distinct addresses."""

from __future__ import annotations

import ipaddress
import tracemalloc

from callcenter.ami import events as ev
from callcenter.security.acl import AllowList
from callcenter.security.detector import (
    MAX_ACCOUNTS,
    AlertCleared,
    AlertRaised,
    AlertUpdated,
    BlockDecided,
    Change,
    Detector,
    DetectorConfig,
)
from callcenter.security.events import NAMES, RemoteAddress, SecurityEvent, from_event, parse_ip
from tests import traces

SCANNER = "203.0.113.5"


def failure(
    t: float, address: str = SCANNER, name: str = "ChallengeResponseFailed", account: str = "1001"
) -> SecurityEvent:
    return SecurityEvent(
        node="pbx1", time=t, name=name, service="PJSIP", account=account, session=f"c{t}",
        remote=RemoteAddress(parse_ip(address), "UDP", 5060),
    )  # fmt: skip


def config(**kw: object) -> DetectorConfig:
    base: dict[str, object] = {"threshold": 3, "window": 10.0, "block": True,
                               "alert_hold": 100.0, "update_every": 5.0}  # fmt: skip
    base.update(kw)
    return DetectorConfig(**base)  # type: ignore[arg-type]


def kinds(changes: list[Change]) -> list[str]:
    return [type(c).__name__ for c in changes]


def test_threshold_within_the_window_alerts_and_blocks_once() -> None:
    d = Detector(config())
    assert d.observe(failure(0.0)) == []
    assert d.observe(failure(1.0)) == []
    changes = d.observe(failure(2.0))
    assert kinds(changes) == ["AlertRaised", "BlockDecided"]
    o = changes[1].offender
    assert (o.address, o.failures, o.first_seen, o.last_seen) == (SCANNER, 3, 0.0, 2.0)
    assert o.blocked
    assert not o.allowed
    assert o.kinds == (("ChallengeResponseFailed", 3),)
    assert o.services == ("PJSIP",)
    # More failures: an update at most every update_every seconds, never a second block.
    assert d.observe(failure(3.0)) == []
    updated = d.observe(failure(7.5))
    assert kinds(updated) == ["AlertUpdated"]
    assert updated[0].offender.failures == 5
    assert d.observe(failure(8.0)) == []
    assert d.is_blocked(SCANNER)
    assert [a.address for a in d.alerts()] == [SCANNER]


def test_failures_spread_wider_than_the_window_do_not_alert() -> None:
    d = Detector(config())
    for t in (0.0, 6.0, 12.0, 18.0, 24.0):  # never 3 within 10 s
        assert d.observe(failure(t)) == []
    # Three within the window, at last (the two before still count: they are the last ones).
    assert kinds(d.observe(failure(28.0))) == ["AlertRaised", "BlockDecided"]


def test_only_the_four_failures_count() -> None:
    d = Detector(config(threshold=1))
    for name in sorted(NAMES - {"InvalidAccountID", "ChallengeResponseFailed",
                                "InvalidPassword", "FailedACL"}):  # fmt: skip
        assert d.observe(failure(0.0, name=name)) == [], name
    assert d.tracked() == 0
    assert kinds(d.observe(failure(0.0, name="FailedACL"))) == ["AlertRaised", "BlockDecided"]


def test_block_off_alerts_only() -> None:
    d = Detector(config(block=False))
    changes = [c for t in (0.0, 1.0, 2.0) for c in d.observe(failure(t))]
    assert kinds(changes) == ["AlertRaised"]
    assert not changes[0].offender.blocked
    assert not d.is_blocked(SCANNER)


def test_allowed_addresses_alert_but_are_never_blocked() -> None:
    allow = AllowList.parse(["192.168.1.0/24", "2001:db8:1::/48", "127.0.0.1"])
    d = Detector(config(allow=allow))
    for address in ("192.168.1.23", "2001:db8:1::9", "127.0.0.1", "::ffff:192.168.1.7"):
        changes = [c for t in (0.0, 1.0, 2.0) for c in d.observe(failure(t, address))]
        assert kinds(changes) == ["AlertRaised"], address
        assert changes[0].offender.allowed
        assert not changes[0].offender.blocked
    # Next to the allowed network: blocked.
    changes = [c for t in (0.0, 1.0, 2.0) for c in d.observe(failure(t, "192.168.2.1"))]
    assert kinds(changes) == ["AlertRaised", "BlockDecided"]


def test_addresses_are_counted_apart_and_ipv6_too() -> None:
    d = Detector(config())
    changes: list[Change] = []
    for t in (0.0, 1.0, 2.0):
        changes += d.observe(failure(t, "203.0.113.5"))
        changes += d.observe(failure(t, "2001:db8::5"))
        changes += d.observe(failure(t + 0.5, "203.0.113.6")) if t < 2 else []
    blocked = [c.offender.address for c in changes if isinstance(c, BlockDecided)]
    assert blocked == ["203.0.113.5", "2001:db8::5"]


def test_alerts_end_alert_hold_after_the_last_failure() -> None:
    d = Detector(config())
    for t in (0.0, 1.0, 2.0):
        d.observe(failure(t))
    d.observe(failure(50.0))
    assert d.tick(149.0) == []
    cleared = d.tick(150.0)
    assert kinds(cleared) == ["AlertCleared"]
    assert cleared[0].offender.failures == 4
    assert d.alerts() == []
    assert d.tracked() == 0
    # Still blocked (the table says until when): a new run of failures alerts again, no block.
    again = [c for t in (200.0, 201.0, 202.0) for c in d.observe(failure(t))]
    assert kinds(again) == ["AlertRaised"]
    assert again[0].offender.blocked


def test_counts_idle_for_a_window_are_forgotten() -> None:
    d = Detector(config())
    d.observe(failure(0.0, "203.0.113.1"))
    d.observe(failure(5.0, "203.0.113.2"))
    assert d.tracked() == 2
    d.tick(12.0)
    assert d.tracked() == 1  # the first is past the window; the second not yet
    d.tick(16.0)
    assert d.tracked() == 0


def test_an_unblock_ends_the_alert_and_counts_afresh() -> None:
    d = Detector(config())
    for t in (0.0, 1.0, 2.0):
        d.observe(failure(t))
    assert d.set_blocked([SCANNER]) == []  # the table agrees
    ended = d.set_blocked([])  # an operator's unblock, read back from the table
    assert kinds(ended) == ["AlertCleared"]
    assert not ended[0].offender.blocked
    assert not d.is_blocked(SCANNER)
    assert d.observe(failure(3.0)) == []  # from nothing again
    assert d.observe(failure(4.0)) == []
    assert kinds(d.observe(failure(5.0))) == ["AlertRaised", "BlockDecided"]


def test_a_network_block_covers_its_addresses() -> None:
    d = Detector(config())
    d.set_blocked(["203.0.113.0/24"])
    assert d.is_blocked("203.0.113.77")
    assert not d.is_blocked("203.0.114.1")
    changes = [c for t in (0.0, 1.0, 2.0) for c in d.observe(failure(t, "203.0.113.77"))]
    assert kinds(changes) == ["AlertRaised"]  # blocked already: no decision
    assert changes[0].offender.blocked


def test_accounts_tried_are_the_last_few_distinct() -> None:
    d = Detector(config(threshold=10))
    for n in range(8):
        d.observe(failure(float(n), account=f"{100 + n}"))
    d.observe(failure(8.0, account="<unknown>"))
    changes = d.observe(failure(9.0, account="103"))
    assert kinds(changes) == ["AlertRaised", "BlockDecided"]
    assert changes[0].offender.accounts == ("104", "105", "106", "107", "103")
    assert len(changes[0].offender.accounts) == MAX_ACCOUNTS


def test_a_flood_of_distinct_addresses_stays_bounded() -> None:
    """10^5 addresses, one failure each, in 10 s: at most max_tracked are counted, the memory
    the detector holds stays flat once it is full (traced over the last fifth: tracing all of
    it would take ten times as long), and a real scanner among them is still caught."""
    d = Detector(config(threshold=5, window=60.0, max_tracked=1000))
    base = int(ipaddress.IPv4Address("10.0.0.0"))
    flood = [failure(i * 1e-4, str(ipaddress.IPv4Address(base + i))) for i in range(100_000)]
    for event in flood[:80_000]:
        d.observe(event)
    tracemalloc.start()  # it counts only what is allocated from now: fill the cap, then look
    try:
        for event in flood[80_000:90_000]:
            d.observe(event)
        before, _ = tracemalloc.get_traced_memory()
        for event in flood[90_000:]:
            d.observe(event)
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert d.tracked() == 1000
    assert d.forgotten == 99_000
    assert after - before < 100_000, (before, after)  # bytes: 10,000 more addresses, flat
    changes = [c for k in range(5) for c in d.observe(failure(10.0 + k, SCANNER))]
    assert kinds(changes) == ["AlertRaised", "BlockDecided"]
    assert d.tick(10.0 + 61) == []  # every count idle a window long is forgotten
    assert d.tracked() == 1  # the alert


def test_too_many_alerts_end_the_oldest() -> None:
    d = Detector(config(threshold=1, max_alerts=3))
    changes = [c for i in range(5) for c in d.observe(failure(float(i), f"203.0.113.{i}"))]
    cleared = [c.offender.address for c in changes if isinstance(c, AlertCleared)]
    assert cleared == ["203.0.113.0", "203.0.113.1"]
    assert [a.address for a in d.alerts()] == ["203.0.113.4", "203.0.113.3", "203.0.113.2"]


def test_the_recorded_scanner() -> None:
    """The recorded trace with threshold 5: the scanner at 127.0.0.2 is blocked at its fifth
    failure (the second InvalidAccountID of the unknown account), the AMI login failure from
    127.0.0.1 is counted and nothing more; the same with any suffix of the stream that still
    holds five of its failures."""
    recorded = [
        from_event(e)
        for e in traces.events("security")
        if isinstance(e, ev.UnknownEvent) and e.name in NAMES
    ]
    d = Detector(config(threshold=5, window=60.0))
    changes = [(e, c) for e in recorded for c in d.observe(e)]
    assert [type(c) for _, c in changes] == [AlertRaised, BlockDecided]
    event, decided = changes[1]
    assert (event.name, event.account) == ("InvalidAccountID", "9999")
    o = decided.offender
    assert (o.address, o.failures, o.node) == ("127.0.0.2", 5, traces.NODE)
    assert dict(o.kinds) == {"ChallengeResponseFailed": 3, "InvalidAccountID": 2}
    assert o.accounts == ("1001", "9999")
    # After the unblock the address counts afresh: its last failure is not an alert.
    assert d.set_blocked([]) != []
    assert d.observe(recorded[-2] if recorded[-2].failure else recorded[-3]) == []
    for start in range(len(recorded)):
        tail = Detector(config(threshold=5, window=60.0))
        got = [c for e in recorded[start:] for c in tail.observe(e)]
        fails = sum(e.failure and e.address == "127.0.0.2" for e in recorded[start:])
        blocked = [c for c in got if isinstance(c, BlockDecided)]
        assert len(blocked) == (1 if fails >= 5 else 0), start
        assert not any(isinstance(c, AlertUpdated) for c in got)
