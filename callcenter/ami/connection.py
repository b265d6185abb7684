"""One AMI connection per Asterisk node: panoramisk's action machinery, its defects fixed.

What we take from panoramisk: :class:`panoramisk.actions.Action` (ActionIDs, a future per
action, and its rules for when a list action is complete) and :class:`panoramisk.message.
Message` for replies. What we do not take, and why (panoramisk 1.4, checked against its source):

- Its protocol decodes each TCP chunk on its own with errors ignored, so a UTF-8 character
  split across two reads vanishes ("José" became "Jos"). We feed our incremental
  :class:`~callcenter.ami.protocol.AmiParser` instead.
- Its ``Manager`` starts coroutine callbacks with ``ensure_future`` and never awaits them, so
  their exceptions vanish and events can be handled out of order. We hand every item to one
  awaited handler, in order, and stop reading the socket while the handler is behind.
- Its Ping ignores the reply, so a half-open connection is never noticed; its reconnect has
  no backoff; futures of actions cut off mid-reply never resolve. We ping with a reply
  time-out, reconnect with exponential backoff and jitter, and fail pending actions with
  :class:`AmiDisconnected` when the connection drops.
- Originate without ``Async`` makes it raise inside ``data_received`` and drop the connection;
  QueueAdd's reply never resolves unless ``as_list=False``; a list action whose first reply is
  ``Response: Error`` never resolves either. :meth:`AmiSession.send` always passes an explicit
  ``as_list``, :meth:`AmiSession.originate` always sends ``Async: true``, and :class:`_Action`
  resolves on an error reply.
- Its ``send`` encodes ASCII and swallows the failure for any other character, and writes
  header values unchecked. We encode UTF-8 with :func:`~callcenter.ami.protocol.encode_action`,
  which refuses CR/LF in values (header injection).
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from panoramisk.actions import Action as _PanoramiskAction
from panoramisk.message import Message as PanoramiskMessage

from callcenter.ami.protocol import (
    ActionValue,
    AmiParser,
    Banner,
    FrameTooLarge,
    MalformedMessage,
    Message,
    encode_action,
)
from callcenter.config import NodeSettings

log = logging.getLogger(__name__)
_stream_ids = itertools.count(1)

#: Stop reading the socket when this many items wait for the handler; resume at half.
HIGH_WATER = 10_000


class AmiError(Exception):
    """Base of the connection's errors."""


class AmiDisconnected(AmiError):
    """The connection dropped before the action's reply was complete."""


class AmiConnectError(AmiError):
    """Could not connect, read the banner or log in; the message says which."""


@dataclass(frozen=True, slots=True)
class Reply:
    """The answer to an action: the ``Response`` frame, then the events of a list action
    (without the final ``...Complete`` event, which is in ``complete``)."""

    response: Message
    events: tuple[Message, ...] = ()
    complete: Message | None = None

    @property
    def ok(self) -> bool:
        return self.response.response in ("Success", "Follows", "Goodbye")

    @property
    def message(self) -> str:
        return self.response.get("Message") or ""


# --- stream items handed to the handler ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class Connected:
    """Logged in. ``session`` sends actions on this connection until it drops."""

    session: AmiSession
    banner: str
    at: float


@dataclass(frozen=True, slots=True)
class Received:
    """A frame that is not the reply to one of our actions: an event, or a malformed frame.
    ``at`` is our clock when the bytes arrived."""

    frame: Message | MalformedMessage | FrameTooLarge
    at: float


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The connection dropped or could not be made; ``attempt`` counts failures in a row."""

    reason: str
    at: float
    attempt: int


StreamItem = Connected | Received | Disconnected
Handler = Callable[[StreamItem], Awaitable[None]]


class _Action(_PanoramiskAction):  # type: ignore[misc]
    """panoramisk's Action, plus: resolve a list action refused with ``Response: Error``, and
    keep our own frames next to panoramisk's messages."""

    def __init__(self, headers: Mapping[str, Any], *, as_list: bool) -> None:
        super().__init__(dict(headers), as_list=as_list)
        self.frames: list[Message] = []

    def add_message(self, message: PanoramiskMessage) -> bool:
        if (
            not self.responses
            and self.as_list
            and message.get("response")
            in (
                "Error",
                "Fail",
                "Failure",
            )
        ):
            self.responses.append(message)
            if not self.future.done():
                self.future.set_result([message])
            return True
        return bool(super().add_message(message))


