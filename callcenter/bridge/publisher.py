"""Publishes the bridge's live state on MQTT (aiomqtt).

Topics (``<prefix>`` is ``mqtt.topic_prefix``, default ``callcenter``); every payload is a JSON
object with ``"v": 1`` (the payload version) and ``"type"``:

| topic | retained | payload ``type`` |
|---|---|---|
| ``<prefix>/<node>/queues/<queue>`` | yes | ``queue``: waiting, longest wait, agents by state |
| ``<prefix>/<node>/agents/<agent>`` | yes | ``agent``: state, reason, since, queues, call |
| ``<prefix>/<node>/calls/<uniqueid>`` | no | ``call``: the call's snapshot at each change |
| ``<prefix>/<node>/status`` | yes | ``node``: is the bridge connected to that Asterisk |
| ``<prefix>/bridge/status`` | yes | ``bridge``: ``online``; false by the last will |

A retained topic is published only when its payload really changed. While the broker is
away, retained topics keep only their latest payload (republished on reconnect, so the broker
holds the current state) and call events queue up to ``max_events`` (older ones are dropped
and counted: the call log in PostgreSQL has them all).

Throughput: aiomqtt's ``publish`` costs an ``asyncio.Event``, a ``wait_for`` and a trip
through the loop per message (about 8,000 QoS 0 messages a second here, less than a busy
bridge makes). So the pump hands a chunk of messages to the paho client that aiomqtt wraps
and awaits only the chunk's last one through aiomqtt: one TCP connection keeps them in order,
so when the last is out (QoS 0) or acknowledged (QoS 1) so is the chunk, and a broken
connection still surfaces as aiomqtt's ``MqttError``. Payloads are encoded by orjson.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import socket
from dataclasses import fields
from typing import Any

import aiomqtt
import orjson
import paho.mqtt.client as paho

from callcenter.ami.connection import Backoff
from callcenter.config import MqttSettings
from callcenter.core.changes import (
    AgentChanged,
    CallChanged,
    Change,
    QueueChanged,
    VisitChanged,
)
from callcenter.core.records import Agent, Call, QueueSnapshot

log = logging.getLogger(__name__)

VERSION = 1
#: Messages handed to paho before awaiting the last of them.
CHUNK = 256
_TOPIC_UNSAFE = str.maketrans({"/": "%2F", "+": "%2B", "#": "%23", "%": "%25", "\0": ""})


def topic_part(text: str) -> str:
    """A name as one topic level: ``/``, ``+``, ``#`` and ``%`` percent-encoded."""
    return text.translate(_TOPIC_UNSAFE) or "%00"


QUEUE_FIELDS = tuple(f.name for f in fields(QueueSnapshot))


# Payloads are built from the records' own fields: json encodes their StrEnums as their
# values and tuples as lists, so no conversion pass is needed (this runs per change).
def queue_payload(q: QueueSnapshot) -> dict[str, Any]:
    payload: dict[str, Any] = {"v": VERSION, "type": "queue"}
    payload.update((f, getattr(q, f)) for f in QUEUE_FIELDS)
    return payload


def agent_payload(a: Agent) -> dict[str, Any]:
    return {
        "v": VERSION,
        "type": "agent",
        "node": a.node,
        "agent": a.name,
        "interface": a.interface,
        "state": a.state,
        "reason": a.reason,
        "since": a.since,
        "logged_in_at": a.logged_in_at,
        "call": a.call,
        "call_queue": a.call_queue,
        "wrapup_until": a.wrapup_until,
        "queues": {
            name: {"penalty": m.penalty, "paused": m.paused, "paused_reason": m.paused_reason,
                   "status": m.status, "in_call": m.in_call, "calls_taken": m.calls_taken}
            for name, m in sorted(a.memberships.items())
        },
    }  # fmt: skip


CALL_FIELDS = (
    "node", "uniqueid", "linkedid", "direction", "channel", "caller_number", "caller_name",
    "did", "started_at", "phase", "ivr_path", "queue", "queued_at", "original_position",
    "ringing", "ring_attempts", "agent", "answered_at", "wait_seconds", "talk_seconds",
    "ended_at", "outcome", "exit_key", "hangup_cause", "closed", "visit", "visit_ended_at",
    "transfer_target",
)  # fmt: skip


def call_payload(c: Call) -> dict[str, Any]:
    payload: dict[str, Any] = {"v": VERSION, "type": "call"}
    payload.update((f, getattr(c, f)) for f in CALL_FIELDS)
    return payload


