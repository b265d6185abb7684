"""A scripted AMI peer for tests: the wire protocol byte for byte as Asterisk 22 speaks it.

Frames it replays come verbatim from the recorded traces (``recorded_events``). The replies it
makes to the client's actions follow the recorded shapes exactly (see the traces README):
``Response`` first, ``ActionID`` second; list actions answer ``EventList: start`` with a
``Message: ... will follow``, their items carry ``ActionID`` as the *last* line and no
``Privilege``, and the list ends with ``Event: <Name>Complete`` / ``ActionID`` /
``EventList: Complete`` / ``ListItems: N``. Ping answers as ``manager.c``'s ``action_ping``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from callcenter.ami.protocol import AmiParser, Banner, Message
from tests import traces

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
#: What Asterisk 22 sends right after a Login on a running system (recorded, field order
#: Uptime, LastReload, Status: see the traces README).
FULLY_BOOTED = (
    "Event: FullyBooted\r\nPrivilege: system,all\r\nUptime: 0\r\nLastReload: 0\r\n"
    "Status: Fully Booted"
)
LIST_MESSAGES = {
    "QueueStatus": ("Queue status will follow", "QueueStatusComplete"),
    "CoreShowChannels": ("Channels will follow", "CoreShowChannelsComplete"),
}

#: A list item without its ActionID line, e.g. a QueueMember frame copied from a trace.
ListItem = str
Responder = Callable[[dict[str, str]], bytes | None]


def frame(text: str) -> bytes:
    return text.encode("utf-8") + b"\r\n\r\n"


def recorded_events(scenario: str, conn: str = "conn1", *, stamp: bool = False) -> list[str]:
    """The frames of ``scenario``'s connection ``conn`` a bridge would have received: every
    event, without the replies to the recorder's own actions (responses, list items and
    their ``...Complete``, which carry no ``Privilege`` line), and without the FullyBooted that
    answered the Login (the fake sends that itself). OriginateResponse stays: it is a
    broadcast event (Privilege call,all) that every client with ``call`` sees. ``stamp``
    adds the ``Timestamp`` header of ``timestampevents = yes`` (our manager.conf), set to
    when the recorder received the frame, so event times are Asterisk's, not the replay's."""
    out = []
    first = True
    for timed in traces.timed_frames(scenario):
        f = timed.frame
        if timed.conn != conn or not isinstance(f, Message) or f.event is None:
            continue
        if f.event == "FullyBooted" and first:
            first = False
            continue
        if "Privilege" not in f.fields and f.action_id is not None:
            continue
        if stamp:
            head, _, rest = f.text.partition("\r\n")
            out.append(f"{head}\r\nTimestamp: {timed.t:.6f}\r\n{rest}" if rest else head)
        else:
            out.append(f.text)
    return out


def list_reply(action: str, action_id: str, items: Sequence[ListItem]) -> bytes:
    message, complete = LIST_MESSAGES[action]
    data = frame(
        f"Response: Success\r\nActionID: {action_id}\r\nEventList: start\r\nMessage: {message}"
    )
    for item in items:
        data += frame(f"{item}\r\nActionID: {action_id}")
    data += frame(
        f"Event: {complete}\r\nActionID: {action_id}\r\nEventList: Complete\r\n"
        f"ListItems: {len(items)}"
    )
    return data


@dataclass
class FakeConnection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    secret: str
    answer_pings: bool = True
    queue_status: list[ListItem] = field(default_factory=list)
    channels: list[ListItem] = field(default_factory=list)
    actions: list[dict[str, str]] = field(default_factory=list)
    extra: dict[str, Responder] = field(default_factory=dict)
    logged_in: asyncio.Event = field(default_factory=asyncio.Event)
    resynced: asyncio.Event = field(default_factory=asyncio.Event)
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    def reply(self, fields: dict[str, str]) -> bytes | None:
        name = fields.get("Action", "")
        aid = fields.get("ActionID", "")
        if name in self.extra:
            return self.extra[name](fields)
        if name == "Login":
            if fields.get("Secret") != self.secret:
                return frame(
                    f"Response: Error\r\nActionID: {aid}\r\nMessage: Authentication failed"
                )
            self.logged_in.set()
            return frame(
                f"Response: Success\r\nActionID: {aid}\r\nMessage: Authentication accepted"
            ) + frame(FULLY_BOOTED)
        if name == "Ping":
            if not self.answer_pings:
                return None
            return frame(
                f"Response: Success\r\nActionID: {aid}\r\nPing: Pong\r\n"
                f"Timestamp: {time.time():.6f}"
            )
        if name == "QueueStatus":
            return list_reply(name, aid, self.queue_status)
        if name == "CoreShowChannels":
            self.resynced.set()
            return list_reply(name, aid, self.channels)
        if name == "Logoff":
            return frame(
                f"Response: Goodbye\r\nActionID: {aid}\r\nMessage: Thanks for all the fish."
            )
        return frame(f"Response: Error\r\nActionID: {aid}\r\nMessage: Invalid/unknown command")

    async def serve(self) -> None:
        parser = AmiParser(expect_banner=False)
        try:
            while data := await self.reader.read(65536):
                for f in parser.feed(data):
                    if isinstance(f, Message):
                        fields = dict(f.fields)
                        self.actions.append(fields)
                        out = self.reply(fields)
                        if out:
                            self.writer.write(out)
                            await self.writer.drain()
                    elif not isinstance(f, Banner):
                        raise AssertionError(f"client sent a bad frame: {f!r}")
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.closed.set()
            self.writer.close()

    async def send(self, data: bytes, *, chunk: int = 0) -> None:
        """Send bytes, optionally cut into ``chunk``-byte writes (each flushed on its own)."""
        if not chunk:
            self.writer.write(data)
            await self.writer.drain()
            return
        for i in range(0, len(data), chunk):
            self.writer.write(data[i : i + chunk])
            await self.writer.drain()
            await asyncio.sleep(0)

    async def send_frames(self, frames: Sequence[str], *, pause_every: int = 200) -> None:
        for i, text in enumerate(frames):
            self.writer.write(frame(text))
            if i % pause_every == pause_every - 1:
                await self.writer.drain()
                await asyncio.sleep(0.01)
        await self.writer.drain()

    def drop(self) -> None:
        """Cut the TCP connection (as a crashing Asterisk or a broken network would)."""
        self.writer.transport.abort()


class FakeAmi:
    """Accepts connections on 127.0.0.1; each gets the banner and a :class:`FakeConnection`."""

    def __init__(self, secret: str = "s3cret", **defaults: object) -> None:
        self.secret = secret
        self.defaults = defaults
        self.connections: asyncio.Queue[FakeConnection] = asyncio.Queue()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    async def __aenter__(self) -> FakeAmi:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2):
                await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = FakeConnection(reader, writer, self.secret, **self.defaults)  # type: ignore[arg-type]
        writer.write(BANNER)
        await writer.drain()
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        await self.connections.put(conn)
        try:
            await conn.serve()
        finally:
            self._tasks.discard(task)

    async def accept(self, timeout: float = 10.0, *, resync: bool = True) -> FakeConnection:
        """The next connection, once it has logged in and (``resync``) been answered the
        QueueStatus / CoreShowChannels a bridge sends after FullyBooted, so that what the test
        streams next comes after that snapshot, as it would from Asterisk."""
        async with asyncio.timeout(timeout):
            conn = await self.connections.get()
            await conn.logged_in.wait()
            if resync:
                await conn.resynced.wait()
        return conn
