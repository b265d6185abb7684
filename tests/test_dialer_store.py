"""The dialer's storage against the real database: campaign state, claiming contacts (order,
due times, calling windows, do-not-call at dial time, never one contact twice at once, also
across connections), the attempt records and the retry rule, preview, and the lease.

Calling windows are judged at the real current time, so contacts live in fixed-offset zones
chosen relative to it: one where it is now 12:00-18:00 (open, with hours to spare) and one
where it is now 01:00-06:00 (closed); the tests pass at any hour.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
import zoneinfo
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from callcenter.campaigns import lease, scheduling, store, tracker
from callcenter.campaigns.scheduling import RetryRule, next_contact_state
from callcenter.db.models import Call, Queue
from callcenter.db.models_campaigns import Campaign, CampaignAttempt, Contact, DoNotCall

UTC = dt.UTC
SITE_TZ = "UTC"


def zone_where_hour_in(hours: range) -> str:
    """A fixed-offset zone where the local hour now is in ``hours``."""
    now = dt.datetime.now(UTC)
    for offset in range(-12, 15):
        name = "Etc/GMT" if offset == 0 else f"Etc/GMT{'+' if offset < 0 else '-'}{abs(offset)}"
        if (now.hour + offset) % 24 in hours:
            return name
    raise AssertionError(f"no zone has an hour in {hours}")


OPEN = zone_where_hour_in(range(12, 18))
CLOSED = zone_where_hour_in(range(1, 6))


@pytest.fixture
def sessions(clean_db: Engine) -> sessionmaker[Session]:
    return sessionmaker(clean_db, expire_on_commit=False)


@pytest.fixture
def s(sessions: sessionmaker[Session]) -> Iterator[Session]:
    with sessions() as session, session.begin():
        yield session


def make_campaign(s: Session, name: str = "c1", **settings: Any) -> Campaign:
    if s.scalar(sa.select(Queue.id).where(Queue.name == "sales")) is None:
        s.add(Queue(name="sales"))
        s.flush()
    settings.setdefault("queue", "sales")
    return store.add_campaign(s, name, trunks=("prov",), **settings)


def add_contacts(s: Session, campaign: Campaign, *rows: dict[str, Any]) -> list[Contact]:
    contacts = []
    for i, row in enumerate(rows):
        values: dict[str, Any] = {
            "phone": f"+1212555{i:04d}",
            "timezone": OPEN,
            "priority": 0,
            "status": "new",
            "attempts": 0,
            "fields": {"row": i},
            "name": f"n{i}",
            **row,
        }
        contacts.append(Contact(campaign_id=campaign.id, **values))
    s.add_all(contacts)
    s.flush()
    return contacts


def claim(
    s: Session,
    campaign: Campaign,
    n: int,
    now: dt.datetime | None = None,
    site_tz: str | dt.tzinfo = SITE_TZ,
) -> list[Any]:
    return scheduling.claim(
        s,
        campaign,
        n,
        now=now or dt.datetime.now(UTC),
        dialer="d1",
        node="local",
        paced="progressive",
        caller_id="+12125550100",
        site_tz=site_tz,
    )


def attempts_of(s: Session, campaign: Campaign) -> list[CampaignAttempt]:
    return list(
        s.scalars(
            sa.select(CampaignAttempt)
            .where(CampaignAttempt.campaign_id == campaign.id)
            .order_by(CampaignAttempt.id)
        )
    )


# --- settings and state ----------------------------------------------------------------------


def test_new_settings_are_checked_and_shown(s: Session) -> None:
    c = make_campaign(
        s,
        ring_seconds=30,
        channel_limit=5,
        abandon_message="acme-info",
    )
    view = store.campaign_view(c)
    assert (view["ring_seconds"], view["channel_limit"], view["abandon_message"]) == (
        30,
        5,
        "acme-info",
    )
    assert (view["state"], view["started_at"], view["agentless_action"]) == (
        "stopped",
        None,
        "message",
    )
    for bad, reason in (
        ({"ring_seconds": 14}, "between 15 and 120"),
        ({"ring_seconds": 121}, "between 15 and 120"),
        ({"channel_limit": 0}, "between 1 and 1000"),
        ({"channel_limit": 1001}, "between 1 and 1000"),
        ({"agentless_action": "dance"}, "not one of message, survey"),
    ):
        with pytest.raises(store.CampaignError, match=reason):
            store.update_campaign(s, "c1", **bad)
    robo = {
        "mode": "agentless",
        "queue": None,
        "seller_name": "Acme",
        "seller_number": "+12125550199",
    }
    with pytest.raises(store.CampaignError, match="--survey-ivr"):
        make_campaign(s, "robo", agentless_action="survey", **robo)
    survey = make_campaign(s, "robo", agentless_action="survey", survey_ivr="csat", **robo)
    assert store.campaign_view(survey)["survey_ivr"] == "csat"


def test_start_pause_stop(s: Session) -> None:
    now = dt.datetime(2026, 3, 1, 12, tzinfo=UTC)
    c = make_campaign(s)
    add_contacts(s, c, {})
    with pytest.raises(store.CampaignError, match="no trunk"):
        store.start_campaign(s, "c1", now)
    with pytest.raises(store.CampaignError, match="no trunk"):
        store.start_campaign(s, "c1", now, customer_channel="PJSIP/{number}@{trunk}")
    # A trunk of the campaign's own, or a dialer's customer channel, is enough.
    assert store.start_campaign(s, "c1", now, customer_channel="Local/{number}@test").state == (
        "running"
    )
    assert c.started_at == now
    assert store.pause_campaign(s, "c1", now).state == "paused"
    later = now + dt.timedelta(days=3)
    store.start_campaign(s, "c1", later, trunks=("prov",))
    assert (c.state, c.started_at) == ("running", now)  # the first start stays
    assert store.stop_campaign(s, "c1", later).state == "stopped"
    with pytest.raises(store.CampaignError, match="nothing to pause"):
        store.pause_campaign(s, "c1", later)
    with pytest.raises(store.CampaignError, match="no campaign named 'nope'"):
        store.start_campaign(s, "nope", later)
    store.update_campaign(s, "c1", trunk="prov", trunks=("prov",))
    assert store.start_campaign(s, "c1", later).state == "running"
    robo = make_campaign(
        s, "robo", mode="agentless", queue=None, seller_name="A", seller_number="+12125550199"
    )
    add_contacts(s, robo, {})
    with pytest.raises(store.CampaignError, match="--agentless-message"):
        store.start_campaign(s, "robo", now, trunks=("prov",))


# --- the retry rule --------------------------------------------------------------------------

RULE = RetryRule(max_attempts=3, busy=60, no_answer=120, machine=180, abandoned=240, failed=300)
T0 = dt.datetime(2026, 3, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("outcome", "attempts", "dnc", "expected"),
    [
        ("connected", 1, False, ("done", None)),
        ("delivered", 1, False, ("done", None)),
        ("machine_message", 1, False, ("done", None)),
        ("busy", 1, False, ("retry", 60)),
        ("no_answer", 2, False, ("retry", 120)),
        ("machine", 1, False, ("retry", 180)),
        ("abandoned", 1, False, ("retry", 240)),
        ("hung_up", 1, False, ("retry", 240)),
        ("failed", 1, False, ("retry", 300)),
        ("lost", 1, False, ("retry", 300)),
        ("busy", 3, False, ("done", None)),
        ("lost", 4, False, ("done", None)),
        ("skipped", 0, True, ("dnc", None)),
        ("skipped", 0, False, ("new", 3600)),
        ("skipped", 2, False, ("retry", 3600)),
    ],
)
def test_next_contact_state(
    outcome: str, attempts: int, dnc: bool, expected: tuple[str, int | None]
) -> None:
    state = next_contact_state(outcome, attempts=attempts, rule=RULE, ended_at=T0, dnc=dnc)
    status, delay = expected
    assert state.status == status
    assert state.next_attempt_at == (None if delay is None else T0 + dt.timedelta(seconds=delay))
    assert state.last_outcome == outcome
    with pytest.raises(ValueError, match="unknown"):
        next_contact_state("nope", attempts=1, rule=RULE, ended_at=T0)


# --- claiming --------------------------------------------------------------------------------


def test_claim_order_due_and_windows(s: Session) -> None:
    c = make_campaign(s, max_attempts=2)
    now = dt.datetime.now(UTC)
    rows = add_contacts(
        s,
        c,
        {"priority": 1},  # 0
        {
            "priority": 5,
            "status": "retry",
            "attempts": 1,
            "next_attempt_at": now - dt.timedelta(minutes=5),
        },  # 1
        {"priority": 5},  # 2: null next_attempt_at comes first
        {"priority": 9, "timezone": CLOSED},  # 3: window closed
        {
            "priority": 9,
            "status": "retry",
            "attempts": 1,
            "next_attempt_at": now + dt.timedelta(minutes=5),
        },  # 4: not yet
        {"priority": 9, "status": "retry", "attempts": 2},  # 5: no attempts left
        {"priority": 9, "status": "done"},  # 6
        {"priority": 9, "status": "dialling", "attempts": 1},  # 7: in progress
        {"priority": 1},  # 8
    )
    assert scheduling.zones_open(s, c, now) == [OPEN]
    assert set(scheduling.contact_zones(s, c.id)) == {OPEN, CLOSED}
    got = claim(s, c, 3, now)
    assert [g.contact_id for g in got] == [rows[2].id, rows[1].id, rows[0].id]
    assert [g.attempt_no for g in got] == [1, 2, 1]
    assert got[0].fields == {"row": 2}
    assert (got[0].phone, got[0].name, got[0].timezone) == (rows[2].phone, "n2", OPEN)
    assert [r.status for r in rows[:3]] == ["dialling"] * 3
    assert [r.attempts for r in rows[:3]] == [1, 2, 1]
    attempts = attempts_of(s, c)
    assert [a.channel_id for a in attempts] == [g.channel_id for g in got]
    a = attempts[0]
    # The dialer's channel ids: its AMI user's eventfilter selects its calls by the prefix.
    assert (a.channel_id or "").startswith(tracker.CHANNEL_PREFIX)
    uuid.UUID((a.channel_id or "").removeprefix(tracker.CHANNEL_PREFIX))
    assert len({g.channel_id for g in got}) == 3
    assert (a.phase, a.outcome, a.mode, a.paced, a.dialer, a.node, a.caller_id) == (
        "dialling",
        None,
        "progressive",
        "progressive",
        "d1",
        "local",
        "+12125550100",
    )
    assert (a.created_at, a.day, a.period) == (now, now.date(), 1)
    assert scheduling.contacts_left(s, c.id) == 4  # 3 (window closed) and 8 new, 4 and 5 retry
    # Then the last due one, then nothing.
    assert [g.contact_id for g in claim(s, c, 5, now)] == [rows[8].id]
    assert claim(s, c, 5, now) == []
    assert claim(s, c, 0, now) == []
    # All zones closed: nothing, whatever is due.
    closed = make_campaign(s, "c2")
    add_contacts(s, closed, {"timezone": CLOSED})
    assert scheduling.zones_open(s, closed, now) == []
    assert claim(s, closed, 5, now) == []


def test_period_counts_from_the_first_start(s: Session) -> None:
    c = make_campaign(s)
    add_contacts(s, c, {}, {})
    now = dt.datetime.now(UTC)
    c.started_at = now - dt.timedelta(days=65)
    claim(s, c, 1, now)
    assert attempts_of(s, c)[0].period == 3  # days 60-89 since the start
    # The day is the site's: 14 hours ahead of UTC, given by name or as a zone.
    kiritimati = zoneinfo.ZoneInfo("Pacific/Kiritimati")
    claim(s, c, 1, now, site_tz=kiritimati)
    assert attempts_of(s, c)[1].day == now.astimezone(kiritimati).date()
    assert scheduling.period_of(dt.date(2026, 1, 30), dt.date(2026, 1, 1)) == 1  # day 30
    assert scheduling.period_of(dt.date(2026, 1, 31), dt.date(2026, 1, 1)) == 2
    assert scheduling.period_of(dt.date(2026, 1, 30), None) == 1


def test_the_dialer_passes_over_callbacks_booked_for_an_agent(s: Session) -> None:
    c = make_campaign(s)
    rows = add_contacts(
        s,
        c,
        {"fields": {"callback_for": "alice"}, "priority": 9},
        {"fields": {"callback_for": ""}, "priority": 5},
        {"fields": {}, "priority": 1},
    )
    got = claim(s, c, 3)
    assert [g.contact_id for g in got] == [rows[1].id, rows[2].id]
    assert [g.fields for g in got] == [{"callback_for": ""}, {}]
    assert (rows[0].status, rows[1].status, rows[2].status) == ("new", "dialling", "dialling")
    assert [(a.contact_id, a.attempt_no, a.phase, a.channel_id) for a in attempts_of(s, c)] == [
        (g.contact_id, 1, "dialling", g.channel_id) for g in got
    ]
    assert [a.id for a in attempts_of(s, c)] == [g.attempt_id for g in got]


def test_dnc_is_checked_at_claim_time(s: Session) -> None:
    c = make_campaign(s)
    rows = add_contacts(s, c, *({"priority": 10 - i} for i in range(6)))
    assert [g.contact_id for g in claim(s, c, 2)] == [rows[0].id, rows[1].id]
    # Numbers added to the do-not-call list while the campaign runs are never dialled.
    s.add_all([DoNotCall(phone=rows[2].phone), DoNotCall(phone=rows[3].phone)])
    s.flush()
    got = claim(s, c, 2)
    assert [g.contact_id for g in got] == [rows[4].id, rows[5].id]  # still two dials
    assert (rows[2].status, rows[3].status) == ("dnc", "dnc")
    assert (rows[2].attempts, rows[2].last_outcome) == (0, "skipped")
    skipped = [a for a in attempts_of(s, c) if a.outcome == "skipped"]
    assert [a.contact_id for a in skipped] == [rows[2].id, rows[3].id]
    assert all(
        (a.phase, a.reason, a.channel_id, a.ended_at is not None)
        == ("ended", "do-not-call list", None, True)
        for a in skipped
    )
    assert claim(s, c, 2) == []


def test_two_connections_never_claim_the_same_contact(
    sessions: sessionmaker[Session], clean_db: Engine
) -> None:
    with sessions.begin() as s:
        c = make_campaign(s)
        add_contacts(s, c, *({} for _ in range(10)))
        campaign_id = c.id
    # Two open transactions at once, on two connections: the second passes over the rows
    # the first holds.
    with sessions() as a, sessions() as b:
        ca = a.get(Campaign, campaign_id)
        cb = b.get(Campaign, campaign_id)
        assert ca is not None
        assert cb is not None
        first = {g.contact_id for g in claim(a, ca, 4)}
        second = {g.contact_id for g in claim(b, cb, 4)}
        assert len(first) == len(second) == 4
        assert not first & second
        a.commit()
        b.commit()
    # A second engine (another process's pool), and threads racing to the end of the list.
    other = sa.create_engine(clean_db.url)
    factories = [sessions, sessionmaker(other, expire_on_commit=False)]
    seen: list[list[int]] = [[], []]
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            while True:
                with factories[i].begin() as s:
                    campaign = s.get(Campaign, campaign_id)
                    assert campaign is not None
                    got = claim(s, campaign, 1)
                    if not got:
                        return
                    seen[i].extend(g.contact_id for g in got)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    other.dispose()
    assert not errors
    together = seen[0] + seen[1]
    assert len(together) == len(set(together)) == 2
    with sessions() as s:
        n_attempts = s.scalar(sa.select(sa.func.count()).select_from(CampaignAttempt))
        assert n_attempts == 10


# --- attempts --------------------------------------------------------------------------------


def test_finish_is_idempotent_and_applies_the_retry_rule(s: Session) -> None:
    c = make_campaign(s, max_attempts=2, retry_busy=600)
    rows = add_contacts(s, c, {}, {}, {})
    got = claim(s, c, 3)
    at = dt.datetime.now(UTC)
    assert scheduling.finish(s, got[0].channel_id, "busy", at=at, hangup_cause=17)
    assert not scheduling.finish(s, got[0].channel_id, "connected", at=at)  # once only
    assert not scheduling.finish(s, "no-such-channel", "busy", at=at)
    a0 = attempts_of(s, c)[0]
    assert (a0.phase, a0.outcome, a0.ended_at, a0.hangup_cause) == ("ended", "busy", at, 17)
    assert (rows[0].status, rows[0].attempts, rows[0].last_outcome) == ("retry", 1, "busy")
    assert rows[0].next_attempt_at == at + dt.timedelta(seconds=600)
    assert scheduling.finish(s, got[1].channel_id, "connected", at=at)
    assert (rows[1].status, rows[1].next_attempt_at) == ("done", None)
    # A claimed attempt that ends skipped was not dialled: not counted.
    assert scheduling.finish(s, got[2].channel_id, "skipped", at=at, reason="window closed")
    assert (rows[2].status, rows[2].attempts) == ("new", 0)
    assert attempts_of(s, c)[2].reason == "window closed"
    # The second attempt of the busy one, with no attempts left after it: done.
    rows[0].next_attempt_at = None
    again = claim(s, c, 3)
    assert [g.contact_id for g in again] == [rows[0].id]
    assert again[0].attempt_no == 2
    assert scheduling.finish(s, again[0].channel_id, "no_answer", at=at)
    assert (rows[0].status, rows[0].attempts) == ("done", 2)
    with pytest.raises(ValueError, match="unknown attempt outcome"):
        scheduling.finish(s, got[0].channel_id, "exploded", at=at)


def test_finish_writes_the_calls_facts_with_its_end(s: Session) -> None:
    c = make_campaign(s)
    add_contacts(s, c, {})
    (got,) = claim(s, c, 1)
    at = dt.datetime.now(UTC)
    facts = {"answered_at": at, "amd_status": "HUMAN", "agent": "alice"}
    assert scheduling.finish(s, got.channel_id, "connected", at=at, facts=facts)
    (a,) = attempts_of(s, c)
    assert (a.outcome, a.answered_at, a.amd_status, a.agent) == ("connected", at, "HUMAN", "alice")
    # Facts learnt late still reach an attempt already ended; its end stays.
    assert not scheduling.finish(s, got.channel_id, "lost", at=at, facts={"hangup_cause": 16})
    s.refresh(a)
    assert (a.outcome, a.hangup_cause) == ("connected", 16)
    with pytest.raises(ValueError, match="no column"):
        scheduling.finish(s, got.channel_id, "lost", at=at, facts={"colour": "red"})
    with pytest.raises(ValueError, match="phase"):
        scheduling.finish(s, got.channel_id, "lost", at=at, facts={"phase": "queued"})


def test_update_attempt_and_open_attempts(s: Session) -> None:
    c = make_campaign(s)
    add_contacts(s, c, {}, {})
    got = claim(s, c, 2)
    at = dt.datetime.now(UTC)
    assert scheduling.update_attempt(
        s, got[0].channel_id, phase="answered", answered_at=at, amd_status="HUMAN"
    )
    assert not scheduling.update_attempt(s, "nope", phase="answered")
    assert scheduling.update_attempt(s, got[0].channel_id)  # nothing to set: it exists
    with pytest.raises(ValueError, match="no column"):
        scheduling.update_attempt(s, got[0].channel_id, colour="red")
    with pytest.raises(ValueError, match="outcome"):
        scheduling.update_attempt(s, got[0].channel_id, outcome="connected")
    a0, a1 = attempts_of(s, c)
    s.refresh(a0)
    assert (a0.phase, a0.answered_at, a0.amd_status) == ("answered", at, "HUMAN")
    assert [a.id for a in scheduling.open_attempts(s, c.id)] == [a0.id, a1.id]
    scheduling.finish(s, got[1].channel_id, "no_answer", at=at)
    # A late fact after the end does not reopen it.
    assert scheduling.update_attempt(s, got[1].channel_id, phase="answered", hangup_cause=19)
    s.refresh(a1)
    assert (a1.phase, a1.hangup_cause, a1.outcome) == ("ended", 19, "no_answer")
    assert [a.id for a in scheduling.open_attempts(s, c.id)] == [a0.id]


# --- preview ---------------------------------------------------------------------------------


def preview_campaign(s: Session) -> tuple[Campaign, list[Contact]]:
    c = make_campaign(s, "pv", mode="preview")
    rows = add_contacts(s, c, *({"priority": 10 - i} for i in range(4)))
    c.state = "running"
    return c, rows


def take(s: Session, c: Campaign, agent: str) -> Any:
    return scheduling.preview_take(
        s, c, agent, now=dt.datetime.now(UTC), dialer="cli", site_tz=SITE_TZ
    )


def test_preview_take_dial_skip(s: Session) -> None:
    c, rows = preview_campaign(s)
    ann = take(s, c, "ann")
    assert ann.contact_id == rows[0].id
    assert ann.channel_id.startswith(tracker.CHANNEL_PREFIX)  # the agent's phone is originated
    assert take(s, c, "ann") == ann  # the same one back
    assert (rows[0].status, rows[0].attempts) == ("previewing", 0)
    bob = take(s, c, "bob")
    assert bob.contact_id == rows[1].id
    assert scheduling.requested(s, c.id) == []
    dialled = scheduling.preview_dial(s, c, "ann")
    assert (dialled.phase, dialled.agent, dialled.paced) == ("requested", "ann", "preview")
    assert (rows[0].status, rows[0].attempts) == ("dialling", 1)
    assert scheduling.preview_dial(s, c, "ann").id == dialled.id  # asking twice
    assert [a.id for a in scheduling.requested(s, c.id)] == [dialled.id]
    assert take(s, c, "ann") == ann  # still hers until it ends
    with pytest.raises(store.CampaignError, match="can no longer be skipped"):
        scheduling.preview_skip(s, c, "ann", "wrong person")
    # Bob passes over his: not an attempt, the contact waits before it comes back.
    now = dt.datetime.now(UTC)
    skipped = scheduling.preview_skip(s, c, "bob", "customer asked by email", now=now)
    assert (skipped.outcome, skipped.reason) == (
        "skipped",
        "skipped by bob: customer asked by email",
    )
    assert (rows[1].status, rows[1].attempts) == ("new", 0)
    assert rows[1].next_attempt_at == now + dt.timedelta(seconds=scheduling.SKIP_SECONDS)
    assert take(s, c, "bob").contact_id == rows[2].id
    with pytest.raises(store.CampaignError, match="no contact of campaign pv on screen"):
        scheduling.preview_dial(s, c, "cy")
    with pytest.raises(store.CampaignError, match="needs a reason"):
        scheduling.preview_skip(s, c, "bob", " ")
    # The number went on the do-not-call list while on Bob's screen: not dialled.
    s.add(DoNotCall(phone=rows[2].phone))
    s.flush()
    refused = scheduling.preview_dial(s, c, "bob")
    assert (refused.outcome, refused.reason, rows[2].status) == (
        "skipped",
        "do-not-call list",
        "dnc",
    )
    # Only preview campaigns, only running.
    c.state = "paused"
    with pytest.raises(store.CampaignError, match="paused, not running"):
        take(s, c, "cy")
    other = make_campaign(s, "prog")
    with pytest.raises(store.CampaignError, match="only in preview campaigns"):
        take(s, other, "ann")


def test_preview_skips_dnc_numbers_when_taking(s: Session) -> None:
    c, rows = preview_campaign(s)
    s.add(DoNotCall(phone=rows[0].phone))
    s.flush()
    assert take(s, c, "ann").contact_id == rows[1].id
    assert rows[0].status == "dnc"


# --- what the pacer reads at a start ---------------------------------------------------------


def record(s: Session, c: Campaign, outcome: str | None, day: dt.date, **kw: Any) -> int:
    created = kw.pop("created_at", dt.datetime.combine(day, dt.time(12), tzinfo=UTC))
    if outcome in scheduling.LIVE_OUTCOMES:
        kw.setdefault("human_at", created)
    a = CampaignAttempt(
        campaign_id=c.id,
        phone="+12125550000",
        attempt_no=1,
        mode=c.mode,
        phase="ended" if outcome else "dialling",
        outcome=outcome,
        created_at=created,
        day=day,
        channel_id=kw.pop("channel_id", str(uuid.uuid4())),
        **kw,
    )
    s.add(a)
    s.flush()
    return a.id


def test_ledger_and_recent_figures(s: Session) -> None:
    c = make_campaign(s)
    d1, d2, d3 = dt.date(2026, 3, 1), dt.date(2026, 3, 2), dt.date(2026, 3, 4)
    for day, outcomes in (
        (d1, ["connected", "abandoned", "busy", "skipped"]),
        (d2, ["hung_up", "no_answer", "machine"]),
        (d3, ["connected", "connected", "abandoned", "delivered", None]),
    ):
        for o in outcomes:
            record(s, c, o, day)
    # Hung up during AMD: never known to be a person, so no live answer.
    record(s, c, "hung_up", d2, human_at=None)
    assert scheduling.ledger_days(s, c.id, d1) == [(d1, 2, 1), (d2, 1, 0), (d3, 4, 1)]
    assert scheduling.ledger_days(s, c.id, d2) == [(d2, 1, 0), (d3, 4, 1)]
    assert scheduling.life_counts(s, c.id) == (7, 2)
    # Outcomes with their times: oldest first, skipped/lost/open left out.
    s.execute(sa.delete(CampaignAttempt))
    t = dt.datetime(2026, 3, 5, 12, tzinfo=UTC)
    sec = dt.timedelta(seconds=1)
    record(s, c, "connected", d3, originated_at=t, human_at=t + 7 * sec, ended_at=t + 90 * sec)
    record(s, c, "no_answer", d3, originated_at=t, ended_at=t + 25 * sec)
    record(s, c, "skipped", d3, ended_at=t)
    record(s, c, "lost", d3, ended_at=t)
    record(s, c, "busy", d3, created_at=t, ended_at=t + 2 * sec)  # no originate time
    record(s, c, "abandoned", d3, originated_at=t, human_at=t + 4 * sec, ended_at=t + 9 * sec)
    assert scheduling.recent_outcomes(s, c.id) == [
        (True, 7.0),
        (False, 25.0),
        (False, 2.0),
        (True, 4.0),
    ]
    assert scheduling.recent_outcomes(s, c.id, limit=2) == [(False, 2.0), (True, 4.0)]
    # Talk from the bridge's call log, keyed by the attempt's channel id.
    for i, talk in enumerate((30.0, 45.0, 60.0)):
        channel = f"chan-{i}"
        record(s, c, "connected", d3, channel_id=channel)
        s.add(
            Call(
                node="local",
                uniqueid=channel,
                linkedid=channel,
                started_at=t,
                talk_seconds=talk,
                direction="outbound",
            )
        )
    record(s, c, "connected", d3, channel_id="chan-x")  # no call-log row (yet)
    s.flush()
    assert scheduling.recent_handle_seconds(s, c.id) == [30.0, 45.0, 60.0]
    assert scheduling.recent_handle_seconds(s, c.id, limit=2) == [45.0, 60.0]


# --- the lease -------------------------------------------------------------------------------


def test_lease_acquire_renew_takeover_release(s: Session) -> None:
    c = make_campaign(s)
    t = dt.datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert lease.holder_of(s, c.id, t) is None
    assert lease.acquire(s, c.id, "d1", now=t, ttl=30)
    assert lease.holder_of(s, c.id, t) == "d1"
    assert not lease.acquire(s, c.id, "d2", now=t + dt.timedelta(seconds=10), ttl=30)
    assert lease.acquire(s, c.id, "d1", now=t + dt.timedelta(seconds=20), ttl=30)  # renew
    # d2 only after d1's renewed lease has passed (20 + 30 s).
    assert not lease.acquire(s, c.id, "d2", now=t + dt.timedelta(seconds=45), ttl=30)
    assert lease.holder_of(s, c.id, t + dt.timedelta(seconds=51)) is None
    assert lease.acquire(s, c.id, "d2", now=t + dt.timedelta(seconds=51), ttl=30)
    assert lease.holder_of(s, c.id, t + dt.timedelta(seconds=52)) == "d2"
    assert not lease.release(s, c.id, "d1")
    assert lease.release(s, c.id, "d2")
    assert lease.holder_of(s, c.id, t + dt.timedelta(seconds=52)) is None
    with pytest.raises(ValueError, match="positive"):
        lease.acquire(s, c.id, "d1", now=t, ttl=0)


def test_two_dialers_racing_for_a_lease(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        campaign_id = make_campaign(s).id
    now = dt.datetime.now(UTC)
    barrier = threading.Barrier(4)
    won: dict[str, bool] = {}
    errors: list[BaseException] = []

    def race(holder: str) -> None:
        try:
            with sessions.begin() as s:
                barrier.wait(10)
                won[holder] = lease.acquire(s, campaign_id, holder, now=now, ttl=30)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=race, args=(f"d{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    winners = [h for h, ok in won.items() if ok]
    assert len(won) == 4
    assert len(winners) == 1
    with sessions() as s:
        assert lease.holder_of(s, campaign_id, now) == winners[0]
