"""An operator's CLI against a real Asterisk (marker ``asterisk``; skipped, with the reason,
where there is none): what `queues leave` and `agents remove` do to app_queue, and that what
`agents phone` prints registers a SIP phone.

One private Asterisk for the module, started by `callcenter asterisk run` itself on free ports
in a temporary directory; each test writes its directory with the CLI and runs
`callcenter asterisk reload`, as an operator would. Every wait has a time-out, and Asterisk is
always stopped at the end.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from callcenter.agi.features import queue_add_actions
from callcenter.asterisk import reload, run
from tests.conftest import Cli
from tests.test_asterisk_live import (
    Ami,
    asterisk_binary,
    free_port,
    port_environment,
    stop,
    wait_booted,
)

pytestmark = pytest.mark.asterisk

SECRET = "operator-ami-secret-0123456789"
SIPP_DIR = Path(__file__).resolve().parents[1] / "scripts" / "sipp"


@dataclass
class Pbx:
    binary: Path
    directory: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes]

    @property
    def ami_port(self) -> int:
        return int(self.env["CALLCENTER_NODES__LOCAL__PORT"])

    def cli(self, run_cli: Cli) -> Cli:
        run_cli.env.update(self.env)
        return run_cli

    def console(self, command: str) -> str:
        return reload.console(self.binary, self.directory, command)

    async def ami(self) -> Ami:
        return await Ami.login(self.ami_port, "callcenter", SECRET)


@pytest.fixture(scope="module")
def pbx(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> Iterator[Pbx]:
    binary = asterisk_binary()
    where = tmp_path_factory.mktemp("operator")
    directory = where / "instance"
    env = {
        **port_environment(),
        "CALLCENTER_DATABASE__URL": database_url,
        "CALLCENTER_CONFIG": "",
        "CALLCENTER_NODES__LOCAL__SECRET": SECRET,
        "CALLCENTER_ASTERISK__DIRECTORY": str(directory),
        "ASTERISK_BIN": str(binary),
    }
    log = (where / "run.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "callcenter", "asterisk", "run"],
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        try:
            asyncio.run(
                wait_booted(int(env["CALLCENTER_NODES__LOCAL__PORT"]), "callcenter", SECRET)
            )
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            tail = (where / "run.log").read_text(errors="replace")[-3000:]
            pytest.fail(f"`callcenter asterisk run` did not boot ({exc!r}):\n{tail}")
        yield Pbx(binary, directory, env, proc)
    finally:
        stop(binary, directory, proc)
        log.close()


async def _log_in(pbx: Pbx, name: str, interface: str, queues: list[str]) -> None:
    """What the agent's ``*11`` does once the PIN is right: a QueueAdd per queue."""
    ami = await pbx.ami()
    try:
        for action in queue_add_actions(name, interface, dict.fromkeys(queues, 0)):
            reply = await ami.send(**action)
            assert reply["Response"] == "Success", reply
    finally:
        await ami.close()


async def _members(pbx: Pbx) -> set[tuple[str, str, str]]:
    """(queue, member name, interface) of every member app_queue has."""
    ami = await pbx.ami()
    try:
        items = await ami.send_list(Action="QueueStatus")
    finally:
        await ami.close()
    return {
        (e["Queue"], e["Name"], e["Location"]) for e in items if e.get("Event") == "QueueMember"
    }


def members(pbx: Pbx) -> set[tuple[str, str, str]]:
    return asyncio.run(asyncio.wait_for(_members(pbx), 20))


def log_in(pbx: Pbx, name: str, interface: str, queues: list[str]) -> None:
    asyncio.run(asyncio.wait_for(_log_in(pbx, name, interface, queues), 20))


def test_queues_leave_takes_a_logged_in_agent_out_of_asterisk(pbx: Pbx, run_cli: Cli) -> None:
    cli = pbx.cli(run_cli)
    cli.ok("queues", "add", "sales")
    cli.ok("queues", "add", "support")
    cli.ok("agents", "add", "alice", "-e", "1001", "--pin", "2468", "--queue", "sales")
    cli.ok("queues", "join", "support", "alice")
    cli.ok("asterisk", "reload")
    log_in(pbx, "alice", "PJSIP/1001", ["sales", "support"])
    assert members(pbx) == {
        ("sales", "alice", "PJSIP/1001"),
        ("support", "alice", "PJSIP/1001"),
    }
    result = cli.ok("queues", "leave", "sales", "alice")
    assert result.stdout.splitlines() == [
        "agent alice left queue sales",
        "Asterisk node local: alice removed from queue sales",
    ]
    assert result.stderr == ""
    assert members(pbx) == {("support", "alice", "PJSIP/1001")}
    # A reload (and astdb, which keeps members across restarts) does not bring them back.
    cli.ok("asterisk", "reload")
    assert members(pbx) == {("support", "alice", "PJSIP/1001")}
    assert "sales" not in pbx.console("database show Queue/PersistentMembers")
    # An agent who is not logged in: the directory change alone, nothing said of Asterisk.
    cli.ok("agents", "add", "bob", "-e", "1002", "--pin", "2468", "--queue", "sales")
    quiet = cli.ok("queues", "leave", "sales", "bob")
    assert quiet.stdout == "agent bob left queue sales\n"
    cli.ok("queues", "leave", "support", "alice")
    assert members(pbx) == set()


