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
import contextlib
import dataclasses
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from callcenter import config, directory
from callcenter.ami.connection import AmiClient, Connected, StreamItem
from callcenter.asterisk import files, run, sample
from callcenter.asterisk.render import QueueConf, RenderOptions, render
from callcenter.core.queue_log import parse_queue_log
from tests.test_asterisk_live import Ami, asterisk_binary, port_environment, stop, wait_booted
from tests.test_bridge import (
    assert_matches,
    bridge_running,
    bridge_settings,
    calls,
    closed_calls,
    eventually,
    expected_from_queue_log,
)
from tests.test_bridge_resync import clear_under, retained_under, snapshots

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

[test-agent-long]
exten => _X!,1,Ringing()
 same => n,Wait(1)
 same => n,Answer()
 same => n,Wait(120)
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


@dataclasses.dataclass
class Pbx:
    """A private Asterisk of one test, and how to stop and start it again."""

    binary: Path
    directory: Path
    node: config.NodeSettings
    log: IO[bytes]
    proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        self.proc = start(self.binary, self.directory, self.log)
        await wait_booted(self.node.port, self.node.username, self.node.secret.reveal())

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.binary, self.directory, self.proc)

    def terminate(self) -> None:
        """SIGTERM, as `callcenter run` stops its Asterisk."""
        assert self.proc is not None
        self.proc.terminate()
        self.proc.wait(timeout=30)

    def bridge_settings(self, base: config.Settings, tmp: Path) -> config.Settings:
        """The bridge's settings for this Asterisk as ``callcenter run`` has them for its
        private instance: ``[nodes.local]`` on this machine, no queue_log_path, and the
        instance in ``[asterisk] directory``."""
        s = bridge_settings(base, self.node.port, tmp)
        return dataclasses.replace(
            s, nodes=(self.node,),
            asterisk=dataclasses.replace(s.asterisk, directory=str(self.directory)),
        )  # fmt: skip

    async def ami(self) -> Ami:
        return await Ami.login(self.node.port, self.node.username, self.node.secret.reveal())


@contextlib.asynccontextmanager
async def private_asterisk(
    tmp: Path, engine: Engine, queue: QueueConf = QUEUE
) -> AsyncIterator[Pbx]:
    """Our rendered set plus the test contexts, in ``tmp/ast``, running until the block ends;
    the queue is in the database too (the bridge reads wrap-up and max wait there)."""
    binary = asterisk_binary()
    instance = tmp / "ast"
    base = sample.settings(port_environment())
    module_dir, data_dir = run.installation_dirs(binary)
    options = RenderOptions(directory=instance, module_dir=module_dir, data_dir=data_dir)
    rendered = render(base, sample.AGENTS, [queue], [], options)
    run.prepare(instance)
    files.write_set(rendered, instance / "etc")
    with (instance / "etc" / "extensions.conf").open("a") as fh:
        fh.write(TEST_CONTEXTS)
    with Session(engine) as db, db.begin():
        directory.add_queue(db, queue.name, wrapup_seconds=queue.wrapup_seconds,
                            max_wait_seconds=queue.max_wait_seconds)  # fmt: skip
    with (instance / "stdout.log").open("wb") as log:
        pbx = Pbx(binary, instance, dataclasses.replace(base.node("local"), name="local"), log)
        try:
            await pbx.start()
            yield pbx
        finally:
            pbx.stop()


async def test_call_log_equals_asterisks_queue_log(
    settings: config.Settings, clean_db: Engine, tmp_path: Path
) -> None:
    async with private_asterisk(tmp_path, clean_db) as pbx:
        instance = pbx.directory
        node = dataclasses.replace(pbx.node, queue_log_path=str(instance / "log" / "queue_log"))
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


async def queue_add(pbx: Pbx, queue: str, members: dict[str, str]) -> None:
    ami = await pbx.ami()
    try:
        for name, interface in members.items():
            reply = await ami.send(Action="QueueAdd", Queue=queue, Interface=interface,
                                   MemberName=name, Penalty="0", Paused="false")  # fmt: skip
            assert reply["Response"] == "Success", reply
    finally:
        await ami.close()


async def asterisk_has(pbx: Pbx) -> set[str]:
    """What QueueStatus says Asterisk has, as snapshot topic tails: agents/<member name>,
    queues/<queue>."""
    ami = await pbx.ami()
    try:
        items = await ami.send_list(Action="QueueStatus")
    finally:
        await ami.close()
    return {f"agents/{e['Name']}" for e in items if e.get("Event") == "QueueMember"} | {
        f"queues/{e['Queue']}" for e in items if e.get("Event") == "QueueParams"
    }


