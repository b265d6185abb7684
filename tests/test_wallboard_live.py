"""The live state, the board's rows and the fan-out, without I/O: messages in, rows out."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from callcenter.campaigns.snapshot import (
    RateFigures,
    campaign_topic,
    encode_campaign_payload,
)
from callcenter.wallboard import model
from callcenter.wallboard.board import Board, rate_level
from callcenter.wallboard.hub import Hub, encode
from callcenter.wallboard.live import MAX_CALLS, LiveState, client_id, topic_filters
from callcenter.wallboard.options import WallboardOptions
from callcenter.wallboard.roster import Roster, RosterAgent, RosterQueue
from tests.test_campaign_snapshot import figures
from tests.test_wallboard_support import agent_payload, call_payload, node_payload, queue_payload

P = "cc"


def board_of(state: LiveState, kpis: dict[str, object] | None = None) -> Board:
    return Board(state, lambda: dict(kpis or {}), WallboardOptions(), ["pbx1"], clock=lambda: 10.0)


def test_queue_rows_sum_over_nodes_and_take_the_longest_wait() -> None:
    state = LiveState()
    state.apply(
        f"{P}/pbx1/queues/sales",
        queue_payload(
            "pbx1", "sales", waiting=2, longest_wait_since=100.0, available=1, logged_in=3
        ),
    )
    state.apply(
        f"{P}/pbx2/queues/sales",
        queue_payload("pbx2", "sales", waiting=1, longest_wait_since=90.0, on_call=2, logged_in=2),
    )
    row = board_of(state).queue_row("sales")
    assert row["nodes"] == ["pbx1", "pbx2"]
    assert (row["waiting"], row["longest_wait_since"], row["logged_in"]) == (3, 90.0, 5)
    assert (row["available"], row["on_call"]) == (1, 2)


def test_only_real_changes_are_reported() -> None:
    state = LiveState()
    data = queue_payload("pbx1", "sales", waiting=1)
    state.apply(f"{P}/pbx1/queues/sales", data)
    assert state.take_changes().queues == {"sales"}
    state.apply(f"{P}/pbx1/queues/sales", data)  # the same retained message again (reconnect)
    assert not state.take_changes()


def test_caller_on_the_line_follows_the_call() -> None:
    state = LiveState()
    board = board_of(state)
    # The bridge publishes the agent (retained) before the call (an event): both orders work.
    state.apply(
        f"{P}/pbx1/agents/Alice",
        agent_payload("pbx1", "Alice", "on_call", call="17.1", call_queue="sales"),
    )
    state.take_changes()
    assert board.agent_row(("pbx1", "Alice"))["caller"] == ""  # type: ignore[index]
    state.apply(f"{P}/pbx1/calls/17.1", call_payload("pbx1", "17.1"))
    assert state.take_changes().agents == {("pbx1", "Alice")}
    assert board.agent_row(("pbx1", "Alice"))["caller"] == "5551230001 Carol Caller"  # type: ignore[index]
    state.apply(f"{P}/pbx1/calls/17.1", call_payload("pbx1", "17.1", closed=True))
    assert state.calls == {}
    assert state.take_changes().calls


def test_logged_out_and_deleted_agents_leave_the_board() -> None:
    state = LiveState()
    board = board_of(state)
    state.apply(f"{P}/pbx1/agents/Alice", agent_payload("pbx1", "Alice"))
    state.apply(f"{P}/pbx1/agents/Bob", agent_payload("pbx1", "Bob"))
    board.delta()
    state.apply(f"{P}/pbx1/agents/Alice", agent_payload("pbx1", "Alice", "logged_out"))
    state.apply(f"{P}/pbx1/agents/Bob", b"")  # retained topic cleared
    delta = board.delta()
    assert delta is not None
    assert delta["agents"] == []
    assert delta["gone"] == ["pbx1/Alice", "pbx1/Bob"]
    assert board.snapshot()["agents"] == []


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"\xff\xfe",
        b"[1,2]",
        json.dumps({"v": 2, "type": "queue"}).encode(),
        json.dumps({"v": 1, "type": "martian"}).encode(),
        queue_payload("pbx1", "sales", waiting="many"),
        queue_payload("pbx1", "sales", waiting=True),
        agent_payload("pbx1", "Alice", since=None),
    ],
)
def test_unreadable_messages_are_counted_and_ignored(payload: bytes) -> None:
    state = LiveState()
    state.apply(f"{P}/pbx1/queues/sales", payload)
    assert state.rejected == 1
    assert not state.take_changes()
    assert state.queues == {}
    assert state.agents == {}


def test_nodes_and_bridge_status() -> None:
    state = LiveState()
    board = board_of(state)
    assert board.node_rows() == [
        {
            "node": "pbx1",
            "known": False,
            "connected": False,
            "down": False,  # no news is not taken as down
            "detail": "no news from the bridge yet",
            "since": None,
        }
    ]
    state.apply(f"{P}/pbx1/status", node_payload("pbx1", True))
    state.apply(
        f"{P}/bridge/status", json.dumps({"v": 1, "type": "bridge", "online": True}).encode()
    )
    delta = board.delta()
    assert delta is not None
    assert delta["nodes"][0]["connected"] is True
    assert delta["status"] == {"bridge_online": True, "feed": False}


def test_open_calls_are_bounded() -> None:
    state = LiveState()
    for n in range(MAX_CALLS + 10):
        state.apply(f"{P}/pbx1/calls/{n}", call_payload("pbx1", str(n)))
    assert len(state.calls) == MAX_CALLS
    assert ("pbx1", "0") not in state.calls  # the oldest went first


def test_parse_rejects_what_it_cannot_read() -> None:
    with pytest.raises(model.PayloadError, match="version"):
        model.parse({"type": "queue"})
    with pytest.raises(model.PayloadError, match="not a JSON object"):
        model.parse([])


def test_topics_and_client_ids() -> None:
    assert [t for t, _ in topic_filters("cc")] == [
        "cc/+/queues/+",
        "cc/+/agents/+",
        "cc/+/calls/+",
        "cc/+/status",
        "cc/campaigns/+",
        "cc/security/alerts",
    ]
    from callcenter.config import MqttSettings

    assert client_id(MqttSettings(client_id="x")) == "x-wallboard"
    assert client_id(MqttSettings()).startswith("callcenter-wallboard-")


def test_sse_encoding() -> None:
    data = encode("delta", {"a": "line\nbreak"}, event_id=7, retry=2000)
    assert data == b'retry: 2000\nid: 7\nevent: delta\ndata: {"a":"line\\nbreak"}\n\n'


class Sink:
    """A transport's side the hub writes to: what it was sent, and a buffer that only grows
    (a reader that stopped reading) when ``stuck``."""

    def __init__(self, *, stuck: bool = False) -> None:
        self.sent = bytearray()
        self.stuck = stuck
        self.closing = False
        self.writes = 0

    def write(self, data: bytes) -> None:
        self.sent += data
        self.writes += 1

    def get_write_buffer_size(self) -> int:
        return len(self.sent) if self.stuck else 0

    def is_closing(self) -> bool:
        return self.closing

    def take(self) -> bytes:
        data = bytes(self.sent)
        self.sent.clear()
        return data


def unchunk(data: bytes) -> bytes:
    """The body of HTTP/1.1 chunks (hub.chunk undone), checking each chunk's length."""
    out = b""
    while data:
        size, _, rest = data.partition(b"\r\n")
        n = int(size, 16)
        assert rest[n : n + 2] == b"\r\n"
        out, data = out + rest[:n], rest[n + 2 :]
    return out


