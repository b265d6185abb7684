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
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from callcenter.campaigns.numbers import Normaliser, NumberError
from callcenter.campaigns.windows import DAY_NAMES, LEGAL_END, LEGAL_START, CallingWindows
from callcenter.db.models import Call, Queue
from callcenter.db.models_campaigns import (
    ABANDON_CAP_MAX,
    AGENTLESS_ACTIONS,
    MACHINE_ACTIONS,
    MODES,
    Campaign,
    Contact,
    DoNotCall,
)
from callcenter.directory import DirectoryError
from callcenter.recordings import policy as recording_policy

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
#: Modes whose calls go to the agents of a queue.
AGENT_MODES = ("preview", "progressive", "predictive")
RETRY_OUTCOMES = ("busy", "no_answer", "machine", "abandoned", "failed")
MAX_RETRY_SECONDS = 30 * 86400
#: The law's least ring time (16 CFR 310.4(b)(1)(iv): 15 s or four rings) and a sane most.
RING_SECONDS = (15, 120)
CHANNEL_LIMIT = (1, 1000)
SOUND_MAX = 200


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
    "ring_seconds",
    "channel_limit",
    "agentless_action",
    "agentless_message",
    "survey_ivr",
    "abandon_message",
    "record_policy",
    "record_share",
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
    settings = dict(settings)
    policy, share = settings.pop("record_policy", None), settings.pop("record_share", None)
    if policy is not None or share is not None:
        # Checked together: a sampled policy needs a share (callcenter.recordings.policy).
        current = recording_policy.RecordPolicy.of(campaign.record_policy, campaign.record_share)
        try:
            checked = recording_policy.check(policy, share, current=current)
        except recording_policy.PolicyError as exc:
            raise CampaignError(str(exc)) from None
        campaign.record_policy, campaign.record_share = checked.policy, checked.share
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
        elif key == "ring_seconds":
            low, high = RING_SECONDS
            if not low <= int(value) <= high:
                raise CampaignError(
                    f"ring seconds = {value} must be between {low} and {high} "
                    "(the law: at least 15 s before a call counts as unanswered)"
                )
            campaign.ring_seconds = int(value)
        elif key == "channel_limit":
            low, high = CHANNEL_LIMIT
            if not low <= int(value) <= high:
                raise CampaignError(f"channel limit = {value} must be between {low} and {high}")
            campaign.channel_limit = int(value)
        elif key == "agentless_action":
            if value not in AGENTLESS_ACTIONS:
                raise CampaignError(f"agentless action {value!r} is not one of message, survey")
            campaign.agentless_action = value
        elif key in ("agentless_message", "abandon_message"):
            text = str(value).strip()
            if len(text) > SOUND_MAX:
                raise CampaignError(
                    f"{key.replace('_', ' ')} is longer than {SOUND_MAX} characters"
                )
            setattr(campaign, key, text)
        elif key == "survey_ivr":
            text = str(value).strip()
            if len(text) > 64:
                raise CampaignError(f"survey IVR {text[:20]!r}... is longer than 64 characters")
            campaign.survey_ivr = text
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
    if c.mode == "agentless" and c.agentless_action == "survey" and not c.survey_ivr:
        raise CampaignError("--agentless-action survey needs --survey-ivr (the IVR of the survey)")


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


# --- state: start, pause, stop ----------------------------------------------------------


def dial_problems(
    session: Session,
    campaign: Campaign,
    *,
    trunks: Sequence[str] = (),
    customer_channel: str = "",
) -> list[str]:
    """Why ``campaign`` cannot dial, one reason a line; empty when it can.

    A campaign dials through its trunk, else the first outbound trunk of the settings
    (``trunks``), unless the dialer's ``customer_channel`` ([dialer]) names no ``{trunk}``
    (a lab's or the tests' Local channel): with none of them there is nothing to dial
    through.
    """
    problems = []
    if campaign.mode in AGENT_MODES and campaign.queue is None:
        problems.append(f"a {campaign.mode} campaign needs --queue (the queue of its agents)")
    if campaign.trunk is None and not trunks and "{trunk}" in (customer_channel or "{trunk}"):
        problems.append("no trunk to call through (--trunk, or a [trunks.*] in the settings)")
    if campaign.mode == "agentless":
        if campaign.agentless_action == "message" and not campaign.agentless_message:
            problems.append("an agentless campaign that plays a message needs --agentless-message")
        if campaign.agentless_action == "survey" and not campaign.survey_ivr:
            problems.append("an agentless survey campaign needs --survey-ivr")
    # No contacts yet is no reason: a campaign fed later (the agents' callbacks, a list
    # imported while it runs) dials as soon as it has some.
    return problems


def start_campaign(
    session: Session,
    name: str,
    now: dt.datetime,
    *,
    trunks: Sequence[str] = (),
    customer_channel: str = "",
) -> Campaign:
    """Let the dialer work ``name`` (from stopped or paused; running stays running).

    Refused with one line when it cannot dial (:func:`dial_problems`: the first reason).
    The first start sets ``started_at``: the campaign's life and its 30-day periods count
    from it, so a later start never moves it.
    """
    campaign = _locked(session, name)
    problems = dial_problems(session, campaign, trunks=trunks, customer_channel=customer_channel)
    if problems:
        raise CampaignError(f"campaign {name} cannot start: {problems[0]}")
    campaign.state = "running"
    if campaign.started_at is None:
        campaign.started_at = now
    session.flush()
    return campaign