async def test_after_a_restart_the_retained_agents_and_queues_are_exactly_asterisks(
    settings: config.Settings, clean_db: Engine, tmp_path: Path
) -> None:
    """sim01 is logged out while the bridge is down, and Asterisk restarts (alice comes back
    from astdb). The broker still holds sim01 "available" from the first run; after the new
    bridge's resync, the node's retained agent and queue snapshots are exactly QueueStatus's."""
    async with private_asterisk(tmp_path, clean_db) as pbx:
        s = pbx.bridge_settings(settings, tmp_path)
        prefix = s.mqtt.topic_prefix
        node = f"{prefix}/local/"
        try:
            async with bridge_running(s) as bridge:
                await eventually(lambda: bridge.nodes[0].counters.resyncs >= 1, timeout=20)
                await queue_add(pbx, "sales", {"alice": "Local/1001@test-agent",
                                               "sim01": "Local/9001@test-agent"})  # fmt: skip
                await eventually(lambda: set(bridge.nodes[0].state.agents) == {"alice", "sim01"})
                await eventually(lambda: bridge.publisher.idle)
            held = await retained_under(prefix)
            assert held[f"{node}agents/sim01"]["state"] == "available"
            ami = await pbx.ami()
            try:
                reply = await ami.send(
                    Action="QueueRemove", Queue="sales", Interface="Local/9001@test-agent"
                )
                assert reply["Response"] == "Success", reply
            finally:
                await ami.close()
            pbx.stop()
            await pbx.start()
            truth = await asterisk_has(pbx)
            assert truth == {"agents/alice", "queues/sales"}
            async with bridge_running(s) as bridge:
                await eventually(lambda: bridge.nodes[0].counters.resyncs >= 1, timeout=20)
                await eventually(lambda: bridge.publisher.cleared >= 1)
                await eventually(lambda: bridge.publisher.idle)
                held = await retained_under(prefix)
            assert snapshots(held, node) == truth
            assert held[f"{node}agents/alice"]["state"] == "available"
        finally:
            await clear_under(prefix)


async def test_calls_cut_by_a_stop_of_the_services_are_closed_at_the_next_start_from_queue_log(
    settings: config.Settings, clean_db: Engine, tmp_path: Path
) -> None:
    """Alice talks to one caller, another waits; the bridge stops, then Asterisk (as
    `callcenter run` stops them). The call log holds both calls open. At the next start the
    bridge closes them at its resync and corrects them from the private instance's queue_log,
    with no queue_log_path set: the call log then equals queue_log, and nothing is in
    progress."""
    queue = dataclasses.replace(QUEUE, max_wait_seconds=120)
    async with private_asterisk(tmp_path, clean_db, queue) as pbx:
        s = pbx.bridge_settings(settings, tmp_path)
        assert s.node("local").queue_log_path == ""
        async with bridge_running(s) as bridge:
            await eventually(lambda: bridge.nodes[0].counters.resyncs >= 1, timeout=20)
            await queue_add(pbx, "sales", {"alice": "Local/1001@test-agent-long"})
            await originate_callers(pbx, 2)
            await eventually(
                lambda: (
                    sorted(r["answered_at"] is None for r in calls(clean_db).values())
                    == [False, True]
                ),
                timeout=30,
            )  # one answered, one waiting
            await eventually(lambda: bridge.writer.idle)
        assert closed_calls(clean_db) == 0  # the bridge stopped mid-call
        pbx.terminate()
        await pbx.start()
        async with bridge_running(s) as bridge:
            await eventually(lambda: closed_calls(clean_db) == 2, timeout=30)
            await eventually(lambda: bridge.nodes[0].counters.reconciled == 2)
            await eventually(lambda: bridge.writer.idle)
        text = (pbx.directory / "log" / "queue_log").read_text()
    expected = expected_from_queue_log(parse_queue_log(text))
    assert sorted(e.outcome for e in expected.values()) == ["abandoned", "answered"], text
    assert_matches(calls(clean_db), expected)
    with clean_db.connect() as db:
        open_visits = db.scalar(sa.text("SELECT count(*) FROM queue_visits WHERE outcome IS NULL"))
        outcomes = sorted(db.scalars(sa.text("SELECT outcome FROM queue_visits")))
    assert open_visits == 0
    assert outcomes == ["abandoned", "answered"]


async def originate_callers(pbx: Pbx, count: int) -> None:
    """``count`` callers into [inbound-queue] for sales, each willing to wait 100 s."""
    ami = await pbx.ami()
    try:
        for i in range(count):
            reply = await ami.send(
                Action="Originate", Channel="Local/100@test-hold", Context="inbound-queue",
                Exten="s", Priority="1", Variable="QUEUE=sales", Async="true",
                CallerID=f'"Caller {i}" <55500000{i:02d}>',
            )  # fmt: skip
            assert reply["Response"] == "Success", reply
            await asyncio.sleep(1.0)
    finally:
        await ami.close()