async def test_hub_coalesces_and_fans_out_the_same_bytes() -> None:
    state = LiveState()
    board = board_of(state)
    hub = Hub(board.delta, board.snapshot, interval=0.2)
    sinks = [Sink() for _ in range(3)]
    subs = [hub.subscribe(s, chunked=True) for s in sinks]
    opening = [unchunk(s.take()) for s in sinks]
    assert opening[0] == opening[1] == opening[2]
    assert opening[0].startswith(b"retry: 2000\nid: 0\nevent: snapshot\n")
    task = asyncio.create_task(hub.run())
    try:
        state.apply(f"{P}/pbx1/queues/sales", queue_payload("pbx1", "sales", waiting=1))
        hub.changed()
        for _ in range(100):
            if sinks[0].sent:
                break
            await asyncio.sleep(0.01)
        first = [s.take() for s in sinks]
        assert first[0] == first[1] == first[2]
        assert b'"waiting":1' in unchunk(first[0])
        # Three changes within the interval: one push, with the last value.
        for waiting in (2, 3, 4):
            state.apply(f"{P}/pbx1/queues/sales", queue_payload("pbx1", "sales", waiting=waiting))
            hub.changed()
        await asyncio.sleep(0.4)
        second = unchunk(sinks[0].take())
        assert second.count(b"event: delta") == 1
        assert b'"waiting":4' in second
        assert hub.pushes == 2
        assert not any(s.ended for s in subs)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_a_slow_subscriber_is_dropped_not_waited_for() -> None:
    hub = Hub(lambda: {"x": 1}, dict, limit=300)
    stuck, reading = Sink(stuck=True), Sink()
    slow, fast = hub.subscribe(stuck, chunked=True), hub.subscribe(reading, chunked=True)
    for _ in range(10):
        hub.flush()
    assert slow.dropped
    assert slow.wake.is_set()
    assert not fast.dropped
    assert unchunk(reading.take()).count(b"event: delta") == 10
    # Nothing more is written once it is dropped: its stream ends and the browser reconnects.
    writes = stuck.writes
    hub.flush()
    assert stuck.writes == writes
    hub.unsubscribe(slow)
    assert hub.dropped == 1


