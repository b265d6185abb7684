"""The bridge's MQTT payloads as frozen, typed records: raw JSON stops here.

Each parser takes the decoded JSON object of one message (``"v": 1`` and a ``"type"``, see
:mod:`callcenter.bridge.publisher`) and returns a record, or raises :class:`PayloadError`
saying what is wrong. Fields the wallboard does not use are ignored, so the bridge may add
fields without breaking it; a missing or mistyped field it uses is an error.

Campaign snapshots (``"type": "campaign"``, published by the dialer) are read by
:mod:`callcenter.campaigns.snapshot`, the module that writes them: their record is its
:class:`~callcenter.campaigns.snapshot.CampaignFigures`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from callcenter.campaigns.snapshot import CampaignFigures, CampaignPayloadError, figures_of
from callcenter.security.alerts import AlertsPayloadError, SipAlerts, alerts_of

VERSION = 1


class PayloadError(ValueError):
    """A message that is not a payload of version 1 the wallboard can read."""


@dataclass(frozen=True, slots=True)
class QueueLive:
    """One queue on one node, as app_queue sees it now (counts of agents by state)."""

    node: str
    queue: str
    waiting: int
    longest_wait_since: float | None
    logged_in: int
    available: int
    ringing: int
    on_call: int
    wrap_up: int
    paused: int
    unavailable: int


@dataclass(frozen=True, slots=True)
class AgentLive:
    """One agent on one node. ``since`` is when ``state`` began (epoch seconds); ``call`` is
    the caller's uniqueid while the agent is on a queue call."""

    node: str
    agent: str
    interface: str
    state: str
    reason: str | None
    since: float
    call: str | None
    call_queue: str | None
    queues: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class NodeLive:
    """Whether the bridge is connected to that Asterisk, since when, and why not."""

    node: str
    connected: bool
    detail: str
    since: float


@dataclass(frozen=True, slots=True)
class CallLive:
    """What the board shows of a call: who is calling (on the agent's row)."""

    node: str
    uniqueid: str
    caller_number: str
    caller_name: str
    closed: bool


@dataclass(frozen=True, slots=True)
class BridgeLive:
    online: bool


Record = QueueLive | AgentLive | NodeLive | CallLive | BridgeLive | CampaignFigures | SipAlerts


def _get(p: Mapping[str, Any], key: str, kind: type | tuple[type, ...], optional: bool) -> Any:
    value = p.get(key)
    if value is None and optional:
        return None
    # bool is an int in Python; a count or a time that arrives as true/false is still wrong.
    if isinstance(value, bool) and kind is not bool:
        raise PayloadError(f"{key}: expected {kind}, got a boolean")
    if not isinstance(value, kind):
        raise PayloadError(f"{key}: expected {kind}, got {type(value).__name__}")
    return value


def _str(p: Mapping[str, Any], key: str) -> str:
    return str(_get(p, key, str, False))


def _opt_str(p: Mapping[str, Any], key: str) -> str | None:
    value = _get(p, key, str, True)
    return None if value is None else str(value)


def _int(p: Mapping[str, Any], key: str) -> int:
    return int(_get(p, key, int, False))


def _num(p: Mapping[str, Any], key: str) -> float:
    return float(_get(p, key, (int, float), False))


def _opt_num(p: Mapping[str, Any], key: str) -> float | None:
    value = _get(p, key, (int, float), True)
    return None if value is None else float(value)


def _queue(p: Mapping[str, Any]) -> QueueLive:
    return QueueLive(
        node=_str(p, "node"), queue=_str(p, "queue"), waiting=_int(p, "waiting"),
        longest_wait_since=_opt_num(p, "longest_wait_since"), logged_in=_int(p, "logged_in"),
        available=_int(p, "available"), ringing=_int(p, "ringing"), on_call=_int(p, "on_call"),
        wrap_up=_int(p, "wrap_up"), paused=_int(p, "paused"),
        unavailable=_int(p, "unavailable"),
    )  # fmt: skip


def _agent(p: Mapping[str, Any]) -> AgentLive:
    queues = _get(p, "queues", dict, True) or {}
    return AgentLive(
        node=_str(p, "node"), agent=_str(p, "agent"), interface=_str(p, "interface"),
        state=_str(p, "state"), reason=_opt_str(p, "reason"), since=_num(p, "since"),
        call=_opt_str(p, "call"), call_queue=_opt_str(p, "call_queue"),
        queues=tuple(sorted(str(q) for q in queues)),
    )  # fmt: skip


def _node(p: Mapping[str, Any]) -> NodeLive:
    return NodeLive(
        node=_str(p, "node"), connected=bool(_get(p, "connected", bool, False)),
        detail=_opt_str(p, "detail") or "", since=_num(p, "since"),
    )  # fmt: skip


def _call(p: Mapping[str, Any]) -> CallLive:
    return CallLive(
        node=_str(p, "node"), uniqueid=_str(p, "uniqueid"),
        caller_number=_opt_str(p, "caller_number") or "",
        caller_name=_opt_str(p, "caller_name") or "", closed=bool(_get(p, "closed", bool, False)),
    )  # fmt: skip


def _bridge(p: Mapping[str, Any]) -> BridgeLive:
    return BridgeLive(online=bool(_get(p, "online", bool, False)))


def _campaign(p: Mapping[str, Any]) -> CampaignFigures:
    try:
        return figures_of(p)
    except CampaignPayloadError as exc:
        raise PayloadError(str(exc)) from exc


def _sip_alerts(p: Mapping[str, Any]) -> SipAlerts:
    try:
        return alerts_of(p)
    except AlertsPayloadError as exc:
        raise PayloadError(str(exc)) from exc


_PARSERS: dict[str, Callable[[Mapping[str, Any]], Record]] = {
    "queue": _queue,
    "agent": _agent,
    "node": _node,
    "call": _call,
    "bridge": _bridge,
    "campaign": _campaign,
    "sip_alerts": _sip_alerts,  # the bridge's SIP attack alerts (callcenter.security.alerts)
}


def parse(payload: object) -> Record:
    """The record in a decoded payload; :class:`PayloadError` when there is none."""
    if not isinstance(payload, dict):
        raise PayloadError("not a JSON object")
    if payload.get("v") != VERSION:
        raise PayloadError(f"payload version {payload.get('v')!r} is not {VERSION}")
    parser = _PARSERS.get(str(payload.get("type")))
    if parser is None:
        raise PayloadError(f"unknown payload type {payload.get('type')!r}")
    return parser(payload)
