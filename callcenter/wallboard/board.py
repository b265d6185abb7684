"""What browsers are sent: rows built from the live state and the day's figures.

One :class:`Board` serves every browser: :meth:`Board.snapshot` is the whole board (a browser
that connects, the server-side render, the JSON API) and :meth:`Board.delta` the rows that
changed since the last delta (pushed to all). Rows carry absolute values, never increments,
so a delta that repeats what a fresh snapshot already had does no harm.

Times are epoch seconds; the browser ticks waits and times in state from them, correcting its
clock by the ``now`` of each message.

What is shown:

- every queue that is configured (the roster, :mod:`.roster`), live on a node, or has figures
  today, under its display name; and a total over all queues;
- every configured agent, under their full name: logged in (their live rows, one per node
  they are logged in on) or, when the bridge says they are logged in nowhere, one dimmed
  ``logged_out`` row on the node they were last seen on (else the first configured node),
  which a supervisor can log them in on; agents the bridge reports but the roster does not
  know are shown while logged in, as before;
- a node that is **down** (the bridge lost that Asterisk, or the bridge itself is offline):
  its agents show the state ``unknown`` (no timer, no caller), and a queue's live figures
  are summed over the nodes that are up, the row marked ``unknown`` when all of its nodes
  are down (``down`` names them). The bridge's retained snapshots of a down node are the
  last it knew, not the present;
- every outbound campaign the dialer publishes a snapshot of (:func:`campaign_row`), none
  when there is none; a campaign whose snapshot is deleted (an empty retained payload) goes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from typing import Any

from callcenter.campaigns.snapshot import CampaignFigures
from callcenter.security.alerts import banner
from callcenter.wallboard.live import AgentKey, LiveState
from callcenter.wallboard.model import AgentLive
from callcenter.wallboard.options import WallboardOptions
from callcenter.wallboard.roster import Roster, RosterAgent

Row = dict[str, Any]
#: Counts of agents by state in a queue row, summed over nodes.
COUNTS = ("logged_in", "available", "ringing", "on_call", "wrap_up", "paused", "unavailable")
#: The live fields of a queue row (from the bridge), unknown while its nodes are down.
LIVE = ("waiting", "longest_wait_since", *COUNTS)
TOTAL_TITLE = "All queues"


def agent_key(node: str, agent: str) -> str:
    """The key of an agent's row in the page and in URLs (``node/agent``)."""
    return f"{node}/{agent}"


def rate_level(rate: float | None, target: float, cap: float) -> str:
    """How an abandon rate reads against the campaign's limits: ``alert`` at or above the
    cap (the law's limit is reached), ``warn`` above the target the pacer aims at, ``ok``
    at or below it, ``""`` with no rate yet (nobody answered)."""
    if rate is None:
        return ""
    if rate >= cap:
        return "alert"
    return "warn" if rate > target else "ok"


def campaign_row(f: CampaignFigures) -> Row:
    """A campaign's tile: the snapshot's figures, flattened, with the levels of its abandon
    rates and the budget as boards show it (whole abandons still allowed, never below 0)."""
    window, life = f.window.rate, f.life.rate
    return {
        "campaign": f.campaign, "title": f.campaign, "mode": f.mode, "state": f.state,
        "queue": f.queue or "", "paced": f.paced, "reason": f.reason,
        "dialling": f.dialling, "ringing": f.ringing, "waiting": f.waiting,
        "connected": f.connected, "messages": f.messages,
        "agents_logged_in": f.agents.logged_in, "agents_free": f.agents.free,
        "agents_busy": f.agents.busy, "agents_wrap_up": f.agents.wrap_up,
        "agents_paused": f.agents.paused,
        "attempts_today": f.today.attempts, "live_today": f.today.live,
        "connected_today": f.today.connected, "abandoned_today": f.today.abandoned,
        "window_days": f.window.days, "window_live": f.window.live,
        "window_abandoned": f.window.abandoned, "window_rate": window,
        "window_level": rate_level(window, f.target, f.cap),
        "life_live": f.life.live, "life_abandoned": f.life.abandoned, "life_rate": life,
        "life_level": rate_level(life, f.target, f.cap),
        "cap": f.cap, "target": f.target,
        "budget_left": max(0, math.floor(f.budget_left)),
        "contacts_left": f.contacts_left, "dialer": f.dialer, "at": f.at,
    }  # fmt: skip


