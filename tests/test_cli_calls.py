"""``callcenter calls show``: one call and its queue visits; unknown ones are a clear error."""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from callcenter.db.models import Call
from tests.calllog import visit_of
from tests.conftest import Cli

T0 = dt.datetime(2026, 11, 20, 9, tzinfo=dt.UTC)


def test_a_transferred_call_shows_both_visits(run_cli: Cli, clean_db: Engine) -> None:
    call = Call(
        node="pbx1", uniqueid="1795.7", linkedid="1795.7", caller_number="5551230001",
        started_at=T0, queued_at=T0, answered_at=T0 + dt.timedelta(seconds=4), queue="sales",
        agent="bob", wait_seconds=4, talk_seconds=30, outcome="answered",
    )  # fmt: skip
    with Session(clean_db) as s, s.begin():
        s.add(call)
        first = visit_of(call)
        first.outcome, first.transfer_target = "transferred", "8002@agents"
        second = visit_of(call, visit=2)
        second.queue, second.agent = "support", "Renée"
        second.queued_at = T0 + dt.timedelta(seconds=40)
        s.add_all([first, second])
    shown = json.loads(run_cli.ok("calls", "show", "1795.7", "--json").output)
    assert shown["caller_number"] == "5551230001"
    visits = shown["visits"]
    assert [(v["visit"], v["queue"], v["agent"]) for v in visits] == [
        (1, "sales", "bob"),
        (2, "support", "Renée"),
    ]
    assert visits[0]["transfer_target"] == "8002@agents"
    table = run_cli.ok("calls", "show", "1795.7").output
    assert "8002@agents" in table
    assert "2 queue visits" in table


def test_an_unknown_call_is_a_one_line_error(run_cli: Cli, clean_db: Engine) -> None:
    result = run_cli("calls", "show", "1.404")
    assert result.exit_code == 1
    assert "no call with uniqueid 1.404" in result.output
