"""One transition of the state: copy-on-write edits, then one commit that derives the changes.

A handler opens a :class:`Tx` on the current state, reads and writes records through it and
calls :meth:`Tx.commit`. The input state is never mutated: the first write to a map copies
that map (only that one), so an event costs O(size of the maps it touches) and the many events
that change nothing cost nothing. ``commit`` is the single place that

- drops closed calls and reports every call whose snapshot changed;
- re-derives the state of every touched agent (:func:`~callcenter.core.derive.agent_state`),
  reports state spans, session ends and snapshots, and keeps queue member sets and the
  interface map in step;
- recomputes the snapshot of every queue touched directly or through one of its agents.
"""

from __future__ import annotations

from dataclasses import replace

from callcenter.core.changes import (
    AgentChanged,
    AgentLoggedIn,
    AgentLoggedOut,
    AgentStateChanged,
    CallChanged,
    Change,
    MemberPauseChanged,
    QueueChanged,
)
from callcenter.core.config import CoreConfig
from callcenter.core.derive import agent_state, queue_snapshot
from callcenter.core.records import (
    Agent,
    Call,
    Channel,
    Leg,
    Membership,
    Queue,
    State,
)
from callcenter.domain import AgentState

Result = tuple[State, list[Change]]


class Tx:
    """Edits to ``state`` at time ``t``; :meth:`commit` returns the new state and changes.

    Readers (``call``, ``agent``...) see the edits made so far. Handlers append to
    ``changes`` only what commit cannot derive (AgentLoggedIn, via :meth:`new_agent`); they
    may set ``since_hints[agent]`` (through ``put_agent(since=...)``) when a state began
    before ``t``, and ``logout_reasons[agent]`` when a logout is not a QueueMemberRemoved.
    """

    __slots__ = (
        "_agents",
        "_calls",
        "_channels",
        "_legs",
        "_open_visits",
        "_queues",
        "changes",
        "logout_reasons",
        "old",
        "since_hints",
        "t",
        "touched_agents",
        "touched_calls",
        "touched_queues",
        "wrapup_due",
    )

    def __init__(self, state: State, t: float) -> None:
        self.old = state
        self.t = t
        self._calls: dict[str, Call] | None = None
        self._agents: dict[str, Agent] | None = None
        self._queues: dict[str, Queue] | None = None
        self._legs: dict[str, Leg] | None = None
        self._channels: dict[str, Channel] | None = None
        self._open_visits: dict[tuple[str, str], Call] | None = None
        # dicts used as ordered sets, so changes come out in a reproducible order
        self.touched_calls: dict[str, None] = {}
        self.touched_agents: dict[str, None] = {}
        self.touched_queues: dict[str, None] = {}
        self.changes: list[Change] = []
        self.since_hints: dict[str, float] = {}
        self.logout_reasons: dict[str, str] = {}
        self.wrapup_due = state.wrapup_due

    @property
    def node(self) -> str:
        return self.old.node

    @property
    def config(self) -> CoreConfig:
        return self.old.config

    # --- calls ------------------------------------------------------------------------------

    def call(self, uniqueid: str) -> Call | None:
        calls = self._calls if self._calls is not None else self.old.calls
        return calls.get(uniqueid)

    def put_call(self, call: Call) -> None:
        if call.visit == 0 and call.queue is not None:
            call = replace(call, visit=1)  # a call in a queue is on its first visit at least
        if self._calls is None:
            self._calls = dict(self.old.calls)
        self._calls[call.uniqueid] = call
        self.touched_calls[call.uniqueid] = None

    # --- agents -----------------------------------------------------------------------------

    def agent(self, name: str) -> Agent | None:
        agents = self._agents if self._agents is not None else self.old.agents
        return agents.get(name)

    def agent_names(self) -> list[str]:
        return list(self._agents if self._agents is not None else self.old.agents)

    def new_agent(self, name: str, interface: str, login_at: float) -> Agent:
        """A record for an agent the state does not have, and its AgentLoggedIn. The caller
        adds memberships and puts it; commit derives its first state."""
        self.changes.append(AgentLoggedIn(self.node, name, interface, login_at))
        return Agent(
            node=self.node,
            name=name,
            interface=interface,
            state=AgentState.LOGGED_OUT,
            reason=None,
            since=login_at,
            logged_in_at=login_at,
            memberships={},
        )

    def put_agent(self, agent: Agent, *, since: float | None = None) -> None:
        """Store ``agent``; if its derived state changes, the new state starts at ``since``
        (default: the transition's time). An agent with no membership left is logged out."""
        if self._agents is None:
            self._agents = dict(self.old.agents)
        self._agents[agent.name] = agent
        self.touched_agents[agent.name] = None
        if since is not None:
            self.since_hints[agent.name] = since
        if agent.wrapup_until is not None and agent.wrapup_until < self.wrapup_due:
            self.wrapup_due = agent.wrapup_until

    # --- queues -----------------------------------------------------------------------------

    def queue(self, name: str) -> Queue | None:
        queues = self._queues if self._queues is not None else self.old.queues
        return queues.get(name)

    def put_queue(self, queue: Queue) -> None:
        if self._queues is None:
            self._queues = dict(self.old.queues)
        self._queues[queue.name] = queue
        self.touched_queues[queue.name] = None

    def ensure_queue(self, name: str) -> Queue:
        queue = self.queue(name)
        if queue is None:
            queue = Queue(name, {}, frozenset())
            self.put_queue(queue)
        return queue

    # --- agent legs, root channels --------------------------------------------------------

    def leg(self, uniqueid: str) -> Leg | None:
        legs = self._legs if self._legs is not None else self.old.legs
        return legs.get(uniqueid)

    def put_leg(self, leg: Leg) -> None:
        if self._legs is None:
            self._legs = dict(self.old.legs)
        self._legs[leg.uniqueid] = leg

    def drop_leg(self, uniqueid: str) -> None:
        if self._legs is None:
            self._legs = dict(self.old.legs)
        self._legs.pop(uniqueid, None)

    def channel(self, uniqueid: str) -> Channel | None:
        channels = self._channels if self._channels is not None else self.old.channels
        return channels.get(uniqueid)

    def put_channel(self, channel: Channel) -> None:
        if self._channels is None:
            self._channels = dict(self.old.channels)
        self._channels[channel.uniqueid] = channel

    def drop_channel(self, uniqueid: str) -> None:
        if self._channels is None:
            self._channels = dict(self.old.channels)
        self._channels.pop(uniqueid, None)

    # --- queue visits waiting for their AgentComplete ------------------------------------

    def open_visit(self, queue: str, agent: str) -> Call | None:
        visits = self._open_visits if self._open_visits is not None else self.old.open_visits
        return visits.get((queue, agent))

    def open_visits(self) -> list[Call]:
        visits = self._open_visits if self._open_visits is not None else self.old.open_visits
        return list(visits.values())

    def put_open_visit(self, visit: Call) -> None:
        assert visit.queue is not None
        assert visit.agent is not None
        if self._open_visits is None:
            self._open_visits = dict(self.old.open_visits)
        self._open_visits[(visit.queue, visit.agent)] = visit

    def drop_open_visit(self, visit: Call) -> None:
        if self._open_visits is None:
            self._open_visits = dict(self.old.open_visits)
        self._open_visits.pop((visit.queue or "", visit.agent or ""), None)

    # --- commit -----------------------------------------------------------------------------

    def commit(self) -> Result:
        old = self.old
        changes = self.changes
        calls = old.calls
        if self._calls is not None:
            calls = self._calls
            for uid in self.touched_calls:
                call = self._calls[uid]
                if call.closed:
                    del self._calls[uid]
                if call != old.calls.get(uid):
                    changes.append(CallChanged(call))
        agents = old.agents
        interfaces = old.interfaces
        if self._agents is not None:
            agents = self._agents
            interfaces = self._commit_agents(self._agents, changes)
        queues = old.queues
        if self._queues is not None or self.touched_queues:
            queues = self._commit_queues(changes)
        state = State(
            node=old.node,
            config=old.config,
            up=old.up,
            agents=agents,
            interfaces=interfaces,
            queues=queues,
            calls=calls,
            channels=self._channels if self._channels is not None else old.channels,
            legs=self._legs if self._legs is not None else old.legs,
            open_visits=self._open_visits if self._open_visits is not None else old.open_visits,
            lists=old.lists,
            wrapup_due=self.wrapup_due,
        )
        return state, changes

    def _commit_agents(self, agents: dict[str, Agent], changes: list[Change]) -> dict[str, str]:
        old_agents = self.old.agents
        interfaces = dict(self.old.interfaces)
        for name in self.touched_agents:
            agent = agents[name]
            before = old_agents.get(name)
            agent = self._pause_changes(before, agent, changes)
            state, reason = agent_state(agent)
            if state != agent.state or reason != agent.reason:
                since = self.since_hints.get(name, self.t)
                if before is not None:
                    # A hint from the past (a resync's LastPause) must not end the previous
                    # span before it began.
                    since = max(since, agent.since)
                changes.append(
                    AgentStateChanged(
                        node=self.node,
                        agent=name,
                        state=state,
                        reason=reason,
                        started_at=since,
                        previous_state=agent.state,
                        previous_reason=agent.reason,
                        previous_started_at=None if before is None else agent.since,
                    )
                )
                agent = replace(agent, state=state, reason=reason, since=since)
            self._sync_queue_members(name, before, agent)
            if before is not None and before.interface != agent.interface:
                interfaces.pop(before.interface, None)
            if not agent.memberships:
                del agents[name]
                interfaces.pop(agent.interface, None)
                changes.append(AgentChanged(agent))
                reason_out = self.logout_reasons.get(name, "removed")
                changes.append(AgentLoggedOut(self.node, name, agent.interface, self.t, reason_out))
                continue
            agents[name] = agent
            interfaces[agent.interface] = name
            if agent != before:
                changes.append(AgentChanged(agent))
        return interfaces

    def _pause_changes(self, before: Agent | None, agent: Agent, changes: list[Change]) -> Agent:
        """Report every per-queue pause that began, ended or changed reason, and keep
        ``Membership.paused_since`` (member events build memberships afresh)."""
        old = before.memberships if before is not None else {}
        new = agent.memberships
        if old is new:
            return agent
        carried: dict[str, Membership] = {}
        for queue in sorted(old.keys() | new.keys()):
            was, now = old.get(queue), new.get(queue)
            was_paused = was is not None and was.paused
            now_paused = now is not None and now.paused
            if not was_paused and not now_paused:
                continue
            if (
                was is not None
                and now is not None
                and was_paused
                and now_paused
                and was.paused_reason == now.paused_reason
            ):
                if now.paused_since != was.paused_since:
                    carried[queue] = replace(now, paused_since=was.paused_since)
                continue
            at = self.t
            if now is not None and now_paused and was is None and now.last_pause:
                # First seen already paused (a resync, or joining mid-stream): app_queue's
                # LastPause says when it began.
                at = min(at, float(now.last_pause))
            previous_since = was.paused_since if was is not None and was_paused else None
            if previous_since is not None:
                at = max(at, previous_since)
            changes.append(
                MemberPauseChanged(
                    node=self.node,
                    agent=agent.name,
                    queue=queue,
                    at=at,
                    paused=now_paused,
                    reason=now.paused_reason if now is not None and now_paused else "",
                    previous_paused=was_paused,
                    previous_reason=was.paused_reason if was is not None and was_paused else "",
                    previous_started_at=previous_since if was_paused else None,
                )
            )
            if now is not None and now_paused:
                carried[queue] = replace(now, paused_since=at)
        if not carried:
            return agent
        return replace(agent, memberships={**new, **carried})

    def _sync_queue_members(self, name: str, before: Agent | None, after: Agent) -> None:
        was = before.memberships.keys() if before is not None else frozenset[str]()
        now = after.memberships.keys()
        for queue_name in now | was:
            self.touched_queues[queue_name] = None
            queue = self.queue(queue_name)
            member = queue_name in now
            if queue is None:
                if member:
                    self.put_queue(Queue(queue_name, {}, frozenset({name})))
            elif member != (name in queue.members):
                members = queue.members | {name} if member else queue.members - {name}
                self.put_queue(replace(queue, members=members))

    def _commit_queues(self, changes: list[Change]) -> dict[str, Queue]:
        queues = self._queues if self._queues is not None else dict(self.old.queues)
        agent_map = self._agents if self._agents is not None else self.old.agents
        for name in self.touched_queues:
            queue = queues.get(name)
            if queue is None:
                continue
            snapshot = queue_snapshot(self.node, queue, agent_map)
            if snapshot != queue.snapshot:
                queues[name] = replace(queue, snapshot=snapshot)
                changes.append(QueueChanged(snapshot))
        return queues
