"""The dialer service (``callcenter dialer``, and part of ``callcenter run``): the shell.

What it does each tick (``[dialer] tick``, 1 s): take or renew the lease of every running
campaign (:mod:`~callcenter.campaigns.lease`: one dialer per campaign), let go of those
paused, stopped or taken; for each campaign it holds, ask the pacer (:func:`~callcenter.
campaigns.pacer.decide`) how many calls to place, claim that many due contacts
(:func:`~callcenter.campaigns.scheduling.claim` checks the do-not-call list and the calling
windows at that moment and writes the attempt record before anything is dialled), and
originate them; publish each campaign's snapshot on MQTT.

Where its facts come from:

- Agents: the bridge's retained MQTT snapshots of the campaign queue's members
  (:mod:`~callcenter.campaigns.agents`). No snapshot, a bridge that is offline or an AMI
  node it reports down: agent state is unknown and agent campaigns do not dial.
- Calls: its own AMI connection. Every event is typed at the edge (:func:`~callcenter.ami.
  events.parse_event`) and folded into the attempt's :class:`~callcenter.campaigns.tracker.
  Track` by the pure :func:`~callcenter.campaigns.tracker.step`; the changes are written to
  ``campaign_attempts`` in order by one writer task, and an attempt's end feeds the pacer's
  estimates and abandon ledger at once.
- A restart or a reconnect: the open attempts of a campaign are loaded when its lease is
  taken, and every (re)connection lists Asterisk's channels (CoreShowChannels): an attempt
  whose channel is gone is ended from what is known (and the bridge's call log), so nothing
  is lost and nothing is dialled twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import socket
import time
import zoneinfo
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import aiomqtt
import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from callcenter.ami import events as ev
from callcenter.ami import wanted
from callcenter.ami.connection import AmiClient, AmiError, Backoff
from callcenter.ami.link import AmiLink, AmiUnavailable
from callcenter.ami.protocol import Message
from callcenter.bridge.publisher import topic_part
from callcenter.campaigns import lease, pacer, scheduling, tracker
from callcenter.campaigns.agents import agent_views, counts, interface_of
from callcenter.campaigns.snapshot import (
    AgentCounts,
    CampaignFigures,
    DayFigures,
    RateFigures,
    campaign_payload,
    campaign_topic,
)
from callcenter.config import Settings
from callcenter.db.engine import make_engine
from callcenter.db.models import Call
from callcenter.db.models_campaigns import Campaign, CampaignAttempt
from callcenter.webhooks import outbox

log = logging.getLogger(__name__)

UTC = dt.UTC
#: Attempts Asterisk never answered for are ended as failed after the ring time plus this.
ORIGINATE_GRACE = 30.0
#: Seconds a requested preview waits for its agent's snapshot before it fails.
PREVIEW_AGENT_WAIT = 10.0
#: Seconds a campaign's day counters may be behind (re-read from the database this often).
COUNTS_EVERY = 5.0
#: Seconds between two reads of the campaigns (which run, their settings) and renewals of
#: their leases. Not every tick: that was a query a second whatever happened. A campaign
#: started is taken within this; one paused dials nothing more at once (each claim reads its
#: state) and its lease is let go within this.
CAMPAIGNS_EVERY = 3.0
#: Seconds the writer lets an attempt's facts gather before it writes them (see _writer).
WRITE_LINGER = 0.5
#: Seconds between two reads of a campaign's contacts' time zones: contacts imported into a
#: zone it had none in are dialled from the next read on (a scan of the campaign's contacts,
#: ~0.1 s for a million; judging every zone of the tz database at each claim, and asking the
#: database for contacts in any of ~600 of them, was most of a busy dialer's CPU).
ZONES_EVERY = 60.0


def _at(epoch: float | None) -> dt.datetime | None:
    return None if epoch is None else dt.datetime.fromtimestamp(epoch, UTC)


def _epoch(value: dt.datetime | None) -> float | None:
    return None if value is None else value.timestamp()


@dataclass
class CampaignRun:
    """A campaign this dialer holds the lease of: its settings as last read, and the pacer's
    memory (estimates and the abandon ledger), rebuilt from the attempt records at the lease's
    start and fed by every attempt's end since."""

    id: int
    name: str
    campaign: Campaign
    settings: pacer.PacerSettings
    estimates: pacer.Estimates
    ledger: pacer.AbandonLedger
    started_day: dt.date
    decision: str = "idle"
    reason: str = "starting"
    today: dict[str, int] = field(default_factory=dict)
    contacts_left: int = 0
    counted_at: float = 0.0
    #: When this dialer last took or renewed the lease (clock seconds).
    leased_at: float = 0.0
    #: The time zones of its contacts still to call (read every ZONES_EVERY seconds): the
    #: only ones whose calling window each claim needs to judge. None: not read yet.
    zones: tuple[str, ...] | None = None
    zones_at: float = 0.0
    #: agent name -> when this dialer last connected a call to them
    connected: dict[str, float] = field(default_factory=dict)


