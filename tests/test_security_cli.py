"""``callcenter security list | block | unblock``: the table, JSON for scripts, one-line errors,
and the blocklist written into the private instance's acl.conf (no Asterisk running here: the
reload itself is tests/e2e/test_security.py's)."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from callcenter.security import store
from tests.conftest import Cli
from tests.test_security_store import offender


def env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "etc").mkdir(exist_ok=True)
    return {
        "CALLCENTER_ASTERISK__DIRECTORY": str(tmp_path),
        "CALLCENTER_SECURITY__ALLOW": "127.0.0.1/32,192.168.1.0/24",
    }


def acl(tmp_path: Path) -> str:
    return (tmp_path / "etc" / "acl.conf").read_text()


def test_block_list_unblock(run_cli: Cli, clean_db: Engine, tmp_path: Path) -> None:
    e = env(tmp_path)
    with Session(clean_db) as s, s.begin():
        store.record(s, offender("203.0.113.5"), 12, block=True, now=1_796_600_000.0)
        store.record(s, offender("198.51.100.9"), 12, block=False, now=1_796_600_000.0)
    shown = run_cli("security", "list", env=e)
    assert shown.exit_code == 0, shown.output
    assert "1 addresses blocked" in shown.output
    assert "203.0.113.5" in shown.output
    assert "198.51.100.9" not in shown.output  # alerted, never blocked: only with --all

    done = run_cli("security", "block", "203.0.113.77/24", "--reason", "abuse report", env=e)
    assert done.exit_code == 0, done.output
    assert "blocked 203.0.113.0/24" in done.output
    assert "Asterisk is not running there" in done.output
    text = acl(tmp_path)
    assert "deny = 203.0.113.0/255.255.255.0" in text
    assert "deny = 203.0.113.5/255.255.255.255" in text  # the table's other block
    assert "permit = 192.168.1.0/255.255.255.0" in text  # the allow-list, after the denies
    again = run_cli("security", "block", "203.0.113.0/24", env=e)
    assert "blocked already" in again.output

    rows = json.loads(run_cli("security", "list", "--all", "--json", env=e).output)
    by = {r["address"]: r for r in rows}
    assert {a: r["status"] for a, r in by.items()} == {
        "203.0.113.5": "blocked", "203.0.113.0/24": "blocked", "198.51.100.9": "alerted"
    }  # fmt: skip
    assert by["203.0.113.0/24"]["reason"] == "abuse report"
    assert by["203.0.113.5"]["failures"] == 12
    assert by["203.0.113.5"]["first_seen"].startswith("1970-01-01T00:16:40")  # ISO, UTC

    done = run_cli("security", "unblock", "203.0.113.5", env=e)
    assert done.exit_code == 0, done.output
    assert "unblocked 203.0.113.5" in done.output
    assert "203.0.113.5/" not in acl(tmp_path)
    rows = json.loads(run_cli("security", "list", "--json", env=e).output)
    assert [r["address"] for r in rows] == ["203.0.113.0/24"]


def test_one_line_errors_and_nothing_written(run_cli: Cli, tmp_path: Path) -> None:
    e = env(tmp_path)
    cases = [
        (("block", "192.168.1.50"), "is in [security] allow (192.168.1.0/24)"),
        (("block", "10.0.0.0/4"), "wider than /8"),
        (("block", "sip.example.com"), "is not an IP address or network"),
        (("unblock", "203.0.113.5"), "203.0.113.5 is not blocked"),
        (("unblock", "nonsense"), "is not an IP address or network"),
    ]
    for args, why in cases:
        result = run_cli("security", *args, env=e)
        assert result.exit_code == 1, (args, result.output)
        assert why in result.output, (args, result.output)
        assert result.output.startswith("Error: "), result.output
        assert result.output.count("\n") == 1, result.output
    assert not (tmp_path / "etc" / "acl.conf").exists()
    assert run_cli("security", "block", env=e).exit_code == 2  # usage: no address


def test_bad_settings_name_the_key(run_cli: Cli) -> None:
    for key, value, why in (
        ("ALLOW", "10.0.0.0/8,office", "security.allow: 'office' is not an IP address"),
        ("THRESHOLD", "0", "security.threshold = 0 must be 1-1000"),
        ("WINDOW", "-1", "security.window = -1.0 must be greater than 0"),
        ("MAX_TRACKED", "10", "security.max_tracked = 10 must be at least 100"),
        ("BLOCK", "maybe", "security.block = 'maybe' is not a boolean"),
    ):
        result = run_cli("security", "list", env={f"CALLCENTER_SECURITY__{key}": value})
        assert result.exit_code == 1, result.output
        assert why in result.output, result.output
        assert f"CALLCENTER_SECURITY__{key}" in result.output, result.output
