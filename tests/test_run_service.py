"""`callcenter run` as an operator runs it, on a real Asterisk, PostgreSQL and Mosquitto
(marker ``asterisk``; skipped, with the reason, where there is no Asterisk).

A process of its own on free ports in a temporary directory: its private Asterisk comes up
before the parts that connect to AMI (no refused connection logged while it boots), comes
back after it dies, and is stopped with the rest; a port already taken stops it all with one
line, and nothing in the log says "Future exception was never retrieved". Every wait has a
time-out; the process and its Asterisk are always stopped at the end.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from callcenter.asterisk import reload, run
from tests.conftest import Cli
from tests.test_asterisk_live import asterisk_binary, free_port, port_environment
from tests.test_bridge import MqttWatcher

pytestmark = pytest.mark.asterisk

STRAY_FUTURE = "Future exception was never retrieved"


@dataclass
class Running:
    proc: subprocess.Popen[bytes]
    log: Path
    directory: Path
    binary: Path
    env: dict[str, str]

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, pattern: str, count: int = 1, timeout: float = 60.0) -> str:
        """The log once ``pattern`` (a regex) occurs ``count`` times in it."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.text()
            if len(re.findall(pattern, text)) >= count:
                return text
            assert self.proc.poll() is None, f"`callcenter run` ended:\n{text[-4000:]}"
            assert time.monotonic() < deadline, f"no {pattern!r} x{count} in:\n{text[-4000:]}"
            time.sleep(0.2)

    def asterisk_pid(self) -> int:
        return int((self.directory / "run" / "asterisk.pid").read_text().strip())

    def terminate(self, timeout: float = 60.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)


def _environment(database_url: str, tmp: Path, binary: Path) -> dict[str, str]:
    tag = secrets.token_hex(4)
    return {
        **port_environment(),
        "CALLCENTER_CONFIG": "",
        "CALLCENTER_DATABASE__URL": database_url,
        "CALLCENTER_NODES__LOCAL__SECRET": f"run-secret-{tag}-0123456789",
        "CALLCENTER_ASTERISK__DIRECTORY": str(tmp / "instance"),
        "CALLCENTER_BRIDGE__SPOOL_DIR": str(tmp / "spool"),
        "CALLCENTER_WALLBOARD__PORT": str(free_port()),
        "CALLCENTER_MQTT__TOPIC_PREFIX": f"ccrun-{tag}",
        "ASTERISK_BIN": str(binary),
    }


def _clear_retained(prefix: str) -> None:
    async def clear() -> None:
        watcher = MqttWatcher(prefix)
        watcher.last = await watcher.retained()
        await watcher.clear_retained()

    asyncio.run(asyncio.wait_for(clear(), 20))


Starter = Callable[..., Running]


@pytest.fixture
def start(database_url: str, clean_db: Engine, tmp_path: Path) -> Iterator[Starter]:
    """Starts `callcenter run` (as ``start(env_overrides)``); stops what is left at the end."""
    binary = asterisk_binary()
    started: list[Running] = []

    def starter(extra: dict[str, str] | None = None) -> Running:
        env = {**_environment(database_url, tmp_path, binary), **(extra or {})}
        log = tmp_path / f"run-{len(started)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "callcenter", "run"],
                env={**os.environ, **env}, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        running = Running(proc, log, tmp_path / "instance", binary, env)
        started.append(running)
        return running

    try:
        yield starter
    finally:
        for running in started:
            if running.proc.poll() is None:
                running.proc.kill()
                running.proc.wait(timeout=10)
            if run.is_running(running.directory):  # only after a failed test
                reload.console(running.binary, running.directory, "core stop now")
            _clear_retained(running.env["CALLCENTER_MQTT__TOPIC_PREFIX"])


def test_run_starts_asterisk_first_restarts_it_and_stops_it(
    start: Starter, run_cli: Cli, database_url: str
) -> None:
    running = start()
    text = running.wait_for(r"asterisk: up, AMI on")
    text = running.wait_for(r"ami local: connected")
    first = running.asterisk_pid()
    # The AMI parts started once Asterisk answered: not one refused connection while it booted.
    assert "Connect call failed" not in text, text
    assert "ConnectionRefused" not in text, text
    # It dies: it is started again, and the bridge follows it.
    os.kill(first, signal.SIGKILL)
    text = running.wait_for(r"asterisk: killed by SIGKILL after \d+ s; restarting in 1 s")
    text = running.wait_for(r"asterisk: up, AMI on", count=2)
    running.wait_for(r"ami local: connected", count=2)
    assert running.asterisk_pid() != first
    run_cli.env.update(running.env)
    assert run_cli("asterisk", "reload").exit_code == 0
    # SIGTERM: everything stops cleanly, Asterisk too.
    assert running.terminate() == 0, running.text()[-4000:]
    text = running.text()
    assert re.search(r"asterisk: stopped \(pid \d+\)", text), text[-3000:]
    assert STRAY_FUTURE not in text
    assert not run.is_running(running.directory)
    after = run_cli("asterisk", "reload")
    assert after.exit_code == 1
    assert after.output.startswith("Error: Asterisk is not running in "), after.output


def test_a_taken_port_stops_run_with_one_line_and_no_stray_future(start: Starter) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        running = start({"CALLCENTER_WALLBOARD__PORT": str(port)})
        code = running.proc.wait(timeout=120)
    text = running.text()
    assert code == 1, text[-4000:]
    last = text.strip().splitlines()[-1]
    assert last.startswith("Error: Wallboard: "), last
    assert "address already in use" in last
    assert STRAY_FUTURE not in text, text
    assert not run.is_running(running.directory)
    # Asterisk was up (the parts start after it), and was stopped with the rest.
    assert "asterisk: up, AMI on" in text
    assert re.search(r"asterisk: stopped \(pid \d+\)", text), text[-3000:]


def test_stop_is_clean_while_asterisk_still_boots(start: Starter) -> None:
    """SIGTERM before Asterisk answers: the parts never started, Asterisk is stopped (SIGTERM
    again until it listens), and the process ends at once with 0."""
    running = start()
    running.wait_for(r"asterisk: starting a private Asterisk")
    assert running.terminate(timeout=40) == 0, running.text()[-4000:]
    text = running.text()
    assert STRAY_FUTURE not in text
    assert "Connect call failed" not in text
    assert not run.is_running(running.directory)
