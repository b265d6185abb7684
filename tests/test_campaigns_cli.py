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
