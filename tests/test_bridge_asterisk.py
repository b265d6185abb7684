"""The AMI bridge against a real, private Asterisk (skipped with the reason where there is none).

The set is rendered from our templates, with two test-only contexts appended: ``test-hold``
(a caller who waits ``EXTEN`` seconds, then hangs up) and ``test-agent`` (an agent phone that
rings 1 s, answers, talks 2 s and hangs up). Four calls are originated into
``[inbound-queue]`` (the same context the IVR sends callers to) while two Local-channel agents
are logged in: two are answered, one caller gives up, one waits out Queue()'s timeout. The
call log must then equal what Asterisk wrote in its own queue_log, call by call.
"""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
from pathlib import Path
from typing import IO

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from callcenter import config, directory
from callcenter.ami.connection import AmiClient, Connected, StreamItem
from callcenter.asterisk import files, run, sample
from callcenter.asterisk.render import QueueConf, RenderOptions, render
from callcenter.core.queue_log import parse_queue_log
from tests.test_asterisk_live import asterisk_binary, port_environment, stop, wait_booted
from tests.test_bridge import (
    assert_matches,
    bridge_running,
    bridge_settings,
    calls,
    closed_calls,
    eventually,
    expected_from_queue_log,
)

pytestmark = pytest.mark.asterisk

TEST_CONTEXTS = """
[test-hold]
exten => _X!,1,Answer()
 same => n,Wait(${EXTEN})
 same => n,Hangup()

[test-agent]
exten => _X!,1,Ringing()
 same => n,Wait(1)
 same => n,Answer()
 same => n,Wait(2)
 same => n,Hangup()
"""

QUEUE = QueueConf(
    "sales", wrapup_seconds=10, max_wait_seconds=6, ring_seconds=5, retry_seconds=1,
    announce_position=False, announce_holdtime=False, autopause=False, autopause_after=0,
)  # fmt: skip


async def originate(settings: config.Settings, patience: list[int]) -> None:
    """Log Alice and Bob in as Local-channel members, then originate one caller per entry of
    ``patience`` (seconds the caller waits before hanging up) into [inbound-queue]."""
    client = AmiClient(settings.node("local"))
    ready: asyncio.Queue[Connected] = asyncio.Queue()

    async def handler(item: StreamItem) -> None:
        if isinstance(item, Connected):
            await ready.put(item)

    task = asyncio.create_task(client.run(handler))
    try:
        session = (await asyncio.wait_for(ready.get(), 20)).session
        for name, ext in (("alice", "1001"), ("bob", "1002")):
            reply = await session.send({
                "Action": "QueueAdd", "Queue": "sales", "Interface": f"Local/{ext}@test-agent",
                "MemberName": name, "Penalty": "0", "Paused": "false",
            })  # fmt: skip
            assert reply.ok, reply.message
        for i, wait in enumerate(patience):
            reply = await session.originate({
                "Channel": f"Local/{wait}@test-hold", "Context": "inbound-queue", "Exten": "s",
                "Priority": "1", "Variable": "QUEUE=sales",
                "CallerID": f'"Caller {i}" <55500000{i:02d}>',
            })  # fmt: skip
            assert reply.ok, reply.message
            await asyncio.sleep(0.3)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def start(binary: Path, instance: Path, log: IO[bytes]) -> subprocess.Popen[bytes]:
    """Start Asterisk in the foreground as our child (returns at once)."""
    return subprocess.Popen(
        run.command_line(binary, instance), stdout=log, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip


async def test_call_log_equals_asterisks_queue_log(
    settings: config.Settings, clean_db: Engine, tmp_path: Path
) -> None:
    binary = asterisk_binary()
    instance = tmp_path / "ast"
    base = sample.settings(port_environment())
    module_dir, data_dir = run.installation_dirs(binary)
    options = RenderOptions(directory=instance, module_dir=module_dir, data_dir=data_dir)
    rendered = render(base, sample.AGENTS, [QUEUE], [], options)
    run.prepare(instance)
    files.write_set(rendered, instance / "etc")
    with (instance / "etc" / "extensions.conf").open("a") as fh:
        fh.write(TEST_CONTEXTS)
    with Session(clean_db) as db, db.begin():  # the bridge reads wrap-up and max wait here
        directory.add_queue(db, "sales", wrapup_seconds=10, max_wait_seconds=6)
    log = (instance / "stdout.log").open("wb")
    proc = start(binary, instance, log)
    try:
        node = dataclasses.replace(
            base.node("local"), name="local", queue_log_path=str(instance / "log" / "queue_log")
        )
        await wait_booted(node.port, node.username, node.secret.reveal())
        s = bridge_settings(settings, node.port, tmp_path)
        s = dataclasses.replace(s, nodes=(node,))
        async with bridge_running(s) as bridge:
            await eventually(lambda: bridge.nodes[0].counters.resyncs >= 1, timeout=20)
            # Two answered (30 s of patience), one who gives up after 3 s while both agents
            # are busy or in wrap-up, one who waits out the queue's 6 s.
            await originate(s, [30, 30, 3, 30])
            await eventually(lambda: closed_calls(clean_db) >= 4, timeout=60)
            await asyncio.sleep(1.5)  # let queue_log's last lines land
        text = (instance / "log" / "queue_log").read_text()
        expected = expected_from_queue_log(parse_queue_log(text))
        outcomes = sorted(e.outcome for e in expected.values())
        assert outcomes == ["abandoned", "answered", "answered", "timed_out"], text
        assert_matches(calls(clean_db), expected)
        assert len(calls(clean_db)) == 4
        assert {e.agent for e in expected.values() if e.agent} == {"alice", "bob"}
    finally:
        stop(binary, instance, proc)
        log.close()
