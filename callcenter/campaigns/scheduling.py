"""Which contacts the dialer calls, and the attempt records that prove what it did.

The dialer service calls these on every tick; each runs in the caller's session and the
caller commits (a claim is the dialer's promise to originate: it commits the attempt rows
*before* it sends the originates, so a restart finds every call it may have placed by its
``channel_id`` and never dials a contact twice).

- :func:`claim` takes due contacts with ``FOR UPDATE SKIP LOCKED``: two dialers (or two
  ticks) claiming at once never get the same contact, and a contact with an attempt in
  progress (status ``dialling``) is not due. The do-not-call list is checked at this
  moment, and the calling windows in each contact's own time zone.
- :func:`finish` ends an attempt once (idempotent) and applies the retry rule
  (:func:`next_contact_state`, pure) to its contact. :func:`update_attempt` records the
  facts in between (answered, AMD, queued, agent, message).
- Preview: :func:`preview_take` puts one contact on an agent's screen, :func:`preview_dial`
  asks the dialer to call it (:func:`requested`), :func:`preview_skip` passes it over with
  a reason. A skipped preview is not an attempt: the contact's count of attempts stays.
- What the pacer needs at a dialer's start: :func:`ledger_days` and :func:`life_counts`
  (live answers and abandons), :func:`recent_outcomes` and :func:`recent_handle_seconds`.

Counting rules (the report and the dialer's pacer agree): a live answer is an attempt whose
outcome is in :data:`LIVE_OUTCOMES` (``delivered`` is an agentless campaign's live answer)
*and* that was known to be a person (``human_at`` set): a call hung up during answering-
machine detection (``hung_up`` without ``human_at``) was never known to be one, and counting
it would lower the abandon rate without cause. An abandon is the outcome ``abandoned``.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy import case, func, select, text
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from callcenter.campaigns import tracker
from callcenter.campaigns.store import CampaignError, windows_of
from callcenter.campaigns.windows import may_call
from callcenter.db import driver
from callcenter.db.models_campaigns import (
    ATTEMPT_OUTCOMES,
    Campaign,
    CampaignAttempt,
    Contact,
    DoNotCall,
)
from callcenter.webhooks import outbox

#: Outcomes where a live person answered (agent modes and agentless alike).
LIVE_OUTCOMES = ("connected", "abandoned", "hung_up", "delivered")
#: Outcomes that end a contact: reached (or its machine given the message).
DONE_OUTCOMES = ("connected", "delivered", "machine_message")
#: The retry delay each retried outcome waits (the campaign's ``retry_<x>_seconds``).
RETRY_DELAY_OF = {
    "busy": "busy",
    "no_answer": "no_answer",
    "machine": "machine",
    "abandoned": "abandoned",
    "hung_up": "abandoned",
    "failed": "failed",
    "lost": "failed",
}
#: The live-answer condition (module docstring) as SQL.
IS_LIVE = CampaignAttempt.outcome.in_(LIVE_OUTCOMES) & CampaignAttempt.human_at.is_not(None)
DUE_STATUSES = ("new", "retry")
DNC_REASON = "do-not-call list"
#: A contact skipped (not dialled) comes back after this long: an agent who passed one over
#: does not get it again at once.
SKIP_SECONDS = 3600
#: Columns the tracker may not set through :func:`update_attempt`.
_FIXED_COLUMNS = frozenset({"id", "campaign_id", "channel_id", "outcome"})
_ATTEMPTS: sa.Table = CampaignAttempt.__table__  # type: ignore[assignment]
_ATTEMPT_COLUMNS = frozenset(_ATTEMPTS.columns.keys())


@dataclass(frozen=True, slots=True)
class Claimed:
    """A contact claimed for one attempt: what the dialer originates and the agent sees."""

    attempt_id: int
    #: The ChannelId to give Asterisk's Originate (``dialer-<uuid4>``: tracker.new_channel_id).
    channel_id: str
    contact_id: int
    phone: str
    name: str
    timezone: str
    attempt_no: int
    fields: dict[str, Any] = field(default_factory=dict)


# --- the retry rule (pure) -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetryRule:
    """A campaign's attempts per contact and retry delays (seconds) per outcome."""

    max_attempts: int
    busy: int
    no_answer: int
    machine: int
    abandoned: int
    failed: int
    skip: int = SKIP_SECONDS

    @classmethod
    def of(cls, campaign: Campaign) -> RetryRule:
        return cls(
            max_attempts=campaign.max_attempts,
            busy=campaign.retry_busy_seconds,
            no_answer=campaign.retry_no_answer_seconds,
            machine=campaign.retry_machine_seconds,
            abandoned=campaign.retry_abandoned_seconds,
            failed=campaign.retry_failed_seconds,
        )


