"""Disposition codes and the documentation of answered calls against the real database:
codes per queue and campaign, a disposition checked against the codes of the call's own
queue and campaign (an unknown code, another agent's call or an unknown case: one line and
nothing written), the case timeline it feeds, and the "not documented" rule, pure and in SQL.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from callcenter.campaigns import store as campaign_store
from callcenter.campaigns.numbers import Normaliser
from callcenter.crm import CrmError, documentation
from callcenter.crm import cases as case_store
from callcenter.crm import customers as customer_store
from callcenter.crm.dispositions import Owner, add_code, allowed_codes, list_codes, remove_code
from callcenter.crm.documentation import AnsweredVisit, documentation_due, is_undocumented
from callcenter.db.models import Agent, Call, Queue, QueueVisit
from callcenter.db.models_campaigns import CampaignAttempt
from callcenter.db.models_crm import CallDisposition, CaseEvent, DispositionCode
from tests.conftest import Cli, count

UTC = dt.UTC
NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
CODES_SINCE = NOW - dt.timedelta(days=30)


def error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith("Error: ")
    return lines[0]


@pytest.fixture
def s(clean_db: Engine) -> Iterator[Session]:
    with sessionmaker(clean_db)() as session, session.begin():
        yield session


def ago(minutes: float) -> dt.datetime:
    return NOW - dt.timedelta(minutes=minutes)


def call(
    s: Session,
    uniqueid: str,
    visits: list[dict[str, Any]],
    *,
    caller: str = "2125550100",
) -> None:
    """A call and its queue visits, as the bridge writes them."""
    first = visits[0] if visits else {}
    started = first.get("queued_at", ago(60)) - dt.timedelta(seconds=20)
    s.add(
        Call(
            node="pbx1",
            uniqueid=uniqueid,
            linkedid=uniqueid,
            caller_number=caller,
            started_at=started,
            queue=visits[-1]["queue"] if visits else None,
            agent=visits[-1].get("agent") if visits else None,
        )
    )
    for n, v in enumerate(visits, start=1):
        values: dict[str, Any] = {"queued_at": started, "wrapup_seconds": 30.0, **v}
        s.add(QueueVisit(node="pbx1", uniqueid=uniqueid, visit=n, linkedid=uniqueid, **values))
    s.flush()


@pytest.fixture
def center(s: Session) -> Session:
    """Queues sales (codes sale, later), support (fixed, escalate) and plain (none); the
    campaign spring on sales (code not-interested); agents ann and bob."""
    for name in ("sales", "support", "plain"):
        s.add(Queue(name=name))
    for i, name in enumerate(("ann", "bob")):
        s.add(Agent(name=name, extension=f"10{i}", pin_hash="x", sip_secret="x"))
    s.flush()
    campaign_store.add_campaign(s, "spring", queue="sales", trunks=("prov",))
    add_code(s, Owner(queue="sales"), "SALE", label="Sold", effect="resolves")
    add_code(s, Owner(queue="sales"), "later", effect="callback")
    add_code(s, Owner(queue="support"), "fixed", effect="resolves")
    add_code(s, Owner(queue="support"), "escalate", effect="follow_up")
    add_code(s, Owner(campaign="spring"), "not-interested")
    s.execute(sa.update(DispositionCode).values(created_at=CODES_SINCE))
    return s


def dispose(s: Session, uniqueid: str, agent: str, code: str, **kw: Any) -> CallDisposition:
    return documentation.dispose(
        s, node="pbx1", uniqueid=uniqueid, agent=agent, code=code, now=NOW, **kw
    )


def answered(agent: str, queue: str = "sales", *, ended: float | None = 10) -> dict[str, Any]:
    return {
        "queue": queue,
        "agent": agent,
        "answered_at": ago(30),
        "ended_at": None if ended is None else ago(ended),
        "outcome": "answered" if ended is not None else None,
    }


# --- codes -------------------------------------------------------------------------------


def test_codes_per_queue_and_campaign(center: Session) -> None:
    s = center
    assert [(c.queue, c.campaign, c.code, c.effect) for c in list_codes(s, queue="sales")] == [
        ("sales", None, "later", "callback"),
        ("sales", None, "sale", "resolves"),
    ]
    both = list_codes(s, queue="sales", campaign="spring")
    assert [c.code for c in both] == ["later", "sale", "not-interested"]
    assert sorted(allowed_codes(s, queue="support", campaign_id=None)) == ["escalate", "fixed"]
    with pytest.raises(CrmError, match="queue sales has a disposition code 'sale' already"):
        add_code(s, Owner(queue="sales"), "Sale")
    # The same code in another queue is another code.
    add_code(s, Owner(queue="plain"), "sale")
    with pytest.raises(CrmError, match="no queue named 'nope'"):
        add_code(s, Owner(queue="nope"), "x")
    with pytest.raises(CrmError, match="no campaign named 'nope'"):
        add_code(s, Owner(campaign="nope"), "x")
    with pytest.raises(CrmError, match="must be letters, digits"):
        add_code(s, Owner(queue="sales"), "no good")
    with pytest.raises(CrmError, match="effect 'maybe' is not one of"):
        add_code(s, Owner(queue="sales"), "x", effect="maybe")
    with pytest.raises(CrmError, match="a queue or a campaign"):
        Owner(queue="sales", campaign="spring")
    remove_code(s, Owner(queue="plain"), "sale")
    with pytest.raises(CrmError, match="queue plain has no disposition code 'sale'"):
        remove_code(s, Owner(queue="plain"), "sale")


def test_codes_cli(run_cli: Cli, clean_db: Engine) -> None:
    run_cli.ok("queues", "add", "sales")
    out = run_cli.ok(
        "dispositions", "add", "sale", "--queue", "sales", "--label", "Sold", "--resolves"
    )
    assert "disposition sale added to queue sales (resolves)" in out.output
    run_cli.ok("dispositions", "add", "call-back", "--queue", "sales", "--callback")
    run_cli.ok("dispositions", "add", "other", "--queue", "sales")
    listed = json.loads(run_cli.ok("dispositions", "list", "--queue", "sales", "--json").output)
    assert [(c["code"], c["label"], c["effect"]) for c in listed] == [
        ("call-back", "call-back", "callback"),
        ("other", "other", "none"),
        ("sale", "Sold", "resolves"),
    ]
    assert "3 disposition codes" in run_cli.ok("dispositions", "list").output
    result = run_cli("dispositions", "add", "sale", "--queue", "sales")
    assert result.exit_code == 1
    assert error_line(result.output) == ("Error: queue sales has a disposition code 'sale' already")
    result = run_cli("dispositions", "add", "x", "--queue", "sales", "--campaign", "c")
    assert result.exit_code == 2
    result = run_cli("dispositions", "add", "x", "--queue", "nope")
    assert error_line(result.output) == "Error: no queue named 'nope'"
    run_cli.ok("dispositions", "remove", "other", "--queue", "sales")
    assert count(clean_db, "disposition_codes") == 2


# --- dispositions ------------------------------------------------------------------------


def test_dispose_checks_the_code_of_the_calls_queue(center: Session) -> None:
    s = center
    call(s, "c1", [answered("ann")])
    d = dispose(s, "c1", "ann", "SALE", notes="  bought two  ")
    assert (d.visit, d.queue, d.campaign_id, d.code, d.effect, d.notes) == (
        1,
        "sales",
        None,
        "sale",
        "resolves",
        "bought two",
    )
    with pytest.raises(CrmError) as err:
        dispose(s, "c1", "ann", "fixed")
    assert str(err.value) == "queue sales has no disposition code 'fixed' (its codes: later, sale)"
    with pytest.raises(CrmError, match="call c1 visit 1 was answered by ann, not bob"):
        dispose(s, "c1", "bob", "sale")
    saved = s.scalars(sa.select(CallDisposition)).all()
    assert [(x.code, x.notes) for x in saved] == [("sale", "bought two")]
    # Saving again replaces it.
    dispose(s, "c1", "ann", "later", notes="call Tuesday")
    saved = s.scalars(sa.select(CallDisposition)).all()
    assert [(x.code, x.effect, x.notes) for x in saved] == [("later", "callback", "call Tuesday")]
    # A supervisor may document it for ann.
    assert dispose(s, "c1", "bob", "sale", any_agent=True).agent == "bob"


def test_dispose_a_campaign_call_and_a_transferred_call(center: Session) -> None:
    s = center
    campaign = campaign_store.get_campaign(s, "spring")
    s.add(
        CampaignAttempt(
            campaign_id=campaign.id,
            phone="+12125550100",
            attempt_no=1,
            mode="progressive",
            channel_id="dial-1",
            phase="ended",
            created_at=ago(40),
            day=NOW.date(),
        )
    )
    call(s, "dial-1", [answered("bob")])
    d = dispose(s, "dial-1", "bob", "not-interested")
    assert (d.queue, d.campaign_id, d.effect) == ("sales", campaign.id, "none")
    assert dispose(s, "dial-1", "bob", "sale").code == "sale"  # the queue's codes too
    with pytest.raises(CrmError) as err:
        dispose(s, "dial-1", "bob", "fixed")
    assert str(err.value) == (
        "queue sales and campaign spring have no disposition code 'fixed' "
        "(their codes: later, not-interested, sale)"
    )

    # Transferred from sales (ann) to support (bob): each documents their own visit.
    call(s, "c3", [answered("ann", "sales"), answered("bob", "support")])
    assert dispose(s, "c3", "bob", "escalate").visit == 2
    assert dispose(s, "c3", "ann", "sale").visit == 1
    with pytest.raises(CrmError, match=r"^call c3 on pbx1 has no queue visit 3$"):
        dispose(s, "c3", "ann", "sale", visit=3)


def test_dispose_without_a_visit_needs_its_queue(center: Session) -> None:
    s = center
    call(s, "direct", [])
    with pytest.raises(CrmError, match="has no queue visit nor campaign in the call log"):
        dispose(s, "direct", "ann", "sale")
    d = dispose(s, "direct", "ann", "sale", queue="sales")
    assert (d.visit, d.queue) == (0, "sales")
    with pytest.raises(CrmError, match="no queue named 'nope'"):
        dispose(s, "direct", "ann", "sale", queue="nope")


def test_dispose_feeds_the_case_timeline(center: Session) -> None:
    s = center
    customer = customer_store.create_customer(
        s, Normaliser("US"), name="Ann C", phones=["2125550100"]
    )
    case = case_store.create_case(
        s, customer_id=customer.id, category="complaint", actor="ann", now=ago(5)
    )
    call(s, "c1", [answered("ann")])
    with pytest.raises(CrmError, match="no case C-000999"):
        dispose(s, "c1", "ann", "sale", case_number="C-000999")
    assert count_rows(s, CallDisposition) == 0
    dispose(s, "c1", "ann", "later", case_number=case.number, notes="first")
    dispose(s, "c1", "ann", "sale", case_number=case.number.lower(), notes="second")
    events = case_store.timeline(s, case)
    assert [e["kind"] for e in events] == ["created", "call", "disposition", "disposition"]
    assert events[1]["uniqueid"] == "c1"
    assert events[1]["data"] == {"visit": 1, "queue": "sales", "agent": "ann"}
    assert events[3]["data"]["code"] == "sale"
    assert events[3]["data"]["notes"] == "second"
    assert case_store.calls_of(s, [case.id]) == {case.id: 1}


def count_rows(s: Session, model: type[CallDisposition] | type[CaseEvent]) -> int:
    return int(s.scalar(sa.select(sa.func.count()).select_from(model)) or 0)


def test_record_cli_bad_code_writes_nothing(run_cli: Cli, clean_db: Engine) -> None:
    run_cli.ok("queues", "add", "sales")
    run_cli.ok("agents", "add", "ann", "--extension", "101", "--pin", "1234")
    run_cli.ok("dispositions", "add", "sale", "--queue", "sales")
    with sessionmaker(clean_db)() as s, s.begin():
        call(s, "c1", [answered("ann")])
    result = run_cli(
        "dispositions", "record", "c1", "--agent", "ann", "--code", "nope", "--node", "pbx1"
    )
    assert result.exit_code == 1
    assert error_line(result.output) == (
        "Error: queue sales has no disposition code 'nope' (its codes: sale)"
    )
    assert count(clean_db, "call_dispositions") == 0
    out = run_cli.ok(
        "dispositions", "record", "c1", "--agent", "ann", "--code", "sale", "--node", "pbx1"
    )
    assert "call c1 visit 1: sale (none)" in out.output
    assert count(clean_db, "call_dispositions") == 1


# --- the "not documented" rule -----------------------------------------------------------


def test_rule_pure() -> None:
    visit = AnsweredVisit(
        answered_at=ago(30), ended_at=ago(10), wrapup_seconds=30, codes_since=CODES_SINCE
    )
    assert documentation_due(visit, 60) == ago(10) + dt.timedelta(seconds=90)
    assert is_undocumented(visit, False, NOW, 60)
    assert not is_undocumented(visit, True, NOW, 60)
    # Exactly at the deadline it counts; a second before, not yet.
    due = ago(10) + dt.timedelta(seconds=90)
    assert is_undocumented(visit, False, due, 60)
    assert not is_undocumented(visit, False, due - dt.timedelta(seconds=1), 60)
    still_talking = AnsweredVisit(ago(30), None, 30, CODES_SINCE)
    assert documentation_due(still_talking, 60) is None
    not_answered = AnsweredVisit(None, ago(10), 30, CODES_SINCE)
    assert not is_undocumented(not_answered, False, NOW, 60)
    no_codes = AnsweredVisit(ago(30), ago(10), 30, None)
    assert not is_undocumented(no_codes, False, NOW, 60)
    before_codes = AnsweredVisit(ago(30), ago(10), 30, ago(20))
    assert not is_undocumented(before_codes, False, NOW, 60)
    no_wrapup = AnsweredVisit(ago(30), ago(1.5), None, CODES_SINCE)
    assert is_undocumented(no_wrapup, False, NOW, 60)


def test_mark_undocumented_is_the_rule_and_idempotent(center: Session) -> None:
    s = center
    campaign = campaign_store.get_campaign(s, "spring")
    s.add(Queue(name="outbound"))
    s.add(
        CampaignAttempt(
            campaign_id=campaign.id,
            phone="+12125550100",
            attempt_no=1,
            mode="progressive",
            channel_id="h",
            phase="ended",
            created_at=ago(40),
            day=NOW.date(),
        )
    )
    # The grace is 60 s and every wrap-up 30 s: a call that ended 90 s or more ago is due.
    call(s, "a", [answered("ann", ended=10)])  # due 8.5 min ago: marked
    call(s, "b", [answered("ann", ended=1)])  # ended 60 s ago: due in 30 s
    call(s, "c", [answered("bob", ended=10)])  # documented
    call(s, "d", [{"queue": "sales", "outcome": "abandoned", "ended_at": ago(10)}])
    call(s, "e", [answered("ann", ended=None)])  # still talking
    call(s, "f", [answered("bob", "plain", ended=10)])  # its queue has no codes
    call(s, "g", [answered("ann", "support", ended=10)])  # answered before support had codes
    call(s, "h", [answered("bob", "outbound", ended=10)])  # spring has codes: marked
    # Two visits: the first (sales) is due; the second is support's, answered before its codes.
    call(s, "i", [answered("ann", "sales"), answered("bob", "support")])
    call(s, "j", [{**answered("ann", ended=10), "wrapup_seconds": None}])  # no wrap-up: marked
    call(s, "old", [{**answered("ann"), "answered_at": NOW - dt.timedelta(days=3)}])
    s.execute(
        sa.update(DispositionCode)
        .where(
            DispositionCode.queue_id
            == sa.select(Queue.id).where(Queue.name == "support").scalar_subquery()
        )
        .values(created_at=ago(20))
    )
    dispose(s, "c", "bob", "sale")
    expected = {("a", 1), ("h", 1), ("i", 1), ("j", 1)}

    # The pure rule, applied to the same rows, finds the same visits.
    codes_since: dict[str, dt.datetime] = {}
    for code in s.scalars(sa.select(DispositionCode)):
        owner = (
            s.get(Queue, code.queue_id).name  # type: ignore[union-attr]
            if code.queue_id is not None
            else "outbound"  # spring's calls come through the queue outbound here
        )
        codes_since[owner] = min(codes_since.get(owner, code.created_at), code.created_at)
    documented = {(d.uniqueid, d.visit) for d in s.scalars(sa.select(CallDisposition))}
    pure = {
        (v.uniqueid, v.visit)
        for v in s.scalars(sa.select(QueueVisit))
        if is_undocumented(
            AnsweredVisit(v.answered_at, v.ended_at, v.wrapup_seconds, codes_since.get(v.queue)),
            (v.uniqueid, v.visit) in documented,
            NOW,
            60,
        )
        and v.answered_at is not None
        and v.answered_at >= NOW - documentation.LOOKBACK
    }
    assert pure == expected

    assert documentation.mark_undocumented(s, NOW, grace_seconds=60) == len(expected)
    marks = s.scalars(sa.select(CallDisposition).where(CallDisposition.code.is_(None))).all()
    assert {(m.uniqueid, m.visit) for m in marks} == expected
    by_key = {(m.uniqueid, m.visit): m for m in marks}
    assert (by_key[("h", 1)].campaign_id, by_key[("h", 1)].agent) == (campaign.id, "bob")
    assert by_key[("i", 1)].queue == "sales"
    assert all(m.undocumented_at == NOW for m in marks)
    assert documentation.mark_undocumented(s, NOW, grace_seconds=60) == 0
    # 30 s later call b is due too.
    later = NOW + dt.timedelta(seconds=31)
    assert documentation.mark_undocumented(s, later, grace_seconds=60) == 1

    # Documented late: the code replaces the mark, the mark's time stays.
    d = documentation.dispose(s, node="pbx1", uniqueid="a", agent="ann", code="sale", now=later)
    assert (d.code, d.undocumented_at, d.at) == ("sale", NOW, later)
    assert documentation.mark_undocumented(s, later, grace_seconds=60) == 0
