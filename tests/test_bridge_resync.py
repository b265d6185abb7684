"""What a resync makes true across a restart of the bridge, not only a lost link (issue 12):
calls a stop left open are closed and corrected from queue_log, and the retained MQTT
snapshots are exactly what Asterisk has. The fake AMI peer, the real PostgreSQL and the real
Mosquitto; tests/test_bridge_asterisk.py proves the same against a real Asterisk."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import shutil
import time
from pathlib import Path
from typing import Any

import aiomqtt
import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from callcenter import config, core
from callcenter.bridge.app import queue_log_path
from callcenter.bridge.publisher import Publisher
from callcenter.core.records import CallPhase
from callcenter.domain import CallOutcome, Direction
from tests import traces
from tests.fake_ami import FakeAmi, recorded_events
from tests.test_bridge import (
    assert_matches_queue_log,
    bridge_running,
    bridge_settings,
    calls,
    closed_calls,
    eventually,
    watching,
)


def queue_params(queue: str) -> str:
    """A QueueStatus QueueParams item as Asterisk 22 sends it (without its ActionID)."""
    return (
        f"Event: QueueParams\r\nQueue: {queue}\r\nMax: 0\r\nStrategy: rrmemory\r\nCalls: 0\r\n"
        "Holdtime: 0\r\nTalkTime: 0\r\nCompleted: 0\r\nAbandoned: 0\r\nServiceLevel: 20\r\n"
        "ServicelevelPerf: 0.0\r\nServicelevelPerf2: 0.0\r\nWeight: 0"
    )


def queue_member(queue: str, name: str, interface: str) -> str:
    """A QueueStatus QueueMember item: logged in, available."""
    return (
        f"Event: QueueMember\r\nQueue: {queue}\r\nName: {name}\r\nLocation: {interface}\r\n"
        f"StateInterface: {interface}\r\nMembership: dynamic\r\nPenalty: 0\r\nCallsTaken: 0\r\n"
        "LastCall: 0\r\nLastPause: 0\r\nLoginTime: 1795342885\r\nInCall: 0\r\nStatus: 1\r\n"
        "Paused: 0\r\nPausedReason: \r\nWrapuptime: 0"
    )


def local_settings(base: config.Settings, port: int, tmp: Path) -> config.Settings:
    """The bridge's settings for ``[nodes.local]`` on this machine with no queue_log_path:
    the private instance, whose queue_log is ``<[asterisk] directory>/log/queue_log``."""
    s = bridge_settings(base, port, tmp)
    node = dataclasses.replace(s.nodes[0], name="local", host="127.0.0.1")
    return dataclasses.replace(
        s, nodes=(node,), asterisk=dataclasses.replace(s.asterisk, directory=str(tmp / "ast"))
    )


def test_the_private_instance_queue_log_needs_no_setting(tmp_path: Path) -> None:
    s = config.load(environ={"CALLCENTER_CONFIG": "",
                             "CALLCENTER_ASTERISK__DIRECTORY": str(tmp_path / "ast")})  # fmt: skip
    local = s.node("local")
    assert local.queue_log_path == ""
    assert queue_log_path(s, local) == tmp_path / "ast" / "log" / "queue_log"
    explicit = dataclasses.replace(local, queue_log_path="/srv/ql")
    assert queue_log_path(s, explicit) == Path("/srv/ql")
    remote = dataclasses.replace(local, host="10.0.0.5")
    assert queue_log_path(s, remote) is None  # another machine's file is not ours to read
    assert queue_log_path(s, dataclasses.replace(local, name="pbx1")) is None


async def test_calls_a_stop_left_open_are_closed_at_the_next_start_and_corrected_from_queue_log(
    settings: config.Settings, clean_db: Engine, tmp_path: Path
) -> None:
    """The services stop while Alice talks to the caller: the call log holds the call open.
    At the next start the resync closes it (its channel is gone) and the private instance's
    queue_log, found without any setting, turns it into the answered call it was."""
    scenario = "inbound-answered"
    frames = recorded_events(scenario)
    cut = next(i for i, f in enumerate(frames) if f.startswith("Event: AgentConnect\r\n")) + 1
    async with FakeAmi() as fake:
        s = local_settings(settings, fake.port, tmp_path)
        queue_log = tmp_path / "ast" / "log" / "queue_log"
        queue_log.parent.mkdir(parents=True)
        async with bridge_running(s) as first:
            conn = await fake.accept()
            await conn.send_frames(frames[:cut])
            await eventually(lambda: any(r["answered_at"] for r in calls(clean_db).values()))
            assert first.nodes[0].restored
        # Stopped mid-call: the call is open ("in progress" to the reports) ...
        assert closed_calls(clean_db) == 0
        with clean_db.connect() as db:
            assert db.scalar(sa.text("SELECT count(*) FROM queue_visits WHERE outcome IS NULL"))
        # ... and Asterisk, stopped with the services, wrote the call's end in queue_log.
        shutil.copy(traces.traces_dir() / scenario / "queue_log", queue_log)
        async with bridge_running(s) as second:
            await fake.accept()
            await eventually(lambda: closed_calls(clean_db) == 1)
            await eventually(lambda: second.nodes[0].counters.reconciled == 1)
            await eventually(lambda: second.writer.idle)
    assert_matches_queue_log(calls(clean_db), scenario)
    with clean_db.connect() as db:
        visits = db.execute(sa.text("SELECT outcome, ended_at FROM queue_visits")).all()
    assert [v.outcome for v in visits] == ["answered"]
    assert visits[0].ended_at is not None


async def test_calls_a_stop_left_open_without_a_queue_log_are_closed_as_lost(
    settings: config.Settings, clean_db: Engine, tmp_path: Path
) -> None:
    """A node on another machine has no queue_log we can read: the call is closed as lost
    (the bridge says it could not learn the end) rather than left in progress forever."""
    frames = recorded_events("inbound-answered")
    cut = next(i for i, f in enumerate(frames) if f.startswith("Event: AgentConnect\r\n")) + 1
    async with FakeAmi() as fake:
        s = bridge_settings(settings, fake.port, tmp_path)
        async with bridge_running(s):
            conn = await fake.accept()
            await conn.send_frames(frames[:cut])
            await eventually(lambda: any(r["answered_at"] for r in calls(clean_db).values()))
        assert closed_calls(clean_db) == 0
        async with bridge_running(s) as second:
            await fake.accept()
            await eventually(lambda: closed_calls(clean_db) == 1)
            await eventually(lambda: second.writer.idle)
    (row,) = calls(clean_db).values()
    assert row["outcome"] == "lost"
    assert row["answered_at"] is not None  # what was known stays
    with clean_db.connect() as db:
        visit = db.execute(sa.text("SELECT outcome FROM queue_visits")).one()
    assert visit.outcome == "lost"


def test_an_open_call_restored_from_the_call_log_is_closed_by_the_resync() -> None:
    """The core's side: restore_calls adds only what it does not know, and resync_channels
    closes a restored call whose channel is gone as lost, keeping a visit's known outcome."""
    base = core.Call(
        node="n", uniqueid="1.1", linkedid="1.1", direction=Direction.INBOUND, channel="X/1",
        caller_number="", caller_name="", did="", started_at=10.0, phase=CallPhase.CONNECTED,
        queue="sales", queued_at=11.0, answered_at=12.0, agent="alice",
        outcome=CallOutcome.ANSWERED, visit=1,
    )  # fmt: skip
    over = dataclasses.replace(
        base, uniqueid="1.2", phase=CallPhase.POST_QUEUE, outcome=CallOutcome.TIMED_OUT
    )
    state = core.restore_calls(core.initial_state("n"), [base, over])
    assert set(state.calls) == {"1.1", "1.2"}
    assert core.restore_calls(state, [dataclasses.replace(base, agent="bob")]) is state
    state, changes = core.resync_channels(state, [], 20.0)
    closed = {c.call.uniqueid: c.call for c in changes if isinstance(c, core.CallChanged)}
    assert closed["1.1"].closed
    assert closed["1.1"].outcome is CallOutcome.LOST
    assert closed["1.2"].closed
    assert closed["1.2"].outcome is CallOutcome.TIMED_OUT
    assert not state.calls


