"""A campaign's live snapshot on MQTT: the figures, the JSON payload, the topic. Pure.

The dialer service publishes one retained message per campaign on
``<prefix>/campaigns/<campaign>`` (QoS 1, at most once a second per campaign, on every change
while it holds the campaign's lease, and once with state ``stopped``/``paused`` when it stops
working it); an empty retained payload deletes the campaign from boards. Boards (the
wallboard) read it back with :func:`parse_campaign_payload`. The payload is documented in
``docs/events.md`` (``campaign``)::

    {"v": 1, "type": "campaign", "campaign": "renewals", "mode": "predictive",
     "state": "running", "queue": "sales", "paced": "predictive", "reason": "...",
     "dialling": 2, "ringing": 5, "waiting": 0, "connected": 7, "messages": 1,
     "agents": {"logged_in": 10, "free": 1, "busy": 7, "wrap_up": 1, "paused": 1},
     "today": {"attempts": 812, "live": 160, "connected": 156, "abandoned": 4},
     "window": {"days": 30, "live": 3120, "abandoned": 71, "rate": 0.0228},
     "life": {"live": 3120, "abandoned": 71, "rate": 0.0228},
     "cap": 0.03, "target": 0.025, "budget_left": 22.6, "contacts_left": 4211,
     "dialer": "host:1234", "at": 1796601600.5}

The rates are not fields of :class:`CampaignFigures`: they are derived from the counts
(abandoned / live, ``None`` when live is 0), so a payload's rate can never disagree with its
own counts once read. Fields a reader does not know are ignored (fields are only ever added
within a version); a missing or mistyped one is a :class:`CampaignPayloadError`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

VERSION = 1
TYPE = "campaign"
#: The campaign name's alphabet (as ``callcenter.campaigns.store``): it needs no encoding in a
#: topic level.
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
#: As ``callcenter.db.models_campaigns`` (a test keeps them in step; this module stays free
#: of the database layer so that boards can import it).
MODES = ("preview", "progressive", "predictive", "agentless")
STATES = ("stopped", "running", "paused")
#: How the pacer is dialling now; ``idle``: nothing to dial (outside calling hours, no
#: contacts due, no agents).
PACED = ("progressive", "predictive", "preview", "agentless", "idle")


class CampaignPayloadError(ValueError):
    """A campaign payload that is not a version-1 snapshot this module can read."""


@dataclass(frozen=True, slots=True)
class AgentCounts:
    """The campaign queue's logged-in agents by state, as the bridge sees them."""

    logged_in: int
    free: int
    busy: int
    wrap_up: int
    paused: int


@dataclass(frozen=True, slots=True)
class DayFigures:
    """Today (site time zone): attempts dialled, live answers, connected to an agent,
    abandoned."""

    attempts: int
    live: int
    connected: int
    abandoned: int


@dataclass(frozen=True, slots=True)
class RateFigures:
    """Live answers and abandons over a period: the rolling window of ``days`` days ending
    today (``window``), or the campaign's life since its first start (``life``: no
    ``days``)."""

    live: int
    abandoned: int
    days: int | None = None

    @property
    def rate(self) -> float | None:
        return rate(self.abandoned, self.live)


@dataclass(frozen=True, slots=True)
class CampaignFigures:
    """Everything a campaign's snapshot says, field for field (rates derived, see the
    module's docstring). ``queue`` is None for an agentless campaign without one;
    ``budget_left`` may be negative (boards show 0); ``at`` is epoch seconds."""

    campaign: str
    mode: str
    state: str
    queue: str | None
    paced: str
    reason: str
    dialling: int
    ringing: int
    waiting: int
    connected: int
    messages: int
    agents: AgentCounts
    today: DayFigures
    window: RateFigures
    life: RateFigures
    cap: float
    target: float
    budget_left: float
    contacts_left: int
    dialer: str
    at: float


def rate(abandoned: int, live: int) -> float | None:
    """The abandon rate as a fraction; None when nobody answered (no rate, not 0%)."""
    return abandoned / live if live else None


def campaign_topic(prefix: str, campaign: str) -> str:
    """``<prefix>/campaigns/<campaign>``; a name outside the campaigns' alphabet (which
    would need encoding, or match a wildcard) is a :class:`CampaignPayloadError`."""
    if not NAME_RE.match(campaign):
        raise CampaignPayloadError(f"campaign name {campaign!r} is not [a-z0-9_-] (at most 64)")
    return f"{prefix}/campaigns/{campaign}"


def campaign_payload(f: CampaignFigures) -> dict[str, Any]:
    """The JSON object of ``f`` (encode it with :func:`encode_campaign_payload`). The window
    must say its ``days`` and the life must not (:class:`CampaignPayloadError`)."""
    a, t, w, life = f.agents, f.today, f.window, f.life
    if w.days is None or life.days is not None:
        raise CampaignPayloadError("window.days is required, and the life has no days")
    return {
        "v": VERSION, "type": TYPE, "campaign": f.campaign, "mode": f.mode, "state": f.state,
        "queue": f.queue, "paced": f.paced, "reason": f.reason,
        "dialling": f.dialling, "ringing": f.ringing, "waiting": f.waiting,
        "connected": f.connected, "messages": f.messages,
        "agents": {"logged_in": a.logged_in, "free": a.free, "busy": a.busy,
                   "wrap_up": a.wrap_up, "paused": a.paused},
        "today": {"attempts": t.attempts, "live": t.live, "connected": t.connected,
                  "abandoned": t.abandoned},
        "window": {"days": w.days, "live": w.live, "abandoned": w.abandoned, "rate": w.rate},
        "life": {"live": life.live, "abandoned": life.abandoned, "rate": life.rate},
        "cap": f.cap, "target": f.target, "budget_left": f.budget_left,
        "contacts_left": f.contacts_left, "dialer": f.dialer, "at": f.at,
    }  # fmt: skip


