"""Every operator command through click's runner against the real database, and the bad
inputs: one line, exit 1, nothing written; wrong usage exits 2."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.conftest import Cli, count


def error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith("Error: ")
    return lines[0]


def test_agents_lifecycle(run_cli: Cli, clean_db: Engine) -> None:
    run_cli.ok("queues", "add", "sales")
    out = run_cli.ok(
        "agents",
        "add",
        "alice",
        "-e",
        "1001",
        "--pin",
        "1234",
        "--full-name",
        "Alice Doe",
        "--skills",
        "Billing, spanish",
        "--queue",
        "sales:3",
        "--json",
    )
    created = json.loads(out.output)
    assert created == {
        "name": "alice",
        "full_name": "Alice Doe",
        "extension": "1001",
        "skills": ["billing", "spanish"],
        "enabled": True,
        "queues": {"sales": 3},
    }
    assert "alice" in run_cli.ok("agents", "list").output
    assert json.loads(run_cli.ok("agents", "list", "--json").output)[0]["name"] == "alice"
    assert "Alice Doe" in run_cli.ok("agents", "show", "alice").output
    run_cli.ok("agents", "update", "alice", "--extension", "1009", "--disable", "--skills", "")
    shown = json.loads(run_cli.ok("agents", "show", "alice", "--json").output)
    assert (shown["extension"], shown["enabled"], shown["skills"]) == ("1009", False, [])
    with clean_db.connect() as conn:
        pin_hash, secret = conn.execute(sa.text("SELECT pin_hash, sip_secret FROM agents")).one()
    assert "1234" not in pin_hash
    assert pin_hash.startswith("$argon2")
    assert len(secret) >= 32
    assert secret not in run_cli.ok("agents", "show", "alice", "--json").output
    run_cli.ok("agents", "update", "alice", "--new-sip-secret")
    with clean_db.connect() as conn:
        assert conn.scalar(sa.text("SELECT sip_secret FROM agents")) != secret
    run_cli.ok("agents", "remove", "alice")
    assert count(clean_db, "agents") == 0
    assert count(clean_db, "queue_members") == 0


def test_queues_lifecycle(run_cli: Cli, clean_db: Engine) -> None:
    out = run_cli.ok(
        "queues",
        "add",
        "support",
        "--strategy",
        "leastrecent",
        "--service-level",
        "30",
        "--wrapup",
        "15",
        "--no-join-empty",
        "--json",
    )
    view = json.loads(out.output)
    assert (
        view["strategy"],
        view["service_level_seconds"],
        view["wrapup_seconds"],
        view["join_empty"],
        view["ring_seconds"],
    ) == ("leastrecent", 30, 15, False, 15)
    run_cli.ok("agents", "add", "bob", "-e", "1002", "--pin", "5678")
    run_cli.ok("queues", "join", "support", "bob", "--penalty", "2")
    assert json.loads(run_cli.ok("queues", "show", "support", "--json").output)["members"] == {
        "bob": 2
    }
    run_cli.ok("queues", "join", "support", "bob", "--penalty", "0")  # re-join changes penalty
    assert "bob:0" in run_cli.ok("queues", "show", "support").output
    run_cli.ok("queues", "update", "support", "--strategy", "ringall", "--max-wait", "120")
    listed = json.loads(run_cli.ok("queues", "list", "--json").output)
    assert (listed[0]["strategy"], listed[0]["max_wait_seconds"]) == ("ringall", 120)
    assert "support" in run_cli.ok("queues", "list").output
    run_cli.ok("queues", "leave", "support", "bob")
    assert count(clean_db, "queue_members") == 0
    run_cli.ok("queues", "remove", "support")
    assert count(clean_db, "queues") == 0


@pytest.mark.parametrize(
    ("setup", "args", "message", "table"),
    [
        (
            [["agents", "add", "alice", "-e", "1001", "--pin", "1234"]],
            ["agents", "add", "alice", "-e", "1002", "--pin", "1234"],
            "an agent named 'alice' already exists",
            "agents",
        ),
        (
            [["agents", "add", "alice", "-e", "1001", "--pin", "1234"]],
            ["agents", "add", "bob", "-e", "1001", "--pin", "1234"],
            "extension 1001 already belongs to agent 'alice'",
            "agents",
        ),
        (
            [],
            ["agents", "add", "bob", "-e", "12ab", "--pin", "1234"],
            "extension '12ab' must be 2 to 16 digits",
            "agents",
        ),
        (
            [],
            ["agents", "add", "bad name", "-e", "1003", "--pin", "1234"],
            "agent name 'bad name'",
            "agents",
        ),
        (
            [],
            ["agents", "add", "bob", "-e", "1003", "--pin", "12"],
            "the PIN must be 4 to 12 digits",
            "agents",
        ),
        # The agent row would be valid; the unknown queue must undo it too.
        (
            [],
            ["agents", "add", "bob", "-e", "1003", "--pin", "1234", "--queue", "nosuch"],
            "no queue named 'nosuch'",
            "agents",
        ),
        ([], ["queues", "add", "Sales"], "queue name 'Sales'", "queues"),
        ([], ["queues", "add", "sales", "--wrapup", "-1"], "wrapup_seconds = -1", "queues"),
        (
            [["queues", "add", "sales"]],
            ["queues", "add", "sales"],
            "a queue named 'sales' already exists",
            "queues",
        ),
        (
            [["agents", "add", "alice", "-e", "1001", "--pin", "1234"]],
            ["queues", "join", "nosuch", "alice"],
            "no queue named 'nosuch'",
            "queue_members",
        ),
        (
            [["queues", "add", "sales"]],
            ["queues", "join", "sales", "ghost"],
            "no agent named 'ghost'",
            "queue_members",
        ),
        (
            [["queues", "add", "sales"], ["agents", "add", "alice", "-e", "1001", "--pin", "1234"]],
            ["queues", "leave", "sales", "alice"],
            "not a member",
            "queue_members",
        ),
        ([], ["agents", "remove", "ghost"], "no agent named 'ghost'", "agents"),
        ([], ["queues", "update", "ghost", "--wrapup", "3"], "no queue named 'ghost'", "queues"),
        ([], ["calls", "list", "--since", "whenever"], "cannot read the time 'whenever'", "calls"),
        ([], ["report", "--since", "today", "--until", "yesterday"], "must come after", "calls"),
    ],
)
def test_bad_input_is_one_line_exit_1_and_writes_nothing(
    run_cli: Cli,
    clean_db: Engine,
    setup: list[list[str]],
    args: list[str],
    message: str,
    table: str,
) -> None:
    for step in setup:
        run_cli.ok(*step)
    before = count(clean_db, table)
    result = run_cli(*args)
    assert result.exit_code == 1, result.output
    assert message in error_line(result.output)
    assert count(clean_db, table) == before


def test_agent_names_in_any_script(run_cli: Cli, clean_db: Engine) -> None:
    run_cli.ok("queues", "add", "ventas")
    out = run_cli.ok("agents", "add", "Renée", "-e", "1005", "--pin", "1234", "--queue", "ventas")
    assert out.output == "agent Renée added (extension 1005)\n"
    run_cli.ok("agents", "add", "東京", "-e", "1006", "--pin", "1234", "--full-name", "東京 太郎")
    listed = json.loads(run_cli.ok("agents", "list", "--json").output)
    assert [a["name"] for a in listed] == ["Renée", "東京"]
    assert json.loads(run_cli.ok("agents", "show", "東京", "--json").output)["full_name"] == (
        "東京 太郎"
    )
    assert "Renée" in run_cli.ok("agents", "list").output
    # Typed with a combining accent (as some keyboards and macOS file names do): the same agent.
    decomposed = "Rene\u0301e"
    assert json.loads(run_cli.ok("agents", "show", decomposed, "--json").output)["queues"] == {
        "ventas": 0
    }
    run_cli.ok("queues", "join", "ventas", "東京", "--penalty", "2")
    assert json.loads(run_cli.ok("queues", "show", "ventas", "--json").output)["members"] == {
        "Renée": 0,
        "東京": 2,
    }
    dup = run_cli("agents", "add", decomposed, "-e", "1007", "--pin", "1234")
    assert error_line(dup.output) == "Error: an agent named 'Renée' already exists"
    with clean_db.connect() as conn:
        stored = conn.scalars(sa.text("SELECT name FROM agents ORDER BY name")).all()
    assert stored == ["Renée", "東京"]  # NFC, as sent to Asterisk
    run_cli.ok("agents", "remove", decomposed)
    assert count(clean_db, "agents") == 1


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Ren|ée", "agent name 'Ren|ée' contains '|'"),
        ("Renée,x", "contains ','"),
        ("Renée Dupont", "contains a space"),
        ("Ren\x1bée", "agent name 'Ren\\x1bée' contains a control character (U+001B)"),
        ("Ren\u200bée", "contains an invisible character (U+200B)"),
        ("-Renée", "starts with '-'"),
        ("東" * 27, "takes 81 bytes in UTF-8"),
    ],
)
def test_bad_agent_names_are_refused(
    run_cli: Cli, clean_db: Engine, name: str, message: str
) -> None:
    # After "--", so click takes "-Renée" as the name, not as options.
    result = run_cli("agents", "add", "-e", "1005", "--pin", "1234", "--", name)
    assert result.exit_code == 1, result.output
    line = error_line(result.output)
    assert message in line
    assert "letters, digits, '.', '_' or '-'" in line
    assert count(clean_db, "agents") == 0


@pytest.mark.parametrize(
    "args",
    [
        ["agents", "add", "alice"],  # missing --extension/--pin
        ["agents", "add", "alice", "-e", "1", "--pin", "1234", "--bogus"],
        ["queues", "add", "sales", "--strategy", "loudest"],
        ["queues", "join", "sales", "alice", "--penalty", "high"],
        ["calls", "list", "--outcome", "exploded"],
        ["nosuchcommand"],
    ],
)
def test_wrong_usage_exits_2(run_cli: Cli, clean_db: Engine, args: list[str]) -> None:
    result = run_cli(*args)
    assert result.exit_code == 2, result.output
    assert count(clean_db, "agents") == 0
    assert count(clean_db, "queues") == 0


def test_unreachable_database_is_one_line_exit_1(run_cli: Cli) -> None:
    dead = {"CALLCENTER_DATABASE__URL": "postgresql+psycopg://postgres@127.0.0.1:9/nowhere"}
    for args in (
        ["agents", "list"],
        ["agents", "add", "x", "-e", "10", "--pin", "1234"],
        ["report"],
        ["db", "status"],
        ["db", "upgrade"],
    ):
        result = run_cli(*args, env=dead)
        assert result.exit_code == 1, (args, result.output)
        line = error_line(result.output)
        assert "cannot use the database postgresql+psycopg://postgres@127.0.0.1:9/nowhere" in line


def test_bad_config_file_is_one_line_exit_1(run_cli: Cli, tmp_path: object) -> None:
    from pathlib import Path

    bad = Path(str(tmp_path)) / "cc.toml"
    bad.write_text("[mqtt]\nport = 0\n")
    result = run_cli("--config", str(bad), "agents", "list")
    assert result.exit_code == 1
    assert f"{bad}: mqtt.port = 0 is not a TCP port" in error_line(result.output)


def test_calls_list_filters(run_cli: Cli, clean_db: Engine) -> None:
    with clean_db.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO calls (node, uniqueid, linkedid, direction, caller_number,"
                " caller_name, did, channel, ivr_path, queue, agent, started_at, queued_at,"
                " ring_attempts, outcome) VALUES ('n', :u, :u, 'inbound', :num, '', '', '', '',"
                " :q, :a, now(), now(), 0, :o)"
            ),
            [
                {"u": "1.1", "num": "5551230001", "q": "sales", "a": "alice", "o": "answered"},
                {"u": "1.2", "num": "5551230002", "q": "sales", "a": None, "o": "abandoned"},
                {"u": "1.3", "num": "6660000000", "q": "support", "a": "bob", "o": "answered"},
            ],
        )

    def ids(*args: str) -> set[str]:
        return {
            c["uniqueid"] for c in json.loads(run_cli.ok("calls", "list", "--json", *args).output)
        }

    assert ids() == {"1.1", "1.2", "1.3"}
    assert ids("--queue", "sales") == {"1.1", "1.2"}
    assert ids("--agent", "bob") == {"1.3"}
    assert ids("--outcome", "abandoned") == {"1.2"}
    assert ids("--caller", "555123*") == {"1.1", "1.2"}
    assert ids("--caller", "6660000000") == {"1.3"}
    assert ids("--until", "-1d", "--since", "-2d") == set()
    assert len(json.loads(run_cli.ok("calls", "list", "--json", "--limit", "1").output)) == 1
    assert "5551230001" in run_cli.ok("calls", "list").output


def test_db_and_config_commands(run_cli: Cli) -> None:
    assert "up to date" in run_cli.ok("db", "status").output
    status = json.loads(run_cli.ok("db", "status", "--json").output)
    assert status["up_to_date"] is True
    assert status["pending"] == []
    assert "at revision" in run_cli.ok("db", "upgrade").output
    example = run_cli.ok("config", "example").output
    assert "[nodes.local]" in example
    assert "[database]" in example
    shown = run_cli("config", "show", env={"CALLCENTER_NODES__LOCAL__SECRET": "s3cr3t-value"})
    assert shown.exit_code == 0
    assert "s3cr3t-value" not in shown.output
    assert "***" in shown.output
    data = json.loads(run_cli.ok("config", "show", "--json").output)
    assert data["agi"]["port"] == 4573


def test_config_init(run_cli: Cli, tmp_path: object) -> None:
    from pathlib import Path

    target = Path(str(tmp_path)) / "cc.toml"
    assert "wrote" in run_cli.ok("config", "init", "--path", str(target)).output
    assert oct(target.stat().st_mode & 0o777) == "0o600"
    first = target.read_text()
    again = run_cli("config", "init", "--path", str(target))
    assert again.exit_code == 1
    assert "exists already" in error_line(again.output)
    run_cli.ok("config", "init", "--path", str(target), "--if-missing")
    assert target.read_text() == first
    shown = run_cli.ok("--config", str(target), "config", "show", "--json").output
    assert '"secret": "***"' in shown


def test_every_command_is_listed_and_loads_by_its_name() -> None:
    """The commands are imported when used (cli/main.py): each entry must name a click
    command of that name, and help must list every one."""
    from click.testing import CliRunner

    from callcenter.cli.main import COMMANDS, cli, load_command

    for name in COMMANDS:
        assert load_command(name).name == name
    shown = CliRunner().invoke(cli, ["--help"])
    assert shown.exit_code == 0, shown.output
    listed = {
        line.split()[0] for line in shown.output.split("Commands:", 1)[1].splitlines() if line
    }
    assert listed == set(COMMANDS)
    unknown = CliRunner().invoke(cli, ["no-such-command"])
    assert unknown.exit_code == 2
    assert "No such command" in unknown.output
