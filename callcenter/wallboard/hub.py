"""Fan-out: one message per batch of changes, the same bytes to every connected browser.

:meth:`Hub.changed` is called (cheap, no I/O) whenever the board may have changed. The
:meth:`Hub.run` task then builds the delta once, encodes it once as a server-sent event (and
once as an HTTP/1.1 chunk), and writes those bytes straight onto every browser's transport.
Pushes are at least ``interval`` seconds apart: the first change after a quiet spell goes out
at once, changes that arrive meanwhile go out together at the end of the interval. So the
work is bounded by the rate of pushes, not by the number of browsers times the number of
changes.

Why straight onto the transport, not through each stream's ``StreamResponse.write``: that
was one task per browser woken per push, each with its write and two time-outs -- with a wall
of 50 screens at 10 pushes a second, most of the wallboard's CPU (the soak's profile). A
transport's ``write`` never blocks: it sends what the socket takes and buffers the rest.

A browser that falls behind (more than ``limit`` bytes waiting in its transport's buffer) is
dropped, not waited for: its stream ends and its EventSource reconnects and starts again from
a fresh snapshot.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Protocol

import orjson

Message = dict[str, Any]


def encode(event: str, data: Message, *, event_id: int | None = None, retry: int = 0) -> bytes:
    """One server-sent event. JSON has no raw newlines, so ``data`` fits on one line.
    orjson: the stdlib's encoder was a twentieth of a busy wallboard's CPU (the soak's
    profile). It writes UTF-8 as is (an event stream is UTF-8), keys that are not strings as
    strings, and a NaN or an infinity as null (the stdlib's ``allow_nan=False`` raised)."""
    head = f"retry: {retry}\n" if retry else ""
    if event_id is not None:
        head += f"id: {event_id}\n"
    body = orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS)
    return b"%sevent: %s\ndata: %s\n\n" % (head.encode(), event.encode(), body)


class Sink(Protocol):
    """What a subscriber writes to: an asyncio transport (``request.transport``)."""

    def write(self, data: bytes) -> None: ...

    def get_write_buffer_size(self) -> int: ...

    def is_closing(self) -> bool: ...


def chunk(data: bytes) -> bytes:
    """``data`` as one chunk of HTTP/1.1's chunked transfer coding (RFC 9112 section 7.1)."""
    return b"%x\r\n%b\r\n" % (len(data), data)


class Subscriber:
    """One browser's stream: its transport, and whether the stream has ended.

    The stream's response must have sent its headers (aiohttp's ``StreamResponse.prepare``
    does) and must use chunked coding when ``chunked`` (HTTP/1.1), so that the bytes written
    here are the body aiohttp's own ``write_eof`` then terminates. ``wake`` is set when the
    stream ends (dropped, closed by the hub, or the transport closing)."""

    def __init__(self, sink: Sink, *, chunked: bool, limit: int) -> None:
        self.sink = sink
        self.chunked = chunked
        self.limit = limit
        self.wake = asyncio.Event()
        self.dropped = False
        self.closed = False

    @property
    def ended(self) -> bool:
        return self.dropped or self.closed

    def offer(self, data: bytes, framed: bytes | None = None) -> None:
        """Write ``data`` (``framed``: the same, already chunked) unless the stream ended."""
        if self.ended:
            return
        if self.sink.is_closing():
            self.close()
        elif self.sink.get_write_buffer_size() > self.limit:
            self.dropped = True
            self.wake.set()
        elif self.chunked:
            self.sink.write(framed if framed is not None else chunk(data))
        else:
            self.sink.write(data)

    def close(self) -> None:
        self.closed = True
        self.wake.set()


class Hub:
    def __init__(
        self,
        delta: Callable[[], Message | None],
        snapshot: Callable[[], Message],
        *,
        interval: float = 0.1,
        limit: int = 1 << 20,
    ) -> None:
        self._delta = delta
        self._snapshot = snapshot
        self.interval = interval
        self.limit = limit
        self.subscribers: set[Subscriber] = set()
        self.version = 0
        self.pushes = 0
        self.dropped = 0
        self._wake = asyncio.Event()
        self._generation = 0
        self._cached: tuple[int, bytes] | None = None
        self._last = -float("inf")

    def changed(self) -> None:
        self._generation += 1
        self._wake.set()

    def subscribe(self, sink: Sink, *, chunked: bool) -> Subscriber:
        """A new stream on ``sink``: the snapshot is written to it at once, in the same step
        as it joins (no push can come between them)."""
        sub = Subscriber(sink, chunked=chunked, limit=self.limit)
        sub.offer(self.snapshot_event())
        self.subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)
        if sub.dropped:
            self.dropped += 1

    def snapshot_event(self) -> bytes:
        """The whole board as one event; built at most once per change however many browsers
        connect (a wall of screens reconnecting after a restart)."""
        if self._cached is None or self._cached[0] != self._generation:
            data = self._snapshot()
            data["version"] = self.version
            self._cached = (self._generation, encode("snapshot", data, event_id=self.version,
                                                     retry=2000))  # fmt: skip
        return self._cached[1]

    def flush(self) -> bool:
        """Push what changed, if anything did. True when a message went out."""
        data = self._delta()
        self._last = time.monotonic()
        if data is None:
            return False
        self.version += 1
        data["version"] = self.version
        message = encode("delta", data, event_id=self.version)
        framed = chunk(message)
        for sub in list(self.subscribers):
            sub.offer(message, framed)
        self.pushes += 1
        return True

    async def run(self) -> None:
        """Push until cancelled."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            # Let the other messages of the same read from the broker be applied first.
            await asyncio.sleep(0)
            wait = self._last + self.interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self.flush()

    def close(self) -> None:
        """Tell every stream to end (shutdown)."""
        for sub in list(self.subscribers):
            sub.close()
