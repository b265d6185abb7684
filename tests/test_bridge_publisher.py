"""The MQTT publisher against the real Mosquitto: chunks of messages handed to paho at once
(see callcenter.bridge.publisher) arrive all, once, in order, retained snapshots included."""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any

import aiomqtt

from callcenter import config
from callcenter.bridge.publisher import CHUNK, Publisher


async def test_several_chunks_arrive_whole_and_in_order() -> None:
    prefix = f"cctest-{secrets.token_hex(4)}"
    publisher = Publisher(config.MqttSettings(topic_prefix=prefix, client_id=prefix))
    got: list[tuple[str, dict[str, Any], bool]] = []
    n_events = 3 * CHUNK + 17  # more than a chunk, and not a multiple of one
    subscribed = asyncio.Event()

    async def watch() -> None:
        async with aiomqtt.Client("127.0.0.1", 1883, identifier=f"{prefix}-w") as client:
            await client.subscribe(f"{prefix}/#", qos=1)
            subscribed.set()
            async for msg in client.messages:
                assert isinstance(msg.payload, bytes)
                if msg.payload:
                    got.append((str(msg.topic), json.loads(msg.payload), msg.retain))

    watcher = asyncio.create_task(watch())
    runner = asyncio.create_task(publisher.run())
    try:
        async with asyncio.timeout(20):
            await subscribed.wait()
            for i in range(n_events):
                publisher.event(f"{prefix}/pbx/calls/c{i % 7}", {"v": 1, "seq": i})
                if i % 100 == 0:
                    publisher.retain(f"{prefix}/pbx/agents/a{i // 100}", {"v": 1, "at": i})
            publisher.retain(f"{prefix}/pbx/agents/a0", {"v": 1, "at": "last"})
            while len([g for g in got if "/calls/" in g[0]]) < n_events:
                await asyncio.sleep(0.02)
            assert publisher.idle
            publisher.stop()
            await runner
    finally:
        runner.cancel()
        watcher.cancel()
        await asyncio.gather(runner, watcher, return_exceptions=True)
        async with aiomqtt.Client("127.0.0.1", 1883) as client:  # leave the broker clean
            for topic in {t for t, _, _ in got if "/agents/" in t or "/status" in t}:
                await client.publish(topic, b"", qos=1, retain=True)
    seqs = [p["seq"] for t, p, _ in got if "/calls/" in t]
    assert seqs == list(range(n_events))  # every call event, once, in order
    assert publisher.dropped_events == 0
    agents = {t: p for t, p, _ in got if "/agents/" in t}
    assert agents[f"{prefix}/pbx/agents/a0"] == {"v": 1, "at": "last"}  # the newest snapshot
    assert len(agents) == n_events // 100 + 1
    assert publisher.published >= n_events + len(agents)
