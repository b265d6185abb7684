"""Our FastAGI server: asyncio, one task per call, every wait bounded, nothing shared between
sessions but the counters.

Why not panoramisk.fast_agi (checked against its source): a client that disconnects before the
end of the environment spins its reader at 100% CPU and freezes the loop; a multi-line 520 and
the out-of-band HANGUP put its stream out of step. Here bytes go through the pure
:class:`~callcenter.agi.protocol.AgiParser`, and a session that misbehaves only ends itself.

A session:

1. Beyond ``max_sessions`` running calls, a connection is refused politely: its environment is
   read (briefly), then ``FAILURE`` is sent and the socket closed. res_agi.c's ``run_agi`` takes
   a line starting with ``failure`` as the end of the script with ``AGISTATUS=FAILURE``, so the
   dialplan's fallback runs at once instead of waiting. Past twice the cap, connections are
   dropped without a word.
2. The environment must arrive within ``env_timeout`` seconds. The script is
   ``agi_network_script`` without its ``?query`` (:attr:`Environment.script`); its arguments
   are ``agi_arg_1..N``. An unknown script gets ``FAILURE`` too.
3. The script runs with a :class:`~callcenter.agi.channel.Channel`; each reply must come within
   ``command_timeout`` seconds (plus what the command itself waits). The caller hanging up
   (:class:`CallerHungUp`) is a normal end. A script's bug is logged and answered ``FAILURE``.
4. The socket is closed by us: Asterisk keeps it open until the app closes it (recorded in
   ``agi-errors``), then continues the dialplan.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

from callcenter.agi.channel import AgiError, CallerHungUp, Channel, SessionLost
from callcenter.agi.protocol import (
    AgiParser,
    Environment,
    HangupNotice,
    ProtocolError,
    Reply,
)

log = logging.getLogger(__name__)

Script = Callable[[Channel], Awaitable[None]]

#: What res_agi.c's run_agi takes as "the script failed" (AGISTATUS=FAILURE).
FAILURE = b"FAILURE\n"
#: Seconds a refused connection gets to send its environment before ``FAILURE``.
REFUSE_GRACE = 2.0


class _Connection(asyncio.Protocol):
    """One FastAGI socket: bytes into the parser, replies handed to the one waiting command.

    It is the :class:`~callcenter.agi.channel.Transport` of the session's channel."""

    def __init__(self, server: AgiServer) -> None:
        self._server = server
        self._parser = AgiParser()
        self._transport: asyncio.Transport | None = None
        self._replies: collections.deque[Reply] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._lost: str | None = None
        self._hung_up = False
        self.env: Environment | None = None
        self.peer = ""
        self.deadline = 0.0

    # asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self._server._accepted(self)

    def data_received(self, data: bytes) -> None:
        try:
            items = self._parser.feed(data)
        except ProtocolError as exc:
            self._lose(f"not AGI: {exc}")
            return
        for item in items:
            if isinstance(item, Reply):
                self._replies.append(item)
            elif isinstance(item, HangupNotice):
                self._hung_up = True
            elif self.env is None:
                self.env = item
        if items:
            self._wake()

    def eof_received(self) -> bool:
        try:
            self._parser.feed_eof()
        except ProtocolError as exc:
            self._lose(f"closed early: {exc}")
        else:
            self._lose("closed by the peer")
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._lose(f"connection lost: {exc!r}" if exc else "connection closed")

    # the session's side -------------------------------------------------------------------

    def _lose(self, reason: str) -> None:
        if self._lost is None:
            self._lost = reason
        if self._transport is not None and not self._transport.is_closing():
            self._transport.abort()
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _wait(self, deadline: float) -> None:
        """Wait for data until ``deadline`` (loop time); :class:`TimeoutError` after it. The
        deadline is checked by the server's sweeper (:meth:`AgiServer._sweep`): one timer for
        every session instead of one per command, which at thousands of commands a second is
        a measurable share of the loop. The caller keeps its deadline across wake-ups, so a
        peer that sends something else (HANGUP lines) cannot keep a wait alive."""
        self._waiter = asyncio.get_running_loop().create_future()
        self.deadline = deadline
        self._server._waiting.add(self)
        try:
            await self._waiter
        finally:
            self._waiter = None
            self._server._waiting.discard(self)

    def expire(self) -> None:
        """The deadline passed: fail the wait."""
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(TimeoutError())

    async def environment(self, timeout: float) -> Environment:
        deadline = asyncio.get_running_loop().time() + timeout
        while self.env is None:
            if self._lost is not None:
                raise SessionLost(f"no environment: {self._lost}")
            try:
                await self._wait(deadline)
            except TimeoutError:
                raise SessionLost(f"no environment within {timeout:g} s") from None
        return self.env

    @property
    def hung_up(self) -> bool:
        return self._hung_up

    async def command(self, line: bytes, timeout: float) -> Reply:
        if self._lost is not None or self._transport is None:
            raise SessionLost(self._lost or "not connected")
        # A reply nobody asked for means the stream is out of step: never hand it on.
        if self._replies:
            raise SessionLost(f"unexpected reply before {line[:30]!r}: {self._replies[0].text!r}")
        self._transport.write(line)
        deadline = asyncio.get_running_loop().time() + timeout
        while not self._replies:
            if self._lost is not None:
                raise SessionLost(self._lost)
            try:
                await self._wait(deadline)
            except TimeoutError:
                what = line.decode(errors="replace").strip()
                raise SessionLost(f"no reply to {what!r} within {timeout:g} s") from None
        return self._replies.popleft()

    def send_failure(self) -> None:
        """End the script with AGISTATUS=FAILURE (see :data:`FAILURE`)."""
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(FAILURE)

    def close(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()


@dataclass
class ServerStats:
    accepted: int = 0
    completed: int = 0
    hung_up: int = 0
    refused: int = 0
    dropped: int = 0
    lost: int = 0
    failed: int = 0
    unknown_script: int = 0


class AgiServer:
    """FastAGI server routing ``agi://host:port/<script>`` to ``scripts[<script>]``.

    Use :meth:`start` then :meth:`close`, or :meth:`serve` until an event is set.
    """

    def __init__(
        self,
        scripts: Mapping[str, Script],
        *,
        host: str = "127.0.0.1",
        port: int = 4573,
        max_sessions: int = 1000,
        command_timeout: float = 60.0,
        env_timeout: float = 10.0,
        backlog: int = 1024,
    ) -> None:
        self.scripts = dict(scripts)
        self.host = host
        self.port = port
        self.max_sessions = max_sessions
        self.command_timeout = command_timeout
        self.env_timeout = env_timeout
        self.backlog = backlog
        self.stats = ServerStats()
        self._server: asyncio.Server | None = None
        self._sessions: set[asyncio.Task[None]] = set()
        self._refusals: set[asyncio.Task[None]] = set()
        self._waiting: set[_Connection] = set()
        self._sweeper: asyncio.Task[None] | None = None
        # How often deadlines are checked: a wait ends at most this much after its time-out.
        self.sweep_interval = max(0.01, min(0.5, env_timeout / 5, command_timeout / 5))

    @property
    def active(self) -> int:
        return len(self._sessions)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self), self.host, self.port, backlog=self.backlog
        )
        sock = self._server.sockets[0].getsockname()
        self.port = int(sock[1])
        self._sweeper = asyncio.create_task(self._sweep(), name="agi-deadlines")
        log.info("agi: listening on %s:%d (%d scripts)", self.host, self.port, len(self.scripts))

    async def serve(self, stop: asyncio.Event) -> None:
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.close()

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.sweep_interval)
            now = loop.time()
            for conn in [c for c in self._waiting if c.deadline <= now]:
                conn.expire()

    async def close(self, grace: float = 5.0) -> None:
        """Stop accepting; give running calls ``grace`` seconds, then cancel them."""
        if self._server is not None:
            self._server.close()
        tasks = self._sessions | self._refusals
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
            self._sweeper = None
        if self._server is not None:
            try:
                async with asyncio.timeout(grace):
                    await self._server.wait_closed()
            except TimeoutError:
                log.warning("agi: server did not close within %g s", grace)
            self._server = None

    # --- per connection --------------------------------------------------------------------

    def _accepted(self, conn: _Connection) -> None:
        self.stats.accepted += 1
        if len(self._sessions) < self.max_sessions:
            self._spawn(self._sessions, self._session(conn), "agi-session")
        elif len(self._refusals) < self.max_sessions:
            self.stats.refused += 1
            self._spawn(self._refusals, self._refuse(conn), "agi-refuse")
        else:
            self.stats.dropped += 1
            conn._lose("over capacity")

    def _spawn(
        self, tasks: set[asyncio.Task[None]], coro: Coroutine[Any, Any, None], name: str
    ) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def _refuse(self, conn: _Connection) -> None:
        with contextlib.suppress(SessionLost):
            await conn.environment(REFUSE_GRACE)
        log.warning("agi: %d calls running, refusing %s", self.active, conn.peer)
        conn.send_failure()
        conn.close()

    async def _session(self, conn: _Connection) -> None:
        try:
            env = await conn.environment(self.env_timeout)
        except SessionLost as exc:
            self.stats.lost += 1
            log.info("agi: %s: %s", conn.peer, exc)
            conn.close()
            return
        script = self.scripts.get(env.script)
        if script is None:
            self.stats.unknown_script += 1
            log.warning("agi: %s asked for unknown script %r", conn.peer, env.script)
            conn.send_failure()
            conn.close()
            return
        channel = Channel(conn, env, command_timeout=self.command_timeout)
        try:
            await script(channel)
            self.stats.completed += 1
        except CallerHungUp:
            self.stats.hung_up += 1
        except SessionLost as exc:
            self.stats.lost += 1
            log.info("agi %s %s: session lost: %s", env.script, env.uniqueid, exc)
        except AgiError as exc:
            self.stats.failed += 1
            log.warning("agi %s %s: %s", env.script, env.uniqueid, exc)
            conn.send_failure()
        except Exception:
            self.stats.failed += 1
            log.exception("agi %s %s: script failed", env.script, env.uniqueid)
            conn.send_failure()
        finally:
            conn.close()