@dataclass(frozen=True, slots=True)
class ContactState:
    status: str
    next_attempt_at: dt.datetime | None
    last_outcome: str


def next_contact_state(
    outcome: str, *, attempts: int, rule: RetryRule, ended_at: dt.datetime, dnc: bool = False
) -> ContactState:
    """A contact's state after an attempt ended with ``outcome``; ``attempts`` counts the
    contact's dialled attempts including this one (a skip is not one).

    connected, delivered, machine_message: done. skipped: ``dnc`` when the do-not-call list
    was why, else due again after ``rule.skip`` seconds (new if never dialled). Every other
    outcome: done when the attempts are used up, else retry after the outcome's delay
    (hung_up waits as abandoned, lost as failed).
    """
    if outcome not in ATTEMPT_OUTCOMES:
        raise ValueError(f"unknown attempt outcome {outcome!r}")
    if outcome in DONE_OUTCOMES:
        return ContactState("done", None, outcome)
    if outcome == "skipped":
        if dnc:
            return ContactState("dnc", None, outcome)
        if attempts >= rule.max_attempts:
            return ContactState("done", None, outcome)
        later = ended_at + dt.timedelta(seconds=rule.skip)
        return ContactState("new" if attempts == 0 else "retry", later, outcome)
    if attempts >= rule.max_attempts:
        return ContactState("done", None, outcome)
    delay: int = getattr(rule, RETRY_DELAY_OF[outcome])
    return ContactState("retry", ended_at + dt.timedelta(seconds=delay), outcome)


def period_of(day: dt.date, started_on: dt.date | None) -> int:
    """The campaign's 30-day period of ``day``: 1 from the site-local date of its first
    start (before that, and without one, 1)."""
    if started_on is None:
        return 1
    return 1 + max(0, (day - started_on).days) // 30


#: The site's time zone: its name, or the zone itself.
SiteZone = str | dt.tzinfo


def site_day(moment: dt.datetime, site_tz: SiteZone) -> dt.date:
    """The site-local date of ``moment`` (an aware datetime)."""
    zone = site_tz if isinstance(site_tz, dt.tzinfo) else zoneinfo.ZoneInfo(site_tz)
    return moment.astimezone(zone).date()


def _day_period(campaign: Campaign, now: dt.datetime, site_tz: SiteZone) -> tuple[dt.date, int]:
    day = site_day(now, site_tz)
    started = site_day(campaign.started_at, site_tz) if campaign.started_at else None
    return day, period_of(day, started)


# --- calling windows -------------------------------------------------------------------------


@lru_cache(maxsize=1)
def known_zones() -> tuple[str, ...]:
    """Every time zone of the tz database: those a contact can have (imports check theirs
    against it, and ``phonenumbers``' zones are all in it)."""
    return tuple(sorted(zoneinfo.available_timezones()))


def contact_zones(session: Session, campaign_id: int) -> list[str]:
    """The distinct time zones of the campaign's contacts still to call (new or retry).

    This scans the campaign's contacts (~0.1 s for a million): :func:`claim` does not need
    it (it judges every zone of the tz database, ~5 ms).
    """
    query = (
        select(Contact.timezone)
        .where(Contact.campaign_id == campaign_id, Contact.status.in_(DUE_STATUSES))
        .distinct()
        .order_by(Contact.timezone)
    )
    return list(session.scalars(query))


def open_zones(campaign: Campaign, zones: Iterable[str], now: dt.datetime) -> list[str]:
    """Those of ``zones`` where the campaign may call at ``now`` (pure)."""
    windows = windows_of(campaign)
    return sorted({z for z in zones if may_call(z, windows, now)[0]})


def zones_open(session: Session, campaign: Campaign, now: dt.datetime) -> list[str]:
    """The time zones of the campaign's contacts still to call where it may call now."""
    return open_zones(campaign, contact_zones(session, campaign.id), now)