async def retained_under(prefix: str, settle: float = 0.5) -> dict[str, dict[str, Any]]:
    """Every retained message under ``prefix`` the broker holds now."""
    held: dict[str, dict[str, Any]] = {}
    async with aiomqtt.Client("127.0.0.1", 1883) as client:
        await client.subscribe(f"{prefix}/#", qos=1)
        try:
            async with asyncio.timeout(settle):
                async for msg in client.messages:
                    if msg.retain and isinstance(msg.payload, bytes) and msg.payload:
                        held[str(msg.topic)] = orjson.loads(msg.payload)
        except TimeoutError:
            pass
    return held


async def clear_under(prefix: str) -> None:
    async with aiomqtt.Client("127.0.0.1", 1883) as client:
        for topic in await retained_under(prefix, 0.3):
            await client.publish(topic, b"", qos=1, retain=True)


def snapshots(held: dict[str, dict[str, Any]], node_prefix: str) -> set[str]:
    return {
        t.removeprefix(node_prefix)
        for t in held
        if t.startswith(node_prefix)
        and t.removeprefix(node_prefix).split("/")[0] in ("agents", "queues")
    }


async def test_retained_snapshots_asterisk_no_longer_has_are_cleared_after_a_restart(
    settings: config.Settings, clean_db: Engine, tmp_path: Path
) -> None:
    """A previous run left an available sim01 and a queue since removed on the broker;
    another node's snapshots are there too. After the new bridge's resync the node's agent
    and queue snapshots are exactly those QueueStatus lists; the other node's are untouched."""
    listed = [queue_params("sales"), queue_member("sales", "alice", "PJSIP/1001")]
    async with FakeAmi(queue_status=listed) as fake:
        s = bridge_settings(settings, fake.port, tmp_path)
        prefix = s.mqtt.topic_prefix
        node = f"{prefix}/pbx-test/"
        stale = {
            f"{node}agents/sim01": {"v": 1, "type": "agent", "agent": "sim01",
                                    "state": "available"},
            f"{node}queues/gone": {"v": 1, "type": "queue", "queue": "gone", "waiting": 0},
            f"{prefix}/other/agents/zed": {"v": 1, "type": "agent", "agent": "zed"},
        }  # fmt: skip
        try:
            async with aiomqtt.Client("127.0.0.1", 1883) as client:
                for topic, payload in stale.items():
                    await client.publish(topic, orjson.dumps(payload), qos=1, retain=True)
            async with bridge_running(s) as bridge:
                await fake.accept()
                await eventually(lambda: bridge.publisher.cleared >= 2)
                await eventually(lambda: bridge.publisher.idle)
                held = await retained_under(prefix)
                assert snapshots(held, node) == {"agents/alice", "queues/sales"}
                assert held[f"{node}agents/alice"]["state"] == "available"
                assert held[f"{prefix}/other/agents/zed"] == stale[f"{prefix}/other/agents/zed"]
        finally:
            await clear_under(prefix)


