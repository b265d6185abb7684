"""The stdio path: ``callcenter agi-stdio`` as Asterisk starts it (a process, the environment on
stdin, commands on stdout), through pyst2, with its defects worked around."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import traces
from tests.test_agi_double import AgiChannelModel, environment

#: ``callcenter`` with ``agi-stdio`` registered (cli/main.py may not list it yet).
LAUNCH = (
    "from callcenter.cli.main import cli\n"
    "from callcenter.cli.agi_cmd import agi_stdio\n"
    "cli.commands.setdefault('agi-stdio', agi_stdio)\n"
    "cli(prog_name='callcenter')\n"
)


def start(database_url: str, script: str, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CALLCENTER_CONFIG": "", "CALLCENTER_DATABASE__URL": database_url}
    return subprocess.Popen(
        [sys.executable, "-c", LAUNCH, "agi-stdio", script, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=Path(__file__).resolve().parent.parent,
    )


def converse(
    proc: subprocess.Popen[bytes], model: AgiChannelModel, script: str, args: list[str]
) -> list[str]:
    """Play Asterisk: the environment (with agi_arg_N as a stdio AGI() gives them), then one
    reply per command until the process closes stdout."""
    assert proc.stdin is not None
    assert proc.stdout is not None
    proc.stdin.write(environment("/usr/bin/callcenter", ["agi-stdio", script, *args]))
    proc.stdin.flush()
    while line := proc.stdout.readline():
        out = model.handle(line.decode().rstrip("\n"))
        if out:
            proc.stdin.write(out)
            proc.stdin.flush()
    return model.commands


def test_demo_over_stdio(database_url: str) -> None:
    with start(database_url, "demo") as proc:
        commands = converse(proc, AgiChannelModel(dtmf="1"), "demo", [])
        assert proc.wait(timeout=30) == 0
        assert proc.stderr is not None
        # pyst2's chatter went to our DEBUG log, not to Asterisk's console.
        assert b"pyst2" not in proc.stderr.read()
    recorded = (traces.traces_dir() / "inbound-answered" / "agi-raw-out.txt").read_text()
    assert commands[:4] == recorded.splitlines()
    assert commands[4] == "SET VARIABLE IVR_PATH demo:menu[1]>sales"


def test_sighup_is_caller_hung_up(database_url: str) -> None:
    with start(database_url, "demo") as proc:
        assert proc.stdin is not None
        assert proc.stdout is not None
        proc.stdin.write(environment("/usr/bin/callcenter", ["agi-stdio", "demo"]))
        proc.stdin.flush()
        model = AgiChannelModel()
        while (line := proc.stdout.readline().decode().rstrip("\n")) != "GET DATA beep 5000 1":
            proc.stdin.write(model.handle(line))
            proc.stdin.flush()
        # Asterisk on hang-up: SIGHUP to the script, and -1 for the command that was waiting.
        proc.send_signal(signal.SIGHUP)
        time.sleep(0.3)
        proc.stdin.write(b"200 result=-1\n")
        proc.stdin.flush()
        rest = proc.stdout.read().decode()
        assert proc.wait(timeout=30) == 0
        assert rest == ""  # nothing more: SET VARIABLE would be allowed, but demo has no cleanup


def test_end_of_input_inside_a_520_does_not_hang(database_url: str) -> None:
    """pyst2's own get_result loops for ever here; ours reports the session lost."""
    with start(database_url, "demo") as proc:
        assert proc.stdin is not None
        assert proc.stdout is not None
        proc.stdin.write(environment("/usr/bin/callcenter", ["agi-stdio", "demo"]))
        proc.stdin.flush()
        assert proc.stdout.readline() == b"ANSWER\n"
        proc.stdin.write(
            b"520-Invalid command syntax.  Proper usage follows:\nAnswers the channel\n"
        )
        proc.stdin.close()
        assert proc.wait(timeout=30) == 1


def test_unknown_script_fails_fast(database_url: str) -> None:
    with start(database_url, "nope") as proc:
        assert proc.stdin is not None
        assert proc.stdout is not None
        proc.stdin.write(environment("/usr/bin/callcenter", ["agi-stdio", "nope"]))
        proc.stdin.flush()
        assert proc.stdout.readline() == b"FAILURE\n"  # AGISTATUS=FAILURE
        assert proc.wait(timeout=30) == 2


@pytest.mark.parametrize("script", ["demo"])
def test_arguments_come_from_the_command_line(database_url: str, script: str) -> None:
    from callcenter.agi.stdio import environment as stdio_env

    class FakeAgi:
        def __init__(self) -> None:
            self.env = {
                "agi_request": "/usr/bin/callcenter", "agi_arg_1": "agi-stdio", "agi_arg_2": script
            }  # fmt: skip

    env = stdio_env(FakeAgi(), script, ["x y"])
    assert env.script == script
    assert env.args == ("x y",)
    assert env.request == "/usr/bin/callcenter"
