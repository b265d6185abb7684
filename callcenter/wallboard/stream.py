"""``GET /events``: the board as server-sent events.

Why server-sent events rather than a WebSocket: the board only ever flows server to browser
(supervisors' actions are ordinary POSTs with a CSRF token); EventSource reconnects by itself;
it is plain HTTP, so the session cookie, proxies and ``curl`` all just work; and it needs no
library on either side.

The stream: ``snapshot`` (the whole board) first, then a ``clock`` event (the server's time,
so the browser ticks waits correctly whatever its own clock says), then a ``delta`` per push,
and a ``clock`` every ``KEEPALIVE`` seconds (it also lets a proxy and the browser notice a
dead connection). The session is checked again at each keep-alive: a removed user's or a
revoked token's stream ends. The hub writes the deltas itself (:mod:`callcenter.wallboard.hub`);
this handler only opens the stream, keeps it alive and ends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from aiohttp import HttpVersion11, web

from callcenter.wallboard.context import parts, require
from callcenter.wallboard.hub import encode

KEEPALIVE = 15.0
#: Seconds the agent's desk stream waits for one write (callcenter.wallboard.desk.views).
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
    # The hub writes chunks of its own onto the transport (hub.py says why): the coding
    # must be chunked, as aiohttp would choose anyway for HTTP/1.1. HTTP/1.0 (nginx's
    # default towards its upstream) has no chunks: the body ends when the connection does
    # (aiohttp 3.14 would keep an HTTP/1.0 connection alive after a body without a length).
    if request.version >= HttpVersion11:
        response.enable_chunked_encoding()
    else:
        response.force_close()
    await response.prepare(request)  # sends the headers at once (a StreamResponse does)
    transport = request.transport
    if transport is None:
        return response
    sub = p.hub.subscribe(transport, chunked=response.chunked)
    try:
        sub.offer(clock_event())
        while not sub.ended:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(KEEPALIVE):
                    await sub.wake.wait()
            if sub.ended or transport.is_closing():
                break
            # Keep-alive, and is the visitor still welcome?
            if p.auth.visitor(request) is None:
                break
            sub.offer(clock_event())
    finally:
        p.hub.unsubscribe(sub)
    if sub.dropped:
        response.force_close()  # its buffer is full: no keep-alive after the last chunk
    return response
