"""Campaigns and do-not-call in the database: validation with one-line errors, then writes.

Every function works inside the caller's session and raises :class:`CampaignError` (a
:class:`~callcenter.directory.DirectoryError`, so the CLI reports it as one ``Error:`` line
and exits 1) before anything is flushed, so a failed command writes nothing.
Contact imports are in :mod:`callcenter.campaigns.contacts`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Container, Sequence
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from callcenter.campaigns.numbers import Normaliser, NumberError
from callcenter.campaigns.windows import DAY_NAMES, LEGAL_END, LEGAL_START, CallingWindows
from callcenter.db.models import Queue
from callcenter.db.models_campaigns import (
    ABANDON_CAP_MAX,
    MACHINE_ACTIONS,
    MODES,
    Campaign,
    Contact,
    DoNotCall,
)
from callcenter.directory import DirectoryError

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
#: Modes whose calls go to the agents of a queue.
AGENT_MODES = ("preview", "progressive", "predictive")
RETRY_OUTCOMES = ("busy", "no_answer", "machine", "abandoned", "failed")
MAX_RETRY_SECONDS = 30 * 86400


class CampaignError(DirectoryError):
    """Bad input for a campaign, its contacts or the DNC list; one line for an operator."""


# --- parsing operator input --------------------------------------------------------------


def parse_hours(text: str) -> tuple[dt.time, dt.time]:
    """``09:00-20:30`` -> (09:00, 20:30), inside the legal 08:00-21:00."""
    m = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", text)
    if not m:
        raise CampaignError(f"hours {text!r} must read HH:MM-HH:MM, e.g. 09:00-20:00")
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    try:
        start = dt.time(h1, m1)
        end = dt.time(h2, m2) if (h2, m2) != (24, 0) else dt.time(23, 59, 59)
    except ValueError:
        raise CampaignError(f"hours {text!r} are not times of day") from None
    if start >= end:
        raise CampaignError(f"hours {text!r} must start before they end")
    if start < LEGAL_START or end > LEGAL_END:
        raise CampaignError(
            f"hours {text!r} must lie within 08:00-21:00 (the called person's local time)"
        )
    return start, end


def parse_days(text: str) -> list[int]:
    """``mon-fri,sat`` -> [1, 2, 3, 4, 5, 6]; ``all`` -> every day."""
    text = text.strip().lower()
    if text in ("all", "*"):
        return list(range(1, 8))
    days: set[int] = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        ends = part.split("-")
        if len(ends) > 2 or any(e not in DAY_NAMES for e in ends):
            raise CampaignError(
                f"days {text!r} must be day names (mon..sun), ranges (mon-fri) or 'all'"
            )
        first, last = DAY_NAMES.index(ends[0]) + 1, DAY_NAMES.index(ends[-1]) + 1
        if first > last:
            raise CampaignError(f"days {part!r}: a range runs forwards (mon-fri)")
        days.update(range(first, last + 1))
    if not days:
        raise CampaignError("a campaign needs at least one calling day")
    return sorted(days)


def parse_holidays(text: str) -> list[dt.date]:
    """``2026-12-25,2027-01-01`` -> dates; an empty text clears them."""
    found: set[dt.date] = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        try:
            found.add(dt.date.fromisoformat(part))
        except ValueError:
            raise CampaignError(f"holiday {part!r} is not a date (YYYY-MM-DD)") from None
    return sorted(found)


def _percent(label: str, value: float) -> float:
    """A percentage typed by an operator (3 = 3%) as a fraction, within (0, 3%]."""
    if not 0 < value <= ABANDON_CAP_MAX * 100:
        raise CampaignError(
            f"{label} = {value:g}% must be above 0 and at most {ABANDON_CAP_MAX * 100:g}% "
            "(the legal limit of abandoned calls)"
        )
    return round(value / 100, 6)


# --- campaigns ---------------------------------------------------------------------------

#: What ``add`` and ``update`` take; None means "leave as it is" (or the default).
SETTINGS = (
    "mode",
    "queue",
    "trunk",
    "caller_id",
    "hours",
    "days",
    "holidays",
    "max_attempts",
    *(f"retry_{o}" for o in RETRY_OUTCOMES),
    "amd",
    "machine_action",
    "machine_message",
    "seller_name",
    "seller_number",
    "abandon_cap",
    "abandon_target",
)


def _apply(
    session: Session,
    campaign: Campaign,
    settings: dict[str, Any],
    *,
    trunks: Sequence[str],
    region: str,
) -> None:
    numbers = Normaliser(region)
    for key, value in settings.items():
        if value is None:
            continue
        if key == "mode":
            if value not in MODES:
                raise CampaignError(f"mode {value!r} is not one of {', '.join(MODES)}")
            campaign.mode = value
        elif key == "queue":
            if value == "":
                campaign.queue = None
            elif session.scalar(select(Queue.id).where(Queue.name == value)) is None:
                raise CampaignError(f"no queue named {value!r}")
            else:
                campaign.queue = value
        elif key == "trunk":
            if value == "":
                campaign.trunk = None
            elif value not in trunks:
                known = ", ".join(trunks) or "none in the settings"
                raise CampaignError(f"no trunk named {value!r} ([trunks.*]: {known})")
            else:
                campaign.trunk = value
        elif key in ("caller_id", "seller_number"):
            setattr(campaign, key, _number(numbers, key, value))
        elif key == "hours":
            campaign.hours_start, campaign.hours_end = parse_hours(value)
        elif key == "days":
            campaign.days = parse_days(value)
        elif key == "holidays":
            campaign.holidays = parse_holidays(value)
        elif key == "max_attempts":
            if not 1 <= int(value) <= 100:
                raise CampaignError(f"max attempts = {value} must be between 1 and 100")
            campaign.max_attempts = int(value)
        elif key.startswith("retry_"):
            if not 0 <= int(value) <= MAX_RETRY_SECONDS:
                raise CampaignError(
                    f"{key.replace('_', ' ')} = {value} s must be between 0 and "
                    f"{MAX_RETRY_SECONDS} (30 days)"
                )
            setattr(campaign, f"{key}_seconds", int(value))
        elif key == "amd":
            campaign.amd = bool(value)
        elif key == "machine_action":
            if value not in MACHINE_ACTIONS:
                raise CampaignError(f"machine action {value!r} is not one of hangup, message")
            campaign.machine_action = value
        elif key in ("machine_message", "seller_name"):
            setattr(campaign, key, str(value).strip())
        elif key == "abandon_cap":
            campaign.abandon_cap = _percent("the abandon-rate cap", float(value))
        elif key == "abandon_target":
            campaign.abandon_target = _percent("the abandon-rate target", float(value))
        else:
            raise CampaignError(f"unknown campaign setting {key!r}")
    _check_whole(campaign)


def _number(numbers: Normaliser, label: str, value: str) -> str:
    if value.strip() == "":
        return ""
    try:
        return numbers.e164(value)
    except NumberError as exc:
        raise CampaignError(f"{label.replace('_', ' ')}: {exc}") from None


def _check_whole(c: Campaign) -> None:
    """What holds between settings, checked after every change."""
    if c.mode in AGENT_MODES and c.queue is None:
        raise CampaignError(f"a {c.mode} campaign needs --queue (the queue of its agents)")
    if c.abandon_target > c.abandon_cap:
        raise CampaignError(
            f"the abandon-rate target {c.abandon_target * 100:g}% must not exceed the cap "
            f"{c.abandon_cap * 100:g}%"
        )
    if c.mode in ("predictive", "agentless") and not (c.seller_name and c.seller_number):
        raise CampaignError(
            f"a {c.mode} campaign needs --seller-name and --seller-number: the information "
            "message played on an abandoned call says who called and a number to call back"
        )
    if c.machine_action == "message" and not c.machine_message:
        raise CampaignError("--machine message needs --machine-message (the sound to leave)")


def check_campaign_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise CampaignError(
            f"campaign name {name!r} must be lower-case letters, digits, '_' or '-' (at most 64)"
        )
    return name


def get_campaign(session: Session, name: str) -> Campaign:
    campaign = session.scalar(select(Campaign).where(Campaign.name == name))
    if campaign is None:
        raise CampaignError(f"no campaign named {name!r}")
    return campaign


def list_campaigns(session: Session) -> list[Campaign]:
    return list(session.scalars(select(Campaign).order_by(Campaign.name)))


def add_campaign(
    session: Session,
    name: str,
    *,
    trunks: Sequence[str] = (),
    region: str = "US",
    **settings: Any,
) -> Campaign:
    check_campaign_name(name)
    if session.scalar(select(Campaign.id).where(Campaign.name == name)) is not None:
        raise CampaignError(f"a campaign named {name!r} already exists")
    campaign = Campaign(name=name)
    for column in Campaign.__table__.columns:
        default = column.default
        if default is not None and getattr(default, "is_scalar", False):
            setattr(campaign, column.key, default.arg)
    campaign.mode = settings.get("mode") or "progressive"
    campaign.queue = None
    campaign.trunk = None
    campaign.days = list(range(1, 8))
    campaign.holidays = []
    _apply(session, campaign, settings, trunks=trunks, region=region)
    session.add(campaign)
    session.flush()
    return campaign


def update_campaign(
    session: Session,
    name: str,
    *,
    trunks: Sequence[str] = (),
    region: str = "US",
    **settings: Any,
) -> Campaign:
    campaign = get_campaign(session, name)
    _apply(session, campaign, settings, trunks=trunks, region=region)
    session.flush()
    return campaign


def windows_of(campaign: Campaign) -> CallingWindows:
    return CallingWindows(
        start=campaign.hours_start,
        end=campaign.hours_end,
        days=tuple(campaign.days),
        holidays=frozenset(campaign.holidays),
    )


def campaign_view(campaign: Campaign, contacts: int | None = None) -> dict[str, Any]:
    view: dict[str, Any] = {
        "name": campaign.name,
        "mode": campaign.mode,
        "queue": campaign.queue,
        "trunk": campaign.trunk,
        "caller_id": campaign.caller_id,
        "hours": f"{campaign.hours_start:%H:%M}-{campaign.hours_end:%H:%M}",
        "days": [DAY_NAMES[d - 1] for d in campaign.days],
        "holidays": [d.isoformat() for d in campaign.holidays],
        "max_attempts": campaign.max_attempts,
        "retry_seconds": {o: getattr(campaign, f"retry_{o}_seconds") for o in RETRY_OUTCOMES},
        "amd": campaign.amd,
        "machine_action": campaign.machine_action,
        "machine_message": campaign.machine_message,
        "seller_name": campaign.seller_name,
        "seller_number": campaign.seller_number,
        "abandon_cap_percent": round(campaign.abandon_cap * 100, 4),
        "abandon_target_percent": round(campaign.abandon_target * 100, 4),
    }
    if contacts is not None:
        view["contacts"] = contacts
    return view


def contact_counts(session: Session, campaign_id: int | None = None) -> dict[int, int]:
    """Contacts per campaign id; only ``campaign_id``'s when given (no count of every list)."""
    query = select(Contact.campaign_id, func.count()).group_by(Contact.campaign_id)
    if campaign_id is not None:
        query = query.where(Contact.campaign_id == campaign_id)
    rows = session.execute(query).all()
    return {int(cid): int(n) for cid, n in rows}


