"""The live state of queues, agents and nodes, kept from the bridge's MQTT topics, and of
outbound campaigns, kept from the dialer's.

:class:`LiveState` is pure (no I/O): :meth:`LiveState.apply` takes one message and records
what really changed in :attr:`LiveState.changes`, which the hub takes and clears when it
pushes. :class:`MqttFeed` is the I/O: one aiomqtt client that subscribes to the bridge's
topics, reconnects with backoff, and calls ``notify`` after a message that changed something.

Retained topics (queues, agents, node status, bridge status, campaigns) are the state: a new
subscriber gets all of them at once. An empty retained payload deletes the topic, and its
record. Call messages are not retained: the wallboard keeps open calls only to show the
caller on the line of the agent who took the call, and forgets calls once closed (or when too
many are open).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiomqtt
import orjson

from callcenter.ami.connection import Backoff
from callcenter.campaigns.snapshot import CampaignFigures
from callcenter.config import MqttSettings
from callcenter.security.alerts import SipAlerts
from callcenter.wallboard import model
from callcenter.wallboard.model import AgentLive, CallLive, NodeLive, PayloadError, QueueLive

log = logging.getLogger(__name__)

AgentKey = tuple[str, str]  # (node, agent)
#: Open calls remembered for their caller ID; beyond this the oldest are forgotten (a call
#: whose end the bridge never learnt must not grow the dict for ever).
MAX_CALLS = 20_000


@dataclass
class Changes:
    """What changed since the hub last took the changes. Queues are by name (the board
    shows a queue once, summed over nodes); agents by (node, agent)."""

    queues: set[str] = field(default_factory=set)
    agents: set[AgentKey] = field(default_factory=set)
    nodes: set[str] = field(default_factory=set)
    status: bool = False  # the bridge's or our own MQTT connection state
    calls: bool = False  # a call moved on: the day's figures may have changed
    campaigns: set[str] = field(default_factory=set)  # by campaign name
    security: bool = False  # the SIP attack alerts (callcenter.security.alerts)

    def __bool__(self) -> bool:
        return bool(self.queues or self.agents or self.nodes or self.status or self.calls
                    or self.campaigns or self.security)  # fmt: skip


class LiveState:
    """Everything the board shows that is not from the call log. Mutated only by
    :meth:`apply` and :meth:`set_feed`, on the event loop."""

    def __init__(self) -> None:
        self.queues: dict[tuple[str, str], QueueLive] = {}
        self.agents: dict[AgentKey, AgentLive] = {}
        self.nodes: dict[str, NodeLive] = {}
        self.calls: dict[tuple[str, str], CallLive] = {}
        self.campaigns: dict[str, CampaignFigures] = {}
        self.bridge_online: bool | None = None
        self.sip_alerts: SipAlerts | None = None
        self.feed_connected = False
        self.changes = Changes()
        self.received = 0
        self.rejected = 0
        self._topics: dict[str, model.Record] = {}
        self._on_call: dict[tuple[str, str], AgentKey] = {}  # (node, call uniqueid) -> agent

    def take_changes(self) -> Changes:
        changes, self.changes = self.changes, Changes()
        return changes

    def set_feed(self, connected: bool) -> None:
        if connected != self.feed_connected:
            self.feed_connected = connected
            self.changes.status = True

    def caller(self, agent: AgentLive) -> str:
        """The caller on the agent's line, as ``number name`` ("" when unknown)."""
        call = self.calls.get((agent.node, agent.call)) if agent.call else None
        if call is None:
            return ""
        return f"{call.caller_number} {call.caller_name}".strip()

    def apply(self, topic: str, payload: bytes) -> None:
        """Take one MQTT message. A payload that cannot be read is counted and ignored: one
        bad message must not stop the board."""
        self.received += 1
        if not payload:
            held = self._topics.pop(topic, None)
            if held is not None:
                self._forget(held)
            return
        try:
            record = model.parse(orjson.loads(payload))
        except (ValueError, TypeError, PayloadError) as exc:  # orjson's JSONDecodeError too
            self.rejected += 1
            log.debug("wallboard: ignored message on %s: %s", topic, exc)
            return
        if isinstance(record, CampaignFigures) and topic.rsplit("/", 1)[-1] != record.campaign:
            # Its delete (an empty payload on its own topic) would never reach the record.
            self.rejected += 1
            log.debug("wallboard: campaign %s published on %s", record.campaign, topic)
            return
        if not isinstance(record, CallLive):
            self._topics[topic] = record
        self._store(record)

    def _store(self, record: model.Record) -> None:
        match record:
            case QueueLive():
                if self.queues.get((record.node, record.queue)) != record:
                    self.queues[(record.node, record.queue)] = record
                    self.changes.queues.add(record.queue)
            case AgentLive():
                key = (record.node, record.agent)
                old = self.agents.get(key)
                if old == record:
                    return
                if old is not None and old.call:
                    self._on_call.pop((old.node, old.call), None)
                if record.call:
                    self._on_call[(record.node, record.call)] = key
                self.agents[key] = record
                self.changes.agents.add(key)
            case NodeLive():
                if self.nodes.get(record.node) != record:
                    self.nodes[record.node] = record
                    self.changes.nodes.add(record.node)
            case CallLive():
                self._call(record)
            case model.BridgeLive():
                if self.bridge_online != record.online:
                    self.bridge_online = record.online
                    self.changes.status = True
            case CampaignFigures():
                if self.campaigns.get(record.campaign) != record:
                    self.campaigns[record.campaign] = record
                    self.changes.campaigns.add(record.campaign)
            case SipAlerts():
                if self.sip_alerts != record:
                    self.sip_alerts = record
                    self.changes.security = True

    def _call(self, call: CallLive) -> None:
        key = (call.node, call.uniqueid)
        self.changes.calls = True
        previous = self.calls.pop(key, None)  # re-inserted last: the dict stays oldest-first
        if not call.closed:
            self.calls[key] = call
            while len(self.calls) > MAX_CALLS:
                del self.calls[next(iter(self.calls))]
        agent = self._on_call.get(key)
        if agent is not None and (previous is None or call.closed or previous != call):
            self.changes.agents.add(agent)

    def _forget(self, record: model.Record) -> None:
        match record:
            case QueueLive():
                if self.queues.pop((record.node, record.queue), None) is not None:
                    self.changes.queues.add(record.queue)
            case AgentLive():
                key = (record.node, record.agent)
                old = self.agents.pop(key, None)
                if old is not None:
                    if old.call:
                        self._on_call.pop((old.node, old.call), None)
                    self.changes.agents.add(key)
            case NodeLive():
                if self.nodes.pop(record.node, None) is not None:
                    self.changes.nodes.add(record.node)
            case model.BridgeLive():
                self.bridge_online = None
                self.changes.status = True
            case CampaignFigures():
                if self.campaigns.pop(record.campaign, None) is not None:
                    self.changes.campaigns.add(record.campaign)
            case SipAlerts():
                self.sip_alerts = None
                self.changes.security = True
            case _:
                pass


