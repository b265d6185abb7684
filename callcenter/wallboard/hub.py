"""Fan-out: one message per batch of changes, the same bytes to every connected browser.

:meth:`Hub.changed` is called (cheap, no I/O) whenever the board may have changed. The
:meth:`Hub.run` task then builds the delta once, encodes it once as a server-sent event, and
hands the bytes to every :class:`Subscriber`. Pushes are at least ``interval`` seconds apart:
the first change after a quiet spell goes out at once, changes that arrive meanwhile go out
together at the end of the interval. So the work is bounded by the rate of pushes, not by the
number of browsers times the number of changes.

A browser that falls behind (``limit`` messages waiting for it) is dropped, not waited for: its
EventSource reconnects and starts again from a fresh snapshot.
"""

from __future__ import annotations

import asyncio
import collections
import json
import time
from collections.abc import Callable
from typing import Any

Message = dict[str, Any]


def encode(event: str, data: Message, *, event_id: int | None = None, retry: int = 0) -> bytes:
    """One server-sent event. JSON has no raw newlines, so ``data`` fits on one line."""
    head = f"retry: {retry}\n" if retry else ""
    if event_id is not None:
        head += f"id: {event_id}\n"
    body = json.dumps(data, separators=(",", ":"), allow_nan=False)
    return f"{head}event: {event}\ndata: {body}\n\n".encode()


class Subscriber:
    """One browser's stream: messages waiting to be written, and whether it was dropped."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.pending: collections.deque[bytes] = collections.deque()
        self.wake = asyncio.Event()
        self.dropped = False
        self.closed = False

    def offer(self, data: bytes) -> None:
        if len(self.pending) >= self.limit:
            self.dropped = True
        else:
            self.pending.append(data)
        self.wake.set()

    def take(self) -> bytes:
        data = b"".join(self.pending)
        self.pending.clear()
        self.wake.clear()
        return data

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
        limit: int = 256,
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

    def subscribe(self) -> Subscriber:
        sub = Subscriber(self.limit)
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
        for sub in self.subscribers:
            sub.offer(message)
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
