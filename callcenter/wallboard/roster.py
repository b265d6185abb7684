"""The configured queues and agents (``queues``, ``agents``, ``queue_members``), so the board
shows every one of them from the start: a queue nobody has called yet, an agent who has not
logged in (dimmed, with a Log in control), and their display and full names.

What the board says of an agent's *state* still comes only from the bridge (MQTT): the
roster says who should be on the board and under which names, never who is logged in.

:class:`RosterCache` reads it in a worker thread every ``period`` seconds (and when a
supervisor logs an agent in, so the memberships sent are the current ones) and tells the
board what changed; while the database is away the last roster stays. Browsers' requests
never wait for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from callcenter.db.models import Agent, Queue, QueueMember

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RosterQueue:
    name: str
    display_name: str
    service_level_seconds: int


@dataclass(frozen=True, slots=True)
class RosterAgent:
    name: str
    full_name: str
    extension: str
    enabled: bool
    queues: dict[str, int] = field(default_factory=dict)  # queue -> penalty

    @property
    def interface(self) -> str:
        """The agent's phone, as ``*11`` adds it to queues (PJSIP/<extension>)."""
        return f"PJSIP/{self.extension}"


@dataclass(frozen=True, slots=True)
class Roster:
    queues: dict[str, RosterQueue] = field(default_factory=dict)
    agents: dict[str, RosterAgent] = field(default_factory=dict)

    def changes(self, other: Roster) -> tuple[set[str], set[str]]:
        """The queue names and agent names whose entries differ between the two."""
        queues = {q for q in self.queues.keys() | other.queues.keys()
                  if self.queues.get(q) != other.queues.get(q)}  # fmt: skip
        agents = {a for a in self.agents.keys() | other.agents.keys()
                  if self.agents.get(a) != other.agents.get(a)}  # fmt: skip
        return queues, agents


#: Two plain statements, read column by column: loading ORM objects (every column of every
#: agent, with their memberships and queues) every ten seconds was a twentieth of a busy
#: wallboard's CPU (the soak's profile), for a roster that rarely changes.
_QUEUES = sa.select(Queue.name, Queue.display_name, Queue.service_level_seconds).order_by(
    Queue.name
)
_AGENTS = (
    sa.select(Agent.name, Agent.full_name, Agent.extension, Agent.enabled, Queue.name,
              QueueMember.penalty)
    .outerjoin(QueueMember, QueueMember.agent_id == Agent.id)
    .outerjoin(Queue, Queue.id == QueueMember.queue_id)
    .order_by(Agent.name)
)  # fmt: skip


def load_roster(session: Session) -> Roster:
    queues = {
        name: RosterQueue(name, display_name or "", seconds)
        for name, display_name, seconds in session.execute(_QUEUES)
    }
    rows: dict[str, tuple[str, str, bool, dict[str, int]]] = {}
    for name, full_name, extension, enabled, queue, penalty in session.execute(_AGENTS):
        held = rows.setdefault(name, (full_name or "", extension, enabled, {}))
        if queue is not None:
            held[3][queue] = penalty
    agents = {
        name: RosterAgent(name=name, full_name=full_name, extension=extension, enabled=enabled,
                          queues=dict(sorted(member_of.items())))
        for name, (full_name, extension, enabled, member_of) in rows.items()
    }  # fmt: skip
    return Roster(queues, agents)


class RosterCache:
    """The roster as last read; ``on_change(old, new)`` is called (on the event loop) after
    a read that changed it."""

    def __init__(
        self,
        engine: Engine,
        on_change: Callable[[Roster, Roster], None] | None = None,
        *,
        period: float = 10.0,
    ) -> None:
        self.engine = engine
        self.on_change = on_change
        self.period = period
        self.roster = Roster()
        self.loaded = False
        self.error: str | None = None
        self.loaded_at: float | None = None
        self._lock = asyncio.Lock()

    def _read(self) -> Roster:
        with Session(self.engine) as session:
            return load_roster(session)

    async def reload(self) -> Roster:
        """Read it now; the last roster stays (and is returned) when the database is away."""
        async with self._lock:
            try:
                roster = await asyncio.to_thread(self._read)
            except sa.exc.SQLAlchemyError as exc:
                error = str(getattr(exc, "orig", None) or exc).strip().splitlines() or ["?"]
                if self.error is None:
                    log.warning("wallboard: cannot read the queues and agents (%s); keeping "
                                "the last", error[0])  # fmt: skip
                self.error = error[0]
                return self.roster
            self.error = None
            self.loaded = True
            self.loaded_at = time.time()
            old, self.roster = self.roster, roster
            if old != roster and self.on_change is not None:
                self.on_change(old, roster)
            return roster

    async def run(self) -> None:
        while True:
            await self.reload()
            await asyncio.sleep(self.period)