class Dialer:
    """One dialer process: its AMI link, its MQTT client, the campaigns it holds."""

    def __init__(
        self,
        settings: Settings,
        *,
        engine: Engine | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        d = settings.dialer
        self.settings = settings
        self.node = settings.node(d.node) if d.node else settings.nodes[0]
        self.holder = d.name or f"{socket.gethostname()}:{os.getpid()}"
        self.engine = engine or make_engine(settings.database)
        self.clock = clock
        self.site_tz = zoneinfo.ZoneInfo(settings.site.timezone)
        # The tracker reads call and agent events and the dialplan's UserEvents only; the
        # dialer's own AMI user, where there is one, is sent only those (ami/wanted.py DIALER).
        login = self.node.login_as(self.node.dialer_username)
        self.link = AmiLink(login, AmiClient(login, events=wanted.DIALER_EVENT_CLASSES))
        self.link.add_listener(self._on_message)
        self.link.on_connect(lambda _s: self._reconcile_soon())
        self.tracks: dict[str, tracker.Track] = {}
        self.track_campaign: dict[str, int] = {}
        self.runs: dict[int, CampaignRun] = {}
        self.agents: dict[str, dict[str, Any]] = {}
        self.bridge_online: bool | None = None
        self.node_connected: bool | None = None
        self.mqtt_connected = False
        self._writes: deque[tracker.Change] = deque()
        self._wake_writer = asyncio.Event()
        self._reconcile = False
        self._campaigns_read_at = -float("inf")
        self._outbox: dict[str, bytes] = {}
        self._wake_mqtt = asyncio.Event()
        # Set when the ticker has published its last snapshots: MQTT may close after that.
        self._ticker_done = asyncio.Event()
        prefix = settings.mqtt.topic_prefix
        node = topic_part(self.node.name)
        self.agent_filter = f"{prefix}/{node}/agents/+"
        self.node_topic = f"{prefix}/{node}/status"
        self.bridge_topic = f"{prefix}/bridge/status"

    # --- AMI events: the pure tracker, then the writer ---------------------------------------

    def _on_message(self, message: Message) -> None:
        if not tracker.may_route(message.fields, self.tracks):
            return  # another call's event: not worth typing
        event = ev.parse_event(message, self.clock(), self.node.name)
        self.on_event(event)

    def on_event(self, event: ev.Event) -> None:
        key = tracker.route(event, self.tracks)
        if key is None:
            return
        track, changes = tracker.step(self.tracks[key], event)
        self._apply(track, changes)

    def _apply(self, track: tracker.Track, changes: list[tracker.Change]) -> None:
        cid = track.channel_id
        if track.outcome is not None:
            self.tracks.pop(cid, None)
            run = self.runs.get(self.track_campaign.pop(cid, -1))
            if run is not None:
                self._learn(run, track)
        else:
            self.tracks[cid] = track
            if track.agent and track.agent_at is not None:
                run = self.runs.get(self.track_campaign.get(cid, -1))
                if run is not None:
                    run.connected[track.agent] = track.agent_at
        if changes:
            self._writes.extend(changes)
            self._wake_writer.set()

    def _learn(self, run: CampaignRun, t: tracker.Track) -> None:
        """Fold an ended attempt into the pacer's memory (the same updates as the simulation)."""
        s = run.settings
        if t.outcome in ("skipped", "lost"):
            return
        resolved = t.human_at if t.human_at is not None else (t.ended_at or t.dialled_at)
        run.estimates = pacer.observe_attempts(
            run.estimates, [(t.human_at is not None, resolved - t.dialled_at)], s
        )
        if t.agent_at is not None and t.ended_at is not None:
            run.estimates = pacer.observe_handled(run.estimates, t.ended_at - t.agent_at, s)
        live = t.human_at is not None and t.outcome in scheduling.LIVE_OUTCOMES
        if live:
            abandoned = t.outcome == "abandoned"
            day = (t.ended_at or t.dialled_at) if t.ended_at else t.dialled_at
            today = dt.datetime.fromtimestamp(day, self.site_tz).date().toordinal()
            run.ledger = pacer.record_live_answer(run.ledger, today, abandoned, s.window_days)
            if run.decision == "predictive":
                run.estimates = pacer.observe_live_answer(run.estimates, abandoned, s)

    async def _writer(self, stop: asyncio.Event) -> None:
        """Write the tracker's changes in order; a failed batch is retried (the database may
        be away for a while: the changes wait in memory, in order)."""
        backoff = Backoff(base=0.5, cap=10.0)
        while not (stop.is_set() and not self._writes):
            if not self._writes:
                self._wake_writer.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.5):
                        await self._wake_writer.wait()
                if self._writes and not stop.is_set():
                    # Let the rest of the call's facts come (ringing, answered, queued and
                    # connected are often within a second): one transaction, and one UPDATE
                    # per attempt (coalesce), instead of one each.
                    await asyncio.sleep(WRITE_LINGER)
                continue
            batch = list(self._writes)
            try:
                await asyncio.to_thread(self._write, batch)
            except sa.exc.SQLAlchemyError as exc:
                log.warning("dialer: writing %d attempt changes failed (%s); retrying",
                            len(batch), exc.__class__.__name__)  # fmt: skip
                await asyncio.sleep(backoff.next())
                if stop.is_set() and backoff.attempt > 5:
                    log.error("dialer: %d attempt changes not written at shutdown", len(batch))
                    return
                continue
            backoff.reset()
            for _ in batch:
                self._writes.popleft()

    def _write(self, batch: list[tracker.Change]) -> None:
        with Session(self.engine) as session, session.begin():
            hooks: list[int] | None = None  # read once per batch, at its first end
            for change in coalesce(batch):
                if isinstance(change, tracker.AttemptUpdate):
                    cols = {
                        k: (_at(v) if k.endswith("_at") and isinstance(v, float) else v)
                        for k, v in change.columns.items()
                    }
                    scheduling.update_attempt(session, change.channel_id, **cols)
                else:
                    t = change.track
                    if hooks is None:
                        hooks = outbox.hooks_for(session, "campaign.attempt")
                    scheduling.finish(
                        session,
                        t.channel_id,
                        t.outcome or "lost",
                        at=_at(t.ended_at) or dt.datetime.now(UTC),
                        hangup_cause=t.hangup_cause,
                        reason=t.reason,
                        facts=_final_columns(t),
                        hooks=hooks,
                    )

    # --- MQTT: agents in, campaign snapshots out ----------------------------------------------

    def on_mqtt(self, topic: str, payload: bytes) -> None:
        """One retained message from the bridge (pure bookkeeping)."""
        if topic == self.bridge_topic:
            self.bridge_online = _field(payload, "online")
            return
        if topic == self.node_topic:
            self.node_connected = _field(payload, "connected")
            return
        name = topic.rsplit("/", 1)[-1]
        if not payload:
            self.agents.pop(name, None)
            return
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError:
            log.warning("dialer: ignored a malformed agent snapshot on %s", topic)
            return
        if isinstance(data, dict) and data.get("type") == "agent":
            self.agents[name] = data

    def _client(self) -> aiomqtt.Client:
        s = self.settings.mqtt
        ident = f"{s.client_id}-dialer" if s.client_id else f"callcenter-dialer-{self.holder}"
        return aiomqtt.Client(
            s.host,
            s.port,
            username=s.username or None,
            password=s.password.reveal() or None,
            identifier=ident.replace(":", "-"),
            keepalive=s.keepalive,
            timeout=10,
        )

    async def _mqtt(self, stop: asyncio.Event) -> None:
        backoff = Backoff(base=0.5, cap=15.0)
        while not self._ticker_done.is_set():
            try:
                async with self._client() as client:
                    # QoS 0: retained state, sent again whole on every (re)subscription, so
                    # an acknowledgement per message (a packet each way, and paho's work on
                    # both) protects nothing a reconnect does not already restore.
                    for topic in (self.agent_filter, self.node_topic, self.bridge_topic):
                        await client.subscribe(topic, qos=0)
                    self.mqtt_connected = True
                    backoff.reset()
                    self._wake_mqtt.set()
                    async with asyncio.TaskGroup() as tg:
                        reader = tg.create_task(self._read_mqtt(client))
                        tg.create_task(self._publish_mqtt(client, stop, reader))
            except* aiomqtt.MqttError as group:
                if self.mqtt_connected:
                    log.warning("dialer: MQTT connection lost (%s); reconnecting",
                                group.exceptions[0])  # fmt: skip
            self.mqtt_connected = False
            # Agent state from a broker we no longer hear is not state: dial nothing.
            self.agents.clear()
            self.bridge_online = self.node_connected = None
            if not self._ticker_done.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(backoff.next()):
                        await self._ticker_done.wait()

    async def _read_mqtt(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = message.payload
            data = payload if isinstance(payload, bytes) else b""
            self.on_mqtt(str(message.topic), data)

    async def _publish_mqtt(
        self, client: aiomqtt.Client, stop: asyncio.Event, reader: asyncio.Task[None]
    ) -> None:
        while True:
            if self._ticker_done.is_set() and not self._outbox:
                reader.cancel()
                return
            self._wake_mqtt.clear()
            out, self._outbox = self._outbox, {}
            try:
                for topic, data in out.items():
                    await client.publish(topic, data, qos=1, retain=True, timeout=10)
            except aiomqtt.MqttError:
                # Not sent: keep them (newer payloads of the same topics win).
                self._outbox = {**out, **self._outbox}
                raise
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.5):
                    await self._wake_mqtt.wait()

    # --- the tick ----------------------------------------------------------------------------

    def _reconcile_soon(self) -> None:
        self._reconcile = True

    def agents_known(self) -> tuple[bool, str]:
        if not self.mqtt_connected:
            return False, "no MQTT connection: agent state unknown"
        if self.bridge_online is False:
            return False, "the AMI bridge is offline: agent state unknown"
        if self.node_connected is False:
            return False, f"the bridge has lost node {self.node.name}: agent state unknown"
        if self.bridge_online is None:
            return False, "no word from the AMI bridge yet: agent state unknown"
        return True, ""

    async def run(self, stop: asyncio.Event) -> None:
        """Dial until ``stop`` is set; then place nothing new, let the lease go, and finish
        writing what the calls in progress reported."""
        log.info("dialer %s: dialling through node %s", self.holder, self.node.name)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.link.run(stop))
            tg.create_task(self._mqtt(stop))
            tg.create_task(self._writer(stop))
            tg.create_task(self._ticker(stop))

    async def _ticker(self, stop: asyncio.Event) -> None:
        period = self.settings.dialer.tick
        while not stop.is_set():
            started = time.monotonic()
            try:
                await self.tick()
            except sa.exc.SQLAlchemyError as exc:
                log.warning("dialer: database unavailable (%s); dialling nothing",
                            exc.__class__.__name__)  # fmt: skip
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(period - (time.monotonic() - started), 0.05)):
                    await stop.wait()
        try:
            await asyncio.to_thread(self._release_all)
            self._publish_all(stopping=True)
        finally:
            self._ticker_done.set()
            self._wake_mqtt.set()

    async def tick(self) -> None:
        now = self.clock()
        if self._reconcile and self.link.connected:
            self._reconcile = False
            await self._reconcile_channels(now)
        for cid, track in list(self.tracks.items()):
            run = self.runs.get(self.track_campaign.get(cid, -1))
            ring = run.campaign.ring_seconds if run else 60
            t, changes = tracker.expire(track, now, ring + ORIGINATE_GRACE)
            if changes:
                self._apply(t, changes)
        # A third of the lease at most: it is renewed a third of the way through.
        every = min(CAMPAIGNS_EVERY, self.settings.dialer.lease_seconds / 3)
        if now - self._campaigns_read_at >= every:
            self._campaigns_read_at = now
            fresh = await asyncio.to_thread(self._hold_leases, now)
            if fresh:
                self._reconcile = True
        for run in list(self.runs.values()):
            await self._pace(run, now)
        self._publish_all()

    # --- leases and campaign state (database, in a thread) ------------------------------------

    def _hold_leases(self, now: float) -> bool:
        """Renew or take the lease of every running campaign; let go of the rest. True when a
        campaign was newly taken (its open attempts were loaded: check their channels)."""
        at = _at(now)
        assert at is not None
        ttl = self.settings.dialer.lease_seconds
        fresh = False
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            running = session.scalars(sa.select(Campaign).where(Campaign.state == "running")).all()
            wanted = {c.id: c for c in running}
            for cid in list(self.runs):
                if cid not in wanted:
                    lease.release(session, cid, self.holder)
                    self._drop(cid, "campaign no longer running")
            for c in running:
                run = self.runs.get(c.id)
                # Renewed a third of the way through, not every tick: while it is ours and
                # unexpired, no other dialer can take it.
                due = run is None or now - run.leased_at >= ttl / 3
                if due and not lease.acquire(session, c.id, self.holder, now=at, ttl=ttl):
                    if c.id in self.runs:
                        self._drop(c.id, "lease taken by another dialer")
                    continue
                if run is None:
                    run = self.runs[c.id] = self._start_run(session, c, now)
                    fresh = True
                else:
                    run.campaign = c
                    run.settings = _pacer_settings(c)
                if due:
                    run.leased_at = now
                grew = False
                if now - run.counted_at >= COUNTS_EVERY:
                    left = run.contacts_left
                    self._count(session, run, now)
                    grew = run.contacts_left > left  # contacts imported: maybe new zones
                if run.zones is None or grew or now - run.zones_at >= ZONES_EVERY:
                    run.zones = tuple(scheduling.contact_zones(session, c.id))
                    run.zones_at = now
        return fresh

    def _drop(self, campaign_id: int, why: str) -> None:
        run = self.runs.pop(campaign_id, None)
        if run is not None:
            log.info("dialer: campaign %s released: %s", run.name, why)
            self._outbox[campaign_topic(self.settings.mqtt.topic_prefix, run.name)] = orjson.dumps(
                campaign_payload(self._figures(run, [], self.clock()))
            )
            self._wake_mqtt.set()

    def _start_run(self, session: Session, c: Campaign, now: float) -> CampaignRun:
        s = _pacer_settings(c)
        estimates = pacer.initial_estimates(s)
        estimates = pacer.observe_attempts(
            estimates, scheduling.recent_outcomes(session, c.id, limit=s.attempt_memory), s
        )
        for seconds in scheduling.recent_handle_seconds(session, c.id, limit=s.handle_memory):
            estimates = pacer.observe_handled(estimates, seconds, s)
        today = dt.datetime.fromtimestamp(now, self.site_tz).date()
        since = today - dt.timedelta(days=s.window_days - 1)
        days = tuple(
            pacer.DayCount(day.toordinal(), live, abandoned)
            for day, live, abandoned in scheduling.ledger_days(session, c.id, since)
        )
        life_live, life_abandoned = scheduling.life_counts(session, c.id)
        ledger = pacer.AbandonLedger(days, life_live, life_abandoned)
        started = c.started_at.astimezone(self.site_tz).date() if c.started_at else today
        run = CampaignRun(c.id, c.name, c, s, estimates, ledger, started)
        for a in scheduling.open_attempts(session, c.id):
            # A preview on an agent's screen, or one asked for and not yet dialled, has no
            # call: the next tick dials the requested ones.
            if a.channel_id is None or a.channel_id in self.tracks:
                continue
            if a.phase in ("previewing", "requested"):
                continue
            self.tracks[a.channel_id] = _track_of(a, c)
            self.track_campaign[a.channel_id] = c.id
        log.info("dialer %s: holds campaign %s (%s)", self.holder, c.name, c.mode)
        return run

    def _count(self, session: Session, run: CampaignRun, now: float) -> None:
        today = dt.datetime.fromtimestamp(now, self.site_tz).date()
        row = session.execute(
            sa.select(
                sa.func.count().filter(CampaignAttempt.outcome.is_distinct_from("skipped")),
                sa.func.count().filter(scheduling.IS_LIVE),
                sa.func.count().filter(CampaignAttempt.outcome == "connected"),
                sa.func.count().filter(CampaignAttempt.outcome == "abandoned"),
            ).where(CampaignAttempt.campaign_id == run.id, CampaignAttempt.day == today)
        ).one()
        run.today = dict(
            zip(("attempts", "live", "connected", "abandoned"), map(int, row), strict=True)
        )
        run.contacts_left = scheduling.contacts_unfinished(session, run.id)
        run.counted_at = now

    def _release_all(self) -> None:
        with (
            contextlib.suppress(sa.exc.SQLAlchemyError),
            Session(self.engine) as session,
            session.begin(),
        ):
            for cid in self.runs:
                lease.release(session, cid, self.holder)

    # --- pacing and dialling ------------------------------------------------------------------

    def in_flight(self, run: CampaignRun) -> list[tracker.Track]:
        return [
            t
            for cid, t in self.tracks.items()
            if self.track_campaign.get(cid) == run.id and t.in_flight
        ]

    async def _pace(self, run: CampaignRun, now: float) -> None:
        c = run.campaign
        flying = self.in_flight(run)
        limit = c.channel_limit - len(
            [cid for cid, camp in self.track_campaign.items() if camp == run.id]
        )
        if not self.link.connected:
            run.decision, run.reason = "idle", f"no AMI connection to node {self.node.name}"
            return
        if c.mode == "preview":
            run.decision, run.reason = "preview", "agents take contacts one by one"
            await self._dial_requested(run, now)
            return
        if c.mode == "agentless":
            n = max(limit, 0)
            run.decision, run.reason = "agentless", f"{len(flying)} of {c.channel_limit} lines"
            paced = "agentless"
        else:
            ok, why = self.agents_known()
            if not ok:
                run.decision, run.reason = "idle", why
                return
            views = self._views(run, now)
            calls = [pacer.CallInFlight(t.dialled_at, t.waiting_since) for t in flying]
            today = dt.datetime.fromtimestamp(now, self.site_tz).date().toordinal()
            decision = pacer.decide(
                views, calls, run.estimates, run.ledger, run.settings, now=now, today=today
            )
            n = min(decision.dials, max(limit, 0))
            paced = decision.mode.value
            run.decision, run.reason = paced, decision.reason
        if n <= 0:
            return
        claimed = await asyncio.to_thread(self._claim, run, n, now, paced)
        if not claimed and run.decision != "idle":
            run.reason = f"nothing to dial: no contact due in its calling window ({run.reason})"
        for item in claimed:
            self._originate(run, item, now)

    def _views(self, run: CampaignRun, now: float) -> list[pacer.AgentView]:
        queue = run.campaign.queue or ""
        return agent_views(self.agents.values(), queue, now=now, connected=run.connected)

    def _claim(self, run: CampaignRun, n: int, now: float, paced: str) -> list[scheduling.Claimed]:
        at = _at(now)
        assert at is not None
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            campaign = session.get(Campaign, run.id)
            if campaign is None or campaign.state != "running":
                return []
            return scheduling.claim(
                session,
                campaign,
                n,
                now=at,
                dialer=self.holder,
                node=self.node.name,
                paced=paced,
                caller_id=campaign.caller_id,
                site_tz=self.site_tz,
                zones=run.zones,
            )

    def _originate(self, run: CampaignRun, item: scheduling.Claimed, now: float) -> None:
        c = run.campaign
        variables = _variables(c, item)
        context = "outbound-agentless" if c.mode == "agentless" else "outbound-campaign"
        action: dict[str, Any] = {
            "Action": "Originate",
            "ActionID": item.channel_id,
            "ChannelId": item.channel_id,
            "OtherChannelId": tracker.other_id(item.channel_id),
            "Channel": customer_channel(self.settings, item.phone, c.trunk),
            "Context": context,
            "Exten": "s",
            "Priority": "1",
            "Timeout": str(c.ring_seconds * 1000),
            "CallerID": f'"{c.seller_name}" <{c.caller_id}>' if c.caller_id else "",
            "Variable": [f"{k}={v}" for k, v in variables.items()],
            "Async": "true",
        }
        self._send(run, item, action, now, preview=False)

    def _send(
        self,
        run: CampaignRun,
        item: scheduling.Claimed,
        action: dict[str, Any],
        now: float,
        *,
        preview: bool,
    ) -> None:
        track = tracker.Track(item.channel_id, run.name, now, amd=run.campaign.amd, preview=preview)
        self.tracks[item.channel_id] = track
        self.track_campaign[item.channel_id] = run.id
        self._writes.append(tracker.AttemptUpdate(item.channel_id, {"originated_at": now}))
        self._wake_writer.set()
        try:
            self.link.session().send_into_stream({k: v for k, v in action.items() if v != ""})
        except (AmiUnavailable, AmiError, ValueError) as exc:
            # Asterisk never got it: the attempt ends as failed, and the contact is retried.
            failed = replace(track, ended_at=now, outcome="failed", phase="ended",
                             reason=f"originate not sent: {exc}"[:200])  # fmt: skip
            self._apply(failed, [tracker.AttemptEnded(failed)])

    async def _dial_requested(self, run: CampaignRun, now: float) -> None:
        """Preview: originate the agent's phone for each contact an agent asked to dial."""
        known, why = self.agents_known()
        if not known:
            run.reason = f"preview: {why}"
            return
        requested = await asyncio.to_thread(self._requested, run.id, now)
        by_name = {str(p.get("agent")): p for p in self.agents.values()}
        c = run.campaign
        for attempt in requested:
            if attempt.channel_id is None or attempt.channel_id in self.tracks:
                continue
            payload = by_name.get(attempt.agent or "")
            interface = interface_of(payload) if payload else None
            item = scheduling.Claimed(
                attempt.id, attempt.channel_id, attempt.contact_id or 0, attempt.phone,
                "", "", attempt.attempt_no, {},
            )  # fmt: skip
            if interface is None:
                failed = tracker.Track(
                    attempt.channel_id, run.name, now, preview=True, phase="ended",
                    ended_at=now, outcome="failed",
                    reason=f"agent {attempt.agent!r} is not logged in to a phone",
                )  # fmt: skip
                self.track_campaign[attempt.channel_id] = run.id
                self._apply(failed, [tracker.AttemptEnded(failed)])
                continue
            variables = _variables(c, item)
            variables["CAMPAIGN_CUSTOMER"] = customer_channel(self.settings, attempt.phone, c.trunk)
            variables["CAMPAIGN_RING"] = str(c.ring_seconds)
            variables["CAMPAIGN_CALLER_ID"] = c.caller_id
            action: dict[str, Any] = {
                "Action": "Originate",
                "ActionID": attempt.channel_id,
                "ChannelId": attempt.channel_id,
                "OtherChannelId": tracker.other_id(attempt.channel_id),
                "Channel": interface,
                "Context": "outbound-preview",
                "Exten": "s",
                "Priority": "1",
                "Timeout": "30000",
                "CallerID": f'"{attempt.phone}" <{attempt.phone}>',
                "Variable": [f"{k}={v}" for k, v in variables.items()],
                "Async": "true",
            }
            self._send(run, item, action, now, preview=True)

    def _requested(self, campaign_id: int, now: float) -> list[CampaignAttempt]:
        """The requested previews to dial now, marked dialling. One whose agent has no
        snapshot yet (a log-in the bridge has not published) waits up to
        :data:`PREVIEW_AGENT_WAIT` seconds, then fails."""
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            rows = []
            for a in scheduling.requested(session, campaign_id):
                known = any(p.get("agent") == a.agent for p in self.agents.values())
                if not known and now - a.created_at.timestamp() < PREVIEW_AGENT_WAIT:
                    continue
                a.phase = "dialling"
                rows.append(a)
            return rows

    # --- after a reconnect or a restart --------------------------------------------------------

    async def _reconcile_channels(self, now: float) -> None:
        """End the attempts whose channel Asterisk no longer has."""
        try:
            reply = await self.link.send({"Action": "CoreShowChannels"}, as_list=True, timeout=10)
        except (AmiUnavailable, AmiError, TimeoutError) as exc:
            log.warning("dialer: cannot list channels (%s); will try again", exc)
            self._reconcile = True
            return
        alive = {m.fields.get("Uniqueid", "") for m in reply.events}
        stale = [
            t
            for cid, t in self.tracks.items()
            if cid not in alive and tracker.other_id(cid) not in alive and now - t.dialled_at > 2
        ]
        if not stale:
            return
        logged = await asyncio.to_thread(self._call_log, [t.channel_id for t in stale])
        for t in stale:
            agent, outcome = logged.get(t.channel_id, (None, None))
            done, changes = tracker.gone(t, now, call_agent=agent, call_outcome=outcome)
            self._apply(done, changes)

    def _call_log(self, ids: Iterable[str]) -> dict[str, tuple[str | None, str | None]]:
        with Session(self.engine) as session:
            rows = session.execute(
                sa.select(Call.uniqueid, Call.agent, Call.outcome).where(
                    Call.uniqueid.in_(list(ids)), Call.node == self.node.name
                )
            ).all()
        return {str(u): (a, o) for u, a, o in rows}

    # --- the live view -----------------------------------------------------------------------

    def _figures(
        self, run: CampaignRun, flying: list[tracker.Track], now: float
    ) -> CampaignFigures:
        c = run.campaign
        views = self._views(run, now) if c.mode != "agentless" else []
        mine = [t for cid, t in self.tracks.items() if self.track_campaign.get(cid) == run.id]
        today_ord = dt.datetime.fromtimestamp(now, self.site_tz).date().toordinal()
        budget = pacer.abandon_budget(run.ledger, run.settings, today_ord)
        state = c.state if run.id in self.runs else "stopped" if c.state == "running" else c.state
        return CampaignFigures(
            campaign=c.name,
            mode=c.mode,
            state=state,
            queue=c.queue,
            paced=run.decision if run.id in self.runs else "idle",
            reason=run.reason,
            dialling=sum(1 for t in mine if t.phase == "dialling"),
            ringing=sum(1 for t in mine if t.phase in ("ringing", "answered")),
            waiting=sum(1 for t in mine if t.phase == "queued"),
            connected=sum(1 for t in mine if t.phase == "connected"),
            messages=sum(1 for t in mine if t.phase == "message"),
            agents=AgentCounts(**counts(views)),
            today=DayFigures(
                **{k: run.today.get(k, 0) for k in ("attempts", "live", "connected", "abandoned")}
            ),
            window=RateFigures(
                budget.window_live, budget.window_abandoned, days=run.settings.window_days
            ),
            life=RateFigures(run.ledger.life_live, run.ledger.life_abandoned),
            cap=c.abandon_cap,
            target=c.abandon_target,
            budget_left=round(budget.left, 2),
            contacts_left=run.contacts_left,
            dialer=self.holder,
            at=round(now, 3),
        )

    def _publish_all(self, *, stopping: bool = False) -> None:
        now = self.clock()
        prefix = self.settings.mqtt.topic_prefix
        for run in self.runs.values():
            figures = self._figures(run, self.in_flight(run), now)
            if stopping:
                figures = replace(figures, state="stopped" if run.campaign.state == "running"
                                  else run.campaign.state, paced="idle",
                                  reason="the dialer stopped")  # fmt: skip
            self._outbox[campaign_topic(prefix, run.name)] = orjson.dumps(campaign_payload(figures))
        if self._outbox:
            self._wake_mqtt.set()


