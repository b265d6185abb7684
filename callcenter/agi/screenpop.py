"""Screen-pops on MQTT: who is calling and their history, for the agent who will answer.

Topic ``<prefix>/<node>/screenpop/<uniqueid>`` (levels escaped with
:func:`callcenter.bridge.publisher.topic_part`), payload JSON ``{"v": 1, "type": "screenpop",
...}`` (fields in :func:`callcenter.agi.history.screenpop_payload`), QoS 1, **retained** with an
MQTT 5 message expiry of ``agi.screenpop_ttl`` seconds.

Why keyed by call and retained: the IVR runs before any agent is chosen. The bridge publishes
``<prefix>/<node>/agents/<agent>`` (retained) whose ``call`` field is the caller's uniqueid once
app_queue connects them (AgentConnect). The agent desktop or wallboard subscribes to its agent
topic and, when ``call`` changes, reads ``<prefix>/<node>/screenpop/<call>``: retained, so it is
there whenever they look; with an expiry, so the broker forgets it after the call.

Publishing never blocks a call: :meth:`ScreenPopPublisher.publish` queues (bounded; the oldest
is dropped and counted when the broker is away too long) and a background task sends.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import socket
from typing import Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from callcenter.ami.connection import Backoff
from callcenter.bridge.publisher import topic_part
from callcenter.config import MqttSettings

log = logging.getLogger(__name__)


def screenpop_topic(prefix: str, node: str, uniqueid: str) -> str:
    return f"{prefix}/{topic_part(node)}/screenpop/{topic_part(uniqueid)}"


class ScreenPopPublisher:
    """Owns one MQTT 5 connection (client id ``callcenter-agi-<host>``; the bridge has its own)."""

    def __init__(
        self, settings: MqttSettings, *, ttl: int = 3600, max_pending: int = 10_000
    ) -> None:
        self.settings = settings
        self.prefix = settings.topic_prefix
        self.ttl = ttl
        self.max_pending = max_pending
        self._pending: collections.deque[tuple[str, bytes]] = collections.deque()
        self._wake = asyncio.Event()
        self._stopping = False
        self.connected = False
        self.published = 0
        self.dropped = 0

    def publish(self, node: str, uniqueid: str, payload: dict[str, Any]) -> None:
        """Queue a screen-pop; returns at once."""
        if len(self._pending) >= self.max_pending:
            self._pending.popleft()
            self.dropped += 1
        topic = screenpop_topic(self.prefix, node, uniqueid)
        self._pending.append((topic, json.dumps(payload, separators=(",", ":")).encode()))
        self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def _client(self) -> aiomqtt.Client:
        s = self.settings
        ident = f"{s.client_id}-agi" if s.client_id else f"callcenter-agi-{socket.gethostname()}"
        return aiomqtt.Client(
            s.host,
            s.port,
            username=s.username or None,
            password=s.password.reveal() or None,
            identifier=ident,
            keepalive=s.keepalive,
            timeout=10,
            protocol=aiomqtt.ProtocolVersion.V5,
        )

    async def run(self) -> None:
        """Send queued screen-pops until :meth:`stop` (then flush what is pending)."""
        backoff = Backoff(base=0.5, cap=15.0)
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.MessageExpiryInterval = self.ttl
        while True:
            try:
                async with self._client() as client:
                    self.connected = True
                    backoff.reset()
                    while True:
                        while self._pending:
                            topic, data = self._pending[0]
                            await client.publish(topic, data, qos=1, retain=True, properties=props)
                            self._pending.popleft()
                            self.published += 1
                        if self._stopping:
                            return
                        self._wake.clear()
                        await self._wake.wait()
            except aiomqtt.MqttError as exc:
                if self.connected:
                    log.warning("agi: MQTT connection lost (%s); reconnecting", exc)
                self.connected = False
                if self._stopping:
                    log.warning("agi: %d screen-pops not sent at shutdown", len(self._pending))
                    return
                await asyncio.sleep(backoff.next())

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