async def test_a_queue_asterisk_no_longer_has_is_forgotten_on_reconnect(
    settings: config.Settings, clean_db: Engine, tmp_path: Path
) -> None:
    """Asterisk restarts with the support queue removed (and Bob, its only member, with it):
    the bridge, still running, forgets the queue and logs Bob out, and their snapshots go."""
    sales, support = queue_params("sales"), queue_params("support")
    alice = queue_member("sales", "alice", "PJSIP/1001")
    bob = queue_member("support", "bob", "PJSIP/1002")
    async with FakeAmi(queue_status=[sales, support, alice, bob]) as fake:
        s = bridge_settings(settings, fake.port, tmp_path)
        node = f"{s.mqtt.topic_prefix}/pbx-test/"
        async with watching(s.mqtt.topic_prefix) as mqtt, bridge_running(s) as bridge:
            first = await fake.accept()
            await eventually(lambda: f"{node}agents/bob" in mqtt.last)
            await eventually(lambda: bridge.publisher.idle)
            assert snapshots(await mqtt.retained(), node) == {
                "agents/alice", "agents/bob", "queues/sales", "queues/support"
            }  # fmt: skip
            fake.defaults["queue_status"] = [sales, alice]
            first.drop()
            await fake.accept()
            await eventually(lambda: bridge.publisher.cleared >= 2)
            await eventually(lambda: bridge.publisher.idle)
            assert set(bridge.nodes[0].state.queues) == {"sales"}
            assert set(bridge.nodes[0].state.agents) == {"alice"}
            assert snapshots(await mqtt.retained(), node) == {"agents/alice", "queues/sales"}
    with clean_db.connect() as db:
        sessions = db.execute(
            sa.text("SELECT agent, logout_reason FROM agent_sessions ORDER BY agent")
        ).all()
    assert [(r.agent, r.logout_reason) for r in sessions] == [("alice", None), ("bob", "resync")]


