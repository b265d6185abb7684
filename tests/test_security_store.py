"""Where detections go: the ``sip_blocks`` table, the rendered SIP ACL (acl.conf and pjsip.conf),
the blocklist written into an instance directory, and the bridge's monitor that ties them
together (a fake MQTT sink, the real PostgreSQL)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from callcenter import config
from callcenter.ami import events as ev
from callcenter.asterisk import conffile, sample
from callcenter.asterisk.render import RenderError, RenderOptions, render, render_acl
from callcenter.db.models_security import SipBlock
from callcenter.security import blocklist, store
from callcenter.security.acl import AddressError, AllowList, acl_context, checked_block
from callcenter.security.detector import Offender
from callcenter.security.events import NAMES
from callcenter.security.service import REFRESH, SecurityMonitor
from tests import traces


def offender(address: str = "203.0.113.5", failures: int = 12, **kw: Any) -> Offender:
    base: dict[str, Any] = {
        "address": address, "node": "local", "first_seen": 1000.0, "last_seen": 1010.0,
        "failures": failures, "kinds": (("ChallengeResponseFailed", 8), ("InvalidAccountID", 4)),
        "accounts": ("1001", "admin"), "services": ("PJSIP",), "allowed": False,
        "blocked": False,
    }  # fmt: skip
    base.update(kw)
    return Offender(**base)


def row(engine: Engine, address: str) -> SipBlock:
    with Session(engine) as s:
        found = s.get(SipBlock, address)
        assert found is not None
        s.expunge(found)
        return found


# --- the table --------------------------------------------------------------------------------


def test_alerts_add_up_and_blocks_come_and_go(clean_db: Engine) -> None:
    with Session(clean_db) as s, s.begin():
        store.record(s, offender(failures=12), 12, block=False, now=1010.0)
    r = row(clean_db, "203.0.113.5")
    assert (r.failures, store.status(r), r.node) == (12, "alerted", "local")
    assert r.reason == (
        "12 failed logins (ChallengeResponseFailed 8, InvalidAccountID 4) over PJSIP; "
        "accounts tried: 1001, admin"
    )
    # The same alert later, 5 more failures, now blocked: times widen, failures add up.
    with Session(clean_db) as s, s.begin():
        later = offender(failures=17, first_seen=1000.0, last_seen=1020.0)
        store.record(s, later, 5, block=True, now=1020.0)
    r = row(clean_db, "203.0.113.5")
    assert r.failures == 17
    assert r.first_seen == dt.datetime.fromtimestamp(1000.0, dt.UTC)
    assert r.last_seen == dt.datetime.fromtimestamp(1020.0, dt.UTC)
    assert r.blocked_at == dt.datetime.fromtimestamp(1020.0, dt.UTC)
    assert store.status(r) == "blocked"
    # A block of what is blocked keeps its first time.
    with Session(clean_db) as s, s.begin():
        store.record(s, offender(failures=18, last_seen=1030.0), 1, block=True, now=1030.0)
        assert store.active(s) == ["203.0.113.5"]
    assert row(clean_db, "203.0.113.5").blocked_at == dt.datetime.fromtimestamp(1020.0, dt.UTC)
    with Session(clean_db) as s, s.begin():
        assert store.unblock(s, "203.0.113.5", now=1040.0)
        assert not store.unblock(s, "203.0.113.5", now=1041.0)  # not blocked any more
        assert store.active(s) == []
    r = row(clean_db, "203.0.113.5")
    assert (store.status(r), r.failures) == ("unblocked", 18)
    # Blocked again: the unblock is undone.
    with Session(clean_db) as s, s.begin():
        store.record(s, offender(failures=3, first_seen=2000.0, last_seen=2001.0), 3,
                     block=True, now=2001.0)  # fmt: skip
    r = row(clean_db, "203.0.113.5")
    assert (store.status(r), r.failures, r.unblocked_at) == ("blocked", 21, None)


def test_operator_blocks_and_listing(clean_db: Engine) -> None:
    with Session(clean_db) as s, s.begin():
        assert store.block(s, "198.51.100.0/24", "abuse report 42", now=100.0).created
        assert store.block(s, "198.51.100.0/24", "again", now=101.0).already
        store.record(s, offender("203.0.113.5"), 12, block=False, now=50.0)
        store.record(s, offender("203.0.113.6", last_seen=3000.0), 12, block=True, now=3000.0)
    with Session(clean_db) as s:
        assert store.active(s) == ["198.51.100.0/24", "203.0.113.6"]
        assert [r.address for r in store.rows(s)] == ["203.0.113.6", "198.51.100.0/24"]
        every = [(r.address, store.status(r)) for r in store.rows(s, everything=True)]
    assert every == [
        ("203.0.113.6", "blocked"), ("203.0.113.5", "alerted"), ("198.51.100.0/24", "blocked")
    ]  # fmt: skip
    r = row(clean_db, "198.51.100.0/24")
    assert (r.reason, r.failures, r.first_seen) == ("abuse report 42", 0, None)


def test_the_table_refuses_nonsense(clean_db: Engine) -> None:
    with pytest.raises(sa.exc.IntegrityError), Session(clean_db) as s, s.begin():
        s.add(SipBlock(address="x", failures=0, reason="", node="",
                       unblocked_at=dt.datetime.now(dt.UTC)))  # fmt: skip
    with pytest.raises(sa.exc.IntegrityError), Session(clean_db) as s, s.begin():
        s.add(SipBlock(address="y", failures=-1, reason="", node=""))


# --- addresses and the rendered ACL --------------------------------------------------------------


def test_blocks_are_checked_and_canonical() -> None:
    assert checked_block(" 203.0.113.5 ") == "203.0.113.5"
    assert checked_block("203.0.113.5/32") == "203.0.113.5"
    assert checked_block("203.0.113.77/24") == "203.0.113.0/24"
    assert checked_block("[2001:DB8::5]") == "2001:db8::5"
    assert checked_block("::ffff:203.0.113.5") == "203.0.113.5"
    assert checked_block("2001:db8::/48") == "2001:db8::/48"
    for bad, why in (("0.0.0.0/0", "wider than /8"), ("10.0.0.0/7", "wider than /8"),
                     ("2001::/16", "wider than /32"), ("sip.example", "not an IP"),
                     ("203.0.113.5/33", "not an IP"), ("", "not an IP")):  # fmt: skip
        with pytest.raises(AddressError, match=why):
            checked_block(bad)


def test_acl_rules_deny_then_permit_the_allow_list() -> None:
    allow = AllowList.parse(["127.0.0.1/32", "::1/128", "192.168.1.0/24"])
    ctx = acl_context(["2001:db8::5", "203.0.113.0/24", "198.51.100.7", "198.51.100.7"], allow)
    assert ctx == {
        "blocked": ["198.51.100.7/255.255.255.255", "203.0.113.0/255.255.255.0",
                    "2001:db8::5/128"],
        "allowed": ["127.0.0.1/255.255.255.255", "192.168.1.0/255.255.255.0", "::1/128"],
    }  # fmt: skip
    assert allow.overlaps(ipaddress_network("192.168.0.0/16")) is not None
    assert allow.overlaps(ipaddress_network("192.168.2.0/24")) is None


def ipaddress_network(text: str) -> Any:
    import ipaddress

    return ipaddress.ip_network(text)


def test_the_rendered_blocklist() -> None:
    settings = sample.settings({"CALLCENTER_SECURITY__ALLOW": "127.0.0.1/32,10.1.0.0/16"})
    blocked = ["203.0.113.5", "10.0.0.0/8"]
    out = render(settings, sample.AGENTS, sample.QUEUES, sample.TRUNKS,
                 RenderOptions(directory=Path("/srv/cc")), blocked=blocked)  # fmt: skip
    # The bridge renders acl.conf alone: byte for byte what the whole set has.
    assert render_acl(settings, blocked) == out["acl.conf"]
    acl = conffile.parse(out["acl.conf"].decode(), "acl.conf")
    (section,) = acl.sections
    assert section.name == "sip-blocklist"
    rules = [(e.key, e.value) for e in section.entries]
    assert rules == [
        ("permit", "0.0.0.0/0.0.0.0"), ("permit", "::/0"),
        ("deny", "10.0.0.0/255.0.0.0"), ("deny", "203.0.113.5/255.255.255.255"),
        ("permit", "10.1.0.0/255.255.0.0"), ("permit", "127.0.0.1/255.255.255.255"),
    ]  # fmt: skip
    pjsip = conffile.parse(out["pjsip.conf"].decode(), "pjsip.conf")
    (acl_object,) = [s for s in pjsip.sections if s.get("type") == ["acl"]]
    assert (acl_object.name, acl_object.one("acl")) == ("sip-blocklist", "sip-blocklist")
    assert b"load = res_pjsip_acl.so" in out["modules.conf"]
    # Nothing blocked: the section is still there (an undefined named ACL refuses everyone).
    empty = render_acl(settings, [])
    assert b"[sip-blocklist]\npermit = 0.0.0.0/0.0.0.0\npermit = ::/0\n" in empty
    assert b"\ndeny" not in empty
    with pytest.raises(RenderError, match="SIP blocklist: 'nonsense' is not an IP"):
        render_acl(settings, ["nonsense"])


def test_the_blocklist_is_written_where_the_private_instance_is(tmp_path: Path) -> None:
    settings = sample.settings({"CALLCENTER_ASTERISK__DIRECTORY": str(tmp_path)})
    first = blocklist.apply(settings, ["203.0.113.5"])
    assert not first.written
    assert "no private Asterisk" in first.detail
    (tmp_path / "etc").mkdir()
    done = blocklist.apply(settings, ["203.0.113.5"])
    assert (done.written, done.reloaded) == (True, False)
    assert "not running" in done.detail
    assert b"deny = 203.0.113.5/255.255.255.255" in (tmp_path / "etc" / "acl.conf").read_bytes()
    assert not blocklist.apply(settings, ["203.0.113.5"]).written  # unchanged: not rewritten
    assert blocklist.apply(settings, []).written
    remote = sample.settings({"CALLCENTER_ASTERISK__DIRECTORY": str(tmp_path),
                              "CALLCENTER_NODES__LOCAL__HOST": "192.0.2.10"})  # fmt: skip
    assert "nothing to change here" in blocklist.apply(remote, ["203.0.113.5"]).detail


# --- the monitor ------------------------------------------------------------------------------


class Sink:
    """What the monitor publishes, kept in order."""

    def __init__(self) -> None:
        self.retained: dict[str, dict[str, Any]] = {}
        self.events: list[tuple[str, dict[str, Any]]] = []

    def retain(self, topic: str, payload: dict[str, Any]) -> None:
        self.retained[topic] = payload

    def event(self, topic: str, payload: dict[str, Any]) -> None:
        self.events.append((topic, payload))


def recorded_security_events() -> list[ev.UnknownEvent]:
    return [
        e for e in traces.events("security") if isinstance(e, ev.UnknownEvent) and e.name in NAMES
    ]


def monitor_settings(settings: config.Settings, **security: Any) -> config.Settings:
    return dataclasses.replace(
        settings,
        security=dataclasses.replace(settings.security, **{"threshold": 5, **security}),
        mqtt=dataclasses.replace(settings.mqtt, topic_prefix="cct"),
    )


async def test_the_monitor_writes_blocks_publishes_and_renders(
    clean_db: Engine, settings: config.Settings
) -> None:
    applied: list[list[str]] = []

    def apply(blocked: list[str]) -> blocklist.Applied:
        applied.append(list(blocked))
        return blocklist.Applied(True, True, "test")

    now = [1.0]
    sink = Sink()
    m = SecurityMonitor(monitor_settings(settings, block=True), sink, clock=lambda: now[0],
                        apply_acl=apply)  # fmt: skip
    await m.round()  # at start: the (empty) list, and the ACL made the table's
    assert sink.retained["cct/security/alerts"]["count"] == 0
    assert applied == [[]]
    for event in recorded_security_events():
        m.handle(event)
    assert m.counters.failures == 8
    assert m.counters.blocks == 1
    assert [(p["change"], p["address"]) for _, p in sink.events] == [
        ("raised", "127.0.0.2"), ("blocked", "127.0.0.2")
    ]  # fmt: skip
    now[0] = recorded_security_events()[-1].time
    await m.round()
    assert applied[-1] == ["127.0.0.2"]
    r = row(clean_db, "127.0.0.2")
    assert store.status(r) == "blocked"
    # The alert as it was decided: later failures go out with an update (at most every 5 s)
    # or when the alert ends.
    assert r.failures == 5
    listed = sink.retained["cct/security/alerts"]
    assert [(a["address"], a["blocked"]) for a in listed["alerts"]] == [("127.0.0.2", True)]
    # An operator unblocks; the next refresh reads it back: the alert ends, the ACL follows.
    with Session(clean_db) as s, s.begin():
        assert store.unblock(s, "127.0.0.2", now=now[0])
    now[0] += REFRESH
    await m.round()
    assert applied[-1] == []
    assert sink.retained["cct/security/alerts"]["count"] == 0
    assert sink.events[-1][1]["change"] == "cleared"
    assert m.detector.alert_count() == 0
    await m.round()  # the ended alert's last count goes out with the next round
    assert row(clean_db, "127.0.0.2").failures == 7
    # Nothing more to do: a round with nothing pending writes nothing (rows unchanged).
    await m.round()
    assert row(clean_db, "127.0.0.2").failures == 7


async def test_without_block_nothing_touches_the_acl_and_quiet_means_no_io(
    clean_db: Engine, settings: config.Settings
) -> None:
    def apply(blocked: list[str]) -> blocklist.Applied:
        raise AssertionError("no ACL without [security] block")

    sink = Sink()
    m = SecurityMonitor(monitor_settings(settings), sink, clock=lambda: 2e9, apply_acl=apply)
    await m.round()
    assert m._engine is None  # no failure ever: no database at all
    for event in recorded_security_events():
        m.handle(event)
    assert [p["change"] for _, p in sink.events] == ["raised"]
    await m.round()
    assert store.status(row(clean_db, "127.0.0.2")) == "alerted"


async def test_a_database_away_keeps_the_alerts_for_later(
    settings: config.Settings, caplog: pytest.LogCaptureFixture
) -> None:
    away = dataclasses.replace(
        monitor_settings(settings),
        database=config.DatabaseSettings(
            url="postgresql+psycopg://postgres@127.0.0.1:1/none", connect_timeout=1.0
        ),
    )
    sink = Sink()
    last = recorded_security_events()[-1].time
    m = SecurityMonitor(away, sink, clock=lambda: last)
    for event in recorded_security_events():
        m.handle(event)
    with caplog.at_level(logging.WARNING, logger="callcenter.security.service"):
        await m.round()
        await m.round()
    assert m.counters.db_errors == 2
    warned = [r for r in caplog.records if "cannot write or apply SIP blocks" in r.message]
    assert len(warned) == 1  # once per outage, not per round
    assert "127.0.0.2" in m._pending  # kept for the next try
    # MQTT does not wait for the database.
    assert sink.retained["cct/security/alerts"]["count"] == 1


async def test_a_bad_security_event_is_counted_not_raised(settings: config.Settings) -> None:
    m = SecurityMonitor(monitor_settings(settings), Sink())
    m.handle(ev.UnknownEvent("local", 1.0, "InvalidPassword", {"Event": "InvalidPassword"}))
    bad = {"Event": "InvalidPassword", "RemoteAddress": "IPV4/TCP/x/1"}
    m.handle(ev.UnknownEvent("local", 1.0, "InvalidPassword", bad))
    assert (m.counters.malformed, m.counters.events) == (2, 0)
    await asyncio.sleep(0)