def topic_filters(prefix: str) -> list[tuple[str, int]]:
    """What the wallboard subscribes to: the bridge's topics and the dialer's campaign
    snapshots, nothing else under the prefix (``<prefix>/bridge/status`` matches
    ``<prefix>/+/status``). Where filters overlap (a node named ``campaigns``, a campaign
    named ``status``) the payload's ``type`` says what a message is.

    All at QoS 0: the retained topics are state that the broker sends again whole on every
    (re)subscription, and while the connection holds, TCP delivers in order; QoS 1's
    acknowledgement of each message (a packet each way, and paho's work on both ends) was a
    twentieth of a busy wallboard's CPU for nothing a reconnect does not restore."""
    return [
        (f"{prefix}/+/queues/+", 0),
        (f"{prefix}/+/agents/+", 0),
        (f"{prefix}/+/calls/+", 0),
        (f"{prefix}/+/status", 0),
        (f"{prefix}/campaigns/+", 0),
        (f"{prefix}/security/alerts", 0),
    ]


def client_id(settings: MqttSettings) -> str:
    """Never the bridge's own id (the broker would cut one off for the other); per process by
    default, so that two wallboards on one host do not either."""
    if settings.client_id:
        return f"{settings.client_id}-wallboard"
    return f"callcenter-wallboard-{socket.gethostname()}-{os.getpid()}"


class MqttFeed:
    """Keeps ``state`` up to date from the broker; ``notify`` is called (cheap, no I/O) after
    each message that changed something, and when the connection comes or goes."""

    def __init__(
        self,
        settings: MqttSettings,
        state: LiveState,
        notify: Callable[[], None],
        taps: list[Callable[[str, Any], None]] | None = None,
    ) -> None:
        self.settings = settings
        self.state = state
        self.notify = notify
        #: Called with every message before the state takes it (the agent's desktop).
        self.taps = taps or []

    def _client(self) -> aiomqtt.Client:
        s = self.settings
        return aiomqtt.Client(
            s.host,
            s.port,
            username=s.username or None,
            password=s.password.reveal() or None,
            identifier=client_id(s),
            keepalive=s.keepalive,
            timeout=10,
        )

    async def run(self) -> None:
        """Consume until cancelled; reconnect with backoff while the broker is away.

        The backoff is capped at 2 s: a failed connect to the broker costs next to nothing,
        and with a 15 s cap the board stayed stale for up to 15 s after a broker came back
        (the soak's ``mosquitto`` fault; the board must agree with Asterisk within 5 s)."""
        backoff = Backoff(base=0.5, cap=2.0)
        while True:
            try:
                async with self._client() as client:
                    await client.subscribe(topic_filters(self.settings.topic_prefix))
                    backoff.reset()
                    self.state.set_feed(True)
                    self.notify()
                    log.info("wallboard: following MQTT at %s:%d", self.settings.host,
                             self.settings.port)  # fmt: skip
                    async for message in client.messages:
                        for tap in self.taps:
                            tap(str(message.topic), message.payload)
                        self.state.apply(str(message.topic), message.payload)
                        if self.state.changes:
                            self.notify()
            except aiomqtt.MqttError as exc:
                if self.state.feed_connected:
                    log.warning("wallboard: MQTT connection lost (%s); reconnecting", exc)
                self.state.set_feed(False)
                self.notify()
                await asyncio.sleep(backoff.next())