async def test_the_publisher_clears_what_the_broker_held_when_it_learns_it_late() -> None:
    """The resync can come before the broker's retained snapshots are known (MQTT connects
    after AMI): they are cleared when learned, unless the state published them since."""
    prefix = f"cctest-{secrets.token_hex(4)}"
    node = f"{prefix}/pbx/"
    try:
        async with aiomqtt.Client("127.0.0.1", 1883) as client:
            for name in ("ghost", "alice"):
                await client.publish(
                    f"{node}agents/{name}", orjson.dumps({"v": 1, "agent": name}), qos=1,
                    retain=True,
                )  # fmt: skip
        publisher = Publisher(config.MqttSettings(topic_prefix=prefix, client_id=prefix))
        publisher.retain(f"{node}agents/alice", {"v": 1, "agent": "alice", "state": "paused"})
        publisher.reconcile_snapshots("pbx", ["alice"], [])
        runner = asyncio.create_task(publisher.run())
        try:
            await eventually(lambda: publisher.connected and publisher.cleared == 1)
            await eventually(lambda: publisher.idle)
            held = await retained_under(prefix)
            assert snapshots(held, node) == {"agents/alice"}
            assert held[f"{node}agents/alice"]["state"] == "paused"
            publisher.stop()
            await asyncio.wait_for(runner, 10)
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
    finally:
        await clear_under(prefix)


async def test_calls_still_live_after_a_restart_of_the_bridge_are_followed_to_their_end(
    settings: config.Settings, clean_db: Engine, tmp_path: Path
) -> None:
    """``bridge-midstream``: the bridge stops while two calls talk and three wait, and starts
    again while Asterisk keeps them (its first connection ends where the trace's second one
    begins). The calls it takes back from the call log are live: they are followed, not
    closed, and each ends as queue_log says, keeping what the first run saw of it."""
    from tests.test_calllog_vs_queue_log import recorded_lists

    scenario = "bridge-midstream"
    timed = traces.timed_frames(scenario)
    second_login = next(t.t for t in timed if t.conn == "conn2")
    first = [f for f in recorded_events(scenario, "conn1", stamp=True)
             if float(f.split("Timestamp: ", 1)[1].split("\r\n", 1)[0]) < second_login]  # fmt: skip
    async with FakeAmi() as fake:
        s = bridge_settings(settings, fake.port, tmp_path)
        async with bridge_running(s):
            conn = await fake.accept()
            await conn.send_frames(first)
            await eventually(lambda: len(calls(clean_db)) == 5)
        before = calls(clean_db)
        assert closed_calls(clean_db) == 0
        assert sum(r["answered_at"] is not None for r in before.values()) == 2
        fake.defaults["queue_status"], fake.defaults["channels"] = recorded_lists(scenario, "conn2")
        async with bridge_running(s) as bridge:
            conn = await fake.accept()
            assert bridge.nodes[0].state.calls.keys() == before.keys()  # none closed as lost
            await conn.send_frames(recorded_events(scenario, "conn2", stamp=True))
            await eventually(lambda: closed_calls(clean_db) == 5)
            await eventually(lambda: bridge.writer.idle)
    after = calls(clean_db)
    assert_matches_queue_log(after, scenario)
    for uid, row in before.items():  # what the first run saw is kept
        assert after[uid]["started_at"] == row["started_at"]
        assert after[uid]["queued_at"] == row["queued_at"]
    with clean_db.connect() as db:
        visits = db.execute(sa.text("SELECT uniqueid, visit, outcome FROM queue_visits")).all()
    assert len(visits) == 5
    assert {v.visit for v in visits} == {1}


