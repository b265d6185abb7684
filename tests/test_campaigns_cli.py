"""``callcenter campaigns`` and ``dnc`` against the real database: the settings round trip,
and each bad input is one ``Error:`` line, exit 1, nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from callcenter.campaigns import store
from tests.conftest import Cli, count


def error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith("Error: ")
    return lines[0]


def test_campaign_add_show_update_list(run_cli: Cli, clean_db: Engine) -> None:
    run_cli.ok("queues", "add", "sales")
    out = run_cli.ok(
        "campaigns",
        "add",
        "spring",
        "--mode",
        "predictive",
        "--queue",
        "sales",
        "--caller-id",
        "(212) 555-0100",
        "--hours",
        "09:00-20:00",
        "--days",
        "mon-fri,sat",
        "--holidays",
        "2026-12-25,2027-01-01",
        "--max-attempts",
        "5",
        "--retry-busy",
        "300",
        "--no-amd",
        "--seller-name",
        "Acme",
        "--seller-number",
        "+1 212 555 0199",
        "--abandon-target",
        "2",
        "--json",
    )
    view = json.loads(out.output)
    assert view["caller_id"] == "+12125550100"
    assert view["seller_number"] == "+12125550199"
    assert view["hours"] == "09:00-20:00"
    assert view["days"] == ["mon", "tue", "wed", "thu", "fri", "sat"]
    assert view["holidays"] == ["2026-12-25", "2027-01-01"]
    assert view["retry_seconds"]["busy"] == 300
    assert (view["amd"], view["abandon_cap_percent"], view["abandon_target_percent"]) == (
        False,
        3.0,
        2.0,
    )
    run_cli.ok("campaigns", "update", "spring", "--abandon-cap", "2.5", "--mode", "progressive")
    shown = json.loads(run_cli.ok("campaigns", "show", "spring", "--json").output)
    assert (shown["mode"], shown["abandon_cap_percent"], shown["contacts"]) == (
        "progressive",
        2.5,
        0,
    )
    listed = json.loads(run_cli.ok("campaigns", "list", "--json").output)
    assert [c["name"] for c in listed] == ["spring"]
    assert "spring" in run_cli.ok("campaigns", "list").output
    assert "09:00-20:00" in run_cli.ok("campaigns", "show", "spring").output
    # Agentless needs no queue but does need the information message.
    run_cli.ok(
        "campaigns",
        "add",
        "robo",
        "--mode",
        "agentless",
        "--seller-name",
        "Acme",
        "--seller-number",
        "2125550199",
    )


BAD_ADDS = [
    (["--mode", "progressive"], "needs --queue"),
    (["--queue", "nosuch"], "no queue named 'nosuch'"),
    (["--queue", "sales", "--abandon-cap", "3.5"], "at most 3%"),
    (["--queue", "sales", "--abandon-cap", "2", "--abandon-target", "2.5"], "must not exceed"),
    (["--queue", "sales", "--hours", "07:00-20:00"], "within 08:00-21:00"),
    (["--queue", "sales", "--days", "mon-xyz"], "day names"),
    (["--queue", "sales", "--caller-id", "12"], "caller id"),
    (["--queue", "sales", "--trunk", "nope"], "no trunk named 'nope'"),
    (["--queue", "sales", "--mode", "predictive"], "needs --seller-name"),
    (["--queue", "sales", "--machine", "message"], "--machine-message"),
    (["--queue", "sales", "--retry-busy", "-1"], "retry busy"),
]


@pytest.mark.parametrize(("args", "reason"), BAD_ADDS)
def test_bad_campaign_is_one_line_and_writes_nothing(
    run_cli: Cli, clean_db: Engine, args: list[str], reason: str
) -> None:
    run_cli.ok("queues", "add", "sales")
    result = run_cli("campaigns", "add", "c1", *args)
    assert result.exit_code == 1
    assert reason in error_line(result.output)
    assert count(clean_db, "campaigns") == 0


def test_bad_update_and_unknown_campaign(run_cli: Cli, clean_db: Engine) -> None:
    run_cli.ok("queues", "add", "sales")
    run_cli.ok("campaigns", "add", "c1", "--queue", "sales")
    result = run_cli("campaigns", "update", "c1", "--queue", "")
    assert result.exit_code == 1
    assert "needs --queue" in error_line(result.output)
    assert json.loads(run_cli.ok("campaigns", "show", "c1", "--json").output)["queue"] == "sales"
    for args in (["campaigns", "show", "nope"], ["campaigns", "update", "nope", "--days", "all"]):
        result = run_cli(*args)
        assert result.exit_code == 1
        assert "no campaign named 'nope'" in error_line(result.output)
    assert run_cli("campaigns", "add", "c2", "--mode", "nonsense").exit_code == 2


def test_dnc_add_check_remove_list(run_cli: Cli, clean_db: Engine) -> None:
    out = run_cli.ok("dnc", "add", "(212) 555-0100", "+1 415 555 0101", "--source", "call")
    assert "2 numbers added" in out.output
    assert "0 numbers added" in run_cli.ok("dnc", "add", "212-555-0100").output
    check = json.loads(run_cli.ok("dnc", "check", "2125550100", "--json").output)
    assert (check["phone"], check["do_not_call"], check["source"]) == ("+12125550100", True, "call")
    assert "is on the do-not-call list" in run_cli.ok("dnc", "check", "+12125550100").output
    listed = json.loads(run_cli.ok("dnc", "list", "--json").output)
    assert [e["phone"] for e in listed] == ["+12125550100", "+14155550101"]
    run_cli.ok("dnc", "remove", "212 555 0100")
    assert "is not on" in run_cli.ok("dnc", "check", "2125550100").output
    result = run_cli("dnc", "remove", "2125550100")
    assert result.exit_code == 1
    assert "not on the do-not-call list" in error_line(result.output)
    # One bad number: nothing added.
    result = run_cli("dnc", "add", "2125550177", "12345")
    assert result.exit_code == 1
    assert "'12345'" in error_line(result.output)
    assert count(clean_db, "do_not_call") == 1
    # Numbers of another region.
    run_cli.ok("dnc", "add", "020 7946 0018", "--region", "GB")
    assert json.loads(run_cli.ok("dnc", "check", "+442079460018", "--json").output)["do_not_call"]
    result = run_cli("dnc", "check", "2125550100", "--region", "XX")
    assert result.exit_code == 1
    assert "region 'XX'" in error_line(result.output)


def test_dnc_import_all_or_nothing(run_cli: Cli, clean_db: Engine, tmp_path: Path) -> None:
    good = tmp_path / "dnc.csv"
    good.write_text("phone,note\n2125550100,x\n(212) 555-0100,same\n+14155550101,y\n")
    out = run_cli.ok("dnc", "import", str(good))
    assert "2 numbers added" in out.output
    bad = tmp_path / "bad.txt"
    bad.write_text("2125550102\n2125550103\nnot a number\n")
    result = run_cli("dnc", "import", str(bad))
    assert result.exit_code == 1
    assert "line 3, column 'phone'" in error_line(result.output)
    assert count(clean_db, "do_not_call") == 2


def test_pure_dnc_check() -> None:
    assert store.is_dnc({"+12125550100"}, "+12125550100")
    assert not store.is_dnc(frozenset(), "+12125550100")


# --- the dialer's commands: settings, start/pause/stop, preview, contacts from calls ---------

LAB = {"CALLCENTER_DIALER__CUSTOMER_CHANNEL": "Local/{number}@test-customers"}


def test_dialer_settings_round_trip(run_cli: Cli, clean_db: Engine) -> None:
    run_cli.ok("queues", "add", "sales")
    view = json.loads(
        run_cli.ok(
            "campaigns", "add", "c1", "--queue", "sales", "--ring-seconds", "20",
            "--channel-limit", "12", "--abandon-message", "acme-info", "--json",
        ).output
    )  # fmt: skip
    assert (view["ring_seconds"], view["channel_limit"], view["abandon_message"]) == (
        20,
        12,
        "acme-info",
    )
    assert (view["state"], view["started_at"]) == ("stopped", None)
    run_cli.ok(
        "campaigns", "add", "robo", "--mode", "agentless", "--seller-name", "Acme",
        "--seller-number", "2125550199", "--agentless-action", "survey", "--survey-ivr", "csat",
    )  # fmt: skip
    shown = json.loads(run_cli.ok("campaigns", "show", "robo", "--json").output)
    assert (shown["agentless_action"], shown["survey_ivr"]) == ("survey", "csat")
    for args, reason in (
        (["--ring-seconds", "10"], "between 15 and 120"),
        (["--channel-limit", "5000"], "between 1 and 1000"),
        (["--survey-ivr", ""], "--survey-ivr"),
    ):
        target = "robo" if "--survey-ivr" in args else "c1"
        result = run_cli("campaigns", "update", target, *args)
        assert result.exit_code == 1
        assert reason in error_line(result.output)
    assert run_cli("campaigns", "update", "c1", "--agentless-action", "dance").exit_code == 2


def test_start_pause_stop_cli(run_cli: Cli, clean_db: Engine, tmp_path: Path) -> None:
    run_cli.ok("queues", "add", "sales")
    run_cli.ok("campaigns", "add", "c1", "--queue", "sales")
    contacts_file = tmp_path / "c.csv"
    contacts_file.write_text("phone\n2125550100\n")
    run_cli.ok("contacts", "import", str(contacts_file), "--campaign", "c1")
    result = run_cli("campaigns", "start", "c1")  # PJSIP/{number}@{trunk} and no trunk
    assert result.exit_code == 1
    assert "no trunk" in error_line(result.output)
    assert json.loads(run_cli.ok("campaigns", "show", "c1", "--json").output)["state"] == (
        "stopped"
    )
    out = run_cli("campaigns", "start", "c1", "--json", env=LAB)
    assert out.exit_code == 0, out.output
    view = json.loads(out.output)
    assert view["state"] == "running"
    assert view["started_at"] is not None
    assert "is paused" in run_cli.ok("campaigns", "pause", "c1").output
    assert "is stopped" in run_cli.ok("campaigns", "stop", "c1").output
    result = run_cli("campaigns", "pause", "c1")
    assert result.exit_code == 1
    assert "nothing to pause" in error_line(result.output)
    again = json.loads(run_cli("campaigns", "start", "c1", "--json", env=LAB).output)
    assert again["started_at"] == view["started_at"]
    for verb in ("start", "pause", "stop"):
        result = run_cli("campaigns", verb, "nope")
        assert result.exit_code == 1
        assert "no campaign named 'nope'" in error_line(result.output)


def _open_zone() -> str:
    import datetime as dt

    now = dt.datetime.now(dt.UTC)
    for offset in range(-12, 15):
        if (now.hour + offset) % 24 in range(12, 18):
            return "Etc/GMT" if offset == 0 else f"Etc/GMT{'+' if offset < 0 else '-'}{abs(offset)}"
    raise AssertionError("no zone")


def test_preview_cli(run_cli: Cli, clean_db: Engine, tmp_path: Path) -> None:
    run_cli.ok("queues", "add", "sales")
    run_cli.ok("agents", "add", "ann", "-e", "1001", "--pin", "1234", "--queue", "sales")
    run_cli.ok("agents", "add", "bob", "-e", "1002", "--pin", "1234", "--queue", "sales")
    run_cli.ok("campaigns", "add", "pv", "--mode", "preview", "--queue", "sales")
    zone = _open_zone()
    contacts_file = tmp_path / "c.csv"
    contacts_file.write_text(
        f"phone,name,timezone,priority,account\n2125550100,Ann Customer,{zone},9,A-1\n"
        f"2125550101,Bo Customer,{zone},5,B-2\n"
    )
    run_cli.ok("contacts", "import", str(contacts_file), "--campaign", "pv")
    result = run_cli("campaigns", "preview", "pv", "--agent", "ann")
    assert result.exit_code == 1
    assert "stopped, not running" in error_line(result.output)
    assert run_cli("campaigns", "start", "pv", env=LAB).exit_code == 0
    shown = json.loads(run_cli.ok("campaigns", "preview", "pv", "--agent", "ann", "--json").output)
    assert (shown["phone"], shown["name"], shown["fields"]) == (
        "+12125550100",
        "Ann Customer",
        {"account": "A-1"},
    )
    again = json.loads(run_cli.ok("campaigns", "preview", "pv", "--agent", "ann", "--json").output)
    assert again == shown
    assert "Bo Customer" in run_cli.ok("campaigns", "preview", "pv", "--agent", "bob").output
    out = run_cli.ok("campaigns", "preview", "pv", "--agent", "ann", "--dial").output
    assert "dialling +12125550100" in out
    skip = run_cli.ok("campaigns", "preview", "pv", "--agent", "bob", "--skip", "wrong number")
    assert "skipped (skipped by bob: wrong number)" in skip.output
    assert "no contact of campaign pv is due now" in (
        run_cli.ok("campaigns", "preview", "pv", "--agent", "bob").output
    )
    assert count(clean_db, "campaign_attempts") == 2
    for args, reason in (
        (["--agent", "zed"], "no agent named 'zed'"),
        (["--agent", "bob", "--dial"], "no contact of campaign pv on screen"),
    ):
        result = run_cli("campaigns", "preview", "pv", *args)
        assert result.exit_code == 1
        assert reason in error_line(result.output)
    both = run_cli("campaigns", "preview", "pv", "--agent", "bob", "--dial", "--skip", "x")
    assert both.exit_code == 2
    assert count(clean_db, "campaign_attempts") == 2


def test_contacts_from_calls(run_cli: Cli, clean_db: Engine, tmp_path: Path) -> None:
    import datetime as dt

    import sqlalchemy as sa

    from callcenter.db.models import Call

    run_cli.ok("queues", "add", "sales")
    run_cli.ok("queues", "add", "other")
    run_cli.ok("campaigns", "add", "csat", "--queue", "sales")
    run_cli.ok("dnc", "add", "+16175550103")
    day = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    calls = [
        # caller, hour, outcome, queue, agent
        ("(212) 555-0100", 10, "answered", "sales", "ann"),
        ("+12125550100", 15, "answered", "sales", "bob"),  # again: the latest call is kept
        ("anonymous", 11, "answered", "sales", "ann"),  # not a number
        ("1001", 11, "answered", "sales", "ann"),  # an extension
        ("+14155550101", 12, "abandoned", "sales", None),
        ("+13125550102", 24 + 9, "answered", "sales", "ann"),  # the next day
        ("+16175550103", 13, "answered", "sales", "bob"),  # on the do-not-call list
        ("+12025550104", 14, "answered", "sales", "ann"),  # already a contact
        ("+17185550105", 14, "answered", "other", "ann"),  # another queue
    ]
    with clean_db.begin() as conn:
        for i, (caller, hour, outcome, queue, agent) in enumerate(calls):
            at = day + dt.timedelta(hours=hour)
            conn.execute(
                sa.insert(Call).values(
                    node="local", uniqueid=f"u{i}", linkedid=f"u{i}", caller_number=caller,
                    queue=queue, agent=agent, started_at=at, queued_at=at, outcome=outcome,
                )
            )  # fmt: skip
    existing = tmp_path / "e.csv"
    existing.write_text("phone\n+12025550104\n")
    run_cli.ok("contacts", "import", str(existing), "--campaign", "csat")
    report = json.loads(
        run_cli.ok(
            "contacts", "from-calls", "--campaign", "csat", "--queue", "sales",
            "--since", "2026-03-01", "--outcome", "answered", "--json",
        ).output
    )  # fmt: skip
    assert report == {
        "calls": 6,
        "numbers": 3,
        "imported": 1,
        "duplicates_in_calls": 1,
        "duplicates_existing": 1,
        "on_dnc": 1,
        "invalid": 2,
        "examples": report["examples"],
    }
    listed = json.loads(run_cli.ok("contacts", "list", "--campaign", "csat", "--json").output)
    by_phone = {c["phone"]: c for c in listed}
    assert by_phone["+12125550100"]["fields"] == {
        "uniqueid": "u1",
        "node": "local",
        "queue": "sales",
        "agent": "bob",
    }
    assert by_phone["+12125550100"]["timezone"] == "America/New_York"
    # Two days, every outcome: the abandoned caller and the next day's come in too.
    out = run_cli.ok(
        "contacts", "from-calls", "--campaign", "csat", "--queue", "sales",
        "--since", "2026-03-01", "--until", "2026-03-02",
    ).output  # fmt: skip
    assert "imported 2 contacts" in out
    assert "2 numbers that cannot be called" in out
    before = count(clean_db, "contacts")
    for args, reason in (
        (["--campaign", "nope", "--queue", "sales"], "no campaign named 'nope'"),
        (["--campaign", "csat", "--queue", "nope"], "no queue named 'nope'"),
        (["--campaign", "csat", "--queue", "sales", "--since", "March"], "is not a date"),
        (
            ["--campaign", "csat", "--queue", "sales", "--since", "2026-03-02", "--until",
             "2026-03-01"],
            "is before --since",
        ),
    ):  # fmt: skip
        result = run_cli("contacts", "from-calls", *args)
        assert result.exit_code == 1
        assert reason in error_line(result.output)
    assert count(clean_db, "contacts") == before
