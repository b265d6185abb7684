"""The campaign queue's agents, read off the bridge's agent snapshots (docs/events.md)."""

from __future__ import annotations

from typing import Any

from callcenter.campaigns.agents import agent_views, counts, interface_of
from callcenter.campaigns.pacer import AgentState

NOW = 1_796_600_000.0


def snap(agent: str, state: str, *, queue: str = "sales", paused: bool = False,
         since: float = NOW - 30, wrapup_until: float | None = None) -> dict[str, Any]:  # fmt: skip
    return {
        "v": 1, "type": "agent", "node": "local", "agent": agent,
        "interface": f"PJSIP/{agent}", "state": state, "reason": None, "since": since,
        "wrapup_until": wrapup_until,
        "queues": {queue: {"penalty": 0, "paused": paused, "paused_reason": "", "status": 1,
                           "in_call": False, "calls_taken": 0}},
    }  # fmt: skip


def test_states_map_to_the_pacers_view() -> None:
    payloads = [
        snap("a", "available"),
        snap("b", "on_call", since=NOW - 12),
        snap("c", "wrap_up", wrapup_until=NOW + 5),
        snap("d", "paused"),
        snap("e", "available", paused=True),  # paused in this queue only
        snap("f", "unavailable"),
        snap("g", "logged_out"),
        snap("h", "available", queue="support"),  # not a member of the campaign queue
        snap("i", "ringing", since=NOW - 1),
    ]
    views = {v.name: v for v in agent_views(payloads, "sales", now=NOW)}
    assert set(views) == {"a", "b", "c", "d", "e", "i"}
    assert views["a"].state is AgentState.FREE
    assert not views["a"].paused
    assert views["b"].state is AgentState.BUSY
    assert views["b"].since == NOW - 12
    assert views["c"].state is AgentState.WRAPUP
    assert views["c"].until == NOW + 5
    assert views["d"].paused
    assert views["e"].paused
    assert views["i"].state is AgentState.BUSY
    assert counts(views.values()) == {
        "logged_in": 6, "free": 1, "busy": 2, "wrap_up": 1, "paused": 2
    }  # fmt: skip


def test_a_connect_the_snapshot_has_not_caught_up_with_is_busy() -> None:
    payloads = [snap("a", "available")]
    (view,) = agent_views(payloads, "sales", now=NOW, connected={"a": NOW - 0.2})
    assert view.state is AgentState.BUSY
    assert view.since == NOW - 0.2
    (view,) = agent_views(payloads, "sales", now=NOW, connected={"a": NOW - 60})
    assert view.state is AgentState.FREE


def test_malformed_snapshots_are_skipped() -> None:
    bad: list[dict[str, Any]] = [{}, {"agent": 3}, {"agent": "x", "queues": []},
                                 {"agent": "y", "queues": {"sales": {}}, "state": 5}]  # fmt: skip
    assert agent_views(bad, "sales", now=NOW) == []
    assert interface_of(snap("a", "available")) == "PJSIP/a"
    assert interface_of({"interface": ""}) is None