class Board:
    """Builds rows on demand; holds no state of its own beyond the roster and what changed
    in it, and the KPI change flag."""

    def __init__(
        self,
        state: LiveState,
        kpis: Callable[[], Row],
        options: WallboardOptions,
        nodes: Iterable[str],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.state = state
        self.kpis = kpis
        self.options = options
        self.node_names = tuple(nodes)
        self.clock = clock
        self.roster = Roster()
        self._kpis_changed = False
        self._roster_queues: set[str] = set()
        self._roster_agents: set[str] = set()

    def kpis_changed(self) -> None:
        self._kpis_changed = True

    def set_roster(self, roster: Roster) -> None:
        """Take a new roster; the rows it changes go out with the next delta."""
        queues, agents = self.roster.changes(roster)
        self.roster = roster
        self._roster_queues |= queues
        self._roster_agents |= agents

    # --- nodes -------------------------------------------------------------------------

    def node_down(self, node: str) -> bool:
        """Whether what the board holds of ``node`` is unknown now: the bridge said it lost
        that Asterisk, or the bridge is offline (its last will). A node the bridge has said
        nothing of yet is not taken as down."""
        if self.state.bridge_online is False:
            return True
        live = self.state.nodes.get(node)
        return live is not None and not live.connected

    def all_nodes(self) -> list[str]:
        return sorted(set(self.node_names) | set(self.state.nodes))

    def home_node(self, live: list[AgentLive]) -> str:
        """Where a logged-out agent's row sits (and the Log in goes): the node the bridge
        last saw them on, else the first configured node."""
        if live:
            return max(live, key=lambda a: a.since).node
        return self.node_names[0] if self.node_names else ""

    # --- rows --------------------------------------------------------------------------

    def queue_row(self, name: str) -> Row:
        parts = [q for (_, queue), q in sorted(self.state.queues.items()) if queue == name]
        # A queue no node reports yet may be on any of them.
        nodes = [q.node for q in parts] if parts else self.all_nodes()
        down = [n for n in nodes if self.node_down(n)]
        known = [q for q in parts if not self.node_down(q.node)]
        unknown = bool(nodes) and len(down) == len(nodes)
        configured = self.roster.queues.get(name)
        display = configured.display_name if configured else ""
        waits = [q.longest_wait_since for q in known if q.longest_wait_since is not None]
        row: Row = {
            "queue": name,
            "display_name": display,
            "title": display or name,
            "alias": name if display else "",
            "configured": configured is not None,
            "nodes": [q.node for q in parts],
            "live": bool(parts),
            "down": down,
            "unknown": unknown,
            "waiting": sum(q.waiting for q in known),
            "longest_wait_since": min(waits) if waits else None,
        }
        for count in COUNTS:
            row[count] = sum(getattr(q, count) for q in known)
        if unknown:
            row.update(dict.fromkeys(LIVE))
        return row

    def total_row(self, queues: list[Row] | None = None) -> Row:
        """All queues together: callers waiting summed over queues, the longest wait of
        any; agents counted once each (across queues and nodes), by their state; today's
        figures from the call log's total (each visit judged by its own queue's SL
        threshold). Its live figures are unknown when a queue's are, or every node is down;
        with some node down they count the nodes that are up (``down`` names the others)."""
        rows = queues if queues is not None else [self.queue_row(q) for q in self.queue_names()]
        nodes = self.all_nodes()
        down = [n for n in nodes if self.node_down(n)]
        # A queue whose figures are unknown leaves the sum unknown too (not a reassuring 0).
        unknown = (bool(nodes) and len(down) == len(nodes)) or any(r["unknown"] for r in rows)
        agents = [a for a in self.state.agents.values()
                  if a.state != "logged_out" and not self.node_down(a.node)]  # fmt: skip
        waits = [r["longest_wait_since"] for r in rows if r["longest_wait_since"] is not None]
        live: Row = {
            "queue": "", "display_name": TOTAL_TITLE, "title": TOTAL_TITLE, "alias": "",
            "configured": True, "nodes": nodes, "live": bool(self.state.queues), "down": down,
            "unknown": unknown, "waiting": sum(r["waiting"] or 0 for r in rows),
            "longest_wait_since": min(waits) if waits else None, "logged_in": len(agents),
        }  # fmt: skip
        for count in COUNTS[1:]:
            live[count] = sum(1 for a in agents if a.state == count)
        if unknown:
            live.update(dict.fromkeys(LIVE))
        return {**self.kpis().get("total", {}), **live}

    def agent_rows(self, name: str, live: list[AgentLive]) -> list[Row]:
        """The rows of the agent ``name``, given every live record of that name: one per
        node they are logged in on; else, when configured, their logged-out row."""
        rows = [self._agent(a) for a in live if a.state != "logged_out"]
        configured = self.roster.agents.get(name)
        if not rows and configured is not None:
            rows.append(self._logged_out(configured, live))
        return sorted(rows, key=lambda r: str(r["node"]))

    def agent_row(self, key: AgentKey) -> Row | None:
        """The agent's row on that node, or None when the board does not show one there."""
        name = key[1]
        rows = self.agent_rows(name, self._live_of({name}).get(name, []))
        return next((r for r in rows if r["key"] == agent_key(*key)), None)

    def _names(self, a: AgentLive) -> Row:
        configured = self.roster.agents.get(a.agent)
        full = configured.full_name if configured else ""
        return {
            "full_name": full, "title": full or a.agent, "alias": a.agent if full else "",
            "configured": configured is not None,
            "enabled": configured.enabled if configured else True,
        }  # fmt: skip

    def _agent(self, a: AgentLive) -> Row:
        row: Row = {
            "key": agent_key(a.node, a.agent), "node": a.node, "agent": a.agent,
            **self._names(a), "interface": a.interface, "state": a.state,
            "reason": a.reason or "", "since": a.since, "caller": self.state.caller(a),
            "call_queue": a.call_queue or "", "queues": list(a.queues),
        }  # fmt: skip
        if self.node_down(a.node):
            row.update(state="unknown", last_state=a.state, reason="node down", since=None,
                       caller="", call_queue="")  # fmt: skip
        return row

    def _logged_out(self, agent: RosterAgent, live: list[AgentLive]) -> Row:
        node = self.home_node(live)
        seen = [a for a in live if a.node == node]
        full = agent.full_name
        row: Row = {
            "key": agent_key(node, agent.name), "node": node, "agent": agent.name,
            "full_name": full, "title": full or agent.name, "alias": agent.name if full else "",
            "configured": True, "enabled": agent.enabled, "interface": agent.interface,
            "state": "logged_out", "reason": "" if agent.enabled else "disabled",
            "since": max(a.since for a in seen) if seen else None, "caller": "",
            "call_queue": "", "queues": list(agent.queues),
        }  # fmt: skip
        if self.node_down(node):
            row.update(state="unknown", last_state="logged_out", reason="node down", since=None)
        return row

    def _live_of(self, names: set[str] | None = None) -> dict[str, list[AgentLive]]:
        """The live records by agent name (of ``names`` only, when given)."""
        out: dict[str, list[AgentLive]] = {}
        for (_, name), a in self.state.agents.items():
            if names is None or name in names:
                out.setdefault(name, []).append(a)
        return out

    def node_rows(self) -> list[Row]:
        rows = []
        for name in self.all_nodes():
            node = self.state.nodes.get(name)
            rows.append(
                {"node": name, "known": node is not None,
                 "connected": bool(node and node.connected), "down": self.node_down(name),
                 "detail": node.detail if node else "no news from the bridge yet",
                 "since": node.since if node else None}
            )  # fmt: skip
        return rows

    def status(self) -> Row:
        status: Row = {"bridge_online": self.state.bridge_online,
                       "feed": self.state.feed_connected}  # fmt: skip
        alert = banner(self.state.sip_alerts)  # a SIP login attack (callcenter/security)
        if alert:
            status["sip_alert"] = alert
        return status

    def campaign_rows(self, names: Iterable[str] | None = None) -> list[Row]:
        """The tiles of every campaign with a snapshot (of ``names`` only, when given)."""
        held = self.state.campaigns
        wanted = sorted(held if names is None else set(names) & set(held))
        return [campaign_row(held[name]) for name in wanted]

    def queue_names(self) -> list[str]:
        kpi_queues = self.kpis().get("queues", {})
        live = {q for _, q in self.state.queues}
        return sorted(live | set(kpi_queues) | set(self.roster.queues))

    # --- messages ----------------------------------------------------------------------

    def all_agent_rows(self) -> list[Row]:
        by_name = self._live_of()
        rows: list[Row] = []
        for name in set(by_name) | set(self.roster.agents):
            rows += self.agent_rows(name, by_name.get(name, []))
        return sorted(rows, key=lambda r: (str(r["agent"]).lower(), str(r["node"])))

    def snapshot(self) -> Row:
        """The whole board."""
        queues = [self.queue_row(q) for q in self.queue_names()]
        return {
            "now": self.clock(),
            "thresholds": self.options.thresholds(),
            "queues": queues,
            "total": self.total_row(queues),
            "agents": self.all_agent_rows(),
            "nodes": self.node_rows(),
            "status": self.status(),
            "kpis": self.kpis(),
            "campaigns": self.campaign_rows(),
        }

    def delta(self) -> Row | None:
        """What changed since the last delta, or None when nothing did. Takes the changes."""
        changes = self.state.take_changes()
        kpis_changed, self._kpis_changed = self._kpis_changed, False
        roster_queues, self._roster_queues = self._roster_queues, set()
        roster_agents, self._roster_agents = self._roster_agents, set()
        if not changes and not kpis_changed and not roster_queues and not roster_agents:
            return None
        out: Row = {"now": self.clock()}
        everything = bool(changes.nodes or changes.status)  # unknown or known again: all rows
        queues = set(self.queue_names()) if everything else changes.queues | roster_queues
        if queues:
            shown = set(self.queue_names())
            out["queues"] = [self.queue_row(q) for q in sorted(queues & shown)]
            out["gone_queues"] = sorted(queues - shown)
        names = {name for _, name in changes.agents} | roster_agents
        if everything:
            names |= {name for _, name in self.state.agents} | set(self.roster.agents)
        if names:
            by_name = self._live_of(names)
            nodes = set(self.all_nodes())
            changed_on: dict[str, set[str]] = {}
            for node, name in changes.agents:
                changed_on.setdefault(name, set()).add(node)
            rows, gone = [], set()
            for name in sorted(names):
                live = by_name.get(name, [])
                mine = self.agent_rows(name, live)
                rows += mine
                # Any other row of theirs a browser may hold (the agent moved, logged out
                # of the roster, or their live record was deleted) goes.
                held = nodes | {a.node for a in live} | changed_on.get(name, set())
                gone |= {agent_key(n, name) for n in held} - {r["key"] for r in mine}
            out["agents"], out["gone"] = rows, sorted(gone)
        if changes.campaigns:
            out["campaigns"] = self.campaign_rows(changes.campaigns)
            out["gone_campaigns"] = sorted(changes.campaigns - set(self.state.campaigns))
        if changes.nodes or changes.status:
            out["nodes"] = self.node_rows()
            out["status"] = self.status()
        elif changes.security:  # the SIP attack banner: the status alone, not every row
            out["status"] = self.status()
        if kpis_changed:
            out["kpis"] = self.kpis()
        if len(out) == 1:  # only calls moved: nothing on the board changed (yet)
            return None
        out["total"] = self.total_row()
        return out
