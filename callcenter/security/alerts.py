"""The MQTT side of SIP attack alerts: what the bridge publishes, what the wallboard reads.

Two topics (``<prefix>`` is ``mqtt.topic_prefix``):

- ``<prefix>/security/alerts``, retained, ``type`` ``sip_alerts``: every active alert (at most
  :data:`LISTED`, the most recent first) and their ``count``;
- ``<prefix>/security/events``, not retained, ``type`` ``sip_alert``: one per alert raised,
  address blocked or alert ended (``change``: ``raised``, ``blocked``, ``cleared``).

One retained topic for all alerts rather than one per address: a restarted bridge publishes
its (empty) list at once and so replaces whatever its predecessor left, and a flood of
addresses is one bounded message. The list is republished at most once a second, only when it
changed. The wallboard shows :func:`banner` of it; integrations that page someone follow
``security/events``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from callcenter.security.detector import Offender

VERSION = 1
#: Alerts listed in the retained payload (``count`` has them all).
LISTED = 20
#: Addresses the board's banner names before "and N more".
BANNER_NAMED = 3


def topic(prefix: str) -> str:
    return f"{prefix}/security/alerts"


def events_topic(prefix: str) -> str:
    return f"{prefix}/security/events"


def offender_json(o: Offender) -> dict[str, Any]:
    return {
        "address": o.address, "node": o.node, "first_seen": o.first_seen,
        "last_seen": o.last_seen, "failures": o.failures, "kinds": dict(o.kinds),
        "accounts": list(o.accounts), "services": list(o.services), "allowed": o.allowed,
        "blocked": o.blocked,
    }  # fmt: skip


def alerts_payload(alerts: Sequence[Offender], at: float) -> dict[str, Any]:
    """The retained list: ``alerts`` most recent first, as :meth:`Detector.alerts` gives."""
    return {
        "v": VERSION,
        "type": "sip_alerts",
        "at": at,
        "count": len(alerts),
        "alerts": [offender_json(o) for o in alerts[:LISTED]],
    }


def event_payload(change: str, offender: Offender, at: float) -> dict[str, Any]:
    """One transition: ``change`` is ``raised``, ``blocked`` or ``cleared``."""
    return {"v": VERSION, "type": "sip_alert", "change": change, "at": at,
            **offender_json(offender)}  # fmt: skip


# --- the wallboard's side ---------------------------------------------------------------------


class AlertsPayloadError(ValueError):
    """Not a ``sip_alerts`` payload the wallboard can read."""


@dataclass(frozen=True, slots=True)
class AlertLive:
    address: str
    failures: int
    blocked: bool
    allowed: bool
    last_seen: float


@dataclass(frozen=True, slots=True)
class SipAlerts:
    """The record the wallboard keeps of ``<prefix>/security/alerts``."""

    count: int
    alerts: tuple[AlertLive, ...]
    at: float


def alerts_of(p: Mapping[str, Any]) -> SipAlerts:
    """The record in a decoded ``sip_alerts`` payload; :class:`AlertsPayloadError` naming
    what is wrong. Fields the board does not use are ignored."""
    count, items, at = p.get("count"), p.get("alerts"), p.get("at")
    if type(count) is not int or count < 0:
        raise AlertsPayloadError("count: expected a whole number")
    if not isinstance(items, list):
        raise AlertsPayloadError("alerts: expected a list")
    if isinstance(at, bool) or not isinstance(at, int | float):
        raise AlertsPayloadError("at: expected a number")
    out = []
    for item in items:
        if not isinstance(item, dict):
            raise AlertsPayloadError("alerts: expected objects")
        address, failures, last = item.get("address"), item.get("failures"), item.get("last_seen")
        if not isinstance(address, str) or type(failures) is not int:
            raise AlertsPayloadError("an alert needs address (text) and failures (a number)")
        if isinstance(last, bool) or not isinstance(last, int | float):
            raise AlertsPayloadError("an alert's last_seen: expected a number")
        out.append(
            AlertLive(address, failures, item.get("blocked") is True, item.get("allowed") is True,
                      float(last))
        )  # fmt: skip
    return SipAlerts(count=max(count, len(out)), alerts=tuple(out), at=float(at))


def banner(alerts: SipAlerts | None) -> str:
    """The board's one-line warning: ``""`` without alerts, else e.g. ``SIP login attack:
    203.0.113.5 (57 failed, blocked), 198.51.100.7 (12 failed) and 2 more: see `callcenter
    security list`.``"""
    if alerts is None or not alerts.count:
        return ""
    named = []
    for a in alerts.alerts[:BANNER_NAMED]:
        state = ", blocked" if a.blocked else ", allowed: not blocked" if a.allowed else ""
        named.append(f"{a.address} ({a.failures} failed{state})")
    more = alerts.count - len(named)
    tail = f" and {more} more" if more > 0 else ""
    return f"SIP login attack: {', '.join(named)}{tail}: see `callcenter security list`."
