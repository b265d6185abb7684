"""Asterisk's security events: ``RemoteAddress`` in every form Asterisk 22 writes (and some it
does not), typed events from AMI fields, and the recorded trace
(tests/fixtures/asterisk-traces/security) read event by event."""

from __future__ import annotations

import ipaddress
from collections import Counter

import pytest

from callcenter.ami import events as ev
from callcenter.security.events import (
    FAILURES,
    NAMES,
    RemoteAddress,
    SecurityEventError,
    from_event,
    from_fields,
    parse_remote_address,
)
from tests import traces

V4 = ipaddress.IPv4Address
V6 = ipaddress.IPv6Address


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # What ast_json_ipaddr (main/json.c) writes.
        ("IPV4/UDP/203.0.113.5/5060", RemoteAddress(V4("203.0.113.5"), "UDP", 5060)),
        ("IPV4/TCP/127.0.0.1/39770", RemoteAddress(V4("127.0.0.1"), "TCP", 39770)),
        ("IPV4/TLS/198.51.100.7/5061", RemoteAddress(V4("198.51.100.7"), "TLS", 5061)),
        ("IPV4/WSS/198.51.100.7/8089", RemoteAddress(V4("198.51.100.7"), "WSS", 8089)),
        ("IPV6/UDP/2001:db8::1/5060", RemoteAddress(V6("2001:db8::1"), "UDP", 5060)),
        ("IPV6/WS/2001:db8:0:0:0:0:0:2/80", RemoteAddress(V6("2001:db8::2"), "WS", 80)),
        ("IPV6/UDP/::1/5060", RemoteAddress(V6("::1"), "UDP", 5060)),
        # A link-local address keeps its zone in getnameinfo's output; the zone is dropped.
        ("IPV6/UDP/fe80::1%eth0/5060", RemoteAddress(V6("fe80::1"), "UDP", 5060)),
        # No transport (0, or several): Asterisk leaves the part out.
        ("IPV4/203.0.113.5/5060", RemoteAddress(V4("203.0.113.5"), "", 5060)),
        ("IPV6/2001:db8::1/5060", RemoteAddress(V6("2001:db8::1"), "", 5060)),
        # Lenient: an IPv4-mapped address, brackets, lower case, no port, no prefix.
        ("IPV6/UDP/::ffff:203.0.113.5/5060", RemoteAddress(V4("203.0.113.5"), "UDP", 5060)),
        ("IPV6/UDP/[2001:db8::1]/5060", RemoteAddress(V6("2001:db8::1"), "UDP", 5060)),
        ("ipv4/udp/203.0.113.5/5060", RemoteAddress(V4("203.0.113.5"), "UDP", 5060)),
        ("IPV4/UDP/203.0.113.5", RemoteAddress(V4("203.0.113.5"), "UDP", None)),
        ("203.0.113.5", RemoteAddress(V4("203.0.113.5"), "", None)),
        (" IPV4/UDP/203.0.113.5/5060 ", RemoteAddress(V4("203.0.113.5"), "UDP", 5060)),
    ],
)
def test_remote_addresses(text: str, expected: RemoteAddress) -> None:
    assert parse_remote_address(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "IPV4/UDP/", "(null)", "IPV4/UDP/host.example/5060", "IPV4/UDP/203.0.113.5/5060/x",
     "IPV4/UDP/203.0.113.5/99999", "IPV4/UDP/203.0.113/5060", "IPV6/UDP/2001:db8::g/5060"],
)  # fmt: skip
def test_bad_remote_addresses_say_what(text: str) -> None:
    with pytest.raises(ValueError, match="RemoteAddress"):
        parse_remote_address(text)


def fields(name: str, **more: str) -> dict[str, str]:
    return {
        "Event": name, "Privilege": "security,all", "Severity": "Error", "Service": "PJSIP",
        "EventVersion": "1", "AccountID": "1001", "SessionID": "1-1@203.0.113.5",
        "LocalAddress": "IPV4/UDP/192.0.2.1/5060", "RemoteAddress": "IPV4/UDP/203.0.113.5/5062",
        **more,
    }  # fmt: skip