# --- claiming contacts -----------------------------------------------------------------------


def dnc_blocked(session: Session, phones: Sequence[str]) -> set[str]:
    """Which of ``phones`` (E.164) are on the do-not-call list now."""
    if not phones:
        return set()
    return set(session.scalars(select(DoNotCall.phone).where(DoNotCall.phone.in_(phones))))


def _due(
    cursor: Any,
    campaign: Campaign,
    n: int,
    now: dt.datetime,
    zones: Sequence[str],
    agent: str | None = None,
) -> list[tuple[Any, ...]]:
    """Due contacts in claim order, locked (``id, phone, name, timezone, attempts,
    fields``). A callback an agent booked for themselves (the contact's ``callback_for``
    field, :mod:`callcenter.campaigns.callbacks`) goes to that agent's preview only;
    ``agent`` None (the dialer's own claims) passes such contacts over."""
    cursor.execute(_DUE_SQL, (campaign.id, now, campaign.max_attempts, list(zones), agent, n))
    return list(cursor.fetchall())


#: The due contacts in claim order, with the statuses written out so that the planner
#: matches ``ix_contacts_next``'s predicate. Rows another transaction holds are passed over,
#: not waited for: that transaction is dialling them. (``= NULL``, for no agent, is never
#: true.)
_DUE_SQL = """
SELECT id, phone, name, timezone, attempts, fields FROM contacts
 WHERE campaign_id = %s AND status IN ('new', 'retry')
   AND (next_attempt_at IS NULL OR next_attempt_at <= %s)
   AND attempts < %s AND timezone = ANY(%s)
   AND (fields ->> 'callback_for' IS NULL OR fields ->> 'callback_for' = ''
        OR fields ->> 'callback_for' = %s)
 ORDER BY priority DESC, next_attempt_at ASC NULLS FIRST, id
 LIMIT %s
 FOR UPDATE OF contacts SKIP LOCKED
"""


def _attempt(
    campaign: Campaign,
    contact: Contact,
    *,
    now: dt.datetime,
    day: dt.date,
    period: int,
    **columns: Any,
) -> CampaignAttempt:
    return CampaignAttempt(
        campaign_id=campaign.id,
        contact_id=contact.id,
        phone=contact.phone,
        attempt_no=contact.attempts + 1,
        mode=campaign.mode,
        created_at=now,
        day=day,
        period=period,
        **columns,
    )


def _skip_dnc(
    session: Session,
    campaign: Campaign,
    contact: Contact,
    *,
    now: dt.datetime,
    day: dt.date,
    period: int,
    **columns: Any,
) -> None:
    """The proof that a number on the do-not-call list was not dialled, and why."""
    session.add(
        _attempt(
            campaign,
            contact,
            now=now,
            day=day,
            period=period,
            phase="ended",
            outcome="skipped",
            reason=DNC_REASON,
            ended_at=now,
            **columns,
        )
    )
    contact.status = "dnc"
    contact.last_outcome = "skipped"
    contact.next_attempt_at = None


def _claimed(attempt: CampaignAttempt, contact: Contact) -> Claimed:
    assert attempt.channel_id is not None
    return Claimed(
        attempt_id=attempt.id,
        channel_id=attempt.channel_id,
        contact_id=contact.id,
        phone=contact.phone,
        name=contact.name,
        timezone=contact.timezone,
        attempt_no=attempt.attempt_no,
        fields=dict(contact.fields or {}),
    )