class Publisher:
    """Owns one MQTT connection; :meth:`publish_changes` never blocks or does I/O."""

    def __init__(self, settings: MqttSettings, *, max_events: int = 10_000) -> None:
        self.settings = settings
        self.prefix = settings.topic_prefix
        self.max_events = max_events
        self._retained: dict[str, bytes] = {}
        self._dirty: dict[str, None] = {}  # ordered set of retained topics to (re)publish
        self._events: collections.deque[tuple[str, bytes]] = collections.deque()
        self._wake = asyncio.Event()
        self.connected = False
        self.published = 0
        self.dropped_events = 0
        self._in_flight = 0  # messages handed to the client and not yet confirmed
        self.status_topic = f"{self.prefix}/bridge/status"
        self._stopping = False

    # --- what the bridge calls ------------------------------------------------------------

    def retain(self, topic: str, payload: dict[str, Any]) -> None:
        data = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
        if self._retained.get(topic) == data:
            return  # no real change: publish nothing
        self._retained[topic] = data
        self._dirty[topic] = None
        self._wake.set()

    def event(self, topic: str, payload: dict[str, Any]) -> None:
        if len(self._events) >= self.max_events:
            self._events.popleft()
            self.dropped_events += 1
        self._events.append((topic, orjson.dumps(payload)))
        self._wake.set()

    def publish_changes(self, node: str, changes: list[Change]) -> None:
        n = topic_part(node)
        for change in changes:
            match change:
                case QueueChanged(queue=q):
                    self.retain(f"{self.prefix}/{n}/queues/{topic_part(q.queue)}", queue_payload(q))
                case AgentChanged(agent=a):
                    self.retain(f"{self.prefix}/{n}/agents/{topic_part(a.name)}", agent_payload(a))
                case CallChanged(call=c):
                    self.event(f"{self.prefix}/{n}/calls/{topic_part(c.uniqueid)}", call_payload(c))
                case VisitChanged(call=c, final=final):
                    payload = call_payload(c)
                    payload["type"], payload["final"] = "visit", final
                    self.event(f"{self.prefix}/{n}/calls/{topic_part(c.uniqueid)}", payload)
                case _:
                    pass

    def node_status(self, node: str, connected: bool, detail: str, at: float) -> None:
        self.retain(
            f"{self.prefix}/{topic_part(node)}/status",
            {"v": VERSION, "type": "node", "node": node, "connected": connected,
             "detail": detail, "since": at},
        )  # fmt: skip

    # --- the connection --------------------------------------------------------------------

    def _client(self) -> aiomqtt.Client:
        s = self.settings
        offline = orjson.dumps({"v": VERSION, "type": "bridge", "online": False})
        return aiomqtt.Client(
            s.host,
            s.port,
            username=s.username or None,
            password=s.password.reveal() or None,
            # Stable by default: a restarted bridge takes over its predecessor's session, so
            # the stale will ("offline") fires before the new "online", not after it.
            identifier=s.client_id or f"callcenter-bridge-{socket.gethostname()}",
            keepalive=s.keepalive,
            timeout=10,
            will=aiomqtt.Will(self.status_topic, offline, qos=1, retain=True),
        )

    async def run(self) -> None:
        """Publish until :meth:`stop`; reconnect with backoff while the broker is away."""
        backoff = Backoff(base=0.5, cap=15.0)
        while True:
            try:
                async with self._client() as client:
                    self.connected = True
                    backoff.reset()
                    online = {"v": VERSION, "type": "bridge", "online": True}
                    await client.publish(
                        self.status_topic, orjson.dumps(online), qos=1, retain=True
                    )
                    # The broker may have lost retained messages, or missed changes: resend all.
                    self._dirty = dict.fromkeys(self._retained)
                    await self._pump(client)
                    return  # stopped
            except aiomqtt.MqttError as exc:
                if self._stopping:
                    return
                if self.connected:
                    log.warning("mqtt: connection lost (%s); reconnecting", exc)
                self.connected = False
                await asyncio.sleep(backoff.next())

    @property
    def idle(self) -> bool:
        """Nothing waits to be published."""
        return not self._dirty and not self._events and not self._in_flight

    async def _pump(self, client: aiomqtt.Client) -> None:
        while True:
            if self._stopping and not self._dirty and not self._events:
                offline = {"v": VERSION, "type": "bridge", "online": False}
                await client.publish(self.status_topic, orjson.dumps(offline), qos=1, retain=True)
                return
            if self._dirty or self._events:
                await self._publish_chunk(client)
            else:
                self._wake.clear()
                await self._wake.wait()

    async def _publish_chunk(self, client: aiomqtt.Client) -> None:
        """Publish up to :data:`CHUNK` messages, retained snapshots first, and wait until the
        last is out. Snapshots are unmarked before the wait (a newer one arriving meanwhile
        marks its topic again; a failed connection re-marks them all); call events go back
        to the front of their queue if the connection fails."""
        chunk: list[tuple[str, bytes, int, bool]] = []
        while self._dirty and len(chunk) < CHUNK:
            topic = next(iter(self._dirty))
            del self._dirty[topic]
            chunk.append((topic, self._retained[topic], 1, True))
        while self._events and len(chunk) < CHUNK:
            topic, data = self._events.popleft()
            chunk.append((topic, data, 0, False))
        self._in_flight = len(chunk)
        try:
            await _publish_all(client, chunk)
        except BaseException:
            self._events.extendleft((t, d) for t, d, _, retain in reversed(chunk) if not retain)
            raise
        finally:
            self._in_flight = 0
        self.published += len(chunk)

    def stop(self) -> None:
        """Publish what is pending, then ``online: false``, and let :meth:`run` return (the
        will only covers a crash: a clean DISCONNECT does not fire it)."""
        self._stopping = True
        self._wake.set()


async def _publish_all(client: aiomqtt.Client, chunk: list[tuple[str, bytes, int, bool]]) -> None:
    """Queue all but the last message with paho (aiomqtt's ``_client``: aiomqtt has no
    batch publish), then publish the last through aiomqtt, which waits for it."""
    inner: paho.Client = client._client
    for topic, data, qos, retain in chunk[:-1]:
        info = inner.publish(topic, data, qos, retain)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise aiomqtt.MqttCodeError(info.rc, "Could not publish message")
    topic, data, qos, retain = chunk[-1]
    await client.publish(topic, data, qos=qos, retain=retain)