# --- do-not-call -------------------------------------------------------------------------


def normalise_dnc(numbers: Normaliser, raw: str) -> str:
    try:
        return numbers.e164(raw)
    except NumberError as exc:
        raise CampaignError(str(exc)) from None


def is_dnc(dnc: Container[str], e164: str) -> bool:
    """The dial-time check: pure, on a set the dialer keeps (or loads) of E.164 numbers."""
    return e164 in dnc


def dnc_add(
    session: Session, numbers: Normaliser, raws: Sequence[str], source: str
) -> tuple[int, int]:
    """Add numbers (all valid, or nothing): (distinct numbers, how many were new)."""
    phones = sorted({normalise_dnc(numbers, r) for r in raws})
    if not phones:
        return 0, 0
    result = session.execute(
        pg_insert(DoNotCall)
        .values([{"phone": p, "source": source} for p in phones])
        .on_conflict_do_nothing()
        .returning(DoNotCall.phone)
    )
    return len(phones), len(result.all())


def dnc_remove(session: Session, numbers: Normaliser, raw: str) -> str:
    phone = normalise_dnc(numbers, raw)
    gone = session.execute(
        delete(DoNotCall).where(DoNotCall.phone == phone).returning(DoNotCall.phone)
    ).all()
    if not gone:
        raise CampaignError(f"{phone} is not on the do-not-call list")
    return phone


def dnc_check(session: Session, numbers: Normaliser, raw: str) -> tuple[str, DoNotCall | None]:
    phone = normalise_dnc(numbers, raw)
    return phone, session.get(DoNotCall, phone)


def dnc_list(session: Session, limit: int | None = None) -> list[DoNotCall]:
    query = select(DoNotCall).order_by(DoNotCall.phone)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def dnc_count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(DoNotCall)) or 0)