# --- helpers -----------------------------------------------------------------------------------


def coalesce(batch: Iterable[tracker.Change]) -> list[tracker.Change]:
    """The same writes in fewer statements: an attempt's updates in one batch (ringing,
    answered, queued, connected... often within a second) merged into one, the later value
    of a column winning, placed where the first was; an attempt's end stays after them.
    Different attempts are different rows, so their order does not matter."""
    out: list[tracker.Change] = []
    merged: dict[str, int] = {}  # channel -> index in out of its open merged update
    for change in batch:
        if isinstance(change, tracker.AttemptUpdate):
            i = merged.get(change.channel_id)
            if i is None:
                merged[change.channel_id] = len(out)
                out.append(change)
            else:
                prev = out[i]
                assert isinstance(prev, tracker.AttemptUpdate)
                out[i] = tracker.AttemptUpdate(
                    change.channel_id, {**prev.columns, **change.columns}
                )
        else:
            merged.pop(change.track.channel_id, None)
            out.append(change)
    return out


def _field(payload: bytes, key: str) -> bool | None:
    if not payload:
        return None
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, bool) else None


def _pacer_settings(c: Campaign) -> pacer.PacerSettings:
    return pacer.PacerSettings(
        cap=c.abandon_cap,
        target=min(c.abandon_target, c.abandon_cap * 0.999),
        predictive=c.mode == "predictive",
    )