def test_http10_streams_are_not_chunked_and_a_closing_transport_ends_its_stream() -> None:
    hub = Hub(lambda: {"x": 1}, dict)
    sink = Sink()
    sub = hub.subscribe(sink, chunked=False)
    hub.flush()
    assert sink.take().startswith(b"retry: 2000\nid: 0\nevent: snapshot\n")
    sink.closing = True
    hub.flush()
    assert sub.closed
    assert sub.wake.is_set()
    assert not sink.sent


def test_snapshot_is_built_once_per_change() -> None:
    calls = []

    def snapshot() -> dict[str, object]:
        calls.append(1)
        return {"queues": []}

    hub = Hub(lambda: None, snapshot)
    assert hub.snapshot_event() is hub.snapshot_event()
    hub.changed()
    hub.snapshot_event()
    assert len(calls) == 2


# --- configured queues and agents; nodes that are down (issue 12, points 5 and 6) -----------


def roster(**agents: dict[str, int]) -> Roster:
    return Roster(
        queues={
            "sales": RosterQueue("sales", "Sales team", 20),
            "support": RosterQueue("support", "", 30),
        },
        agents={
            name: RosterAgent(name, f"{name} Doe" if name != "Bob" else "", f"10{i:02d}",
                              name != "Carl", queues)
            for i, (name, queues) in enumerate(sorted(agents.items()))
        },
    )  # fmt: skip


def nodes_board(state: LiveState, kpis: dict[str, object] | None = None) -> Board:
    return Board(state, lambda: dict(kpis or {}), WallboardOptions(), ["pbx1", "pbx2"],
                 clock=lambda: 10.0)  # fmt: skip


def test_configured_queues_and_agents_show_before_anyone_logs_in() -> None:
    board = nodes_board(LiveState())
    board.set_roster(roster(Alice={"sales": 0, "support": 2}, Bob={"sales": 1}, Carl={}))
    snap = board.snapshot()
    queues = {q["queue"]: q for q in snap["queues"]}
    assert list(queues) == ["sales", "support"]
    assert (queues["sales"]["title"], queues["sales"]["alias"]) == ("Sales team", "sales")
    assert (queues["support"]["title"], queues["support"]["alias"]) == ("support", "")
    assert queues["sales"]["configured"]
    assert not queues["sales"]["live"]
    assert (queues["sales"]["waiting"], queues["sales"]["logged_in"]) == (0, 0)
    rows = {a["agent"]: a for a in snap["agents"]}
    assert [a["key"] for a in snap["agents"]] == ["pbx1/Alice", "pbx1/Bob", "pbx1/Carl"]
    alice = rows["Alice"]
    assert alice["state"] == "logged_out"  # the first configured node: where Log in goes
    assert (alice["full_name"], alice["title"], alice["alias"]) == ("Alice Doe", "Alice Doe",
                                                                    "Alice")  # fmt: skip
    assert alice["queues"] == ["sales", "support"]  # what a Log in joins
    assert alice["interface"] == "PJSIP/1000"
    assert alice["since"] is None
    assert (rows["Bob"]["title"], rows["Bob"]["alias"]) == ("Bob", "")  # no full name
    assert (rows["Carl"]["enabled"], rows["Carl"]["reason"]) == (False, "disabled")
    total = snap["total"]
    assert (total["title"], total["waiting"], total["logged_in"]) == ("All queues", 0, 0)


