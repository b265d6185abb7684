"""Every command once more as a real process (``python -m callcenter``), the way an operator
or a script runs it: exit codes, stdout and stderr as they reach a shell."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from sqlalchemy.engine import Engine


def run(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "CALLCENTER_DATABASE__URL": database_url,
        "CALLCENTER_CONFIG": "",
        "CALLCENTER_NODES__LOCAL__PORT": "9",  # no Asterisk: the doctor must say so
    }
    return subprocess.run(
        [sys.executable, "-m", "callcenter", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_every_command_as_a_process(database_url: str, clean_db: Engine) -> None:
    steps: list[tuple[list[str], int]] = [
        (["--help"], 0),
        (["--version"], 0),
        (["config", "example"], 0),
        (["config", "show", "--json"], 0),
        (["db", "upgrade"], 0),
        (["db", "status", "--json"], 0),
        (["queues", "add", "sales", "--json"], 0),
        (["queues", "list", "--json"], 0),
        (["queues", "show", "sales", "--json"], 0),
        (["queues", "update", "sales", "--wrapup", "5"], 0),
        (["agents", "add", "alice", "-e", "1001", "--pin", "1234", "--json"], 0),
        (["agents", "list", "--json"], 0),
        (["agents", "show", "alice", "--json"], 0),
        (["agents", "update", "alice", "--full-name", "Alice"], 0),
        (["queues", "join", "sales", "alice", "--penalty", "1"], 0),
        (["calls", "list", "--json"], 0),
        (["report", "--json"], 0),
        (["doctor", "--json"], 1),  # no Asterisk node is up here: the AMI check fails
        (["queues", "leave", "sales", "alice"], 0),
        (["agents", "remove", "alice"], 0),
        (["queues", "remove", "sales"], 0),
        (["agents", "show", "alice"], 1),
        (["agents", "add"], 2),
    ]
    for args, expected in steps:
        proc = run(database_url, *args)
        assert proc.returncode == expected, (args, proc.stdout, proc.stderr)
        if "--json" in args:
            json.loads(proc.stdout)
        if expected == 1:
            assert proc.stderr.strip().splitlines()[-1].startswith("Error: "), proc.stderr
    proc = run(database_url, "db", "downgrade", "base")
    assert proc.returncode == 0
    assert "at revision base" in proc.stdout
    assert run(database_url, "db", "upgrade").returncode == 0
