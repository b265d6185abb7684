"""``GET /events``: the board as server-sent events.

Why server-sent events rather than a WebSocket: the board only ever flows server to browser
(supervisors' actions are ordinary POSTs with a CSRF token); EventSource reconnects by itself;
it is plain HTTP, so the session cookie, proxies and ``curl`` all just work; and it needs no
library on either side.

The stream: ``snapshot`` (the whole board) first, then a ``clock`` event (the server's time,
so the browser ticks waits correctly whatever its own clock says), then a ``delta`` per push,
and a ``clock`` every ``KEEPALIVE`` seconds (it also lets a proxy and the browser notice a
dead connection). The session is checked again at each keep-alive: a removed user's or a
revoked token's stream ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from aiohttp import web

from callcenter.wallboard.context import parts, require
from callcenter.wallboard.hub import encode

KEEPALIVE = 15.0
WRITE_TIMEOUT = 10.0


def clock_event() -> bytes:
    return encode("clock", {"now": time.time()})


async def events(request: web.Request) -> web.StreamResponse:
    require(request)
    p = parts(request)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",  # nginx: do not buffer the stream
        }
    )
    await response.prepare(request)
    sub = p.hub.subscribe()
    try:
        data = p.hub.snapshot_event() + clock_event()
        while True:
            async with asyncio.timeout(WRITE_TIMEOUT):
                await response.write(data)
            data = b""
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(KEEPALIVE):
                    await sub.wake.wait()
            if sub.closed or sub.dropped or request.transport is None:
                break
            if request.transport.is_closing():
                break
            if sub.pending:
                data = sub.take()
            else:  # a quiet spell: keep-alive, and is the visitor still welcome?
                sub.wake.clear()
                if p.auth.visitor(request) is None:
                    break
                data = clock_event()
    except (ConnectionError, TimeoutError):
        pass  # the browser went away, or stopped reading: it reconnects if it is alive
    finally:
        p.hub.unsubscribe(sub)
    return response
