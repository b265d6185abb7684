"""Pushing to agents' pages: screen-pops with the caller's history, and the agent's own state.

:meth:`Desk.tap` sees every MQTT message the wallboard receives (cheap, no I/O). A call
message that rings an agent (:class:`~.pops.PopTracker`) is pushed to that agent's open pages
at once as a ``pop`` event (who calls, IVR path, queue, wait); the history follows as a
``history`` event once read from the database in a thread: the customer's past calls with
their dispositions and notes, open cases and survey scores (:func:`callcenter.crm.customers.
caller_history`), or for a campaign's call the contact's fields and the customer of the
number dialled. An agent's snapshot (``<prefix>/<node>/agents/<agent>``) is pushed to their
pages as a ``state`` event. Asterisk stays the one source of agent state: the page shows
what the bridge reports, and acts only through AMI.

A page that falls behind (``limit`` events waiting) is dropped; its EventSource reconnects and
gets the current pop again.

"Disposition required" (``queues update Q --disposition-required``): when an agent's snapshot
says their call of such a queue ended and no disposition of it is saved, the agent is paused
over AMI with the reason :data:`DOCUMENTING` (in every queue, as their own pause would be),
and unpaused when they save it: :meth:`Desk.documented`. A pause of their own meanwhile is
left alone.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from callcenter.campaigns.numbers import Normaliser
from callcenter.crm.customers import caller_history
from callcenter.crm.documentation import mark_undocumented
from callcenter.db.models import Queue
from callcenter.db.models_campaigns import Campaign, CampaignAttempt, Contact
from callcenter.db.models_crm import CallDisposition
from callcenter.jsonable import plain
from callcenter.wallboard.control import AgentControl, ControlError
from callcenter.wallboard.desk.pops import Pop, PopTracker, call_ended_for
from callcenter.wallboard.hub import encode
from callcenter.wallboard.live import LiveState

log = logging.getLogger(__name__)

#: Pop latencies kept for /metrics and the benchmark (seconds, message in -> bytes queued).
LATENCIES = 4096
#: Seconds between looks for answered calls left undocumented.
UNDOCUMENTED_EVERY = 30.0
#: Seconds a queue's "disposition required" is believed before it is read again.
REQUIRES_TTL = 30.0
#: The pause reason of an agent who must document their last call first.
DOCUMENTING = "documenting"


@dataclass(eq=False)  # identity: a set holds the open pages
class DeskSub:
    """One open agent page: its pending events and a wake-up."""

    agent: str
    limit: int = 64
    pending: collections.deque[bytes] = field(default_factory=collections.deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    dropped: bool = False

    def offer(self, data: bytes) -> None:
        if len(self.pending) >= self.limit:
            self.dropped = True
        else:
            self.pending.append(data)
        self.wake.set()

    def take(self) -> bytes:
        data = b"".join(self.pending)
        self.pending.clear()
        self.wake.clear()
        return data


class Desk:
    def __init__(
        self,
        engine: Engine,
        region: str,
        *,
        clock: Callable[[], float] = time.time,
        history_calls: int = 10,
    ) -> None:
        self.engine = engine
        self.numbers = Normaliser(region)
        self.clock = clock
        self.history_calls = history_calls
        self.tracker = PopTracker()
        self.subs: dict[str, set[DeskSub]] = {}
        #: agent -> the last pop and its history: what a page opened mid-call shows.
        self.current: dict[str, dict[str, Any]] = {}
        #: agent -> their last pop, whose history nobody has asked for yet: an agent without
        #: an open page costs no history query per call (it is read when a page opens).
        self._unread: dict[str, Pop] = {}
        #: agent -> their latest snapshot (the bridge's agent payload).
        self.states: dict[str, dict[str, Any]] = {}
        self.latencies: collections.deque[float] = collections.deque(maxlen=LATENCIES)
        self._tasks: set[asyncio.Task[None]] = set()
        #: Set by the app once built: the live state (agents' interfaces) and AMI.
        self.state: LiveState | None = None
        self.control: AgentControl | None = None
        #: agent -> (node, uniqueid) of the call they were paused to document
        self.documenting: dict[str, tuple[str, str]] = {}
        #: queue -> (whether it requires a disposition, when that was read): queues change
        #: rarely, calls end many times a second.
        self._requires: dict[str, tuple[bool, float]] = {}

    # --- pages --------------------------------------------------------------------------

    def subscribe(self, agent: str) -> DeskSub:
        """A page opened (in the event loop). The history of the agent's current pop, not read
        while no page was open, is read now and follows the opening events."""
        sub = DeskSub(agent)
        self.subs.setdefault(agent, set()).add(sub)
        pop = self._unread.pop(agent, None)
        if pop is not None:
            self._spawn(self._history(pop))
        return sub

    def unsubscribe(self, sub: DeskSub) -> None:
        held = self.subs.get(sub.agent)
        if held is not None:
            held.discard(sub)
            if not held:
                del self.subs[sub.agent]

    def _push(self, agent: str, event: str, data: dict[str, Any]) -> None:
        subs = self.subs.get(agent)
        if not subs:
            return
        message = encode(event, data)
        for sub in subs:
            sub.offer(message)

    def opening(self, agent: str) -> bytes:
        """What a page gets when it connects: the agent's state and current pop."""
        out = b""
        if agent in self.states:
            out += encode("state", self.states[agent])
        current = self.current.get(agent)
        if current is not None:
            out += encode("pop", current["pop"])
            if "history" in current:
                out += encode("history", current["history"])
        return out

    # --- the feed -----------------------------------------------------------------------

    def tap(self, topic: str, payload: bytes | bytearray | Any) -> None:
        """One MQTT message, as the wallboard received it."""
        if not isinstance(payload, bytes | bytearray) or not payload:
            return
        kind = topic.rsplit("/", 2)[-2] if topic.count("/") >= 2 else ""
        if kind not in ("calls", "agents"):
            return
        try:
            data = orjson.loads(payload)
        except ValueError:
            return
        if not isinstance(data, dict):
            return
        if kind == "agents":
            agent = data.get("agent")
            if data.get("type") == "agent" and isinstance(agent, str):
                ended = call_ended_for(self.states.get(agent), data)
                self.states[agent] = data
                self._push(agent, "state", data)
                node = data.get("node")
                if ended is not None and isinstance(node, str):
                    self._spawn(self._require_disposition(agent, node, *ended))
            return
        for pop in self.tracker.on_call(data, self.clock()):
            self._pop(pop)

    def _pop(self, pop: Pop) -> None:
        view = pop.view()
        self.current[pop.agent] = {"pop": view}
        self._push(pop.agent, "pop", view)
        self.latencies.append(self.clock() - pop.at)
        if self.subs.get(pop.agent):
            self._unread.pop(pop.agent, None)
            self._spawn(self._history(pop))
        else:  # nobody looks: read it if and when a page opens during this call
            self._unread[pop.agent] = pop

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- disposition required -----------------------------------------------------------

    def _undocumented(self, node: str, uniqueid: str, queue: str, agent: str) -> bool:
        """Whether the queue needs a disposition and the agent has saved none (a thread)."""
        with Session(self.engine) as session:
            known = self._requires.get(queue)
            now = time.monotonic()
            if known is None or now - known[1] >= REQUIRES_TTL:
                required = bool(
                    session.scalar(sa.select(Queue.disposition_required).where(Queue.name == queue))
                )
                self._requires[queue] = (required, now)
            else:
                required = known[0]
            if not required:
                return False
            saved = session.scalar(
                sa.select(CallDisposition.id).where(
                    CallDisposition.node == node,
                    CallDisposition.uniqueid == uniqueid,
                    CallDisposition.agent == agent,
                    CallDisposition.code.is_not(None),
                )
            )
            return saved is None

    async def _require_disposition(self, agent: str, node: str, uniqueid: str, queue: str) -> None:
        try:
            if not await asyncio.to_thread(self._undocumented, node, uniqueid, queue, agent):
                return
        except sa.exc.SQLAlchemyError as exc:
            log.warning("desk: cannot tell whether %s documented %s (%s)", agent, uniqueid,
                        exc.__class__.__name__)  # fmt: skip
            return
        live = self.state.agents.get((node, agent)) if self.state else None
        if live is None or self.control is None or live.state == "logged_out":
            return
        try:
            await self.control.pause(live, DOCUMENTING, f"desk ({queue} needs a disposition)")
        except ControlError as exc:
            log.warning("desk: cannot pause %s to document %s: %s", agent, uniqueid, exc)
            return
        self.documenting[agent] = (node, uniqueid)
        self._push(agent, "documenting", {"node": node, "uniqueid": uniqueid, "queue": queue})

    async def documented(self, agent: str, node: str, uniqueid: str) -> None:
        """The agent saved the disposition of ``uniqueid``: end the pause it held them in
        (not one of their own: only while paused with :data:`DOCUMENTING`)."""
        if self.documenting.get(agent) != (node, uniqueid):
            return
        del self.documenting[agent]
        live = self.state.agents.get((node, agent)) if self.state else None
        if live is None or self.control is None or live.reason != DOCUMENTING:
            return
        try:
            await self.control.unpause(live, "desk (disposition saved)")
        except ControlError as exc:
            log.warning("desk: cannot unpause %s after documenting: %s", agent, exc)

    async def _history(self, pop: Pop) -> None:
        try:
            history = await asyncio.to_thread(self.history, pop.node, pop.uniqueid,
                                              pop.caller_number)  # fmt: skip
        except sa.exc.SQLAlchemyError as exc:
            log.warning("desk: no history for %s (%s)", pop.uniqueid, exc.__class__.__name__)
            history = {"uniqueid": pop.uniqueid, "error": "the call log is unavailable"}
        current = self.current.get(pop.agent)
        if current is not None and current["pop"]["uniqueid"] == pop.uniqueid:
            current["history"] = history
        self._push(pop.agent, "history", history)

    def history(self, node: str, uniqueid: str, caller_number: str) -> dict[str, Any]:
        """The pop's history (blocking: in a thread). A campaign's call shows the contact
        (its fields from the list) and the history of the number dialled."""
        with Session(self.engine) as session:
            contact = session.execute(
                sa.select(Contact.phone, Contact.name, Contact.fields, Campaign.name)
                .join(CampaignAttempt, CampaignAttempt.contact_id == Contact.id)
                .join(Campaign, Campaign.id == Contact.campaign_id)
                .where(CampaignAttempt.channel_id == uniqueid)
            ).first()
            number = str(contact[0]) if contact else caller_number
            found = caller_history(
                session, self.numbers, number, limit=self.history_calls,
                exclude_uniqueid=uniqueid,
            )  # fmt: skip
        out: dict[str, Any] = plain(found.as_dict())
        out["uniqueid"] = uniqueid
        out["node"] = node
        if contact is not None:
            out["contact"] = {
                "phone": contact[0], "name": contact[1], "fields": contact[2],
                "campaign": contact[3],
            }  # fmt: skip
        return out

    async def run(self, every: float = UNDOCUMENTED_EVERY) -> None:
        """Until cancelled: mark answered calls left without a disposition after their
        wrap-up as "not documented" (:func:`callcenter.crm.documentation.mark_undocumented`),
        which reports count."""
        while True:
            try:
                marked = await asyncio.to_thread(self._mark)
                if marked:
                    log.info("desk: %d answered calls not documented", marked)
            except sa.exc.SQLAlchemyError as exc:
                log.warning("desk: cannot mark undocumented calls (%s)", exc.__class__.__name__)
            await asyncio.sleep(every)

    def _mark(self) -> int:
        with Session(self.engine) as session, session.begin():
            return mark_undocumented(session, dt.datetime.now(dt.UTC))

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