async def test_calls_begun_and_ended_while_the_bridge_was_away_come_from_queue_log(
    settings: config.Settings, clean_db: Engine, tmp_path: Path, monkeypatch: Any
) -> None:
    """The bridge is killed; while it is away a campaign call times out in a second and an
    inbound caller talks to Alice: no event will ever tell the next bridge of them. Once
    connected it reads queue_log from where the call log left off (less a margin) and writes
    a row for each, with queue_log's outcome, agent, wait and talk (the soak found five such
    calls around its bridge fault)."""
    from callcenter.bridge import node as bridge_node

    monkeypatch.setattr(bridge_node, "GAP_SETTLE", 0.0)
    scenario = "inbound-answered"
    async with FakeAmi() as fake:
        s = local_settings(settings, fake.port, tmp_path)
        queue_log = tmp_path / "ast" / "log" / "queue_log"
        queue_log.parent.mkdir(parents=True)
        async with bridge_running(s):
            conn = await fake.accept()
            await conn.send_frames(recorded_events(scenario))
            await eventually(lambda: closed_calls(clean_db) == 1)
        # Away: two calls nobody followed, after the call log's last (the fake peer stamps
        # the recorded events with today's clock, as queue_log's lines are here).
        with clean_db.connect() as db:
            last = db.scalar(sa.text("SELECT extract(epoch FROM max(ended_at)) FROM calls"))
        ended = int(last) + 1
        campaign = "8e07dfb2-ebc8-4e58-9d58-7997b09652e4"
        queue_log.write_text(
            f"{ended + 1}|{campaign}|sales|NONE|ENTERQUEUE||+12015551113|1\n"
            f"{ended + 2}|{campaign}|sales|NONE|EXITWITHTIMEOUT|1|1|1\n"
            f"{ended + 1}|{ended + 1}.9|sales|NONE|ENTERQUEUE||5551230002|1\n"
            f"{ended + 2}|{ended + 1}.9|sales|Alice|CONNECT|1|{ended + 1}.10|3\n"
            f"{ended + 4}|{ended + 1}.9|sales|Alice|COMPLETEAGENT|1|2|1\n"
        )
        # Only visits over a few seconds before the look are taken (their lines may still
        # be being written): the next bridge starts once these are.
        await asyncio.sleep(max(0.0, ended + 8 - time.time()))
        async with bridge_running(s) as second:
            await fake.accept()
            await eventually(lambda: closed_calls(clean_db) == 3)
            await eventually(lambda: second.writer.idle)
            assert second.nodes[0].counters.reconciled == 2
    rows = calls(clean_db)
    timed_out = rows[campaign]
    assert (timed_out["outcome"], timed_out["wait_seconds"], timed_out["direction"]) == (
        "timed_out", 1.0, "outbound")  # fmt: skip
    talked = rows[f"{ended + 1}.9"]
    assert (talked["outcome"], talked["agent"], talked["wait_seconds"], talked["talk_seconds"],
            talked["direction"], talked["caller_number"]) == (
        "answered", "Alice", 1.0, 2.0, "inbound", "5551230002")  # fmt: skip
    (first,) = [r for r in rows.values() if r["uniqueid"] not in (campaign, f"{ended + 1}.9")]
    assert first["outcome"] == "answered"