def claim(
    session: Session,
    campaign: Campaign,
    n: int,
    *,
    now: dt.datetime,
    dialer: str,
    node: str,
    paced: str,
    caller_id: str,
    site_tz: SiteZone,
    zones: Sequence[str] | None = None,
) -> list[Claimed]:
    """Up to ``n`` due contacts, each with its attempt row written (phase ``dialling``).

    Due: status new or retry, ``next_attempt_at`` passed (or none), attempts left, and the
    calling window open in the contact's time zone (``zones``: the candidate time zones,
    by default every zone of the tz database: :func:`known_zones`). Highest priority first,
    then the longest due, then the oldest. A contact whose number is on the do-not-call
    list now gets an attempt ``skipped`` ("do-not-call list") and status ``dnc``, and
    another contact is taken in its place. Claimed contacts are ``dialling`` with one more
    attempt.
    """
    if n <= 0:
        return []
    candidates = known_zones() if zones is None else zones
    zones_now = open_zones(campaign, candidates, now)
    if not zones_now:
        return []
    day, period = _day_period(campaign, now, site_tz)
    # The driver's own statements, as in update_attempt: the dialer claims on every tick that
    # dials, and the ORM's load of each contact, its attempt object and the flush of both
    # were a fifth of a busy dialer's CPU (the soak's profile). Objects of these contacts
    # that the session holds are given the values written (_sync).
    out: list[Claimed] = []
    with driver.cursor(session) as cursor:
        while len(out) < n:
            contacts = _due(cursor, campaign, n - len(out), now, zones_now)
            if not contacts:
                break
            cursor.execute(_DNC_SQL, ([c[1] for c in contacts],))
            blocked = {phone for (phone,) in cursor.fetchall()}
            rows: list[tuple[Any, ...]] = []
            dialled: list[int] = []
            skipped: list[int] = []
            claimed: list[Claimed] = []
            for cid, phone, name, timezone, attempts, fields in contacts:
                if phone in blocked:
                    # The proof that a number on the do-not-call list was not dialled.
                    rows.append((cid, phone, attempts + 1, None, "ended", "skipped",
                                 DNC_REASON, now))  # fmt: skip
                    skipped.append(cid)
                    continue
                channel_id = tracker.new_channel_id()
                rows.append((cid, phone, attempts + 1, channel_id, "dialling", None, "", None))
                dialled.append(cid)
                claimed.append(Claimed(0, channel_id, cid, phone, name, timezone, attempts + 1,
                                       dict(fields or {})))  # fmt: skip
            columns = list(zip(*rows, strict=True))
            cursor.execute(
                _INSERT_ATTEMPTS_SQL,
                (campaign.id, campaign.mode, now, day, period, paced, dialer, node, caller_id,
                 *map(list, columns)),
            )  # fmt: skip
            ids = dict(cursor.fetchall())
            out.extend(replace(c, attempt_id=ids[c.channel_id]) for c in claimed)
            if dialled:
                cursor.execute(_DIALLING_SQL, (dialled,))
                for cid, attempts in cursor.fetchall():
                    _sync(
                        session,
                        Contact,
                        cid,
                        {"status": "dialling", "attempts": attempts, "next_attempt_at": None},
                    )
            if skipped:
                cursor.execute(_DNC_CONTACTS_SQL, (skipped,))
                for cid in skipped:
                    _sync(
                        session,
                        Contact,
                        cid,
                        {"status": "dnc", "last_outcome": "skipped", "next_attempt_at": None},
                    )
    return out


_DNC_SQL = "SELECT phone FROM do_not_call WHERE phone = ANY(%s)"
#: One row per claimed contact (dialling) or do-not-call skip (ended), as _attempt makes them.
_INSERT_ATTEMPTS_SQL = """
INSERT INTO campaign_attempts (campaign_id, mode, created_at, day, period, paced, dialer, node,
                               caller_id, contact_id, phone, attempt_no, channel_id, phase,
                               outcome, reason, ended_at)
SELECT %s, %s, %s, %s, %s, %s, %s, %s, %s, a.*
  FROM unnest(%s::bigint[], %s::text[], %s::smallint[], %s::text[], %s::text[], %s::text[],
              %s::text[], %s::timestamptz[]) AS a
RETURNING channel_id, id
"""
_DIALLING_SQL = """
UPDATE contacts SET status = 'dialling', attempts = attempts + 1, next_attempt_at = NULL
 WHERE id = ANY(%s) RETURNING id, attempts
"""
_DNC_CONTACTS_SQL = """
UPDATE contacts SET status = 'dnc', last_outcome = 'skipped', next_attempt_at = NULL
 WHERE id = ANY(%s)
"""


# --- attempts in progress and their end ------------------------------------------------------


def _check_columns(columns: dict[str, Any]) -> None:
    unknown = set(columns) - _ATTEMPT_COLUMNS
    if unknown:
        raise ValueError(f"campaign_attempts has no column {', '.join(sorted(unknown))}")
    fixed = set(columns) & _FIXED_COLUMNS
    if fixed:
        raise ValueError(f"update_attempt does not set {', '.join(sorted(fixed))} (see finish)")


