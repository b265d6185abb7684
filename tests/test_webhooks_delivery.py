"""Delivery against a real HTTP receiver on localhost (aiohttp.web) and the real database:
signatures verify; a receiver that refuses connections or answers 500 for an hour, then
comes back, gets every event at least once; a worker that dies or stops mid-way leaves
nothing behind; events too old are given up. Time is a fake clock the tests move (the
receiver checks signatures against it too), except where the service runs as it does in
production."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import random
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from callcenter import config
from callcenter.db.models_webhooks import WebhookDeliveryLog, WebhookOutbox
from callcenter.webhooks import manage, outbox
from callcenter.webhooks.delivery import DeliveryWorker

START = time.time()


class Clock:
    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Receiver:
    """A CRM's webhook endpoint: records what it gets and whether the signature held.
    ``status`` is what it answers; ``stop()`` closes the port (connection refused) and
    ``start()`` opens the same port again; ``hold`` makes requests wait."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.secret = ""
        self.clock = clock or time.time
        self.got: list[dict[str, Any]] = []
        self.status = 200
        self.extra: dict[str, str] = {}
        self.hold: asyncio.Event | None = None
        self.port = 0
        self.runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        self.port = self.runner.addresses[0][1]

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.got.append({
            "headers": dict(request.headers), "body": body,
            "verified": outbox.verify(self.secret, request.headers, body, now=self.clock()),
        })  # fmt: skip
        if self.hold is not None:
            await self.hold.wait()
        return web.Response(status=self.status, text="thanks", headers=self.extra)

    def event_ids(self) -> set[str]:
        return {r["headers"]["Idempotency-Key"] for r in self.got}


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    yield r
    await r.stop()


def settings_for(settings: config.Settings, **webhooks: Any) -> config.Settings:
    return dataclasses.replace(settings, webhooks=config.WebhooksSettings(**webhooks))


def add_hook(engine: Engine, receiver: Receiver, events: tuple[str, ...] = ("all",)) -> int:
    with Session(engine) as s, s.begin():
        view, secret = manage.add_webhook(s, receiver.url, list(events))
    receiver.secret = secret
    return view.id


def enqueue(engine: Engine, n: int, at: float, start: int = 0) -> list[str]:
    ids = []
    with Session(engine) as s, s.begin():
        for i in range(start, start + n):
            ident = outbox.enqueue(s, "call.ended", {"call": f"{i}.1", "n": i}, key=f"{i}.1",
                                   at=dt.datetime.fromtimestamp(at, dt.UTC))  # fmt: skip
            assert ident is not None
            ids.append(str(ident))
    return ids


def statuses(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(WebhookOutbox.status, sa.func.count()).group_by(WebhookOutbox.status)
        )
        return dict(rows.all())


async def turn(worker: DeliveryWorker, http: aiohttp.ClientSession) -> None:
    await worker.step(http)
    await worker.settle()


async def test_events_arrive_signed_with_their_idempotency_key(
    settings: config.Settings, clean_db: Engine, receiver: Receiver
) -> None:
    clock = Clock()
    receiver.clock = clock
    hook_id = add_hook(clean_db, receiver)
    ids = enqueue(clean_db, 3, clock())
    worker = DeliveryWorker(settings_for(settings), engine=clean_db, clock=clock)
    async with worker.session() as http:
        await turn(worker, http)
    assert statuses(clean_db) == {"delivered": 3}
    assert len(receiver.got) == 3
    assert all(r["verified"] for r in receiver.got)
    assert receiver.event_ids() == set(ids)
    for r in receiver.got:
        h, doc = r["headers"], json.loads(r["body"])
        assert h["Content-Type"] == "application/json"
        assert h["X-Callcenter-Event"] == doc["type"] == "call.ended"
        assert h["Idempotency-Key"] == h["X-Callcenter-Event-Id"] == doc["id"]
        assert h["X-Callcenter-Attempt"] == "1"
        assert h["X-Callcenter-Signature"].startswith("sha256=")
        assert h["User-Agent"].startswith("callcenter-webhooks/")
        assert doc["data"]["call"] == f"{doc['data']['n']}.1"
    with Session(clean_db) as s:
        deliveries = manage.list_deliveries(s, webhook_id=hook_id)
        tries = manage.delivery_log(s, deliveries[0].id)
    assert [(t.attempt, t.ok, t.status_code) for t in tries] == [(1, True, 200)]
    # Delivered rows are not sent again.
    clock.advance(3600)
    async with worker.session() as http:
        await turn(worker, http)
    assert len(receiver.got) == 3