def test_an_agent_who_logs_in_takes_the_place_of_their_logged_out_row() -> None:
    state = LiveState()
    board = nodes_board(state)
    board.set_roster(roster(Alice={"sales": 0}))
    board.delta()
    state.apply(f"{P}/pbx1/agents/Alice", agent_payload("pbx1", "Alice", since=5.0))
    delta = board.delta()
    assert delta is not None
    assert [(a["key"], a["state"]) for a in delta["agents"]] == [("pbx1/Alice", "available")]
    assert delta["gone"] == ["pbx2/Alice"]  # nothing to remove in a browser: harmless
    assert delta["total"]["logged_in"] == 1
    # Logged out: the row stays, dimmed, with the time since the logout.
    state.apply(f"{P}/pbx1/agents/Alice", agent_payload("pbx1", "Alice", "logged_out", since=9.0))
    delta = board.delta()
    assert delta is not None
    (row,) = delta["agents"]
    assert (row["key"], row["state"], row["since"]) == ("pbx1/Alice", "logged_out", 9.0)
    assert "pbx1/Alice" not in delta["gone"]
    # Logged in on the other node: the row moves there.
    state.apply(f"{P}/pbx2/agents/Alice", agent_payload("pbx2", "Alice", since=11.0))
    delta = board.delta()
    assert delta is not None
    assert [a["key"] for a in delta["agents"]] == ["pbx2/Alice"]
    assert delta["gone"] == ["pbx1/Alice"]


def test_roster_changes_reach_the_board() -> None:
    state = LiveState()
    board = nodes_board(state)
    board.set_roster(roster(Alice={"sales": 0}))
    board.delta()
    assert board.delta() is None
    board.set_roster(roster(Alice={"sales": 0}))  # the same again: nothing to push
    assert board.delta() is None
    new = roster(Bob={"sales": 0})
    board.set_roster(Roster(queues={"sales": new.queues["sales"]}, agents=new.agents))
    delta = board.delta()
    assert delta is not None
    assert [a["key"] for a in delta["agents"]] == ["pbx1/Bob"]
    assert "pbx1/Alice" in delta["gone"]
    assert delta["gone_queues"] == ["support"]  # removed, not live, no calls today


