"""What an operator's first week ran into, through the CLI against the real database: a
phone's settings, names nobody knows, Asterisk out of reach, a doctor's fix text, help texts.
(What needs a running Asterisk is in test_operator_asterisk.py and test_run_service.py.)"""

from __future__ import annotations

import datetime as dt
import json
import socket
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from callcenter.agi.features import FEATURE_CODES
from callcenter.db.models import Call
from tests.conftest import Cli, count


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # nothing listens once it is closed


def error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith("Error: ")
    return lines[0]


# --- agents phone ---------------------------------------------------------------------------


def test_agents_phone_shows_what_a_phone_needs_secret_included(
    run_cli: Cli, clean_db: Engine
) -> None:
    run_cli.ok("agents", "add", "alice", "-e", "1001", "--pin", "2468")
    with clean_db.connect() as conn:
        secret = conn.scalar(sa.text("SELECT sip_secret FROM agents"))
    shown = json.loads(run_cli.ok("agents", "phone", "alice", "--json").stdout)
    assert shown["server"] == "127.0.0.1"
    assert (shown["port"], shown["transport"]) == (5060, "udp")
    assert shown["transports"] == [
        {"transport": "udp", "port": 5060},
        {"transport": "tcp", "port": 5060},
    ]
    assert (shown["username"], shown["auth_username"], shown["password"]) == (
        "1001",
        "1001",
        secret,
    )
    assert shown["feature_codes"] == dict(FEATURE_CODES)
    assert "only this machine" in shown["notes"][0]
    assert "bind_address" in shown["notes"][0]
    table = run_cli.ok("agents", "phone", "alice").stdout
    for text in ("127.0.0.1", "5060", "UDP 5060, TCP 5060", "1001", secret, "*11", "*97"):
        assert text in table
    assert "Note: only this machine" in table
    # Only this command shows it: not `agents show`, not `agents list`.
    assert secret not in run_cli.ok("agents", "show", "alice", "--json").stdout
    assert secret not in run_cli.ok("agents", "list").stdout


def test_agents_phone_on_every_address_with_tls_and_a_disabled_agent(
    run_cli: Cli, clean_db: Engine
) -> None:
    run_cli.ok("agents", "add", "bob", "-e", "1002", "--pin", "2468")
    run_cli.ok("agents", "update", "bob", "--disable")
    env = {
        "CALLCENTER_ASTERISK__BIND_ADDRESS": "0.0.0.0",
        "CALLCENTER_ASTERISK__SIP_PORT": "5070",
        "CALLCENTER_ASTERISK__TLS_CERT_FILE": "/etc/ssl/pbx.pem",
        "CALLCENTER_ASTERISK__TLS_KEY_FILE": "/etc/ssl/pbx.key",
    }
    result = run_cli("agents", "phone", "bob", "--json", env=env)
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["server"] not in ("0.0.0.0", "127.0.0.1")
    assert "every address (0.0.0.0)" in shown["notes"][0]
    assert shown["transports"][-1] == {"transport": "tls", "port": 5061}
    assert shown["port"] == 5070
    assert shown["enabled"] is False
    assert "is disabled" in shown["notes"][1]


def test_agents_phone_of_nobody_is_a_one_line_error(run_cli: Cli, clean_db: Engine) -> None:
    result = run_cli("agents", "phone", "ghost")
    assert result.exit_code == 1
    assert error_line(result.output) == "Error: no agent named 'ghost'"


def test_feature_codes_are_the_dialplans() -> None:
    """Every code `agents phone` lists is an extension of the [agents] context."""
    from callcenter.asterisk.render import source_root

    dialplan = (source_root() / "dialplans" / "agents.conf.j2").read_text()
    for code, _ in FEATURE_CODES:
        exten = f"_{code.replace('<code>', '.')}" if "<code>" in code else code
        assert f"\nexten => {exten},1," in dialplan, code


# --- names nobody knows ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["calls", "list", "--queue", "nosuch"], "no queue named 'nosuch'"),
        (["calls", "list", "--agent", "nobody"], "no agent named 'nobody'"),
        (["report", "--queue", "nosuch"], "no queue named 'nosuch'"),
        (["report", "--agent", "nobody"], "no agent named 'nobody'"),
        (["report", "--queue", "nosuch", "--json"], "no queue named 'nosuch'"),
    ],
)
def test_an_unknown_queue_or_agent_is_a_one_line_error(
    run_cli: Cli, clean_db: Engine, args: list[str], message: str
) -> None:
    run_cli.ok("queues", "add", "sales")
    result = run_cli(*args)
    assert result.exit_code == 1
    assert message in error_line(result.output)
    assert result.stdout == ""


