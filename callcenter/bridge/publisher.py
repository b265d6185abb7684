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

Retained snapshots outlive the bridge: after a restart the broker still holds an agent that
Asterisk no longer has. So on every connection the publisher first learns which queue and
agent snapshots the broker holds (it subscribes to them and reads the retained messages,
until the retained ``bridge/status`` it just published comes back behind them, or
``learn_timeout``), and after every resync of a node (:meth:`Publisher.reconcile_snapshots`)
it clears -- an empty retained payload, MQTT's delete -- every snapshot of that node that the
node's state does not have. Topics of nodes this bridge does not serve are left alone.

Throughput: aiomqtt's ``publish`` costs an ``asyncio.Event``, a ``wait_for`` and a trip
through the loop per message (about 8,000 QoS 0 messages a second here, less than a busy
bridge makes). So the pump hands a chunk of messages to the paho client that aiomqtt wraps
and awaits only the chunk's last one through aiomqtt: one TCP connection keeps them in order,
so when the last is out (QoS 0) or acknowledged (QoS 1) so is the chunk, and a broken
connection still surfaces as aiomqtt's ``MqttError``. Payloads are encoded by orjson.
After a quiet spell the pump waits :data:`LINGER` before publishing, so that a burst of
changes goes out together and a snapshot changed several times in it goes out once.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import socket
from collections.abc import Iterable
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

#: Seconds the publisher lets changes gather after a quiet spell before it publishes them.
#: One call changes its queue's and its agent's snapshots several times within a few
#: milliseconds (AgentCalled, Newstate, AgentConnect...); each of those was a message that
#: the wallboard and the dialer parsed and applied, for a state already outdated (the soak's
#: profiles). 50 ms is nothing next to a wallboard's 100 ms between pushes.
LINGER = 0.05

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


#: The retained snapshot kinds under ``<prefix>/<node>/``.
SNAPSHOT_KINDS = ("agents", "queues")


class Publisher:
    """Owns one MQTT connection; :meth:`publish_changes` never blocks or does I/O."""

    def __init__(
        self,
        settings: MqttSettings,
        *,
        max_events: int = 10_000,
        learn_timeout: float = 5.0,
        linger: float = LINGER,
    ) -> None:
        self.settings = settings
        self.linger = linger
        self.prefix = settings.topic_prefix
        self.max_events = max_events
        self.learn_timeout = learn_timeout
        # Retained payloads by topic; b"" is a delete not yet published.
        self._retained: dict[str, bytes] = {}
        # Snapshot topics the broker held at connect, by node topic level (as learned).
        self._held: dict[str, set[str]] = {}
        # Node topic levels whose snapshots a resync has reconciled.
        self._reconciled: set[str] = set()
        self.cleared = 0  # snapshots deleted because the state no longer had them
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

    def reconcile_snapshots(self, node: str, agents: Iterable[str], queues: Iterable[str]) -> None:
        """After a resync of ``node``: its retained agent and queue snapshots are to be exactly
        those of ``agents`` and ``queues`` (the names in its state). Every other snapshot of
        the node that the broker held at connect or that this process published is cleared.
        Snapshots the broker turns out to hold when a later connection learns them are
        cleared then, unless the state published them since."""
        n = topic_part(node)
        base = f"{self.prefix}/{n}/"
        keep = {f"{base}agents/{topic_part(a)}" for a in agents}
        keep.update(f"{base}queues/{topic_part(q)}" for q in queues)
        known = {t for t in self._retained if self._snapshot_node(t) == n}
        known.update(self._held.get(n, ()))
        for topic in sorted(known - keep):
            self._clear(topic)
        self._reconciled.add(n)

    def _snapshot_node(self, topic: str) -> str | None:
        """The node level of an agent or queue snapshot topic of ours, else None."""
        rest = topic.removeprefix(f"{self.prefix}/")
        if rest == topic:
            return None
        parts = rest.split("/")
        if len(parts) == 3 and parts[1] in SNAPSHOT_KINDS:
            return parts[0]
        return None

    def _clear(self, topic: str) -> None:
        node = self._snapshot_node(topic)
        if node is not None:
            self._held.get(node, set()).discard(topic)
        if self._retained.get(topic) == b"":
            return  # already on its way
        self._retained[topic] = b""
        self._dirty[topic] = None
        self.cleared += 1
        self._wake.set()

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
        """Publish until :meth:`stop`; reconnect with backoff while the broker is away.

        The backoff is capped at 2 s: a failed connect to a local broker costs next to
        nothing, and with a 15 s cap the retained state stayed stale for up to 15 s after the
        broker came back (the soak's ``mosquitto`` fault: live state must agree with Asterisk
        within 5 s)."""
        backoff = Backoff(base=0.5, cap=2.0)
        while True:
            try:
                async with self._client() as client:
                    self.connected = True
                    backoff.reset()
                    online = {"v": VERSION, "type": "bridge", "online": True}
                    await client.publish(
                        self.status_topic, orjson.dumps(online), qos=1, retain=True
                    )
                    await self._learn(client)
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

    async def _learn(self, client: aiomqtt.Client) -> None:
        """Learn which agent and queue snapshots the broker holds (see the module's doc).

        The broker sends a subscription's retained messages right after its SUBACK, in order,
        and ours in the order we subscribed: so once the retained ``bridge/status`` (published
        and acknowledged just before) arrives through the subscription made last, every
        retained snapshot has come before it. Bounded by ``learn_timeout``; what arrived by
        then is what is known (the rest stays until a later connection learns it)."""
        filters = [f"{self.prefix}/+/{kind}/+" for kind in SNAPSHOT_KINDS]
        held: dict[str, set[str]] = {}
        complete = False
        try:
            async with asyncio.timeout(self.learn_timeout):
                # QoS 0: a broker caps the QoS 1 messages it queues for a client (Mosquitto:
                # 1000), not these, and the order is the same.
                await client.subscribe([(f, 0) for f in filters])
                await client.subscribe(self.status_topic, qos=0)
                async for msg in client.messages:
                    topic = str(msg.topic)
                    if topic == self.status_topic:
                        complete = True
                        break
                    node = self._snapshot_node(topic)
                    if msg.retain and msg.payload and node is not None:
                        held.setdefault(node, set()).add(topic)
        except TimeoutError:
            pass
        await client.unsubscribe([*filters, self.status_topic])
        if not complete:
            log.warning(
                "mqtt: the broker's retained snapshots not all read within %gs; stale ones "
                "may stay until the next connection", self.learn_timeout,
            )  # fmt: skip
        self._held = held
        for node in self._reconciled & held.keys():
            for topic in sorted(held[node]):
                if not self._retained.get(topic):
                    self._clear(topic)

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
                if self.linger > 0 and not self._stopping:
                    # Let the rest of a burst gather: a snapshot that changes again within
                    # it goes out once, and the chunk's one awaited publish covers them all.
                    await asyncio.sleep(self.linger)

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
        for topic, data, _, retain in chunk:
            # A delete that is out is done with: forget the topic (unless it came back).
            if (
                retain
                and not data
                and self._retained.get(topic) == b""
                and topic not in self._dirty
            ):
                del self._retained[topic]

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