def update_attempt(session: Session, channel_id: str, **columns: Any) -> bool:
    """Record facts of an attempt in progress (``answered_at``, ``amd_status``, ``agent``...):
    only columns of :class:`CampaignAttempt`; not its keys nor its ``outcome`` (that is
    :func:`finish`'s). ``phase`` changes only while the attempt has no outcome. False for
    an unknown ``channel_id``."""
    _check_columns(columns)
    # The driver's own statement on the session's connection, not SQLAlchemy's UPDATE: the
    # dialer writes one per fact of every call, and building, keying and compiling the
    # statement each time was a third of a busy dialer's CPU (the soak's profile). The SQL
    # text is cached per set of columns; psycopg prepares it once it repeats. Objects of the
    # session are not refreshed (callers that hold one refresh it); what is pending in it is
    # written first (callcenter.db.driver).
    keys = tuple(sorted(columns))
    params: list[Any] = [columns[k] for k in keys]
    params.append(channel_id)
    with driver.cursor(session) as cursor:
        cursor.execute(_update_sql(_ATTEMPTS, keys, "channel_id"), params)
        found = cursor.fetchall()
    return bool(found)


@lru_cache(maxsize=128)
def _update_sql(table: sa.Table, keys: tuple[str, ...], where: str = "id") -> str:
    """``UPDATE table SET`` these columns (checked names: keys of the table) ``WHERE where =
    %s RETURNING id``. An attempt's ``phase`` changes only while it has no outcome (SET reads
    the row as it was: an end that sets both still ends it). Nothing to set: a no-op write
    tells whether the row exists."""
    sets = []
    for key in keys:
        name = table.c[key].name
        if table is _ATTEMPTS and key == "phase":
            sets.append(f"{name} = CASE WHEN outcome IS NULL THEN %s ELSE {name} END")
        else:
            sets.append(f"{name} = %s")
    if not sets:
        sets.append("id = id")
    return f"UPDATE {table.name} SET {', '.join(sets)} WHERE {where} = %s RETURNING id"


def finish(
    session: Session,
    channel_id: str,
    outcome: str,
    *,
    at: dt.datetime,
    hangup_cause: int | None = None,
    reason: str = "",
    facts: dict[str, Any] | None = None,
    hooks: Sequence[int] | None = None,
) -> bool:
    """End the attempt ``channel_id`` with ``outcome`` at ``at`` and apply the retry rule to
    its contact. Idempotent: an attempt that already has an outcome is left as it is
    (False; also for an unknown ``channel_id``). A ``skipped`` attempt was not dialled: it
    does not count among the contact's attempts. ``facts``: columns of the call as
    :func:`update_attempt` takes them, set first (also on an attempt already ended), in the
    same write as the end. ``hooks``: the webhooks that want ``campaign.attempt``
    (``outbox.hooks_for`` in this transaction), when ending many attempts in one."""
    if outcome not in ATTEMPT_OUTCOMES:
        raise ValueError(f"unknown attempt outcome {outcome!r}")
    if facts:
        _check_columns(facts)
        if "phase" in facts:
            raise ValueError("finish sets the phase of the attempt it ends")
    # The driver's own statements, as in update_attempt: the dialer ends one attempt per call,
    # and the ORM's load, flush and refresh of two objects was a quarter of its CPU. Objects
    # of these rows that the session holds are given the values written (_sync), and what the
    # session has pending is written first.
    with driver.cursor(session) as cursor:
        cursor.execute(_SELECT_ATTEMPT, (channel_id,))
        found = cursor.fetchone()
        if found is None:
            return False
        row = dict(zip(_ATTEMPT_NAMES, found, strict=True))
        sets: dict[str, Any] = dict(facts or {})
        ended = row["outcome"] is not None
        counted = row["phase"] != "previewing"
        if not ended:
            sets.update(phase="ended", outcome=outcome, ended_at=at)
            if hangup_cause is not None:
                sets["hangup_cause"] = hangup_cause
            if reason:
                sets["reason"] = reason[:200]
        if sets:
            keys = tuple(sorted(sets))
            cursor.execute(_update_sql(_ATTEMPTS, keys), [*(sets[k] for k in keys), row["id"]])
            row.update(sets)
            _sync(session, CampaignAttempt, row["id"], sets)
        if ended:
            return False
        contact_id = row["contact_id"]
        if contact_id is not None:
            cursor.execute(_SELECT_CONTACT, (contact_id,))
            contact = cursor.fetchone()
            # Only the contact this attempt holds: one an operator has since changed is
            # left alone.
            if contact is not None and contact[0] in ("dialling", "previewing"):
                attempts = int(contact[1])
                if outcome == "skipped" and counted:
                    attempts = max(0, attempts - 1)
                campaign = session.get(Campaign, row["campaign_id"])
                assert campaign is not None
                state = next_contact_state(
                    outcome,
                    attempts=attempts,
                    rule=RetryRule.of(campaign),
                    ended_at=at,
                    dnc=row["reason"] == DNC_REASON,
                )
                values = {
                    "status": state.status,
                    "next_attempt_at": state.next_attempt_at,
                    "last_outcome": state.last_outcome,
                    "attempts": attempts,
                }
                keys = tuple(values)
                cursor.execute(_update_sql(_CONTACTS, keys), [*values.values(), contact_id])
                _sync(session, Contact, contact_id, values)
    # The CRM's webhook, in this transaction: the attempt's end and its event commit together.
    outbox.enqueue(
        session,
        "campaign.attempt",
        outbox.attempt_payload(row),
        key=outbox.attempt_key_of(row["id"]),
        at=at,
        hooks=hooks,
    )
    return True