def test_a_node_that_is_down_leaves_its_figures_unknown() -> None:
    state = LiveState()
    board = nodes_board(state)
    board.set_roster(roster(Alice={"sales": 0}, Bob={"sales": 0}))
    state.apply(f"{P}/pbx1/status", node_payload("pbx1", True))
    state.apply(f"{P}/pbx2/status", node_payload("pbx2", True))
    state.apply(f"{P}/pbx1/queues/sales", queue_payload(
        "pbx1", "sales", waiting=2, longest_wait_since=3.0, logged_in=1, available=1))  # fmt: skip
    state.apply(f"{P}/pbx2/queues/sales", queue_payload(
        "pbx2", "sales", waiting=1, longest_wait_since=4.0, logged_in=1, on_call=1))  # fmt: skip
    state.apply(f"{P}/pbx1/agents/Alice", agent_payload("pbx1", "Alice", since=5.0))
    state.apply(f"{P}/pbx2/agents/Bob", agent_payload("pbx2", "Bob", "on_call", call="9.1"))
    board.delta()
    # The bridge loses pbx1: its agent and its part of the queue are unknown.
    state.apply(f"{P}/pbx1/status", node_payload("pbx1", False))
    delta = board.delta()
    assert delta is not None
    assert [n["down"] for n in delta["nodes"]] == [True, False]
    (sales,) = [q for q in delta["queues"] if q["queue"] == "sales"]
    assert (sales["down"], sales["unknown"]) == (["pbx1"], False)  # pbx2 still counts
    assert (sales["waiting"], sales["longest_wait_since"], sales["available"]) == (1, 4.0, 0)
    agents = {a["agent"]: a for a in delta["agents"]}
    assert agents["Alice"]["state"] == "unknown"
    assert agents["Alice"]["last_state"] == "available"
    assert agents["Alice"]["since"] is None  # no timer ticking on a state nobody knows
    assert agents["Bob"]["state"] == "on_call"
    assert delta["total"]["logged_in"] == 1  # Bob only
    # Both down: the queue's live figures are unknown altogether.
    state.apply(f"{P}/pbx2/status", node_payload("pbx2", False))
    delta = board.delta()
    assert delta is not None
    (sales,) = [q for q in delta["queues"] if q["queue"] == "sales"]
    assert sales["unknown"] is True
    assert all(sales[k] is None for k in ("waiting", "longest_wait_since", "logged_in"))
    assert delta["total"]["unknown"] is True
    assert delta["total"]["waiting"] is None
    # Back up: the figures are the bridge's again.
    state.apply(f"{P}/pbx1/status", node_payload("pbx1", True))
    state.apply(f"{P}/pbx2/status", node_payload("pbx2", True))
    delta = board.delta()
    assert delta is not None
    assert {a["agent"]: a["state"] for a in delta["agents"]} == {
        "Alice": "available", "Bob": "on_call"}  # fmt: skip
    assert next(q for q in delta["queues"] if q["queue"] == "sales")["waiting"] == 3


def test_with_the_bridge_offline_every_node_is_unknown() -> None:
    state = LiveState()
    board = nodes_board(state)
    state.apply(f"{P}/pbx1/status", node_payload("pbx1", True))
    state.apply(f"{P}/pbx1/queues/sales", queue_payload("pbx1", "sales", waiting=2))
    state.apply(f"{P}/pbx1/agents/Alice", agent_payload("pbx1", "Alice"))
    state.apply(
        f"{P}/bridge/status", json.dumps({"v": 1, "type": "bridge", "online": False}).encode()
    )
    snap = board.snapshot()
    assert all(n["down"] for n in snap["nodes"])
    assert snap["queues"][0]["unknown"] is True
    assert snap["agents"][0]["state"] == "unknown"


def test_the_total_counts_each_agent_once() -> None:
    state = LiveState()
    kpis: dict[str, object] = {"total": {"offered": 7, "service_level": 0.5}, "queues": {}}
    board = nodes_board(state, kpis)
    state.apply(f"{P}/pbx1/queues/sales", queue_payload(
        "pbx1", "sales", waiting=2, longest_wait_since=8.0, logged_in=2, available=1,
        paused=1))  # fmt: skip
    state.apply(
        f"{P}/pbx1/queues/support",
        queue_payload(
            "pbx1", "support", waiting=1, longest_wait_since=6.0, logged_in=2, available=2
        ),
    )
    # Alice is in both queues, paused in sales only: available overall. Bob in both.
    state.apply(f"{P}/pbx1/agents/Alice", agent_payload("pbx1", "Alice"))
    state.apply(f"{P}/pbx1/agents/Bob", agent_payload("pbx1", "Bob"))
    total = board.snapshot()["total"]
    assert (total["waiting"], total["longest_wait_since"]) == (3, 6.0)
    assert (total["logged_in"], total["available"], total["paused"]) == (2, 2, 0)
    assert (total["offered"], total["service_level"]) == (7, 0.5)  # the call log's total


# --- outbound campaigns: the dialer's snapshots (issue 13, "Live view") -------------------------


def campaign_bytes(campaign: str = "renewals", **changes: Any) -> bytes:
    """A campaign's snapshot as the dialer publishes it (the design's example by default)."""
    return encode_campaign_payload(figures(campaign=campaign, **changes))


