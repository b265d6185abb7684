"""The AMI connection wrapper against the fake peer: each defect of panoramisk it fixes."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import AsyncIterator

import pytest

from callcenter.ami import connection
from callcenter.ami.connection import (
    AmiClient,
    AmiConnectError,
    AmiDisconnected,
    Backoff,
    Connected,
    Disconnected,
    Received,
    StreamItem,
)
from callcenter.ami.protocol import FrameTooLarge, MalformedMessage, Message
from callcenter.config import NodeSettings, Secret
from tests.fake_ami import FakeAmi, frame, recorded_events


class Recorder:
    """A handler that keeps every item and lets a test wait for one."""

    def __init__(self) -> None:
        self.items: list[StreamItem] = []
        self._changed = asyncio.Condition()

    async def __call__(self, item: StreamItem) -> None:
        async with self._changed:
            self.items.append(item)
            self._changed.notify_all()

    async def wait(self, predicate: object, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: predicate(self))  # type: ignore[operator]

    def frames(self) -> list[Message]:
        return [
            i.frame for i in self.items if isinstance(i, Received) and isinstance(i.frame, Message)
        ]

    def count(self, kind: type) -> int:
        return sum(isinstance(i, kind) for i in self.items)


def node(port: int, **kw: object) -> NodeSettings:
    settings: dict[str, object] = {
        "name": "pbx-test", "port": port, "secret": Secret("s3cret"), "connect_timeout": 2.0,
        "ping_interval": 30.0, "ping_timeout": 1.0,
    }  # fmt: skip
    settings.update(kw)
    return NodeSettings(**settings)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def running(client: AmiClient, handler: Recorder) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(client.run(handler))
    try:
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_login_events_in_order_and_split_utf8() -> None:
    rec = Recorder()
    async with FakeAmi() as fake, running(AmiClient(node(fake.port)), rec):
        conn = await fake.accept(resync=False)
        assert conn.actions[0]["Action"] == "Login"
        assert conn.actions[0]["Events"] == "on"
        await rec.wait(lambda r: r.count(Connected) == 1)
        # A name whose "é" (2 bytes in UTF-8) is cut between two TCP writes: panoramisk
        # decoded each chunk alone and lost it.
        data = frame("Event: NewCallerid\r\nPrivilege: call,all\r\nCallerIDName: José")
        cut = data.index("é".encode()) + 1
        await conn.send(data[:cut])
        await asyncio.sleep(0.05)
        await conn.send(data[cut:])
        events = recorded_events("inbound-answered")
        await conn.send_frames(events)
        await rec.wait(lambda r: len(r.frames()) == 2 + len(events))
    got = rec.frames()
    assert got[0].event == "FullyBooted"  # Asterisk's answer to a Login, before anything else
    assert got[1]["CallerIDName"] == "José"
    assert [f.text for f in got[2:]] == events


async def test_list_action_reply_and_refusal() -> None:
    rec = Recorder()
    async with FakeAmi() as fake, running(AmiClient(node(fake.port)), rec):
        conn = await fake.accept(resync=False)
        await rec.wait(lambda r: r.count(Connected) == 1)
        session = next(i.session for i in rec.items if isinstance(i, Connected))
        conn.queue_status = ["Event: QueueParams\r\nQueue: sales\r\nMax: 0"]
        reply = await session.send({"Action": "QueueStatus"}, as_list=True, timeout=5)
        assert reply.ok
        assert [e["Event"] for e in reply.events] == ["QueueParams"]
        assert reply.complete is not None
        assert reply.complete["ListItems"] == "1"
        # panoramisk's Action never resolves a list action refused with Response: Error.
        conn.extra["QueueStatus"] = lambda f: frame(
            f"Response: Error\r\nActionID: {f['ActionID']}\r\nMessage: Permission denied"
        )
        refused = await session.send({"Action": "QueueStatus"}, as_list=True, timeout=5)
        assert not refused.ok
        assert refused.message == "Permission denied"
        # A plain action (QueueAdd's reply never resolved in panoramisk without as_list=False).
        conn.extra["QueueAdd"] = lambda f: frame(
            f"Response: Success\r\nActionID: {f['ActionID']}\r\nMessage: Added interface to queue"
        )
        added = await session.send({"Action": "QueueAdd", "Queue": "sales", "Interface": "X"})
        assert added.message == "Added interface to queue"
    # Replies are routed to their actions, never handed to the handler as events.
    assert all(f.event != "QueueParams" for f in rec.frames())


async def test_originate_always_async_and_injection_refused() -> None:
    rec = Recorder()
    async with FakeAmi() as fake, running(AmiClient(node(fake.port)), rec):
        conn = await fake.accept(resync=False)
        conn.extra["Originate"] = lambda f: frame(
            f"Response: Success\r\nActionID: {f['ActionID']}\r\n"
            "Message: Originate successfully queued"
        )
        await rec.wait(lambda r: r.count(Connected) == 1)
        session = next(i.session for i in rec.items if isinstance(i, Connected))
        reply = await session.originate(
            {"Channel": "Local/1@x", "Application": "Wait", "Data": "1", "Async": "false"}
        )
        assert reply.ok
        sent = [a for a in conn.actions if a["Action"] == "Originate"]
        assert sent[0]["Async"] == "true"
        with pytest.raises(ValueError, match="CR/LF"):
            await session.send({"Action": "Originate", "CallerID": "x\r\nAction: Logoff"})
        # An ActionID of a given prefix (an eventfilter selects the OriginateResponse by it),
        # still unique: the prefix goes in front of the generated one.
        ids = []
        for _ in range(2):
            reply = await session.originate({"Channel": "Local/1@x"}, action_id_prefix="cb-")
            ids.append(reply.response.action_id or "")
        assert [a["ActionID"] for a in conn.actions if a["Action"] == "Originate"][1:] == ids
        assert all(i.startswith("cb-") and len(i) > 3 for i in ids)
        assert ids[0] != ids[1]


async def test_pending_action_fails_when_connection_drops() -> None:
    rec = Recorder()
    async with FakeAmi() as fake, running(AmiClient(node(fake.port)), rec):
        conn = await fake.accept(resync=False)
        conn.extra["Slow"] = lambda f: None  # never answered
        await rec.wait(lambda r: r.count(Connected) == 1)
        session = next(i.session for i in rec.items if isinstance(i, Connected))
        pending = asyncio.create_task(session.send({"Action": "Slow"}, timeout=30))
        await asyncio.sleep(0.1)
        conn.drop()
        with pytest.raises(AmiDisconnected):
            await pending
        await rec.wait(lambda r: r.count(Disconnected) >= 1)
        # ... and the client comes back on its own.
        await fake.accept(resync=False)
        await rec.wait(lambda r: r.count(Connected) == 2)


async def test_unanswered_ping_drops_and_reconnects_with_backoff() -> None:
    rec = Recorder()
    client = AmiClient(node(0, ping_interval=0.2, ping_timeout=0.3), backoff=Backoff(base=0.05))
    async with FakeAmi(answer_pings=False) as fake:
        client.node = node(fake.port, ping_interval=0.2, ping_timeout=0.3)
        async with running(client, rec):
            first = await fake.accept(resync=False)
            await rec.wait(lambda r: r.count(Disconnected) == 1, timeout=5)
            await asyncio.wait_for(first.closed.wait(), 5)
            await fake.accept(resync=False)
            await rec.wait(lambda r: r.count(Connected) == 2)
    assert any(a["Action"] == "Ping" for a in first.actions)
    reason = next(i for i in rec.items if isinstance(i, Disconnected)).reason
    assert reason


async def test_refused_login_and_no_server_back_off() -> None:
    rec = Recorder()
    async with FakeAmi(secret="other") as fake:
        client = AmiClient(node(fake.port), backoff=Backoff(base=0.01, cap=0.05))
        async with running(client, rec):
            await rec.wait(lambda r: r.count(Disconnected) >= 3)
    failures = [i for i in rec.items if isinstance(i, Disconnected)]
    assert "login as callcenter refused: Authentication failed" in failures[0].reason
    assert [f.attempt for f in failures[:3]] == [1, 2, 3]
    assert rec.count(Connected) == 0


def test_backoff_grows_with_jitter_and_caps() -> None:
    b = Backoff(base=0.5, cap=8.0)
    waits = [b.next() for _ in range(10)]
    assert all(0.5 <= w <= 8.0 for w in waits)
    assert max(waits[5:]) > 1.0  # it grew
    b.reset()
    assert b.next() <= 0.5 + 1e-9


async def test_malformed_and_oversized_frames_reach_the_handler_and_cost_the_link() -> None:
    rec = Recorder()
    async with FakeAmi() as fake, running(AmiClient(node(fake.port)), rec):
        conn = await fake.accept(resync=False)
        await rec.wait(lambda r: r.count(Connected) == 1)
        await conn.send(b"Event: Broken\r\nthis line has no colon\r\n\r\n")
        await rec.wait(lambda r: any(
            isinstance(i, Received) and isinstance(i.frame, MalformedMessage) for i in r.items
        ))  # fmt: skip
        await conn.send(b"X" * (1 << 20 + 1))
        await rec.wait(lambda r: any(
            isinstance(i, Received) and isinstance(i.frame, FrameTooLarge) for i in r.items
        ))  # fmt: skip
        await rec.wait(lambda r: r.count(Disconnected) == 1)


async def test_a_connection_cut_before_its_banner_leaves_no_stray_future() -> None:
    """A shutdown cancelling a connect, or a port held by something that hangs up at once,
    failed the banner future with nobody left to await it: asyncio then logged "Future
    exception was never retrieved" at exit (`callcenter run` with a port taken)."""
    loop = asyncio.get_running_loop()
    stray: list[dict[str, object]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: stray.append(context))
    try:
        protocol = connection._Protocol(time.time)
        protocol.connection_lost(None)
        assert protocol.banner.done()
        del protocol
        gc.collect()

        async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.close()

        server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            with pytest.raises(AmiConnectError, match="no banner"):
                await AmiClient(node(port)).connect()
        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(previous)
    assert stray == []
