"""The whole bridge: recorded AMI bytes from the fake peer, into the real PostgreSQL and the
real Mosquitto. Expected values are read from each scenario's own queue_log (Asterisk's
record of the same calls), never typed in."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import re
import secrets
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from callcenter import config
from callcenter.bridge.app import Bridge
from callcenter.core.queue_log import QueueLogEntry
from tests import traces
from tests.fake_ami import FakeAmi, recorded_events

OUTCOMES = {
    "COMPLETECALLER": "answered",
    "COMPLETEAGENT": "answered",
    "ABANDON": "abandoned",
    "EXITWITHTIMEOUT": "timed_out",
    "EXITWITHKEY": "exit_key",
    "EXITEMPTY": "exit_empty",
}


#: A queue_log callid that is a channel's Uniqueid: ``<epoch>.<n>``, or ``<name>-<epoch>.<n>``
#: with Asterisk's ``systemname`` set (main/channel_internal_api.c).
UNIQUEID = re.compile(r"(?:.+-)?\d+\.\d+")


@dataclasses.dataclass(frozen=True)
class Expected:
    outcome: str
    agent: str | None
    wait: float
    talk: float | None


def expected_from_queue_log(
    entries: Iterable[QueueLogEntry], is_call: Callable[[str], object] = UNIQUEID.fullmatch
) -> dict[str, Expected]:
    """What queue_log says of each finished call: outcome, agent, wait and talk (whole
    seconds). ``is_call``: which callids are calls (by default a Uniqueid, not NONE or
    MANAGER; the soak's dialer customers carry a UUID)."""
    by_call: dict[str, list[QueueLogEntry]] = {}
    for entry in entries:
        if is_call(entry.callid):
            by_call.setdefault(entry.callid, []).append(entry)
    out = {}
    for callid, lines in by_call.items():
        end = next((e for e in lines if e.event in OUTCOMES), None)
        if end is None:
            continue  # still in progress
        connect = next((e for e in lines if e.event == "CONNECT"), None)
        if end.event.startswith("COMPLETE"):
            wait, talk = float(end.datum(1)), float(end.datum(2))
        else:
            wait = float(end.datum(4) if end.event == "EXITWITHKEY" else end.datum(3))
            talk = None
        out[callid] = Expected(OUTCOMES[end.event], connect.agent if connect else None, wait, talk)
    return out


def expected_calls(scenario: str) -> dict[str, Expected]:
    return expected_from_queue_log(traces.queue_log(scenario))


def bridge_settings(base: config.Settings, port: int, tmp: Path, **bridge: Any) -> config.Settings:
    tag = secrets.token_hex(4)
    node = config.NodeSettings(
        name="pbx-test", port=port, secret=config.Secret("s3cret"), connect_timeout=2.0,
        ping_interval=5.0, ping_timeout=2.0,
    )  # fmt: skip
    return dataclasses.replace(
        base,
        nodes=(node,),
        # Own prefix and client id: test runs may overlap on one broker.
        mqtt=config.MqttSettings(topic_prefix=f"cctest-{tag}", client_id=f"cctest-{tag}"),
        bridge=config.BridgeSettings(spool_dir=str(tmp / "spool"), flush_interval=0.2, **bridge),
    )


class MqttWatcher:
    """Subscribes to everything under the test's prefix and keeps the last payload per topic."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.last: dict[str, dict[str, Any]] = {}
        self.count: dict[str, int] = {}
        self.ready = asyncio.Event()

    async def run(self) -> None:
        async with aiomqtt.Client("127.0.0.1", 1883, identifier=f"{self.prefix}-w") as client:
            await client.subscribe(f"{self.prefix}/#", qos=1)
            self.ready.set()
            async for msg in client.messages:
                topic = str(msg.topic)
                if not msg.payload:
                    continue
                assert isinstance(msg.payload, bytes)
                self.last[topic] = json.loads(msg.payload)
                self.count[topic] = self.count.get(topic, 0) + 1

    async def retained(self, settle: float = 0.5) -> dict[str, dict[str, Any]]:
        """What the broker holds now: a new subscriber gets retained messages (flag set)."""
        held: dict[str, dict[str, Any]] = {}
        async with aiomqtt.Client("127.0.0.1", 1883) as client:
            await client.subscribe(f"{self.prefix}/#", qos=1)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(settle):
                    async for msg in client.messages:
                        if msg.retain and isinstance(msg.payload, bytes) and msg.payload:
                            held[str(msg.topic)] = json.loads(msg.payload)
        return held

    async def clear_retained(self) -> None:
        """Leave the broker as we found it."""
        async with aiomqtt.Client("127.0.0.1", 1883) as client:
            for topic in self.last:
                await client.publish(topic, b"", qos=1, retain=True)


@contextlib.asynccontextmanager
async def bridge_running(settings: config.Settings) -> AsyncIterator[Bridge]:
    bridge = Bridge(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(bridge.run(stop))
    try:
        yield bridge
    finally:
        stop.set()
        async with asyncio.timeout(15):
            await task


@contextlib.asynccontextmanager
async def watching(prefix: str) -> AsyncIterator[MqttWatcher]:
    watcher = MqttWatcher(prefix)
    task = asyncio.create_task(watcher.run())
    await asyncio.wait_for(watcher.ready.wait(), 10)
    try:
        yield watcher
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await watcher.clear_retained()


async def eventually(check: Callable[[], bool], timeout: float = 15.0, what: str = "") -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.05)
    assert check(), what


def calls(engine: Engine) -> dict[str, dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM calls")).mappings().all()
    return {r["uniqueid"]: dict(r) for r in rows}


#: What each connection adds to the recorded stream: the FullyBooted the fake sends after the
#: Login, and the replies to the bridge's resync.
CONNECTION_EVENTS = (
    "FullyBooted",
    "QueueParams",
    "QueueMember",
    "QueueEntry",
    "QueueStatusComplete",
    "CoreShowChannel",
    "CoreShowChannelsComplete",
)


def audited(engine: Engine) -> int:
    """Audit rows of the recorded stream, leaving out what each connection adds."""
    with engine.connect() as conn:
        return int(conn.scalar(
            sa.text("SELECT count(*) FROM call_events WHERE event <> ALL(:skip)"),
            {"skip": list(CONNECTION_EVENTS)},
        ) or 0)  # fmt: skip


def closed_calls(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.scalar(sa.text("SELECT count(*) FROM calls WHERE outcome IS NOT NULL")) or 0
        )


def assert_matches_queue_log(rows: dict[str, dict[str, Any]], scenario: str) -> None:
    assert_matches(rows, expected_calls(scenario))


def assert_matches(rows: dict[str, dict[str, Any]], expected: dict[str, Expected]) -> None:
    assert expected
    for uid, exp in expected.items():
        row = rows[uid]
        assert row["outcome"] == exp.outcome, (uid, row["outcome"], exp)
        assert row["agent"] == exp.agent, uid
        assert row["wait_seconds"] == exp.wait, (uid, row["wait_seconds"], exp.wait)
        assert row["talk_seconds"] == exp.talk, (uid, row["talk_seconds"], exp.talk)
        assert row["queue"] == "sales"


@pytest.mark.parametrize(
    "scenario", ["inbound-answered", "inbound-agent-hangup", "inbound-abandon", "inbound-timeout",
                 "burst", "local-channels"],
)  # fmt: skip
async def test_call_log_and_mqtt_match_queue_log(
    scenario: str, settings: config.Settings, clean_db: Engine, tmp_path: Path
) -> None:
    expected = expected_calls(scenario)
    async with FakeAmi() as fake:
        s = bridge_settings(settings, fake.port, tmp_path)
        async with watching(s.mqtt.topic_prefix) as mqtt:
            async with bridge_running(s):
                conn = await fake.accept()
                await conn.send_frames(recorded_events(scenario))
                await eventually(lambda: closed_calls(clean_db) >= len(expected), what=scenario)
                await eventually(lambda: any("/queues/" in t for t in mqtt.last))
                await asyncio.sleep(0.3)
            held = await mqtt.retained()  # after a clean stop
    rows = calls(clean_db)
    assert_matches_queue_log(rows, scenario)
    events = audited(clean_db)
    with clean_db.connect() as db:
        spans = db.execute(sa.text(
            "SELECT agent, state FROM agent_state_changes ORDER BY started_at, id"
        )).all()  # fmt: skip
    assert events == len(recorded_events(scenario))  # every event audited once
    answered_agents = {e.agent for e in expected.values() if e.agent}
    for agent in answered_agents:
        assert (agent, "on_call") in spans
    prefix = f"{s.mqtt.topic_prefix}/pbx-test"
    assert held[f"{prefix}/queues/sales"] == mqtt.last[f"{prefix}/queues/sales"]
    assert held[f"{prefix}/queues/sales"]["waiting"] == 0
    assert held[f"{prefix}/queues/sales"]["v"] == 1
    for agent in answered_agents:
        assert held[f"{prefix}/agents/{agent}"]["type"] == "agent"
    for uid in expected:
        assert mqtt.last[f"{prefix}/calls/{uid}"]["closed"] is True
        assert f"{prefix}/calls/{uid}" not in held  # call events are not retained
    assert held[f"{s.mqtt.topic_prefix}/bridge/status"]["online"] is False  # clean stop


async def test_replayed_stream_counts_nothing_twice(
    settings: config.Settings, clean_db: Engine, tmp_path: Path
) -> None:
    """The same events delivered again leave the call log as it was. The audit log keeps
    both deliveries: it records what was received."""
    scenario = "inbound-answered"
    async with FakeAmi() as fake:
        s = bridge_settings(settings, fake.port, tmp_path)
        for _ in range(2):
            async with bridge_running(s):
                conn = await fake.accept()
                await conn.send_frames(recorded_events(scenario))
                await eventually(lambda: closed_calls(clean_db) >= 1)
                await asyncio.sleep(0.5)
    assert len(calls(clean_db)) == 1
    assert_matches_queue_log(calls(clean_db), scenario)
    assert audited(clean_db) == 2 * len(recorded_events(scenario))


def _split_at(frames: list[str], event: str) -> int:
    return next(i for i, f in enumerate(frames) if f.startswith(f"Event: {event}\r\n")) + 1


async def test_drop_mid_call_then_resync_and_queue_log(
    settings: config.Settings, clean_db: Engine, tmp_path: Path
) -> None:
    """The link drops while Alice talks to the caller; when it comes back the call is gone.
    The resync closes it as lost, and Asterisk's queue_log file turns it into the answered
    call it was, with queue_log's own wait and talk."""
    scenario = "inbound-answered"
    frames = recorded_events(scenario)
    cut = _split_at(frames, "AgentConnect")
    queue_log = traces.traces_dir() / scenario / "queue_log"
    member = next(f for f in frames if f.startswith("Event: QueueMemberAdded\r\n"))
    listed = (
        member.replace("Event: QueueMemberAdded", "Event: QueueMember")
        .replace("MemberName:", "Name:")
        .replace("Interface: PJSIP", "Location: PJSIP", 1)
    )
    listed = "\r\n".join(
        line for line in listed.split("\r\n") if not line.startswith(("Privilege:", "Ringinuse:"))
    )
    async with FakeAmi() as fake:
        base = bridge_settings(settings, fake.port, tmp_path)
        node = dataclasses.replace(base.nodes[0], queue_log_path=str(queue_log))
        s = dataclasses.replace(base, nodes=(node,))
        async with bridge_running(s) as bridge:
            first = await fake.accept()
            await first.send_frames(frames[:cut])
            await eventually(lambda: any(r["answered_at"] for r in calls(clean_db).values()))
            assert closed_calls(clean_db) == 0
            fake.defaults["queue_status"] = [listed]  # Alice is still logged in; the call is gone
            first.drop()
            await fake.accept()
            await eventually(lambda: closed_calls(clean_db) == 1)
            assert bridge.nodes[0].counters.resyncs == 2
            assert bridge.nodes[0].counters.reconciled == 1
    assert_matches_queue_log(calls(clean_db), scenario)


async def test_malformed_and_unknown_events_are_kept_not_fatal(
    settings: config.Settings, clean_db: Engine, tmp_path: Path
) -> None:
    async with FakeAmi() as fake:
        s = bridge_settings(settings, fake.port, tmp_path)
        async with bridge_running(s) as bridge:
            conn = await fake.accept()
            await conn.send(
                b"Event: QueueMemberStatus\r\nPrivilege: agent,all\r\nQueue: sales\r\n"
                b"Status: lots\r\n\r\n"
                b"Event: SomethingNew\r\nPrivilege: call,all\r\nX: 1\r\n\r\n"
                b"Event: Broken\r\nno colon here\r\n\r\n"
            )
            await conn.send_frames(recorded_events("inbound-answered"))
            await eventually(lambda: closed_calls(clean_db) == 1)
            counters = bridge.nodes[0].counters
    assert counters.unknown >= 1
    assert counters.malformed >= 2
    with clean_db.connect() as db:
        errors = db.execute(
            sa.text(
                "SELECT event, error, raw, fields FROM call_event_fields WHERE error IS NOT NULL"
            )
        ).all()
        unknown = db.scalar(sa.text("SELECT count(*) FROM call_events WHERE event='SomethingNew'"))
    assert unknown == 1
    assert {e.event for e in errors} >= {"QueueMemberStatus", "Broken"}
    broken = next(e for e in errors if e.event == "Broken")
    assert "no colon here" in broken.raw
    status = next(e for e in errors if e.event == "QueueMemberStatus")
    assert status.fields == {"Event": "QueueMemberStatus", "Privilege": "agent,all",
                             "Queue": "sales", "Status": "lots"}  # fmt: skip
    assert_matches_queue_log(calls(clean_db), "inbound-answered")


async def test_connection_state_is_published(
    settings: config.Settings, clean_db: Engine, tmp_path: Path
) -> None:
    async with FakeAmi() as fake:
        s = bridge_settings(settings, fake.port, tmp_path)
        topic = f"{s.mqtt.topic_prefix}/pbx-test/status"
        async with watching(s.mqtt.topic_prefix) as mqtt, bridge_running(s):
            conn = await fake.accept()
            await eventually(lambda: mqtt.last.get(topic, {}).get("connected") is True)
            conn.drop()
            await eventually(lambda: mqtt.last.get(topic, {}).get("connected") is False)
            await fake.accept()
            await eventually(lambda: mqtt.last.get(topic, {}).get("connected") is True)