def test_campaign_snapshots_come_change_and_go() -> None:
    state = LiveState()
    board = board_of(state)
    assert board.snapshot()["campaigns"] == []  # none: the board shows no campaign section
    topic = campaign_topic(P, "renewals")
    state.apply(topic, campaign_bytes())
    assert state.campaigns["renewals"] == figures()
    delta = board.delta()
    assert delta is not None
    (row,) = delta["campaigns"]
    assert delta["gone_campaigns"] == []
    assert (row["campaign"], row["mode"], row["state"], row["queue"]) == (
        "renewals", "predictive", "running", "sales")  # fmt: skip
    assert (row["dialling"], row["ringing"], row["live_today"]) == (2, 5, 160)
    assert (row["agents_free"], row["agents_logged_in"]) == (1, 10)
    assert row["window_rate"] == pytest.approx(71 / 3120)
    assert (row["window_level"], row["life_level"]) == ("ok", "ok")  # 2.28% <= 2.5% target
    assert (row["cap"], row["target"], row["budget_left"], row["contacts_left"]) == (
        0.03, 0.025, 22, 4211)  # fmt: skip
    assert row["reason"] == "predictive: 3 calls; ..."
    state.apply(topic, campaign_bytes())  # the same retained message again (reconnect)
    assert board.delta() is None
    state.apply(topic, campaign_bytes(state="paused", dialling=0))
    delta = board.delta()
    assert delta is not None
    assert [(c["state"], c["dialling"]) for c in delta["campaigns"]] == [("paused", 0)]
    assert "queues" not in delta  # a campaign's change leaves the rest of the board be
    state.apply(topic, b"")  # the campaign was removed: its retained snapshot is cleared
    assert state.campaigns == {}
    delta = board.delta()
    assert delta is not None
    assert (delta["campaigns"], delta["gone_campaigns"]) == ([], ["renewals"])
    assert board.snapshot()["campaigns"] == []


def test_campaigns_are_shown_by_name() -> None:
    state = LiveState()
    for name in ("winback", "renewals", "constructor"):
        state.apply(campaign_topic(P, name), campaign_bytes(name))
    assert [c["campaign"] for c in board_of(state).snapshot()["campaigns"]] == [
        "constructor", "renewals", "winback"]  # fmt: skip


@pytest.mark.parametrize(
    ("rate", "level"),
    [(None, ""), (0.0, "ok"), (0.025, "ok"), (0.0251, "warn"), (0.0299, "warn"),
     (0.03, "alert"), (0.05, "alert")],
)  # fmt: skip
def test_abandon_rate_levels_against_target_and_cap(rate: float | None, level: str) -> None:
    assert rate_level(rate, 0.025, 0.03) == level


def test_campaign_row_levels_and_budget() -> None:
    state = LiveState()
    state.apply(
        campaign_topic(P, "renewals"),
        campaign_bytes(window=RateFigures(live=1000, abandoned=27, days=30),
                       life=RateFigures(live=1000, abandoned=30), budget_left=-2.4),
    )  # fmt: skip
    (row,) = board_of(state).snapshot()["campaigns"]
    assert (row["window_level"], row["life_level"]) == ("warn", "alert")
    assert row["budget_left"] == 0  # spent (over by 2.4): boards never show below 0
    state.apply(
        campaign_topic(P, "renewals"),
        campaign_bytes(window=RateFigures(live=0, abandoned=0, days=30),
                       life=RateFigures(live=0, abandoned=0), budget_left=0.0),
    )  # fmt: skip
    (row,) = board_of(state).snapshot()["campaigns"]
    assert (row["window_rate"], row["window_level"], row["life_rate"]) == (None, "", None)


@pytest.mark.parametrize(
    ("topic", "payload"),
    [
        ("cc/campaigns/renewals", b"{"),
        ("cc/campaigns/renewals", json.dumps({"v": 1, "type": "campaign"}).encode()),
        ("cc/campaigns/renewals", campaign_bytes(mode="blaster")),
        ("cc/campaigns/winback", campaign_bytes()),  # not its own topic: its delete would miss
    ],
)
def test_unreadable_campaign_snapshots_are_counted_and_ignored(topic: str, payload: bytes) -> None:
    state = LiveState()
    state.apply(topic, payload)
    assert (state.rejected, state.campaigns) == (1, {})
    assert not state.take_changes()
