"""The wallboard as a service: MQTT in, server-sent events out, clean start and stop; and its
migration (0003)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import secrets
import time
from collections.abc import Iterator

import aiohttp
import aiomqtt
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Engine

from callcenter import config
from callcenter.db import engine as db
from callcenter.db import models_wallboard
from callcenter.db.models import Base
from tests.conftest import create_database, drop_database
from tests.test_wallboard_browser import wallboard_running
from tests.test_wallboard_support import (
    PASSWORD,
    add_user,
    clear_retained,
    queue_payload,
    wallboard_settings,
)

OURS = {models_wallboard.User.__tablename__, models_wallboard.TvToken.__tablename__}


async def read_event(stream: aiohttp.StreamReader, kind: str, timeout: float) -> dict[str, object]:
    async with asyncio.timeout(timeout):
        while True:
            block = (await stream.readuntil(b"\n\n")).decode()
            if f"event: {kind}\n" in block:
                data = next(line for line in block.splitlines() if line.startswith("data: "))
                parsed: dict[str, object] = json.loads(data[6:])
                return parsed


async def test_mqtt_to_event_stream_and_clean_stop(
    settings: config.Settings, clean_db: Engine
) -> None:
    add_user(clean_db)
    s = wallboard_settings(settings)
    prefix = s.mqtt.topic_prefix
    try:
        async with wallboard_running(s, clean_db, links={}) as wb:
            base = f"http://127.0.0.1:{wb.port}"
            # unsafe: keep cookies of an IP address host (127.0.0.1)
            async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
                page = await (await http.get(f"{base}/login")).text()
                nonce = page.split('name="csrf" value="')[1].split('"')[0]
                await http.post(
                    f"{base}/login", data={"name": "sam", "password": PASSWORD, "csrf": nonce}
                )
                async with http.get(f"{base}/events") as events:
                    assert events.status == 200
                    snapshot = await read_event(events.content, "snapshot", 5)
                    assert snapshot["queues"] == []
                    ident = f"{prefix}-pub-{secrets.token_hex(3)}"
                    async with aiomqtt.Client("127.0.0.1", 1883, identifier=ident) as mqtt:
                        sent = time.perf_counter()
                        await mqtt.publish(
                            f"{prefix}/pbx1/queues/sales",
                            queue_payload("pbx1", "sales", waiting=4),
                            qos=1,
                            retain=True,
                        )
                        delta = await read_event(events.content, "delta", 1.0)
                    assert time.perf_counter() - sent < 1.0
                    assert delta["queues"] == [wb.parts.board.queue_row("sales")]
                    assert wb.parts.hub.subscribers
                    started = time.perf_counter()
                # The server notices the browser left (at the latest at its next write).
    finally:
        await clear_retained(prefix)
    assert time.perf_counter() - started < 8  # stopping waited for no stream


async def test_broker_away_the_board_still_serves_and_says_so(
    settings: config.Settings, clean_db: Engine
) -> None:
    s = wallboard_settings(settings)
    s = dataclasses.replace(s, mqtt=dataclasses.replace(s.mqtt, port=1))  # nothing listens
    async with wallboard_running(s, clean_db, links={}) as wb:
        await asyncio.sleep(0.3)
        assert wb.parts.state.feed_connected is False
        assert wb.parts.board.status() == {"bridge_online": None, "feed": False}
        async with aiohttp.ClientSession() as http:
            resp = await http.get(f"http://127.0.0.1:{wb.port}/login")
            assert resp.status == 200


# --- migration 0003 -----------------------------------------------------------------------


@pytest.fixture
def empty_engine() -> Iterator[Engine]:
    url = create_database()
    engine = db.make_engine(config.DatabaseSettings(url=url))
    yield engine
    engine.dispose()
    drop_database(url)


def test_migration_0003_up_down_up(empty_engine: Engine) -> None:
    db.upgrade(empty_engine, "0003")
    assert set(sa.inspect(empty_engine).get_table_names()) >= OURS
    db.downgrade(empty_engine, "0002")
    assert not OURS & set(sa.inspect(empty_engine).get_table_names())
    db.upgrade(empty_engine, "0003")
    # Later migrations add to these tables (0012: users.phone): the models match the chain
    # as a whole, not 0003 alone.
    db.upgrade(empty_engine, "head")
    with empty_engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    ours = [d for d in diff if any(t in str(d) for t in OURS)]
    assert ours == []  # the models of models_wallboard match the migrations
    index = {i["name"]: i for i in sa.inspect(empty_engine).get_indexes("tv_tokens")}
    assert index["ix_tv_tokens_label_active"]["unique"]