def test_an_event_from_its_fields() -> None:
    event = from_fields("pbx1", 100.5, fields("ChallengeResponseFailed"))
    assert event.node == "pbx1"
    assert event.time == 100.5
    assert event.address == "203.0.113.5"
    assert event.remote.port == 5062
    assert (event.service, event.account, event.session) == ("PJSIP", "1001", "1-1@203.0.113.5")
    assert event.failure
    acl = from_fields("pbx1", 1.0, fields("FailedACL", ACLName="not_match_endpoint_acl"))
    assert acl.acl_name == "not_match_endpoint_acl"
    assert acl.failure
    assert not from_fields("pbx1", 1.0, fields("ChallengeSent")).failure
    assert not from_fields("pbx1", 1.0, fields("SuccessfulAuth")).failure


def test_events_that_cannot_be_read() -> None:
    with pytest.raises(SecurityEventError, match="not a security event"):
        from_fields("n", 0.0, fields("Newchannel"))
    without = fields("InvalidAccountID")
    del without["RemoteAddress"]
    with pytest.raises(SecurityEventError, match="without RemoteAddress"):
        from_fields("n", 0.0, without)
    with pytest.raises(SecurityEventError, match="InvalidPassword: RemoteAddress 'garbage'"):
        from_fields("n", 0.0, fields("InvalidPassword", RemoteAddress="garbage"))
    # Missing optional fields read as "".
    minimal = {"Event": "InvalidPassword", "RemoteAddress": "IPV4/TCP/127.0.0.1/1"}
    event = from_fields("n", 0.0, minimal)
    assert (event.service, event.account, event.session, event.acl_name) == ("", "", "", "")


def test_the_failures_are_the_four_of_the_brief() -> None:
    assert {"InvalidAccountID", "ChallengeResponseFailed", "InvalidPassword", "FailedACL"} == (
        FAILURES
    )
    assert len(NAMES) == 15  # sec_events of main/security_events.c, Asterisk 22


# --- the recorded trace -----------------------------------------------------------------------


def security_events() -> list[ev.UnknownEvent]:
    return [
        e for e in traces.events("security") if isinstance(e, ev.UnknownEvent) and e.name in NAMES
    ]


def test_every_security_event_of_the_trace_reads() -> None:
    recorded = security_events()
    parsed = [from_event(e) for e in recorded]
    assert Counter(e.name for e in parsed) == {
        "ChallengeSent": 6, "SuccessfulAuth": 5, "ChallengeResponseFailed": 5,
        "InvalidAccountID": 2, "InvalidPassword": 1,
    }  # fmt: skip
    # The bridge's events carry the Timestamp header as their time.
    assert all(e.time > 1.79e9 for e in parsed)
    failures = [e for e in parsed if e.failure]
    by_address = Counter(e.address for e in failures)
    assert by_address == {"127.0.0.2": 7, "127.0.0.1": 1}
    ami = next(e for e in parsed if e.name == "InvalidPassword")
    assert (ami.service, ami.account, ami.remote.transport) == ("AMI", "callcenter", "TCP")
    sip = [e for e in failures if e.service == "PJSIP"]
    assert {e.remote.transport for e in sip} == {"UDP"}
    assert all(e.remote.port for e in sip)
    # An unknown account: InvalidAccountID names the user tried; the failed challenge the
    # "artificial endpoint" answered says <unknown>.
    assert {e.account for e in sip if e.name == "InvalidAccountID"} == {"9999"}
    assert {e.account for e in sip if e.name == "ChallengeResponseFailed"} == {"1001", "<unknown>"}


def test_a_blocked_address_raises_no_event() -> None:
    """Between the block's reload and the unblock's, 127.0.0.2 got 403 (sip-refused.log) and
    Asterisk raised nothing for it: only the allowed phone's login is there."""
    events = traces.events("security")
    reloads = [i for i, e in enumerate(events) if isinstance(e, ev.UnknownEvent)
               and e.name == "Reload" and e.fields.get("Module") == "acl"]  # fmt: skip
    assert len(reloads) == 2
    between = [from_event(e) for e in events[reloads[0] : reloads[1]]
               if isinstance(e, ev.UnknownEvent) and e.name in NAMES]  # fmt: skip
    assert {e.address for e in between} == {"127.0.0.1"}
    refused = (traces.traces_dir() / "security" / "sip-refused.log").read_text()
    assert "SIP/2.0 403 Forbidden" in refused
