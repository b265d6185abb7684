"""One long-lived AMI connection for a service that sends actions: the IVR (feature codes,
callbacks) and the wallboard (supervisors pausing agents).

:class:`AmiLink` keeps one :class:`~callcenter.ami.connection.AmiClient` running (it reconnects
with backoff by itself) and exposes the live :class:`~callcenter.ami.connection.AmiSession`.
A flow that needs AMI while the link is down gets :class:`AmiUnavailable` with the reason, at
once or after a short wait, never a hang. Events go to listeners (the callback service), which
are plain functions called in stream order; one that raises is logged, and the link goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping

from callcenter.ami.connection import (
    AmiClient,
    AmiDisconnected,
    AmiSession,
    Connected,
    Disconnected,
    Received,
    Reply,
    StreamItem,
)
from callcenter.ami.protocol import ActionValue, Message
from callcenter.config import NodeSettings

log = logging.getLogger(__name__)

Listener = Callable[[Message], None]
ConnectListener = Callable[[AmiSession], None]


class AmiUnavailable(RuntimeError):
    """No AMI session to the node right now; the message says which node and why."""


class AmiLink:
    def __init__(self, node: NodeSettings, client: AmiClient | None = None) -> None:
        self.node = node
        self._client = client or AmiClient(node)
        self._session: AmiSession | None = None
        self._connected = asyncio.Event()
        self._reason = "not connected yet"
        self._listeners: list[Listener] = []
        self._on_connect: list[ConnectListener] = []

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def on_connect(self, listener: ConnectListener) -> None:
        self._on_connect.append(listener)

    @property
    def connected(self) -> bool:
        return self._session is not None and not self._session.closed

    def session(self) -> AmiSession:
        """The live session; :class:`AmiUnavailable` when there is none."""
        session = self._session
        if session is None or session.closed:
            raise AmiUnavailable(f"no AMI connection to node {self.node.name}: {self._reason}")
        return session

    async def wait_session(self, timeout: float) -> AmiSession:
        """The live session, waiting up to ``timeout`` seconds for one."""
        if not self.connected:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._connected.wait()
        return self.session()

    async def send(
        self,
        action: Mapping[str, ActionValue],
        *,
        as_list: bool = False,
        timeout: float = 10.0,
        wait: float = 2.0,
    ) -> Reply:
        """Send ``action`` on the live session (waiting up to ``wait`` s for one)."""
        session = await self.wait_session(wait)
        try:
            return await session.send(action, as_list=as_list, timeout=timeout)
        except AmiDisconnected as exc:
            raise AmiUnavailable(f"AMI connection to node {self.node.name} lost: {exc}") from exc

    async def run(self, stop: asyncio.Event) -> None:
        """Keep the node connected until ``stop`` is set."""
        task = asyncio.create_task(self._client.run(self._handle), name=f"agi-ami-{self.node.name}")
        stopper = asyncio.create_task(stop.wait(), name="agi-ami-stop")
        try:
            await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (task, stopper):
                t.cancel()
            await asyncio.gather(task, stopper, return_exceptions=True)
            self._session = None
            self._connected.clear()
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]

    async def _handle(self, item: StreamItem) -> None:
        if isinstance(item, Connected):
            self._session = item.session
            self._connected.set()
            log.info("agi: AMI connected to node %s", self.node.name)
            for callback in self._on_connect:
                self._call(callback, item.session)
        elif isinstance(item, Disconnected):
            if self._session is not None or item.attempt == 1:
                log.warning("agi: AMI to node %s: %s", self.node.name, item.reason)
            self._session = None
            self._reason = item.reason
            self._connected.clear()
        elif isinstance(item, Received) and isinstance(item.frame, Message):
            if item.frame.event is None:
                return
            for listener in self._listeners:
                self._call(listener, item.frame)

    @staticmethod
    def _call(fn: Callable[[object], None] | Callable[..., None], arg: object) -> None:
        try:
            fn(arg)
        except Exception:
            log.exception("agi: AMI listener %r failed", fn)