_CONTACTS: sa.Table = Contact.__table__  # type: ignore[assignment]
_ATTEMPT_NAMES = tuple(c.name for c in _ATTEMPTS.columns)
_SELECT_ATTEMPT = (
    f"SELECT {', '.join(_ATTEMPT_NAMES)} FROM {_ATTEMPTS.name} WHERE channel_id = %s FOR UPDATE"
)
_SELECT_CONTACT = f"SELECT status, attempts FROM {_CONTACTS.name} WHERE id = %s FOR UPDATE"


def _sync(session: Session, cls: type[Any], ident: int, values: dict[str, Any]) -> None:
    """The object of this row that ``session`` holds, if any, given the values just written
    (as loaded, not as changes to write)."""
    held = session.identity_map.get(session.identity_key(cls, ident))
    if held is not None:
        for key, value in values.items():
            set_committed_value(held, key, value)


def contacts_left(session: Session, campaign_id: int) -> int:
    """Contacts still to call (new or retry), due now or later."""
    query = (
        select(func.count())
        .select_from(Contact)
        .where(Contact.campaign_id == campaign_id, Contact.status.in_(DUE_STATUSES))
    )
    return int(session.scalar(query) or 0)


def contacts_unfinished(session: Session, campaign_id: int) -> int:
    """The campaign snapshot's ``contacts_left`` (docs/events.md): contacts neither done nor
    on the do-not-call list, those being dialled or previewed included."""
    query = (
        select(func.count())
        .select_from(Contact)
        .where(Contact.campaign_id == campaign_id, Contact.status.not_in(("done", "dnc")))
    )
    return int(session.scalar(query) or 0)


def open_attempts(session: Session, campaign_id: int) -> list[CampaignAttempt]:
    """The campaign's attempts without an outcome (in progress, previewing, requested)."""
    query = (
        select(CampaignAttempt)
        .where(CampaignAttempt.campaign_id == campaign_id, CampaignAttempt.outcome.is_(None))
        .order_by(CampaignAttempt.id)
    )
    return list(session.scalars(query))


# --- preview ---------------------------------------------------------------------------------


def _held(session: Session, campaign_id: int, agent: str) -> CampaignAttempt | None:
    return session.scalar(
        select(CampaignAttempt)
        .where(
            CampaignAttempt.campaign_id == campaign_id,
            CampaignAttempt.agent == agent,
            CampaignAttempt.phase.in_(("previewing", "requested")),
            CampaignAttempt.outcome.is_(None),
        )
        .order_by(CampaignAttempt.id)
        .limit(1)
        .with_for_update()
    )