async def test_a_receiver_down_for_an_hour_loses_nothing(
    settings: config.Settings, clean_db: Engine, receiver: Receiver
) -> None:
    """Connection refused for 40 minutes, then HTTP 500 for 20, then up: every event
    arrives, and the dead receiver was tried once per pause, not once per event."""
    clock = Clock()
    receiver.clock = clock
    add_hook(clean_db, receiver)
    await receiver.stop()
    worker = DeliveryWorker(settings_for(settings, backoff_base=10, backoff_cap=600),
                            engine=clean_db, clock=clock, rng=random.Random(3))  # fmt: skip
    ids: list[str] = []
    async with worker.session() as http:
        for minute in range(60):
            if minute < 30:  # events keep happening while the receiver is away
                ids += enqueue(clean_db, 5, clock(), start=len(ids))
            if minute == 40:
                await receiver.start()
                receiver.status = 500
            for _ in range(6):
                await turn(worker, http)
                clock.advance(10)
        assert statuses(clean_db) == {"pending": 150}
        assert worker.delivered == 0
        # One try per pause: about 10 in the hour, not 150 events times several.
        assert 3 <= worker.tries <= 20, worker.tries
        assert receiver.got  # the 500s reached it
        receiver.status = 200
        receiver.got.clear()
        for _ in range(12 * 6):  # at most the cap (10 minutes) and a few turns
            await turn(worker, http)
            if statuses(clean_db) == {"delivered": 150}:
                break
            clock.advance(10)
    assert statuses(clean_db) == {"delivered": 150}
    assert receiver.event_ids() == set(ids)  # every event at least once
    assert all(r["verified"] for r in receiver.got)
    with clean_db.connect() as conn:
        failed = conn.scalar(sa.select(sa.func.count()).where(WebhookDeliveryLog.ok.is_(False)))
        errors = set(conn.scalars(sa.select(WebhookDeliveryLog.error).distinct()))
    assert worker.delivered == 150
    assert failed == worker.tries - 150
    assert any(e.startswith("cannot connect") for e in errors)
    assert "HTTP 500 Internal Server Error" in errors


async def test_retry_after_and_non_2xx_answers(
    settings: config.Settings, clean_db: Engine, receiver: Receiver
) -> None:
    clock = Clock()
    receiver.clock = clock
    add_hook(clean_db, receiver)
    enqueue(clean_db, 1, clock())
    worker = DeliveryWorker(settings_for(settings, backoff_base=1, backoff_cap=600),
                            engine=clean_db, clock=clock)  # fmt: skip
    async with worker.session() as http:
        receiver.status, receiver.extra = 503, {"Retry-After": "120"}
        await turn(worker, http)
        for _ in range(11):
            clock.advance(10)
            await turn(worker, http)
        assert len(receiver.got) == 1  # it asked for two minutes
        receiver.status, receiver.extra = 302, {"Location": "http://127.0.0.1:1/elsewhere"}
        clock.advance(11)
        await turn(worker, http)
        assert len(receiver.got) == 2
        assert statuses(clean_db) == {"pending": 1}  # a redirect is not followed
        receiver.status, receiver.extra = 204, {}
        clock.advance(600)
        await turn(worker, http)
    assert statuses(clean_db) == {"delivered": 1}
    assert [r["headers"]["X-Callcenter-Attempt"] for r in receiver.got] == ["1", "2", "3"]
    assert len({r["headers"]["Idempotency-Key"] for r in receiver.got}) == 1


async def test_a_slow_receiver_times_out_and_is_tried_again(
    settings: config.Settings, clean_db: Engine, receiver: Receiver
) -> None:
    clock = Clock()
    receiver.clock = clock
    add_hook(clean_db, receiver)
    enqueue(clean_db, 1, clock())
    receiver.hold = asyncio.Event()
    worker = DeliveryWorker(settings_for(settings, timeout=0.3), engine=clean_db, clock=clock)
    async with worker.session() as http:
        await turn(worker, http)
        receiver.hold.set()
        clock.advance(60)
        await turn(worker, http)
    assert statuses(clean_db) == {"delivered": 1}
    with clean_db.connect() as conn:
        errors = list(
            conn.scalars(sa.select(WebhookDeliveryLog.error).order_by(WebhookDeliveryLog.id))
        )
    assert errors == ["no answer within 0.3 s", ""]


async def test_a_worker_that_dies_mid_delivery_loses_nothing(
    settings: config.Settings, clean_db: Engine, receiver: Receiver
) -> None:
    """The first worker dies with its posts in flight (its claim stays in the database);
    another takes the rows once the claim runs out. The receiver may see an event twice,
    with the same idempotency key; it never misses one."""
    clock = Clock()
    receiver.clock = clock
    add_hook(clean_db, receiver)
    ids = enqueue(clean_db, 10, clock())
    opts = settings_for(settings, timeout=5, concurrency=4)
    first = DeliveryWorker(opts, engine=clean_db, clock=clock, lease_margin=30)
    receiver.hold = asyncio.Event()
    async with first.session() as http:
        await first.step(http)
        while len(receiver.got) < 4:  # four posts are in flight, six wait their turn
            await asyncio.sleep(0.01)
        for task in first.busy.values():
            task.cancel()  # the process dies: nothing is written
        await asyncio.gather(*first.busy.values(), return_exceptions=True)
    receiver.hold.set()
    assert statuses(clean_db) == {"pending": 10}

    second = DeliveryWorker(opts, engine=clean_db, clock=clock)
    async with second.session() as http:
        await turn(second, http)
        assert second.tries == 0  # still claimed by the first
        clock.advance(3 * 5 + 30)  # three rounds of four posts, and the margin
        await turn(second, http)
    assert statuses(clean_db) == {"delivered": 10}
    assert receiver.event_ids() == set(ids)
    seen = [r["headers"]["Idempotency-Key"] for r in receiver.got]
    assert len(seen) == 14  # the four in flight came twice
    with clean_db.connect() as conn:
        attempts = set(conn.scalars(sa.select(WebhookOutbox.attempts)))
    assert attempts == {2}