def test_names_the_call_log_knows_are_not_errors(run_cli: Cli, clean_db: Engine) -> None:
    """A queue or agent removed from the directory (or of an external node) still has calls."""
    now = dt.datetime.now(dt.UTC)
    with Session(clean_db) as s, s.begin():
        s.add(
            Call(node="pbx1", uniqueid="1.1", linkedid="1.1", caller_number="555",
                 started_at=now, queued_at=now, queue="oldq", agent="olda", outcome="abandoned")
        )  # fmt: skip
    run_cli.ok("queues", "add", "sales")
    run_cli.ok("agents", "add", "Renée", "-e", "1005", "--pin", "2468")
    assert len(json.loads(run_cli.ok("calls", "list", "--queue", "oldq", "--json").stdout)) == 1
    assert json.loads(run_cli.ok("calls", "list", "--agent", "olda", "--json").stdout)
    assert json.loads(run_cli.ok("calls", "list", "--queue", "sales", "--json").stdout) == []
    run_cli.ok("report", "--queue", "oldq")
    run_cli.ok("report", "--agent", "olda")
    run_cli.ok("report", "--agent", "Rene\u0301e")  # NFC, as agents are stored


# --- Asterisk out of reach ------------------------------------------------------------------


def test_leave_and_remove_with_asterisk_out_of_reach_warn_and_say_how(
    run_cli: Cli, clean_db: Engine, tmp_path: Path
) -> None:
    """The directory change stands (exit 0); stderr names the node, the reason and the
    console command that takes the member out once Asterisk runs."""
    run_cli.env["CALLCENTER_NODES__LOCAL__PORT"] = str(closed_port())
    run_cli.env["CALLCENTER_ASTERISK__DIRECTORY"] = f"{tmp_path}/instance"
    run_cli.ok("queues", "add", "sales")
    run_cli.ok("queues", "add", "support")
    run_cli.ok("agents", "add", "alice", "-e", "1001", "--pin", "2468",
               "--queue", "sales", "--queue", "support")  # fmt: skip
    left = run_cli.ok("queues", "leave", "sales", "alice")
    assert left.stdout == "agent alice left queue sales\n"
    (warning,) = left.stderr.splitlines()
    assert warning.startswith("Warning: Asterisk node local was not reached (cannot connect to ")
    assert "may still have agent alice as a member of sales" in warning
    conf = tmp_path / "instance" / "etc" / "asterisk.conf"
    assert f'-C {conf} -rx "queue remove member PJSIP/1001 from sales"' in warning
    assert count(clean_db, "queue_members") == 1
    removed = run_cli.ok("agents", "remove", "alice")
    assert removed.stdout == "agent alice removed\n"
    (warning,) = removed.stderr.splitlines()
    assert "as a member of support" in warning
    assert '"queue remove member PJSIP/1001 from support"' in warning
    assert count(clean_db, "agents") == 0


def test_an_external_node_out_of_reach_names_its_own_console(
    run_cli: Cli, clean_db: Engine
) -> None:
    run_cli.env["CALLCENTER_NODES__PBX2__HOST"] = "127.0.0.1"
    run_cli.env["CALLCENTER_NODES__PBX2__PORT"] = str(closed_port())
    run_cli.env["CALLCENTER_NODES__LOCAL__PORT"] = str(closed_port())
    run_cli.ok("queues", "add", "sales")
    run_cli.ok("agents", "add", "bob", "-e", "1002", "--pin", "2468", "--queue", "sales")
    left = run_cli.ok("queues", "leave", "sales", "bob")
    warnings = {w.split(" was not reached")[0]: w for w in left.stderr.splitlines()}
    assert sorted(warnings) == ["Warning: Asterisk node local", "Warning: Asterisk node pbx2"]
    assert warnings["Warning: Asterisk node pbx2"].endswith(
        'there: asterisk -rx "queue remove member PJSIP/1002 from sales"'
    )


# --- small things ---------------------------------------------------------------------------


def test_doctor_table_keeps_a_fix_with_brackets(run_cli: Cli, clean_db: Engine) -> None:
    """rich read "[nodes.*]" as markup and dropped it from the fix column."""
    result = run_cli("doctor", env={"CALLCENTER_NODES__LOCAL__PORT": str(closed_port())})
    assert result.exit_code == 1
    assert "[nodes.*]" in result.stdout  # a word of its own: never split by the wrapping


def test_config_help_names_the_file_read_by_default(run_cli: Cli) -> None:
    text = " ".join(run_cli.ok("--help").stdout.split())
    assert "$CALLCENTER_CONFIG, else ./callcenter.toml when it exists, else built-in" in text


def test_simulate_help_names_the_setting_that_exists(run_cli: Cli) -> None:
    text = " ".join(run_cli.ok("simulate", "--help").stdout.split())
    assert "--simulation" not in text
    assert "`[asterisk] simulation = true`" in text
    assert "`callcenter asterisk reload`" in text