def preview_take(
    session: Session,
    campaign: Campaign,
    agent: str,
    *,
    now: dt.datetime,
    dialer: str,
    site_tz: SiteZone,
    zones: Sequence[str] | None = None,
) -> Claimed | None:
    """The contact on ``agent``'s screen: the one the agent holds (previewing, or asked to
    dial and not ended), else the next due contact (as :func:`claim` picks them, DNC
    numbers skipped and recorded), reserved for the agent (status ``previewing``; not an
    attempt yet). None when no contact is due."""
    if campaign.mode != "preview":
        raise CampaignError(
            f"campaign {campaign.name} is a {campaign.mode} campaign: agents preview contacts "
            "only in preview campaigns"
        )
    held = _held(session, campaign.id, agent)
    if held is not None:
        contact = session.get(Contact, held.contact_id) if held.contact_id else None
        if contact is not None:
            return _claimed(held, contact)
        finish(session, held.channel_id or "", "skipped", at=now, reason="contact deleted")
    if campaign.state != "running":
        raise CampaignError(f"campaign {campaign.name} is {campaign.state}, not running")
    candidates = known_zones() if zones is None else zones
    zones_now = open_zones(campaign, candidates, now)
    if not zones_now:
        return None
    day, period = _day_period(campaign, now, site_tz)
    common = {"paced": "preview", "dialer": dialer, "caller_id": campaign.caller_id}
    while True:
        with driver.cursor(session) as cursor:
            due = _due(cursor, campaign, 1, now, zones_now, agent)
        if not due:
            return None
        contact = session.get(Contact, due[0][0])  # locked by _due
        assert contact is not None
        if dnc_blocked(session, [contact.phone]):
            _skip_dnc(session, campaign, contact, now=now, day=day, period=period, **common)
            session.flush()
            continue
        attempt = _attempt(
            campaign,
            contact,
            now=now,
            day=day,
            period=period,
            phase="previewing",
            channel_id=tracker.new_channel_id(),
            agent=agent,
            **common,
        )
        session.add(attempt)
        contact.status = "previewing"
        session.flush()
        return _claimed(attempt, contact)


def _held_or_fail(session: Session, campaign: Campaign, agent: str) -> CampaignAttempt:
    held = _held(session, campaign.id, agent)
    if held is None:
        raise CampaignError(
            f"agent {agent} has no contact of campaign {campaign.name} on screen "
            f"(take one: callcenter campaigns preview {campaign.name} --agent {agent})"
        )
    return held


def preview_dial(
    session: Session, campaign: Campaign, agent: str, *, now: dt.datetime | None = None
) -> CampaignAttempt:
    """The agent asks to dial the contact on screen: the attempt becomes ``requested`` (the
    dialer calls the agent's phone, then the customer) and counts among the contact's
    attempts. Asking twice is asking once.

    At this moment (dial time) the do-not-call list is checked again: a number added since
    the preview is not dialled; the returned attempt is then ended, ``skipped``. Outside the
    calling window: :class:`CampaignError`, the contact stays on screen.
    """
    now = now or dt.datetime.now(dt.UTC)
    held = _held_or_fail(session, campaign, agent)
    if held.phase == "requested":
        return held
    contact = session.scalar(select(Contact).where(Contact.id == held.contact_id).with_for_update())
    if contact is None:
        finish(session, held.channel_id or "", "skipped", at=now, reason="contact deleted")
        return held
    if dnc_blocked(session, [contact.phone]):
        finish(session, held.channel_id or "", "skipped", at=now, reason=DNC_REASON)
        return held
    allowed, why = may_call(contact.timezone, windows_of(campaign), now)
    if not allowed:
        raise CampaignError(f"not now: {why}")
    held.phase = "requested"
    contact.status = "dialling"
    contact.attempts += 1
    session.flush()
    return held


def preview_skip(
    session: Session,
    campaign: Campaign,
    agent: str,
    reason: str,
    *,
    now: dt.datetime | None = None,
) -> CampaignAttempt:
    """The agent passes over the contact on screen: its attempt ends ``skipped`` with
    "skipped by AGENT: REASON"; the contact is due again after :data:`SKIP_SECONDS` and
    this does not count as one of its attempts."""
    now = now or dt.datetime.now(dt.UTC)
    if not reason.strip():
        raise CampaignError("a skip needs a reason (--skip REASON)")
    held = _held_or_fail(session, campaign, agent)
    if held.phase != "previewing":
        raise CampaignError(
            f"agent {agent} has already asked to dial {held.phone}: it can no longer be skipped"
        )
    finish(
        session, held.channel_id or "", "skipped", at=now, reason=f"skipped by {agent}: {reason}"
    )
    return held