async def test_old_events_are_given_up(
    settings: config.Settings, clean_db: Engine, receiver: Receiver
) -> None:
    clock = Clock()
    receiver.clock = clock
    add_hook(clean_db, receiver)
    await receiver.stop()
    enqueue(clean_db, 3, clock())
    worker = DeliveryWorker(settings_for(settings, max_age_hours=1, keep_days=1,
                                         backoff_base=60, backoff_cap=600),
                            engine=clean_db, clock=clock)  # fmt: skip
    async with worker.session() as http:
        for _ in range(14):
            await turn(worker, http)
            clock.advance(300)
    assert statuses(clean_db) == {"dead": 3}
    with Session(clean_db) as s:
        rows = manage.list_deliveries(s)
    assert all(r.last_error.startswith("gave up: ") for r in rows), rows
    # Pruned after keep_days; their events too.
    clock.advance(2 * 86400)
    assert worker.prune(clock()) == 3
    assert statuses(clean_db) == {}


async def test_a_row_past_its_age_is_not_posted_between_two_sweeps(
    settings: config.Settings, clean_db: Engine, receiver: Receiver
) -> None:
    """Rows past ``max_age_hours`` are marked dead once a minute (SWEEP_SECONDS), not at
    every poll; until then they are not posted either."""
    clock = Clock()
    receiver.clock = clock
    add_hook(clean_db, receiver)
    worker = DeliveryWorker(settings_for(settings, max_age_hours=1), engine=clean_db,
                            clock=clock)  # fmt: skip
    async with worker.session() as http:
        await turn(worker, http)  # sweeps (nothing to give up yet)
        enqueue(clean_db, 2, clock() - 3600 - 5)  # already too old
        clock.advance(1)
        await turn(worker, http)  # no sweep within the minute: claims nothing
        assert receiver.got == []
        assert statuses(clean_db) == {"pending": 2}
        clock.advance(60)
        await turn(worker, http)
    assert receiver.got == []
    assert statuses(clean_db) == {"dead": 2}


async def test_the_service_delivers_across_a_restart(
    settings: config.Settings, clean_db: Engine, receiver: Receiver
) -> None:
    """As `callcenter run` runs it, with the real clock: the receiver is down while the first
    worker runs; it stops cleanly with everything pending; events enqueued while no worker
    runs wait in the outbox; a new worker delivers them all."""
    add_hook(clean_db, receiver)
    await receiver.stop()
    opts = settings_for(settings, poll_interval=0.05, backoff_base=0.05, backoff_cap=0.2,
                        timeout=2)  # fmt: skip
    ids = enqueue(clean_db, 5, time.time())
    stop = asyncio.Event()
    first = DeliveryWorker(opts, engine=clean_db)
    task = asyncio.create_task(first.run(stop))
    deadline = time.monotonic() + 10
    while first.tries < 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, 5)  # a clean stop, well within the grace of `callcenter run`
    assert first.tries >= 2
    assert first.delivered == 0
    assert statuses(clean_db) == {"pending": 5}

    ids += enqueue(clean_db, 5, time.time(), start=5)  # while no worker runs
    await receiver.start()
    stop = asyncio.Event()
    second = DeliveryWorker(opts, engine=clean_db)
    task = asyncio.create_task(second.run(stop))
    deadline = time.monotonic() + 20
    while statuses(clean_db) != {"delivered": 10} and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert statuses(clean_db) == {"delivered": 10}
    assert receiver.event_ids() == set(ids)
    assert all(r["verified"] for r in receiver.got)


async def test_a_name_that_resolves_to_link_local_is_not_posted_to(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The guarded resolver, for a name added while harmless (its DNS can change later)."""
    from aiohttp.resolver import ThreadedResolver

    from callcenter.webhooks.delivery import GuardedResolver

    resolver = GuardedResolver()
    assert await resolver.resolve("localhost", 80)
    answers = ["10.1.2.3", "169.254.169.254"]

    async def fake(self: Any, host: str, port: int = 0, family: Any = None) -> list[Any]:
        return [{"hostname": host, "host": a, "port": port, "family": 2, "proto": 0, "flags": 0}
                for a in answers]  # fmt: skip

    monkeypatch.setattr(ThreadedResolver, "resolve", fake)
    assert [r["host"] for r in await resolver.resolve("crm.example", 80)] == ["10.1.2.3"]
    answers.remove("10.1.2.3")
    with pytest.raises(OSError, match="link-local"):
        await resolver.resolve("metadata.example", 80)