def _seen(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


class _Protocol(asyncio.Protocol):
    """Frames in, replies routed to their actions, everything else queued for the handler."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._parser = AmiParser()
        self.transport: asyncio.Transport | None = None
        self.pending: dict[str, _Action] = {}
        self.items: collections.deque[Received] = collections.deque()
        self.wakeup = asyncio.Event()
        self.banner: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        # A connection cut before its banner (a shutdown cancelling the connect, a port held
        # by something that hangs up) fails the banner with nobody left to await it: mark that
        # failure as seen, or asyncio logs "Future exception was never retrieved".
        self.banner.add_done_callback(_seen)
        self.lost: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.paused = False
        self.last_data = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        now = self._clock()
        self.last_data = time.monotonic()
        pending = self.pending
        append = self.items.append
        for frame in self._parser.feed(data):
            if type(frame) is Message:
                if pending:  # most of the time nothing waits for a reply
                    aid = frame.fields.get("ActionID")
                    action = pending.get(aid) if aid else None
                    if action is not None:
                        self._route(action, frame)
                        continue
                append(Received(frame, now))
            elif isinstance(frame, Banner):
                if not self.banner.done():
                    self.banner.set_result(frame.text)
            else:
                append(Received(frame, now))
                if isinstance(frame, FrameTooLarge) and self.transport is not None:
                    # A peer that sends a megabyte without a blank line is not Asterisk.
                    self.transport.abort()
        if self.items:
            self.wakeup.set()
            if len(self.items) >= HIGH_WATER and not self.paused and self.transport:
                self.paused = True
                self.transport.pause_reading()

    def _route(self, action: _Action, frame: Message) -> None:
        action.frames.append(frame)
        reply = PanoramiskMessage.from_line(frame.text)
        if reply is None:  # neither Event nor Response: nothing panoramisk can judge
            return
        if action.add_message(reply):
            self.pending.pop(action.action_id, None)

    def take(self) -> Received | None:
        item = self.items.popleft() if self.items else None
        if self.paused and len(self.items) <= HIGH_WATER // 2 and self.transport:
            self.paused = False
            self.transport.resume_reading()
        if not self.items:
            self.wakeup.clear()
        return item

    def connection_lost(self, exc: Exception | None) -> None:
        reason = f"{type(exc).__name__}: {exc}" if exc else "closed by the peer"
        for action in self.pending.values():
            if not action.future.done():
                action.future.set_exception(AmiDisconnected(reason))
        self.pending.clear()
        if not self.banner.done():
            self.banner.set_exception(AmiConnectError(f"no banner ({reason})"))
        if not self.lost.done():
            self.lost.set_result(reason)
        self.wakeup.set()


class AmiSession:
    """Sends actions on one live connection. Every wait has a time-out."""

    def __init__(self, node: NodeSettings, protocol: _Protocol) -> None:
        self.node = node
        self._protocol = protocol

    @property
    def closed(self) -> bool:
        return self._protocol.lost.done()

    async def send(
        self,
        action: Mapping[str, ActionValue],
        *,
        as_list: bool = False,
        timeout: float = 10.0,
        action_id_prefix: str = "",
    ) -> Reply:
        """Send ``action`` and wait for its reply (all of it, for a list action).

        The ActionID is panoramisk's (unique in this process), or the one ``action`` gives;
        ``action_id_prefix`` is put in front of it: for an event that carries the ActionID
        (OriginateResponse), which an AMI user's eventfilter can then select by prefix.

        Raises :class:`AmiDisconnected` if the link drops first, :class:`TimeoutError` after
        ``timeout`` seconds, :class:`ValueError` for a header value with CR/LF.
        """
        if self.closed or self._protocol.transport is None:
            raise AmiDisconnected("not connected")
        headers = dict(action)
        pa = _Action(headers, as_list=as_list)
        if action_id_prefix:
            pa["ActionID"] = f"{action_id_prefix}{pa.action_id}"
        headers["ActionID"] = pa.action_id
        data = encode_action(headers)  # raises before anything is sent
        self._protocol.pending[pa.action_id] = pa
        self._protocol.transport.write(data)
        try:
            async with asyncio.timeout(timeout):
                await pa.future
        except TimeoutError:
            self._protocol.pending.pop(pa.action_id, None)
            raise
        frames = pa.frames
        if as_list and len(frames) > 1:
            last = frames[-1]
            done = last if (last.event or "").endswith("Complete") else None
            events = frames[1:-1] if done else frames[1:]
            return Reply(frames[0], tuple(events), done)
        return Reply(frames[0])

    def send_into_stream(self, action: Mapping[str, ActionValue]) -> str:
        """Send ``action`` without waiting: its reply frames reach the handler as
        :class:`Received` items, in stream order (returns the ActionID used).

        For QueueStatus and CoreShowChannels after a (re)connect: their answer is a snapshot
        taken where it sits in the stream, so it must be applied there, between the events
        before and after it; and waiting for it would stall a handler that is behind.
        """
        if self.closed or self._protocol.transport is None:
            raise AmiDisconnected("not connected")
        headers = dict(action)
        headers.setdefault("ActionID", f"stream-{next(_stream_ids)}")
        self._protocol.transport.write(encode_action(headers))
        return str(headers["ActionID"])

    @property
    def alive_since(self) -> float:
        """``time.monotonic()`` of the last bytes received."""
        return self._protocol.last_data

    @property
    def backlogged(self) -> bool:
        """Reading is paused because the handler is behind: the peer is talking."""
        return self._protocol.paused

    async def originate(
        self,
        fields: Mapping[str, ActionValue],
        *,
        timeout: float = 10.0,
        action_id_prefix: str = "",
    ) -> Reply:
        """Originate ``fields`` (Channel, Context/Exten/Priority or Application/Data,
        Variable, CallerID, Timeout...), always with ``Async: true``: the outcome arrives later
        as an ``OriginateResponse`` event carrying this action's ActionID (the reply's
        ``response.action_id``; ``action_id_prefix``: see :meth:`send`)."""
        headers = {k: v for k, v in fields.items() if k.lower() not in ("async", "action")}
        return await self.send(
            {"Action": "Originate", **headers, "Async": "true"},
            timeout=timeout,
            action_id_prefix=action_id_prefix,
        )

    async def ping(self, timeout: float) -> None:
        reply = await self.send({"Action": "Ping"}, timeout=timeout)
        if not reply.ok:
            raise AmiError(f"Ping refused: {reply.message}")

    def abort(self) -> None:
        if self._protocol.transport is not None:
            self._protocol.transport.abort()

    async def logoff(self, timeout: float = 2.0) -> None:
        """Say goodbye (``Logoff``), then close the connection; never raises."""
        try:
            if not self.closed:
                await self.send({"Action": "Logoff"}, timeout=timeout)
        except (AmiError, TimeoutError):
            pass
        finally:
            self.abort()


@dataclass
class Backoff:
    """Exponential backoff with full jitter: a wait in [base, min(cap, base * 2**n)]."""

    base: float = 0.5
    cap: float = 30.0
    attempt: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def next(self) -> float:
        ceiling = min(self.cap, self.base * (2**self.attempt))
        self.attempt += 1
        return self.rng.uniform(self.base, max(self.base, ceiling))

    def reset(self) -> None:
        self.attempt = 0


class AmiClient:
    """Keeps one node connected and hands every stream item to ``handler``, in order.

    :meth:`run` never returns on its own: it reconnects forever (cancel it to stop). An
    exception raised by the handler ends :meth:`run` with that exception, after closing the
    connection: the caller decides what a bug in handling costs.
    """

    def __init__(
        self,
        node: NodeSettings,
        *,
        clock: Callable[[], float] = time.time,
        backoff: Backoff | None = None,
        events: str = "on",
    ) -> None:
        self.node = node
        self._clock = clock
        self._backoff = backoff or Backoff()
        self._events = events
        self.connected = False

    async def connect(self) -> AmiSession:
        """One connection and login, no retry, for a command that sends a few actions and
        leaves (close it with :meth:`AmiSession.logoff`). :class:`AmiConnectError` says why
        it failed. Nothing reads the events of such a session: log in with ``events="off"``."""
        session, _, _ = await self._open()
        return session

    async def _open(self) -> tuple[AmiSession, _Protocol, str]:
        node = self.node
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(node.connect_timeout):
                _, protocol = await loop.create_connection(
                    lambda: _Protocol(self._clock), node.host, node.port
                )
        except (OSError, TimeoutError) as exc:
            raise AmiConnectError(f"cannot connect to {node.host}:{node.port}: {exc!r}") from exc
        session = AmiSession(node, protocol)
        try:
            async with asyncio.timeout(node.connect_timeout):
                banner = await protocol.banner
            if not banner.startswith("Asterisk Call Manager/"):
                raise AmiConnectError(f"{node.host}:{node.port} is not AMI: {banner[:60]!r}")
            reply = await session.send(
                {
                    "Action": "Login",
                    "Username": node.username,
                    "Secret": node.secret.reveal(),
                    "Events": self._events,
                },
                timeout=node.connect_timeout,
            )
            if not reply.ok:
                raise AmiConnectError(f"login as {node.username} refused: {reply.message}")
        except (TimeoutError, AmiDisconnected) as exc:
            session.abort()
            raise AmiConnectError(f"no banner or login reply: {exc!r}") from exc
        except AmiConnectError:
            session.abort()
            raise
        return session, protocol, banner

    async def _pinger(self, session: AmiSession) -> None:
        """Ping every ``ping_interval``; drop the link when a Ping goes unanswered for
        ``ping_timeout`` and nothing else arrived meanwhile. A reply stuck behind a backlog we
        chose not to read yet is not a dead peer."""
        node = self.node
        while not session.closed:
            await asyncio.sleep(node.ping_interval)
            sent = time.monotonic()
            try:
                await session.ping(node.ping_timeout)
            except TimeoutError:
                if session.backlogged or session.alive_since > sent:
                    continue
                log.warning("ami %s: no answer to Ping in %.1f s: dropping the connection",
                            node.name, node.ping_timeout)  # fmt: skip
                session.abort()
                return
            except AmiError as exc:
                log.warning("ami %s: ping failed (%r): dropping the connection", node.name, exc)
                session.abort()
                return

    async def run(self, handler: Handler) -> None:
        failures = 0
        while True:
            try:
                session, protocol, banner = await self._open()
            except AmiConnectError as exc:
                failures += 1
                self.connected = False
                await handler(Disconnected(str(exc), self._clock(), failures))
                await asyncio.sleep(self._backoff.next())
                continue
            failures = 0
            self._backoff.reset()
            self.connected = True
            pinger = asyncio.create_task(self._pinger(session), name=f"ami-ping-{self.node.name}")
            try:
                await handler(Connected(session, banner, self._clock()))
                while True:
                    item = protocol.take()
                    if item is not None:
                        await handler(item)
                        continue
                    if protocol.lost.done():
                        break
                    await protocol.wakeup.wait()
            finally:
                pinger.cancel()
                await asyncio.gather(pinger, return_exceptions=True)
                session.abort()
            self.connected = False
            failures = 1
            await handler(Disconnected(protocol.lost.result(), self._clock(), failures))
            await asyncio.sleep(self._backoff.next())
