"""Asterisk's security events, from AMI frames to typed records.

Asterisk raises them from ``main/security_events.c`` (class ``security``: the bridge's AMI user
must read it, manager.conf.j2). They go to AMI with no module loaded for them (manager.c
forwards the whole security topic; ``res_security_log`` only writes them to a log channel).
Every one carries, as the event's headers: ``EventTV``, ``Severity`` (``Informational`` |
``Error``), ``Service`` (``PJSIP``, ``AMI``...), ``EventVersion``, ``AccountID``,
``SessionID``, ``LocalAddress``, ``RemoteAddress``; optionally ``Module``, ``SessionTV`` and
per event a few more (FailedACL ``ACLName``, ChallengeResponseFailed ``Challenge``,
``Response``, ``ExpectedResponse``...). Empty strings are sent as ``Key: `` (as any field).

The failures that count (:data:`FAILURES`), as res_pjsip raises them in Asterisk 22
(``res/res_pjsip/pjsip_distributor.c``):

- ``InvalidAccountID``: a request whose From user names no endpoint (the scanner's guess).
  Asterisk then challenges it anyway (the "artificial endpoint", so that accounts cannot be
  told from non-accounts): the authenticated retry raises ``InvalidAccountID`` again and
  fails as ``ChallengeResponseFailed`` with ``AccountID: <unknown>`` (recorded:
  tests/fixtures/asterisk-traces/security). With ``auth_username`` among the endpoint
  identifiers it is raised only after ``unidentified_request_count`` such requests (we do not
  use it).
- ``ChallengeResponseFailed``: a wrong password for an existing endpoint (``AccountID`` is
  the endpoint).
- ``FailedACL``: an endpoint's own ``acl``/``contact_acl``, or the registrar refusing
  contacts (``ACLName`` says which). The global ACL our blocklist uses (pjsip.conf
  ``type = acl``) answers 403 and raises no event at all.
- ``InvalidPassword``: AMI logins (``Service: AMI``) with a wrong secret.

``RemoteAddress`` is ``ast_json_ipaddr``'s (``main/json.c``): ``IPV4/`` or ``IPV6/`` (an
IPv4-mapped address is IPV4 and printed as a plain IPv4 address), then the transport and a
slash unless it has none (``UDP``, ``TCP``, ``TLS``, ``WS``, ``WSS``), then the address
*without* brackets (``getnameinfo``: ``2001:db8::1``, a link-local one with its ``%scope``),
``/`` and the port. :func:`parse_remote_address` takes all of those, and brackets or a missing
port as well.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from callcenter.ami import events as ev

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: The events that count as a failed attempt from their ``RemoteAddress``.
FAILURES = frozenset(
    {"InvalidAccountID", "ChallengeResponseFailed", "InvalidPassword", "FailedACL"}
)

#: Every security event name Asterisk 22 has (``sec_events`` of main/security_events.c): the
#: bridge hands only these to the monitor; the ones not in :data:`FAILURES` (a challenge
#: sent, a login that worked...) are only counted.
NAMES = FAILURES | frozenset(
    {
        "SessionLimit", "MemoryLimit", "LoadAverageLimit", "RequestNotSupported",
        "RequestNotAllowed", "AuthMethodNotAllowed", "RequestBadFormat", "SuccessfulAuth",
        "UnexpectedAddress", "ChallengeSent", "InvalidTransport",
    }
)  # fmt: skip

TRANSPORTS = frozenset({"UDP", "TCP", "TLS", "WS", "WSS"})


@dataclass(frozen=True, slots=True)
class RemoteAddress:
    """A parsed ``RemoteAddress``: the address (IPv4-mapped ones as IPv4, without a scope),
    the transport (``""`` when Asterisk gave none) and the port (``None`` when absent)."""

    ip: IPAddress
    transport: str
    port: int | None


@dataclass(frozen=True, slots=True)
class SecurityEvent:
    """One security event of a node. ``address`` is ``str(remote.ip)``, the key failures are
    counted by; ``time`` the event's (``Timestamp``, else when the bridge read it)."""

    node: str
    time: float
    name: str
    service: str
    account: str
    session: str
    remote: RemoteAddress
    severity: str = ""
    acl_name: str = ""

    @property
    def address(self) -> str:
        return str(self.remote.ip)

    @property
    def failure(self) -> bool:
        return self.name in FAILURES


class SecurityEventError(ValueError):
    """A security event whose fields cannot be read; the message says which and why."""


def parse_ip(text: str) -> IPAddress:
    """An address as Asterisk or an operator writes it: brackets and an IPv6 ``%scope``
    allowed and dropped, an IPv4-mapped IPv6 address made IPv4. :class:`ValueError` when it
    is not an IP address."""
    host = text.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    host = host.split("%", 1)[0]  # a link-local address's zone: not part of the address
    ip = ipaddress.ip_address(host)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def parse_remote_address(text: str) -> RemoteAddress:
    """``IPV4/UDP/203.0.113.5/5060``, ``IPV6/TLS/2001:db8::1/5061``, ``IPV4/10.0.0.1/5060``
    (no transport) -> :class:`RemoteAddress`; :class:`ValueError` naming the text otherwise.

    An IPv6 address has no ``/``, so the slashes split the parts unambiguously."""
    parts = text.strip().split("/")
    if parts and parts[0].upper() in ("IPV4", "IPV6"):
        parts = parts[1:]
    transport = ""
    if parts and parts[0].upper() in TRANSPORTS:
        transport, parts = parts[0].upper(), parts[1:]
    port: int | None = None
    if len(parts) == 2 and parts[1].isdigit() and int(parts[1]) <= 65535:
        port = int(parts[1])
        parts = parts[:1]
    if len(parts) != 1 or not parts[0]:
        raise ValueError(f"RemoteAddress {text!r} is not [IPV4|IPV6/][transport/]address[/port]")
    try:
        ip = parse_ip(parts[0])
    except ValueError:
        raise ValueError(f"RemoteAddress {text!r}: {parts[0]!r} is not an IP address") from None
    return RemoteAddress(ip, transport, port)


def from_fields(node: str, time: float, fields: Mapping[str, str]) -> SecurityEvent:
    """The event in an AMI frame's fields (``Event`` one of :data:`NAMES`);
    :class:`SecurityEventError` when ``Event`` or ``RemoteAddress`` is missing or unreadable.
    Other missing fields read as ``""``: which ones an event carries varies by event."""
    name = fields.get("Event", "")
    if name not in NAMES:
        raise SecurityEventError(f"{name!r} is not a security event")
    raw = fields.get("RemoteAddress")
    if raw is None:
        raise SecurityEventError(f"{name} without RemoteAddress")
    try:
        remote = parse_remote_address(raw)
    except ValueError as exc:
        raise SecurityEventError(f"{name}: {exc}") from None
    return SecurityEvent(
        node=node,
        time=time,
        name=name,
        service=fields.get("Service", ""),
        account=fields.get("AccountID", ""),
        session=fields.get("SessionID", ""),
        remote=remote,
        severity=fields.get("Severity", ""),
        acl_name=fields.get("ACLName", ""),
    )


def from_event(event: ev.UnknownEvent) -> SecurityEvent:
    """:func:`from_fields` of an event the bridge did not model (security events are not)."""
    return from_fields(event.node, event.time, event.fields)