def test_agents_remove_takes_the_agent_out_of_every_queue_in_asterisk(
    pbx: Pbx, run_cli: Cli
) -> None:
    """By interface for a phone, by member name for a simulated agent's Local channel
    (`agents remove sim03` after `make demo`)."""
    cli = pbx.cli(run_cli)
    cli.ok("queues", "add", "sales")
    cli.ok("queues", "add", "support")
    cli.ok("agents", "add", "alice", "-e", "1001", "--pin", "2468",
           "--queue", "sales", "--queue", "support")  # fmt: skip
    cli.ok("agents", "add", "sim03", "-e", "9003", "--pin", "2468", "--queue", "support")
    cli.ok("asterisk", "reload")
    log_in(pbx, "alice", "PJSIP/1001", ["sales", "support"])
    log_in(pbx, "sim03", "Local/9003@sim-agent/n", ["support"])
    assert len(members(pbx)) == 3
    removed = cli.ok("agents", "remove", "sim03")
    assert removed.stdout.splitlines() == [
        "agent sim03 removed",
        "Asterisk node local: sim03 removed from queue support",
    ]
    assert members(pbx) == {
        ("sales", "alice", "PJSIP/1001"),
        ("support", "alice", "PJSIP/1001"),
    }
    removed = cli.ok("agents", "remove", "alice")
    assert removed.stdout.splitlines() == [
        "agent alice removed",
        "Asterisk node local: alice removed from queue sales, support",
    ]
    cli.ok("asterisk", "reload")
    assert members(pbx) == set()
    astdb = pbx.console("database show Queue/PersistentMembers")
    assert "alice" not in astdb
    assert "sim03" not in astdb


def test_agents_phone_prints_what_registers_a_sip_phone(
    pbx: Pbx, run_cli: Cli, tmp_path: Path
) -> None:
    """The server, port, transport, user name and password `agents phone --json` prints are
    what a phone registers with (SIPp as the phone); a wrong password is refused."""
    sipp = shutil.which("sipp")
    if sipp is None:
        pytest.skip("needs SIPp (`sipp` on PATH; Debian: apt-get install sip-tester)")
    cli = pbx.cli(run_cli)
    cli.ok("agents", "add", "alice", "-e", "1001", "--pin", "2468")
    cli.ok("asterisk", "reload")
    phone = json.loads(cli.ok("agents", "phone", "alice", "--json").stdout)
    assert (phone["server"], phone["port"], phone["transport"], phone["username"]) == (
        "127.0.0.1",
        int(pbx.env["CALLCENTER_ASTERISK__SIP_PORT"]),
        "udp",
        "1001",
    )
    assert phone["feature_codes"]["*11"].startswith("log in")

    def register(password: str, tag: str) -> int:
        cmd = [
            sipp, "-nostdin", "-sf", str(SIPP_DIR / "register.xml"), "-i", "127.0.0.1",
            "-p", str(free_port(udp_too=True)), "-t", "u1", "-s", phone["username"],
            "-au", phone["auth_username"], "-ap", password, "-m", "1", "-aa",
            "-timeout", "8s", "-trace_err", "-error_file", str(tmp_path / f"{tag}-errors.log"),
            f"{phone['server']}:{phone['port']}",
        ]  # fmt: skip
        with (tmp_path / f"{tag}.log").open("wb") as out:
            return subprocess.run(
                cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=tmp_path, timeout=30, check=False,
            ).returncode  # fmt: skip

    assert register(phone["password"], "right") == 0, (tmp_path / "right.log").read_text()
    assert "1001/sip:1001@127.0.0.1" in pbx.console("pjsip show contacts")
    assert register(phone["password"] + "x", "wrong") != 0


def test_reload_is_an_error_once_asterisk_is_stopped(pbx: Pbx, run_cli: Cli) -> None:
    """Last in the module: it stops the instance."""
    cli = pbx.cli(run_cli)
    stop(pbx.binary, pbx.directory, pbx.proc)
    assert not run.is_running(pbx.directory)
    before = {p: p.stat().st_mtime_ns for p in (pbx.directory / "etc").rglob("*") if p.is_file()}
    cli.ok("queues", "add", "late")
    result = cli("asterisk", "reload")
    assert result.exit_code == 1
    (line,) = result.output.splitlines()
    assert line.startswith("Error: Asterisk is not running in ")
    assert "`callcenter run`" in line
    after = {p: p.stat().st_mtime_ns for p in (pbx.directory / "etc").rglob("*") if p.is_file()}
    assert after == before
