"""Cases against the real database: numbers, categories, owners, status transitions with the
resolution they need, the timeline, the CSV export, and bad input (a case for an unknown
customer, an unknown category, a transition not allowed): one line, nothing written."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from callcenter.campaigns.numbers import Normaliser
from callcenter.crm import CrmError
from callcenter.crm import cases as store
from callcenter.crm import customers as customer_store
from callcenter.db.models import Agent
from callcenter.db.models_crm import Case
from callcenter.db.models_wallboard import User
from tests.conftest import Cli, count

UTC = dt.UTC
T0 = dt.datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith("Error: ")
    return lines[0]


def at(hours: float) -> dt.datetime:
    return T0 + dt.timedelta(hours=hours)


@pytest.fixture
def s(clean_db: Engine) -> Iterator[Session]:
    with sessionmaker(clean_db)() as session, session.begin():
        session.add(Agent(name="ann", extension="101", pin_hash="x", sip_secret="x"))
        session.add(User(name="sue", password_hash="x"))
        session.flush()
        yield session


@pytest.fixture
def customer_id(s: Session) -> int:
    return customer_store.create_customer(
        s, Normaliser("US"), name="Ann Smith", phones=["212 555 0100"]
    ).id


def test_pure_parts() -> None:
    assert store.case_number(123) == "C-000123"
    assert store.case_number(1234567) == "C-1234567"
    for text in ("C-000123", "c-123", "C123", "123", " 000123 "):
        assert store.parse_case_number(text) == 123
    with pytest.raises(CrmError, match="is not a case number"):
        store.parse_case_number("X-1")
    store.check_transition("open", "pending")
    store.check_transition("pending", "resolved")
    store.check_transition("resolved", "closed")
    store.check_transition("resolved", "open")
    store.check_transition("closed", "closed")
    with pytest.raises(CrmError, match="a case that is open cannot become closed"):
        store.check_transition("open", "closed")
    with pytest.raises(CrmError, match=r"closed is final"):
        store.check_transition("closed", "open")
    with pytest.raises(CrmError, match="status 'done' is not one of"):
        store.check_transition("open", "done")
    tz = ZoneInfo("Europe/Paris")
    assert store.parse_due("+2d", tz, T0) == T0 + dt.timedelta(days=2)
    assert store.parse_due("+90m", tz, T0) == T0 + dt.timedelta(minutes=90)
    assert store.parse_due("2026-12-24T17:00", tz, T0) == dt.datetime(2026, 12, 24, 16, tzinfo=UTC)
    assert store.parse_due("none", tz, T0) is None
    with pytest.raises(CrmError, match="cannot read the due time"):
        store.parse_due("soon", tz, T0)


def test_create_for_unknown_customer_writes_nothing(s: Session) -> None:
    with pytest.raises(CrmError, match="no customer with id 42: a case is a customer's"):
        store.create_case(s, customer_id=42, category="question", actor="ann", now=T0)
    assert s.query(Case).count() == 0


def test_case_life(s: Session, customer_id: int) -> None:
    case = store.create_case(
        s,
        customer_id=customer_id,
        category="Complaint",
        actor="ann",
        now=T0,
        priority="high",
        owner="ann",
        subject="Broken router",
        due_at=at(48),
        note="Customer is upset",
    )
    assert case.number == f"C-{case.id:06d}"
    assert (case.status, case.category, case.priority, case.owner) == (
        "open",
        "complaint",
        "high",
        "ann",
    )
    with pytest.raises(CrmError, match="needs a resolution text to be resolved"):
        store.update_case(s, case.number, actor="ann", now=at(1), status="resolved")
    with pytest.raises(CrmError, match="a resolution is given when the case is resolved"):
        store.update_case(s, case.number, actor="ann", now=at(1), resolution="x")
    with pytest.raises(CrmError, match="owner 'zed' is neither an agent nor a wallboard user"):
        store.update_case(s, case.number, actor="ann", now=at(1), owner="zed")
    with pytest.raises(CrmError, match="category 'billing' is not one of"):
        store.update_case(s, case.number, actor="ann", now=at(1), category="billing")
    store.update_case(s, case.number, actor="sue", now=at(2), status="pending", owner="sue")
    store.update_case(s, case.number, actor="sue", now=at(3), priority="urgent", clear_due=True)
    store.update_case(
        s, case.number, actor="sue", now=at(5), status="resolved", resolution="Replaced it"
    )
    assert (case.status, case.resolution, case.resolved_at, case.due_at) == (
        "resolved",
        "Replaced it",
        at(5),
        None,
    )
    # Reopened: the resolution goes to the timeline, and resolving again needs a new one.
    store.update_case(s, case.number, actor="ann", now=at(6), status="open", note="Broke again")
    assert (case.status, case.resolution, case.resolved_at) == ("open", "", None)
    with pytest.raises(CrmError, match="needs a resolution text"):
        store.update_case(s, case.number, actor="ann", now=at(7), status="resolved")
    store.update_case(s, case.number, actor="ann", now=at(8), status="resolved", resolution="New")
    store.update_case(s, case.number, actor="ann", now=at(9), status="closed")
    assert (case.status, case.closed_at, case.updated_at) == ("closed", at(9), at(9))
    with pytest.raises(CrmError, match="closed is final"):
        store.update_case(s, case.number, actor="ann", now=at(10), status="open")
    events = [(e["kind"], e["actor"], e["at"], e["data"]) for e in store.timeline(s, case)]
    assert events == [
        (
            "created",
            "ann",
            T0,
            {
                "customer_id": customer_id,
                "category": "complaint",
                "priority": "high",
                "owner": "ann",
                "subject": "Broken router",
                "due_at": at(48).isoformat(),
            },
        ),
        ("note", "ann", T0, {"text": "Customer is upset"}),
        ("status", "sue", at(2), {"from": "open", "to": "pending"}),
        ("owner", "sue", at(2), {"from": "ann", "to": "sue"}),
        ("priority", "sue", at(3), {"from": "high", "to": "urgent"}),
        ("due", "sue", at(3), {"from": at(48).isoformat(), "to": None}),
        (
            "status",
            "sue",
            at(5),
            {"from": "pending", "to": "resolved", "resolution": "Replaced it"},
        ),
        (
            "status",
            "ann",
            at(6),
            {"from": "resolved", "to": "open", "previous_resolution": "Replaced it"},
        ),
        ("note", "ann", at(6), {"text": "Broke again"}),
        ("status", "ann", at(8), {"from": "open", "to": "resolved", "resolution": "New"}),
        ("status", "ann", at(9), {"from": "resolved", "to": "closed"}),
    ]


def test_categories(s: Session, customer_id: int) -> None:
    assert [c for c, _, builtin in store.categories(s) if builtin] == [
        "question",
        "request",
        "complaint",
        "incident",
    ]
    store.add_category(s, "Billing", "Billing questions")
    case = store.create_case(s, customer_id=customer_id, category="billing", actor="a", now=T0)
    assert case.category == "billing"
    with pytest.raises(CrmError, match="category 'billing' exists already"):
        store.add_category(s, "billing")
    with pytest.raises(CrmError, match="is the category of 1 cases"):
        store.remove_category(s, "billing")
    with pytest.raises(CrmError, match="is built in"):
        store.remove_category(s, "question")
    with pytest.raises(CrmError, match="must be lower-case letters"):
        store.add_category(s, "bad name")
    store.add_category(s, "spare")
    store.remove_category(s, "spare")
    assert [c for c, _, _ in store.categories(s)][-1] == "billing"


def test_cli(run_cli: Cli, clean_db: Engine, tmp_path: Path) -> None:
    run_cli.ok("agents", "add", "ann", "--extension", "101", "--pin", "1234")
    run_cli.ok("customers", "add", "--name", "Ann Smith", "--phone", "212 555 0100")
    run_cli.ok("customers", "add", "--name", "Bob", "--phone", "415 555 0101", "--crm-id", "B")

    result = run_cli("cases", "add", "--customer", "999", "--category", "question")
    assert result.exit_code == 1
    assert error_line(result.output) == "Error: no customer with id 999"
    result = run_cli("cases", "add", "--customer", "1", "--category", "gossip")
    assert "category 'gossip' is not one of question, request" in error_line(result.output)
    assert count(clean_db, "cases") == 0
    assert count(clean_db, "case_events") == 0

    out = run_cli.ok(
        "cases",
        "add",
        "--customer",
        "(212) 555-0100",
        "--category",
        "incident",
        "--owner",
        "ann",
        "--subject",
        "No dial tone",
        "--due",
        "+1d",
        "--json",
    )
    first = json.loads(out.output)
    assert first["number"] == "C-000001"
    assert first["customer"] == "Ann Smith"
    run_cli.ok("cases", "add", "--customer", "crm:B", "--category", "question")

    # A failed update changes nothing, not even the parts that were fine.
    result = run_cli("cases", "update", "C-000001", "--owner", "", "--status", "closed")
    assert result.exit_code == 1
    assert "cannot become closed" in error_line(result.output)
    shown = json.loads(run_cli.ok("cases", "show", "C-000001", "--json").output)
    assert shown["owner"] == "ann"
    assert [e["kind"] for e in shown["timeline"]] == ["created"]

    result = run_cli("cases", "update", "C-000001")
    assert result.exit_code == 2
    run_cli.ok(
        "cases",
        "update",
        "1",
        "--status",
        "resolved",
        "--resolution",
        "Line fixed",
        "--actor",
        "ann",
    )
    listed = json.loads(run_cli.ok("cases", "list", "--status", "resolved", "--json").output)
    assert [(c["number"], c["calls"]) for c in listed] == [("C-000001", 0)]
    listed = json.loads(run_cli.ok("cases", "list", "--customer", "crm:B", "--json").output)
    assert [c["number"] for c in listed] == ["C-000002"]
    assert "2 cases" in run_cli.ok("cases", "list").output
    assert "timeline" in run_cli.ok("cases", "show", "C-000001").output
    result = run_cli("cases", "show", "C-000009")
    assert error_line(result.output) == "Error: no case C-000009"

    target = tmp_path / "cases.csv"
    out = run_cli.ok("cases", "export", "--csv", str(target))
    assert "2 cases written" in out.output
    rows = list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8"))))
    assert [(r["number"], r["customer"], r["crm_id"], r["status"]) for r in rows] == [
        ("C-000001", "Ann Smith", "", "resolved"),
        ("C-000002", "Bob", "B", "open"),
    ]
    assert rows[0]["resolution"] == "Line fixed"
    assert rows[0]["owner"] == "ann"
    out = run_cli.ok("cases", "export", "--status", "open")
    assert out.output.splitlines()[0].startswith("number,customer_id,customer,crm_id")
    assert len(out.output.splitlines()) == 2

    run_cli.ok("cases", "categories", "add", "billing", "--label", "Billing")
    cats = json.loads(run_cli.ok("cases", "categories", "list", "--json").output)
    assert cats[-1] == {"name": "billing", "label": "Billing", "builtin": False}
    run_cli.ok("cases", "categories", "remove", "billing")