def customer_channel(settings: Settings, phone: str, trunk: str | None = None) -> str:
    """How a customer's number is dialled: ``[dialer] customer_channel`` with the number
    (without its ``+`` when ``strip_plus``) and the trunk (else the first outbound one by
    name). The dialer and the agent's desktop's click to call both dial this way."""
    d = settings.dialer
    number = phone.removeprefix("+") if d.strip_plus else phone
    if not trunk:
        outbound = sorted(t.name for t in settings.trunks if t.outbound)
        trunk = outbound[0] if outbound else ""
    return d.customer_channel.format(number=number, trunk=trunk)


def _variables(c: Campaign, item: scheduling.Claimed) -> dict[str, str]:
    """The channel variables [outbound-campaign] and [outbound-agentless] read."""
    v = {
        "CAMPAIGN_ID": c.name,
        "CAMPAIGN_QUEUE": c.queue or "",
        "CAMPAIGN_AMD": "yes" if c.amd else "no",
        "CAMPAIGN_MACHINE": c.machine_action,
        "CAMPAIGN_MESSAGE": c.machine_message,
        # AMD's HUMAN verdict comes 0.8 s after the greeting: 1 s of Queue() keeps the 2 s.
        "CAMPAIGN_CONNECT_SECONDS": "1" if c.amd else "2",
        "DIALER_ABANDON_MESSAGE": c.abandon_message,
        "CAMPAIGN_SELLER_NUMBER": c.seller_number,
        "CAMPAIGN_AGENTLESS": c.agentless_action,
        "CAMPAIGN_AGENTLESS_MESSAGE": c.agentless_message,
        "CAMPAIGN_SURVEY_IVR": c.survey_ivr,
        "CAMPAIGN_SURVEY_QUEUE": str(item.fields.get("queue", "")),
        "CAMPAIGN_SURVEY_AGENT": str(item.fields.get("agent", "")),
    }
    # Originate's Variable header splits on commas nowhere, but a value with a CR/LF is
    # refused by the encoder: drop what a channel variable cannot carry.
    return {k: val.replace("\r", "").replace("\n", "") for k, val in v.items() if val != ""}


