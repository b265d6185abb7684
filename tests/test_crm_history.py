"""The screen-pop history against the real database: a customer's calls from any of their
numbers in any form the call log keeps them, newest first, with dispositions and notes (and
"not documented" marks), open cases and survey scores; the query an ordered index scan."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from callcenter.campaigns.numbers import Normaliser
from callcenter.crm import cases as case_store
from callcenter.crm import customers as store
from callcenter.db.models import Call
from callcenter.db.models_crm import CallDisposition
from tests.conftest import Cli

UTC = dt.UTC
NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
US = Normaliser("US")


def days_ago(days: float) -> dt.datetime:
    return NOW - dt.timedelta(days=days)


@pytest.fixture
def s(clean_db: Engine) -> Iterator[Session]:
    with sessionmaker(clean_db)() as session, session.begin():
        yield session


def add_call(
    s: Session,
    uniqueid: str,
    caller: str,
    started: dt.datetime,
    *,
    agent: str | None = None,
    outcome: str = "answered",
    survey: int | None = None,
) -> None:
    s.add(
        Call(
            node="pbx1",
            uniqueid=uniqueid,
            linkedid=uniqueid,
            caller_number=caller,
            started_at=started,
            queue="support",
            agent=agent,
            outcome=outcome,
            talk_seconds=60.0 if agent else None,
            survey_score=survey,
        )
    )


@pytest.fixture
def ann(s: Session) -> int:
    """Ann (two numbers) with five past calls in four forms, one call now, a stranger's call,
    three cases (one resolved), a disposition with notes and a case, and a mark."""
    customer = store.create_customer(
        s, US, name="Ann", phones=["+1 212 555 0100", "+44 20 7946 0018"]
    )
    add_call(s, "h1", "+12125550100", days_ago(5), agent="ann", survey=4)
    add_call(s, "h2", "2125550100", days_ago(3), outcome="abandoned")
    add_call(s, "h3", "02079460018", days_ago(2), agent="bob", survey=2)
    add_call(s, "h4", "0012125550100", days_ago(1), agent="ann")
    add_call(s, "h5", "6465550199", days_ago(1), agent="ann")  # someone else
    add_call(s, "h6", "12125550100", NOW, agent="bob")  # the call ringing now
    add_call(s, "h7", "+12125550100", days_ago(9), agent="ann")
    first = case_store.create_case(
        s, customer_id=customer.id, category="incident", actor="bob", now=days_ago(2)
    )
    done = case_store.create_case(
        s, customer_id=customer.id, category="question", actor="bob", now=days_ago(4)
    )
    case_store.update_case(
        s, done.number, actor="bob", now=days_ago(4), status="resolved", resolution="answered"
    )
    pending = case_store.create_case(
        s, customer_id=customer.id, category="request", actor="bob", now=days_ago(1)
    )
    case_store.update_case(s, pending.number, actor="bob", now=days_ago(1), status="pending")
    s.add_all(
        [
            CallDisposition(
                node="pbx1",
                uniqueid="h3",
                visit=1,
                queue="support",
                agent="bob",
                code="fixed",
                effect="resolves",
                notes="reset the router",
                case_id=first.id,
                at=days_ago(2),
            ),
            CallDisposition(
                node="pbx1",
                uniqueid="h1",
                visit=1,
                queue="support",
                agent="ann",
                code=None,
                notes="",
                at=days_ago(5),
                undocumented_at=days_ago(5),
            ),
        ]
    )
    s.flush()
    return customer.id


def test_customer_history(s: Session, ann: int) -> None:
    customer = store.get_customer(s, ann)
    history = store.customer_history(s, customer, limit=10, exclude_uniqueid="h6")
    view = history.as_dict()
    assert [c["uniqueid"] for c in view["calls"]] == ["h4", "h3", "h2", "h1", "h7"]
    h3 = view["calls"][1]
    assert h3["caller_number"] == "02079460018"
    assert h3["dispositions"] == [
        {
            "visit": 1,
            "agent": "bob",
            "code": "fixed",
            "effect": "resolves",
            "notes": "reset the router",
            "case": "C-000001",
            "at": days_ago(2).isoformat(),
            "undocumented": False,
        }
    ]
    assert view["calls"][3]["dispositions"][0]["undocumented"] is True
    assert view["calls"][2]["dispositions"] == []
    assert [(c["number"], c["status"]) for c in view["open_cases"]] == [
        ("C-000003", "pending"),
        ("C-000001", "open"),
    ]
    assert view["survey_scores"] == [2, 4]
    assert view["survey_mean"] == 3.0
    assert view["customer"]["phones"] == ["+12125550100", "+442079460018"]

    # The newest N only; the current call shows unless left out.
    short = store.customer_history(s, customer, limit=2)
    assert [c.uniqueid for c in short.calls] == ["h6", "h4"]


def test_caller_history(s: Session, ann: int) -> None:
    found = store.caller_history(s, US, "(212) 555-0100", limit=3, exclude_uniqueid="h6")
    assert found.customer is not None
    assert found.customer["id"] == ann
    assert [c.uniqueid for c in found.calls] == ["h4", "h3", "h2"]
    stranger = store.caller_history(s, US, "+1 646 555 0199")
    assert stranger.customer is None
    assert [c.uniqueid for c in stranger.calls] == ["h5"]
    assert stranger.open_cases == ()
    assert store.caller_history(s, US, "anonymous").calls == ()
    assert store.caller_history(s, US, "").calls == ()


def test_history_query_is_an_ordered_index_scan(s: Session, ann: int) -> None:
    """Each number form is a backward scan of (caller_number, started_at) that stops after
    the limit: no sort of a caller's whole history, whatever its length."""
    s.execute(sa.text("SET LOCAL enable_seqscan = off"))
    s.execute(sa.text("SET LOCAL enable_bitmapscan = off"))
    plan = "\n".join(
        row[0]
        for row in s.execute(
            sa.text("EXPLAIN " + store.PAST_CALLS_SQL),
            {"forms": store.caller_forms("+12125550100"), "limit": 20, "exclude": ""},
        )
    )
    assert "Index Scan Backward using ix_calls_caller_started on calls" in plan, plan
    inner = plan.split("Limit")[-1]
    assert "Sort" not in inner, plan


def test_customers_show_cli(run_cli: Cli, database_url: str, clean_db: Engine) -> None:
    with sessionmaker(clean_db)() as session, session.begin():
        customer = store.create_customer(session, US, name="Ann", phones=["+1 212 555 0100"])
        add_call(session, "h1", "2125550100", days_ago(1), agent="ann", survey=5)
        case = case_store.create_case(
            session, customer_id=customer.id, category="question", actor="ann", now=days_ago(1)
        )
        session.add(
            CallDisposition(
                node="pbx1",
                uniqueid="h1",
                visit=1,
                agent="ann",
                code="info",
                notes="sent the brochure",
                case_id=case.id,
                at=days_ago(1),
            )
        )
    out = run_cli.ok("customers", "show", "212-555-0100")
    assert "info (ann) C-000001: sent the brochure" in out.output
    assert "1 open cases" in out.output
    view = json.loads(run_cli.ok("customers", "show", "1", "--json").output)
    assert view["survey_mean"] == 5.0
    assert [c["uniqueid"] for c in view["calls"]] == ["h1"]