def encode_campaign_payload(f: CampaignFigures) -> bytes:
    """The payload as published: compact UTF-8 JSON, as the bridge's (orjson)."""
    return orjson.dumps(campaign_payload(f))


# --- reading -----------------------------------------------------------------------------


def _field(p: Mapping[str, Any], key: str, where: str = "") -> Any:
    if key not in p:
        raise CampaignPayloadError(f"{where}{key}: missing")
    return p[key]


def _count(p: Mapping[str, Any], key: str, where: str = "") -> int:
    value = _field(p, key, where)
    # bool is an int in Python: a count that arrives as true/false is still wrong.
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise CampaignPayloadError(f"{where}{key}: expected a count (an integer >= 0)")
    return value


def _number(p: Mapping[str, Any], key: str, where: str = "") -> float:
    value = _field(p, key, where)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise CampaignPayloadError(f"{where}{key}: expected a number")
    return float(value)


def _fraction(p: Mapping[str, Any], key: str, where: str = "") -> float:
    value = _number(p, key, where)
    if not 0 <= value <= 1:
        raise CampaignPayloadError(f"{where}{key}: expected a fraction in [0, 1], got {value}")
    return value


def _text(p: Mapping[str, Any], key: str, optional: bool = False) -> str | None:
    value = _field(p, key)
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise CampaignPayloadError(f"{key}: expected a string")
    return value


def _str(p: Mapping[str, Any], key: str) -> str:
    return str(_text(p, key))


def _one_of(p: Mapping[str, Any], key: str, allowed: tuple[str, ...]) -> str:
    value = _str(p, key)
    if value not in allowed:
        raise CampaignPayloadError(f"{key}: {value!r} is not one of {', '.join(allowed)}")
    return value


def _object(p: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = _field(p, key)
    if not isinstance(value, dict):
        raise CampaignPayloadError(f"{key}: expected an object")
    return value


def _abandons(p: Mapping[str, Any], where: str) -> tuple[int, int]:
    """(live, abandoned) of a period, with its rate checked: null exactly when live is 0,
    else a fraction (its value is derived again from the counts)."""
    live, abandoned = _count(p, "live", where), _count(p, "abandoned", where)
    if abandoned > live:
        raise CampaignPayloadError(f"{where}abandoned: {abandoned} is more than live {live}")
    if live == 0:
        if _field(p, "rate", where) is not None:
            raise CampaignPayloadError(f"{where}rate: must be null when live is 0")
    else:
        _fraction(p, "rate", where)
    return live, abandoned


def figures_of(payload: object) -> CampaignFigures:
    """The figures of a decoded payload (a JSON object); :class:`CampaignPayloadError` says
    what is wrong."""
    if not isinstance(payload, dict):
        raise CampaignPayloadError("not a JSON object")
    if payload.get("v") != VERSION:
        raise CampaignPayloadError(f"payload version {payload.get('v')!r} is not {VERSION}")
    if payload.get("type") != TYPE:
        raise CampaignPayloadError(f"payload type {payload.get('type')!r} is not {TYPE!r}")
    p = payload
    name = _str(p, "campaign")
    if not NAME_RE.match(name):
        raise CampaignPayloadError(f"campaign: {name!r} is not a campaign name")
    agents, today = _object(p, "agents"), _object(p, "today")
    window, life = _object(p, "window"), _object(p, "life")
    w_live, w_abandoned = _abandons(window, "window.")
    l_live, l_abandoned = _abandons(life, "life.")
    days = _count(window, "days", "window.")
    if days < 1:
        raise CampaignPayloadError("window.days: expected 1 or more")
    return CampaignFigures(
        campaign=name, mode=_one_of(p, "mode", MODES), state=_one_of(p, "state", STATES),
        queue=_text(p, "queue", optional=True), paced=_one_of(p, "paced", PACED),
        reason=_str(p, "reason"), dialling=_count(p, "dialling"), ringing=_count(p, "ringing"),
        waiting=_count(p, "waiting"), connected=_count(p, "connected"),
        messages=_count(p, "messages"),
        agents=AgentCounts(**{k: _count(agents, k, "agents.") for k in
                              ("logged_in", "free", "busy", "wrap_up", "paused")}),
        today=DayFigures(**{k: _count(today, k, "today.") for k in
                            ("attempts", "live", "connected", "abandoned")}),
        window=RateFigures(live=w_live, abandoned=w_abandoned, days=days),
        life=RateFigures(live=l_live, abandoned=l_abandoned),
        cap=_fraction(p, "cap"), target=_fraction(p, "target"),
        budget_left=_number(p, "budget_left"), contacts_left=_count(p, "contacts_left"),
        dialer=_str(p, "dialer"), at=_number(p, "at"),
    )  # fmt: skip


def parse_campaign_payload(data: bytes) -> CampaignFigures:
    """The figures of a published payload (bytes as received). An empty payload is MQTT's
    delete, not a snapshot: the caller handles it before; here it is an error like any
    other unreadable payload."""
    try:
        decoded = json.loads(data)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise CampaignPayloadError(f"not JSON: {exc}") from exc
    return figures_of(decoded)