def _track_of(a: CampaignAttempt, c: Campaign) -> tracker.Track:
    """An open attempt record as a track (after a restart of the dialer)."""
    assert a.channel_id is not None
    phase = a.phase if a.phase in tracker.IN_FLIGHT | {"connected", "message"} else "dialling"
    return tracker.Track(
        a.channel_id,
        c.name,
        _epoch(a.originated_at or a.created_at) or 0.0,
        amd=c.amd,
        preview=a.mode == "preview",
        phase=phase,
        seen_channel=a.answered_at is not None,
        answered_at=_epoch(a.answered_at),
        amd_status=a.amd_status,
        amd_cause=a.amd_cause,
        human_at=_epoch(a.human_at),
        queued_at=_epoch(a.queued_at),
        agent=a.agent or "",
        agent_at=_epoch(a.agent_at),
        message=a.message,
        message_kind=_message_kind(a, c),
        message_started_at=_epoch(a.message_started_at),
        message_ended_at=_epoch(a.message_ended_at),
        dial_status=a.dial_status or "",
        originate_reason=a.originate_reason,
        originate_response="Failure" if a.originate_reason is not None else "restored",
    )


def _message_kind(a: CampaignAttempt, c: Campaign) -> str:
    if a.message_started_at is None:
        return ""
    if c.mode == "agentless" and a.amd_status != "MACHINE":
        return "agentless"
    if a.amd_status == "MACHINE":
        return "machine"
    return "abandon"


def _final_columns(t: tracker.Track) -> dict[str, Any]:
    # A message cut short by a hang-up ends with the call.
    message_end = t.message_ended_at or (t.ended_at if t.message_started_at else None)
    cols: dict[str, Any] = {
        "answered_at": _at(t.answered_at),
        "human_at": _at(t.human_at),
        "queued_at": _at(t.queued_at),
        "agent_at": _at(t.agent_at),
        "message_started_at": _at(t.message_started_at),
        "message_ended_at": _at(message_end),
        "amd_status": t.amd_status[:16],
        "amd_cause": t.amd_cause[:64],
        "message": t.message[:200],
    }
    if t.agent:
        cols["agent"] = t.agent[:80]
    return {k: v for k, v in cols.items() if v is not None and v != ""}