def requested(session: Session, campaign_id: int) -> list[CampaignAttempt]:
    """Preview attempts agents asked to dial, oldest first: the dialer originates them."""
    query = (
        select(CampaignAttempt)
        .where(
            CampaignAttempt.campaign_id == campaign_id,
            CampaignAttempt.phase == "requested",
            CampaignAttempt.outcome.is_(None),
        )
        .order_by(CampaignAttempt.id)
    )
    return list(session.scalars(query))


# --- what the pacer learns from at a start ---------------------------------------------------


def ledger_days(
    session: Session, campaign_id: int, since_day: dt.date
) -> list[tuple[dt.date, int, int]]:
    """(day, live answers, abandons) of each site-local day from ``since_day`` on that had
    either, in day order."""
    live = func.count().filter(IS_LIVE)
    abandoned = func.count().filter(CampaignAttempt.outcome == "abandoned")
    query = (
        select(CampaignAttempt.day, live, abandoned)
        .where(
            CampaignAttempt.campaign_id == campaign_id,
            CampaignAttempt.day >= since_day,
            IS_LIVE,
        )
        .group_by(CampaignAttempt.day)
        .order_by(CampaignAttempt.day)
    )
    return [(d, int(n), int(a)) for d, n, a in session.execute(query)]


def life_counts(session: Session, campaign_id: int) -> tuple[int, int]:
    """(live answers, abandons) over the campaign's life."""
    row = session.execute(
        select(
            func.count().filter(IS_LIVE),
            func.count().filter(CampaignAttempt.outcome == "abandoned"),
        ).where(CampaignAttempt.campaign_id == campaign_id)
    ).one()
    return int(row[0]), int(row[1])


def recent_outcomes(
    session: Session, campaign_id: int, limit: int = 3000
) -> list[tuple[bool, float]]:
    """The latest ``limit`` dialled attempts that ended, oldest first: (a live person
    answered, seconds from the originate -- the row's creation when the originate time is
    unknown -- to the person known live, or to the end). Skipped and lost attempts are
    left out: they say nothing of the list's answer rate or times."""
    start = func.coalesce(CampaignAttempt.originated_at, CampaignAttempt.created_at)
    live = IS_LIVE
    moment = case(
        (
            live,
            func.coalesce(
                CampaignAttempt.human_at, CampaignAttempt.answered_at, CampaignAttempt.ended_at
            ),
        ),
        else_=CampaignAttempt.ended_at,
    )
    query = (
        select(live, func.extract("epoch", moment - start))
        .where(
            CampaignAttempt.campaign_id == campaign_id,
            CampaignAttempt.outcome.is_not(None),
            CampaignAttempt.outcome.not_in(("skipped", "lost")),
        )
        .order_by(CampaignAttempt.id.desc())
        .limit(limit)
    )
    rows = session.execute(query).all()
    return [(bool(h), max(0.0, float(s or 0.0))) for h, s in reversed(rows)]


#: The call-log row of an attempt: the bridge's ``calls`` row whose uniqueid is the
#: attempt's channel_id. The originated channel is the first of its call, so its linkedid
#: is its own uniqueid too: matching on both lets the (linkedid) index find it (the unique
#: key leads with the node).
_CALLS_OF_ATTEMPTS = """
SELECT c.talk_seconds
  FROM campaign_attempts a
  JOIN calls c ON c.linkedid = a.channel_id AND c.uniqueid = a.channel_id
 WHERE a.campaign_id = :campaign_id
   AND a.outcome = 'connected'
   AND c.talk_seconds IS NOT NULL
 ORDER BY a.id DESC
 LIMIT :limit
"""


def recent_handle_seconds(session: Session, campaign_id: int, limit: int = 500) -> list[float]:
    """Talk seconds of the latest ``limit`` connected attempts, oldest first, from the
    bridge's call log (wrap-up is not in it: talk alone)."""
    rows = session.execute(
        text(_CALLS_OF_ATTEMPTS), {"campaign_id": campaign_id, "limit": limit}
    ).all()
    return [float(r[0]) for r in reversed(rows)]