def pause_campaign(session: Session, name: str, now: dt.datetime) -> Campaign:
    """The dialer dials no new call; calls in flight go on to their end (and their records).

    Only a running (or paused) campaign pauses: a stopped one has nothing to pause.
    """
    campaign = _locked(session, name)
    if campaign.state == "stopped":
        raise CampaignError(f"campaign {name} is stopped: there is nothing to pause")
    campaign.state = "paused"
    session.flush()
    return campaign


def stop_campaign(session: Session, name: str, now: dt.datetime) -> Campaign:
    """As :func:`pause_campaign` for the calls (those in flight end normally); the dialer
    also lets the campaign go (its lease). Contacts keep their state: a start resumes."""
    campaign = _locked(session, name)
    campaign.state = "stopped"
    session.flush()
    return campaign


def _locked(session: Session, name: str) -> Campaign:
    # FOR UPDATE: two state changes at once are applied one after the other.
    campaign = session.scalar(select(Campaign).where(Campaign.name == name).with_for_update())
    if campaign is None:
        raise CampaignError(f"no campaign named {name!r}")
    return campaign


# --- contacts from the call log ----------------------------------------------------------


@dataclass(slots=True)
class FromCallsReport:
    """What ``contacts from-calls`` found and did."""

    calls: int = 0
    numbers: int = 0
    imported: int = 0
    #: Calls of a number that already had a call in the list (its latest call is kept).
    duplicates_in_calls: int = 0
    duplicates_existing: int = 0
    on_dnc: int = 0
    invalid: int = 0
    examples: list[str] = field(default_factory=list)


#: Call-log outcomes ``--outcome`` may pick (calls.outcome).
CALL_OUTCOMES = (
    "answered",
    "abandoned",
    "timed_out",
    "exit_key",
    "exit_empty",
    "transferred",
    "ivr_hangup",
    "callback",
    "lost",
)


def contacts_from_calls(
    session: Session,
    campaign_name: str,
    queue: str,
    since: dt.datetime,
    until: dt.datetime,
    numbers: Normaliser,
    default_tz: str,
    outcome: str | None = None,
) -> FromCallsReport:
    """Contacts from the callers of ``queue`` whose calls entered it in [since, until).

    Each caller's number is normalised as in an import (E.164, the number's own time zone,
    else ``default_tz``); a number that is not callable (anonymous, an extension) is
    skipped and counted, not fatal. A caller who called several times is one contact with
    the latest call's ``uniqueid``, ``node``, ``queue`` and ``agent`` in its fields (what a
    survey refers to). Numbers the campaign has already, and those on the do-not-call
    list, are left out and counted.
    """
    campaign = get_campaign(session, campaign_name)
    if outcome is not None and outcome not in CALL_OUTCOMES:
        raise CampaignError(f"outcome {outcome!r} is not one of {', '.join(CALL_OUTCOMES)}")
    if session.scalar(select(Queue.id).where(Queue.name == queue)) is None:
        raise CampaignError(f"no queue named {queue!r}")
    if until <= since:
        raise CampaignError("the period must end after it starts (--until before --since?)")
    query = (
        select(Call.caller_number, Call.uniqueid, Call.node, Call.queue, Call.agent)
        .where(Call.queue == queue, Call.queued_at >= since, Call.queued_at < until)
        .order_by(Call.queued_at.desc(), Call.id.desc())
    )
    if outcome is not None:
        query = query.where(Call.outcome == outcome)
    report = FromCallsReport()
    found: dict[str, dict[str, Any]] = {}
    for raw, uniqueid, node, call_queue, agent in session.execute(query):
        report.calls += 1
        try:
            number = numbers.number(raw or "")
        except NumberError as exc:
            report.invalid += 1
            if len(report.examples) < 5:
                report.examples.append(f"call {uniqueid}: {exc}")
            continue
        if number.e164 in found:  # newest first: the first seen is the latest call
            report.duplicates_in_calls += 1
            continue
        found[number.e164] = {
            "campaign_id": campaign.id,
            "phone": number.e164,
            "name": "",
            "timezone": number.timezone or default_tz,
            "priority": 0,
            "fields": {"uniqueid": uniqueid, "node": node, "queue": call_queue, "agent": agent},
            "status": "new",
            "attempts": 0,
        }
    report.numbers = len(found)
    phones = list(found)
    dnc: set[str] = set()
    existing: set[str] = set()
    for i in range(0, len(phones), 5000):
        chunk = phones[i : i + 5000]
        dnc.update(session.scalars(select(DoNotCall.phone).where(DoNotCall.phone.in_(chunk))))
        existing.update(
            session.scalars(
                select(Contact.phone).where(
                    Contact.campaign_id == campaign.id, Contact.phone.in_(chunk)
                )
            )
        )
    report.on_dnc = len(dnc)
    report.duplicates_existing = len(existing - dnc)
    rows = [r for p, r in found.items() if p not in dnc and p not in existing]
    for i in range(0, len(rows), 1000):
        result = session.execute(
            pg_insert(Contact)
            .values(rows[i : i + 1000])
            .on_conflict_do_nothing()
            .returning(Contact.id)
        )
        report.imported += len(result.all())
    return report


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
        "ring_seconds": campaign.ring_seconds,
        "channel_limit": campaign.channel_limit,
        "agentless_action": campaign.agentless_action,
        "agentless_message": campaign.agentless_message,
        "survey_ivr": campaign.survey_ivr,
        "abandon_message": campaign.abandon_message,
        "record_policy": campaign.record_policy,
        "record_share": campaign.record_share,
        "state": campaign.state,
        "started_at": campaign.started_at,
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
