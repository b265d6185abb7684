"""CRM report figures against values worked out by hand on a small fixture.

The interval is 2026-11-20 (UTC); ``now`` is 2026-11-21 01:00. Every expected number is
worked out in the comment beside it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from callcenter.campaigns import store as campaign_store
from callcenter.campaigns.numbers import Normaliser
from callcenter.crm import CrmError
from callcenter.crm import cases as case_store
from callcenter.crm import customers as customer_store
from callcenter.crm.reports import build_crm_report
from callcenter.db.models import Call, Queue
from callcenter.db.models_crm import CallDisposition
from tests.conftest import Cli

UTC = dt.UTC
DAY = dt.datetime(2026, 11, 20, tzinfo=UTC)
SINCE, UNTIL = DAY, DAY + dt.timedelta(days=1)
NOW = DAY + dt.timedelta(days=1, hours=1)


def at(hours: float) -> dt.datetime:
    return DAY + dt.timedelta(hours=hours)


def before_now(days: float) -> dt.datetime:
    return NOW - dt.timedelta(days=days)


@pytest.fixture
def s(clean_db: Engine) -> Iterator[Session]:
    with sessionmaker(clean_db)() as session, session.begin():
        yield session


def case(
    s: Session,
    customer_id: int,
    created: dt.datetime,
    *,
    calls: int = 0,
    resolved: dt.datetime | None = None,
    closed: dt.datetime | None = None,
    status: str = "open",
    due: dt.datetime | None = None,
) -> None:
    c = case_store.create_case(
        s, customer_id=customer_id, category="question", actor="x", now=created, due_at=due
    )
    for n in range(calls):
        case_store.link_call(s, c, node="pbx1", uniqueid=f"{c.number}-{n}", actor="x", at=created)
    if status == "pending":
        case_store.update_case(s, c.number, actor="x", now=created, status="pending")
    if resolved is not None:
        case_store.update_case(
            s, c.number, actor="x", now=resolved, status="resolved", resolution="done"
        )
    if closed is not None:
        case_store.update_case(s, c.number, actor="x", now=closed, status="closed")


def inbound(s: Session, n: int, queue: str, caller: str, started: dt.datetime) -> None:
    s.add(
        Call(
            node="pbx1",
            uniqueid=f"u{n}",
            linkedid=f"u{n}",
            caller_number=caller,
            started_at=started,
            queue=queue,
        )
    )


def disposition(
    s: Session,
    n: int,
    queue: str,
    agent: str,
    code: str | None,
    when: dt.datetime,
    *,
    effect: str = "none",
    campaign_id: int | None = None,
    undocumented: dt.datetime | None = None,
) -> None:
    s.add(
        CallDisposition(
            node="pbx1",
            uniqueid=f"d{n}",
            visit=1,
            queue=queue,
            agent=agent,
            code=code,
            effect=effect if code else None,
            campaign_id=campaign_id,
            at=when,
            undocumented_at=undocumented,
        )
    )


def populate(s: Session) -> Session:
    cid = customer_store.create_customer(s, Normaliser("US"), name="X").id
    # Resolved in the interval: A (1 call, 2 h), B (2 calls, 6 h), C (no call, 24 h),
    # E (1 call, 30 min, closed since). D was resolved days before.
    case(s, cid, at(8), calls=1, resolved=at(10))  # A
    case(s, cid, at(9), calls=2, resolved=at(15))  # B
    case(s, cid, at(-12), resolved=at(12))  # C
    case(s, cid, at(-240), calls=1, resolved=at(-120))  # D
    case(s, cid, at(11), calls=1, resolved=at(11.5), closed=at(12))  # E
    # Open or pending as of NOW: F 12 h old, G 2 days (pending, overdue), H 40 days, I 5 days.
    case(s, cid, before_now(0.5))  # F
    case(s, cid, before_now(2), status="pending", due=NOW - dt.timedelta(hours=1))  # G
    case(s, cid, before_now(40))  # H
    case(s, cid, before_now(5), due=NOW + dt.timedelta(hours=1))  # I

    for name in ("sales", "support"):
        s.add(Queue(name=name))
    s.flush()
    spring = campaign_store.add_campaign(s, "spring", queue="sales", trunks=("prov",))

    # Calls for repeat callers within 7 days.
    inbound(s, 1, "sales", "5550001", at(-72))  # before the interval: a first call
    inbound(s, 2, "sales", "5550001", at(9))  # repeat (3 days after)
    inbound(s, 3, "sales", "5550001", at(10))  # repeat
    inbound(s, 4, "sales", "5550002", at(-240))  # 10 days before: too old
    inbound(s, 5, "sales", "5550002", at(9.5))  # not a repeat
    inbound(s, 6, "sales", "5550003", at(11))  # not a repeat
    inbound(s, 7, "sales", "", at(12))  # anonymous: left out
    s.add(
        Call(
            node="pbx1",
            uniqueid="u8",
            linkedid="u8",
            direction="outbound",
            caller_number="5550003",
            started_at=at(13),
            queue="sales",
        )
    )  # outbound: left out
    inbound(s, 9, "support", "5550001", at(14))  # another queue: not a repeat there
    inbound(s, 10, "support", "5550005", at(8))
    inbound(s, 11, "support", "5550005", at(20))  # repeat
    inbound(s, 12, "support", "5550006", at(25))  # after the interval: left out

    disposition(s, 1, "sales", "ann", "sale", at(9), effect="resolves")
    disposition(s, 2, "sales", "ann", "sale", at(10), effect="resolves")
    disposition(s, 3, "sales", "bob", "later", at(11), effect="callback")
    disposition(s, 4, "support", "bob", "fixed", at(12), effect="resolves")
    disposition(s, 5, "sales", "bob", "not-interested", at(13), campaign_id=spring.id)
    disposition(s, 6, "sales", "ann", "sale", at(-48), effect="resolves")  # before
    disposition(s, 7, "sales", "ann", None, at(10), undocumented=at(10))  # still undocumented
    disposition(  # marked, then documented late
        s, 8, "support", "bob", "fixed", at(12), effect="resolves", undocumented=at(11)
    )
    disposition(s, 9, "support", "bob", None, at(-30), undocumented=at(-30))  # before
    s.flush()
    return s


@pytest.fixture
def fixture(s: Session) -> Session:
    return populate(s)


def test_report(fixture: Session) -> None:
    rep = build_crm_report(fixture, SINCE, UNTIL, now=NOW, repeat_days=7).as_dict()
    # A, B, C, E resolved; A, B, E have calls; A and E one call each.
    assert rep["first_contact"] == {
        "resolved": 4,
        "with_calls": 3,
        "first_contact": 2,
        "rate": pytest.approx(2 / 3),
    }
    # [1800, 7200, 21600, 86400]: median (7200 + 21600) / 2; p90 at rank 0.9 * 3 = 2.7:
    # 21600 + 0.7 * (86400 - 21600) = 66960.
    assert rep["resolution"] == {
        "resolved": 4,
        "median_seconds": pytest.approx(14400),
        "p90_seconds": pytest.approx(66960),
    }
    assert rep["open_cases"] == {
        "total": 4,
        "overdue": 1,
        "by_age": {
            "0-1d": {"open": 1, "pending": 0},
            "1-3d": {"open": 0, "pending": 1},
            "3-7d": {"open": 1, "pending": 0},
            "7-30d": {"open": 0, "pending": 0},
            "30d+": {"open": 1, "pending": 0},
        },
    }
    # sales: u2, u3 (5550001, both repeats), u5, u6: 4 calls, 3 callers, 2 repeats by one.
    # support: u9, u10, u11: 3 calls, 2 callers, 1 repeat (u11).
    assert rep["repeat_callers"] == [
        {
            "queue": "sales",
            "calls": 4,
            "callers": 3,
            "repeat_calls": 2,
            "repeat_callers": 1,
            "repeat_rate": 0.5,
        },
        {
            "queue": "support",
            "calls": 3,
            "callers": 2,
            "repeat_calls": 1,
            "repeat_callers": 1,
            "repeat_rate": pytest.approx(1 / 3),
        },
    ]

    def counts(rows: list[dict[str, object]]) -> list[tuple[object, ...]]:
        return [(r["by"], r["code"], r["count"]) for r in rows]

    assert counts(rep["dispositions_by_queue"]) == [
        ("sales", "sale", 2),
        ("sales", "later", 1),
        ("sales", "not-interested", 1),
        ("support", "fixed", 2),
    ]
    assert counts(rep["dispositions_by_agent"]) == [
        ("ann", "sale", 2),
        ("bob", "fixed", 2),
        ("bob", "later", 1),
        ("bob", "not-interested", 1),
    ]
    assert counts(rep["dispositions_by_campaign"]) == [
        ("spring", "not-interested", 1),
        (None, "fixed", 2),
        (None, "sale", 2),
        (None, "later", 1),
    ]
    assert rep["undocumented"] == {
        "undocumented": 1,
        "documented_late": 1,
        "by_queue": {"sales": 1},
        "by_agent": {"ann": 1},
    }
    # A wider repeat window reaches u4 (10 days before u5): one more repeat in sales.
    wide = build_crm_report(fixture, SINCE, UNTIL, now=NOW, repeat_days=14)
    assert [(r.queue, r.repeat_calls) for r in wide.repeat_callers] == [
        ("sales", 3),
        ("support", 1),
    ]


def test_filters(fixture: Session) -> None:
    rep = build_crm_report(fixture, SINCE, UNTIL, now=NOW, queue="support")
    assert [r.queue for r in rep.repeat_callers] == ["support"]
    assert [(c.by, c.code, c.count) for c in rep.dispositions_by_queue] == [("support", "fixed", 2)]
    assert rep.undocumented.undocumented == 0
    assert rep.undocumented.documented_late == 1
    rep = build_crm_report(fixture, SINCE, UNTIL, now=NOW, agent="ann")
    assert [(c.by, c.code, c.count) for c in rep.dispositions_by_agent] == [("ann", "sale", 2)]
    assert rep.undocumented.by_agent == {"ann": 1}
    with pytest.raises(CrmError, match="must end after it starts"):
        build_crm_report(fixture, UNTIL, SINCE, now=NOW)
    with pytest.raises(CrmError, match="repeat days = 0"):
        build_crm_report(fixture, SINCE, UNTIL, now=NOW, repeat_days=0)


def test_report_cli(run_cli: Cli, clean_db: Engine) -> None:
    with sessionmaker(clean_db)() as session, session.begin():
        populate(session)
    args = ("report", "--crm", "--since", "2026-11-20", "--until", "2026-11-21")
    rep = json.loads(run_cli.ok(*args, "--json").output)
    assert rep["first_contact"]["first_contact"] == 2
    assert rep["repeat_days"] == 7
    assert rep["undocumented"]["undocumented"] == 1
    text = run_cli.ok(*args, "--queue", "sales").output
    assert "first-contact resolution" in text
    assert "66.7% (2 of 3 resolved cases with calls; 4 resolved)" in text
    assert "dispositions per campaign" in text
    result = run_cli(*args, "--queue", "nope")
    assert result.exit_code == 1
    assert "no queue named 'nope'" in result.output
