"""``callcenter users add|update --phone`` and ``callcenter monitor list``; the storage of
monitoring attempts (monitor_sessions)."""

from __future__ import annotations

import datetime as dt
import json

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from callcenter import directory
from callcenter.monitoring import store
from callcenter.monitoring.store import Attempt
from callcenter.wallboard import accounts
from tests.conftest import Cli

PASSWORD = "a long enough secret"


def test_a_supervisors_phone_is_set_changed_and_taken_away(run_cli: Cli, clean_db: Engine) -> None:
    out = run_cli.ok("users", "add", "sam", "--password", PASSWORD, "--phone", "2001")
    assert out.stdout == "user sam added (supervisor), phone 2001\n"
    # No agent has extension 2001: the private Asterisk has no such endpoint; said, not refused.
    assert "Note: no enabled agent has extension 2001" in out.stderr
    with Session(clean_db) as s, s.begin():
        directory.add_agent(s, name="sup", extension="2002", pin="2468")
    out = run_cli.ok("users", "update", "sam", "--phone", "2002")
    assert (out.stdout, out.stderr) == ("user sam: phone 2002\n", "")
    listed = json.loads(run_cli.ok("users", "list", "--json").output)
    assert [(u["name"], u["phone"]) for u in listed] == [("sam", "2002")]
    assert "2002" in run_cli.ok("users", "list").output
    with Session(clean_db) as s:
        assert accounts.load_directory(s).phones == {"sam": "2002"}
    assert run_cli.ok("users", "update", "sam", "--no-phone").stdout == "user sam: no phone\n"
    with Session(clean_db) as s:
        assert accounts.load_directory(s).phones == {}
        assert s.scalar(sa.text("SELECT phone FROM users")) is None


def test_bad_phones_and_usage(run_cli: Cli) -> None:
    for args in (
        ["users", "add", "sam", "--password", PASSWORD, "--phone", "PJSIP/2001"],
        ["users", "add", "sam", "--password", PASSWORD, "--phone", "20 01"],
    ):
        result = run_cli(*args)
        assert result.exit_code == 1, result.output
        assert result.output.startswith("Error: phone ")
        assert "not an endpoint name" in result.output
        assert result.output.count("\n") == 1
    assert run_cli("users", "list", "--json").output.strip() == "[]"  # nothing written
    run_cli.ok("users", "add", "sam", "--password", PASSWORD)
    assert run_cli("users", "update", "sam").exit_code == 2  # neither --phone nor --no-phone
    assert run_cli("users", "update", "sam", "--phone", "1", "--no-phone").exit_code == 2
    missing = run_cli("users", "update", "nobody", "--phone", "2001")
    assert (missing.exit_code, missing.output) == (1, "Error: no user named nobody\n")


def test_the_log_of_attempts(run_cli: Cli, clean_db: Engine) -> None:
    attempts = [
        Attempt("sam", "listen", "alice", "pbx1", "originated", "PJSIP/1001-0000002a", "2001"),
        Attempt(
            "agent:bob",
            "barge",
            "alice",
            "pbx1",
            "refused",
            error="an agent's session may not monitor calls",
        ),
        Attempt(
            "sam",
            "whisper",
            "Renée",
            "pbx1",
            "failed",
            "PJSIP/1003-00000001",
            "2001",
            "Asterisk refused Originate: Originate failed",
        ),
    ]
    with Session(clean_db) as s, s.begin():
        ids = [store.record(s, a) for a in attempts]
        # One from last week: outside the default interval (today).
        old = store.record(s, Attempt("ada", "listen", "alice", "pbx1", "originated"))
        s.execute(
            sa.text("UPDATE monitor_sessions SET at = now() - interval '8 days' WHERE id = :id"),
            {"id": old},
        )
    listed = json.loads(run_cli.ok("monitor", "list", "--json").output)
    assert [row["id"] for row in listed] == ids[::-1]  # newest first
    assert listed[-1] == {
        "id": ids[0], "at": listed[-1]["at"], "user_name": "sam", "mode": "listen",
        "agent": "alice", "node": "pbx1", "agent_channel": "PJSIP/1001-0000002a",
        "phone": "2001", "result": "originated", "error": "",
    }  # fmt: skip
    assert dt.datetime.fromisoformat(listed[-1]["at"]).tzinfo is not None
    week = json.loads(run_cli.ok("monitor", "list", "--since", "-10d", "--json").output)
    assert len(week) == 4
    by_user = json.loads(run_cli.ok("monitor", "list", "--user", "sam", "--json").output)
    assert [r["mode"] for r in by_user] == ["whisper", "listen"]
    renee = json.loads(run_cli.ok("monitor", "list", "--agent", "Rene\u0301e", "--json").output)
    assert [r["result"] for r in renee] == ["failed"]
    refused = json.loads(run_cli.ok("monitor", "list", "--result", "refused", "--json").output)
    assert [r["user_name"] for r in refused] == ["agent:bob"]
    table = run_cli.ok("monitor", "list").output
    assert "3 monitoring attempts" in table
    assert "agent:bob" in table
    assert "an agent's session may not monitor calls" in table
    bad = run_cli("monitor", "list", "--since", "yesteryear")
    assert bad.exit_code == 1
    assert bad.output.startswith("Error: cannot read the time")
