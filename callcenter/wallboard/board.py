"""What browsers are sent: rows built from the live state and the day's figures.

One :class:`Board` serves every browser: :meth:`Board.snapshot` is the whole board (a browser
that connects, the server-side render, the JSON API) and :meth:`Board.delta` the rows that
changed since the last delta (pushed to all). Rows carry absolute values, never increments,
so a delta that repeats what a fresh snapshot already had does no harm.

Times are epoch seconds; the browser ticks waits and times in state from them, correcting its
clock by the ``now`` of each message.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from callcenter.wallboard.live import AgentKey, LiveState
from callcenter.wallboard.model import AgentLive
from callcenter.wallboard.options import WallboardOptions

Row = dict[str, Any]
#: Counts of agents by state in a queue row, summed over nodes.
COUNTS = ("logged_in", "available", "ringing", "on_call", "wrap_up", "paused", "unavailable")


def agent_key(node: str, agent: str) -> str:
    """The key of an agent's row in the page and in URLs (``node/agent``)."""
    return f"{node}/{agent}"


class Board:
    """Builds rows on demand; holds no state of its own beyond the KPI change flag."""

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
        self._kpis_changed = False

    def kpis_changed(self) -> None:
        self._kpis_changed = True

    # --- rows --------------------------------------------------------------------------

    def queue_row(self, name: str) -> Row:
        parts = [q for (_, queue), q in sorted(self.state.queues.items()) if queue == name]
        waits = [q.longest_wait_since for q in parts if q.longest_wait_since is not None]
        row: Row = {
            "queue": name,
            "nodes": [q.node for q in parts],
            "live": bool(parts),
            "waiting": sum(q.waiting for q in parts),
            "longest_wait_since": min(waits) if waits else None,
        }
        for count in COUNTS:
            row[count] = sum(getattr(q, count) for q in parts)
        return row

    def agent_row(self, key: AgentKey) -> Row | None:
        """The agent's row, or None when the board does not show them (logged out, gone)."""
        agent = self.state.agents.get(key)
        if agent is None or agent.state == "logged_out":
            return None
        return self._agent(agent)

    def _agent(self, a: AgentLive) -> Row:
        return {
            "key": agent_key(a.node, a.agent), "node": a.node, "agent": a.agent,
            "interface": a.interface, "state": a.state, "reason": a.reason or "",
            "since": a.since, "caller": self.state.caller(a), "call_queue": a.call_queue or "",
            "queues": list(a.queues),
        }  # fmt: skip

    def node_rows(self) -> list[Row]:
        names = sorted(set(self.node_names) | set(self.state.nodes))
        rows = []
        for name in names:
            node = self.state.nodes.get(name)
            rows.append(
                {"node": name, "known": node is not None,
                 "connected": bool(node and node.connected),
                 "detail": node.detail if node else "no news from the bridge yet",
                 "since": node.since if node else None}
            )  # fmt: skip
        return rows

    def status(self) -> Row:
        return {"bridge_online": self.state.bridge_online, "feed": self.state.feed_connected}

    def queue_names(self) -> list[str]:
        kpi_queues = self.kpis().get("queues", {})
        return sorted({q for _, q in self.state.queues} | set(kpi_queues))

    # --- messages ----------------------------------------------------------------------

    def snapshot(self) -> Row:
        """The whole board."""
        shown = [a for a in self.state.agents.values() if a.state != "logged_out"]
        agents = [self._agent(a) for a in sorted(shown, key=lambda a: (a.agent.lower(), a.node))]
        return {
            "now": self.clock(),
            "thresholds": self.options.thresholds(),
            "queues": [self.queue_row(q) for q in self.queue_names()],
            "agents": agents,
            "nodes": self.node_rows(),
            "status": self.status(),
            "kpis": self.kpis(),
        }

    def delta(self) -> Row | None:
        """What changed since the last delta, or None when nothing did. Takes the changes."""
        changes = self.state.take_changes()
        kpis_changed, self._kpis_changed = self._kpis_changed, False
        if not changes and not kpis_changed:
            return None
        out: Row = {"now": self.clock()}
        if changes.queues:
            out["queues"] = [self.queue_row(q) for q in sorted(changes.queues)]
        if changes.agents:
            rows, gone = [], []
            for key in sorted(changes.agents):
                row = self.agent_row(key)
                if row is None:
                    gone.append(agent_key(*key))
                else:
                    rows.append(row)
            out["agents"], out["gone"] = rows, gone
        if changes.nodes or changes.status:
            out["nodes"] = self.node_rows()
            out["status"] = self.status()
        if kpis_changed:
            out["kpis"] = self.kpis()
        if len(out) == 1:  # only calls moved: nothing on the board changed (yet)
            return None
        return out
