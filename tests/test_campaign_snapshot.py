"""A campaign's MQTT snapshot (callcenter.campaigns.snapshot): the payload of the design, the
topic, and reading it back (round trips; malformed payloads refused with one line)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.campaigns import snapshot
from callcenter.campaigns.snapshot import (
    AgentCounts,
    CampaignFigures,
    CampaignPayloadError,
    DayFigures,
    RateFigures,
    campaign_payload,
    campaign_topic,
    encode_campaign_payload,
    parse_campaign_payload,
)
from callcenter.db import models_campaigns
from callcenter.wallboard import model

#: The design's example (docs/events.md), its rates as the design rounds them.
EXAMPLE: dict[str, Any] = {
    "v": 1, "type": "campaign", "campaign": "renewals", "mode": "predictive",
    "state": "running", "queue": "sales", "paced": "predictive",
    "reason": "predictive: 3 calls; ...",
    "dialling": 2, "ringing": 5, "waiting": 0, "connected": 7, "messages": 1,
    "agents": {"logged_in": 10, "free": 1, "busy": 7, "wrap_up": 1, "paused": 1},
    "today": {"attempts": 812, "live": 160, "connected": 156, "abandoned": 4},
    "window": {"days": 30, "live": 3120, "abandoned": 71, "rate": 0.0228},
    "life": {"live": 3120, "abandoned": 71, "rate": 0.0228},
    "cap": 0.03, "target": 0.025, "budget_left": 22.6, "contacts_left": 4211,
    "dialer": "host:1234", "at": 1796601600.5,
}  # fmt: skip


def figures(**changes: Any) -> CampaignFigures:
    base = CampaignFigures(
        campaign="renewals", mode="predictive", state="running", queue="sales",
        paced="predictive", reason="predictive: 3 calls; ...", dialling=2, ringing=5,
        waiting=0, connected=7, messages=1,
        agents=AgentCounts(logged_in=10, free=1, busy=7, wrap_up=1, paused=1),
        today=DayFigures(attempts=812, live=160, connected=156, abandoned=4),
        window=RateFigures(live=3120, abandoned=71, days=30),
        life=RateFigures(live=3120, abandoned=71), cap=0.03, target=0.025, budget_left=22.6,
        contacts_left=4211, dialer="host:1234", at=1796601600.5,
    )  # fmt: skip
    return dataclasses.replace(base, **changes)


def test_the_payload_is_the_designs() -> None:
    payload = campaign_payload(figures())
    assert list(payload) == list(EXAMPLE)  # the same fields, in the documented order
    for period in ("window", "life"):
        assert payload[period]["rate"] == pytest.approx(71 / 3120)
        assert round(payload[period]["rate"], 4) == EXAMPLE[period]["rate"]
    rounded = {**payload, "window": {**payload["window"], "rate": 0.0228},
               "life": {**payload["life"], "rate": 0.0228}}  # fmt: skip
    assert rounded == EXAMPLE


def test_the_designs_example_reads() -> None:
    assert parse_campaign_payload(json.dumps(EXAMPLE).encode()) == figures()


def test_round_trip_and_compact_utf8() -> None:
    f = figures(reason="idle: outside calling hours (José's list)", queue=None,
                mode="agentless", paced="idle")  # fmt: skip
    data = encode_campaign_payload(f)
    compact = json.dumps(campaign_payload(f), separators=(",", ":"), ensure_ascii=False)
    assert data == compact.encode()
    assert "José".encode() in data  # as is, not \u00e9
    assert parse_campaign_payload(data) == f
    assert parse_campaign_payload(json.dumps(campaign_payload(f)).encode()) == f
    # The wallboard reads the very same record.
    assert model.parse(json.loads(data)) == f


def test_no_live_answer_no_rate() -> None:
    f = figures(window=RateFigures(live=0, abandoned=0, days=30),
                life=RateFigures(live=0, abandoned=0), budget_left=-1.5)  # fmt: skip
    payload = campaign_payload(f)
    assert payload["window"]["rate"] is None
    assert payload["life"]["rate"] is None
    assert b'"rate":null' in encode_campaign_payload(f)
    assert parse_campaign_payload(encode_campaign_payload(f)) == f  # a negative budget too


def test_the_window_has_days_and_the_life_has_none() -> None:
    for wrong in (figures(window=RateFigures(live=1, abandoned=0)),
                  figures(life=RateFigures(live=1, abandoned=0, days=30))):  # fmt: skip
        with pytest.raises(CampaignPayloadError, match="days"):
            campaign_payload(wrong)
    assert "days" not in campaign_payload(figures())["life"]


def test_unknown_fields_are_ignored() -> None:
    data = {**EXAMPLE, "new_field": [1, 2], "agents": {**EXAMPLE["agents"], "ringing": 3}}
    assert parse_campaign_payload(json.dumps(data).encode()) == figures()


def test_topic() -> None:
    assert campaign_topic("callcenter", "renewals") == "callcenter/campaigns/renewals"
    assert campaign_topic("cc/site1", "q3-survey_2") == "cc/site1/campaigns/q3-survey_2"
    for bad in ("", "Renewals", "a/b", "+", "#", "x" * 65, "-lead"):
        with pytest.raises(CampaignPayloadError):
            campaign_topic("callcenter", bad)


def test_the_vocabularies_are_the_databases() -> None:
    assert snapshot.MODES == models_campaigns.MODES
    assert snapshot.STATES == models_campaigns.STATES


def _with(path: str, value: Any) -> bytes:
    """EXAMPLE with ``path`` (``a.b``) set to ``value``, or removed when value is ...."""
    data = json.loads(json.dumps(EXAMPLE))
    *outer, last = path.split(".")
    target = data
    for key in outer:
        target = target[key]
    if value is ...:
        del target[last]
    else:
        target[last] = value
    return json.dumps(data).encode()


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"", "not JSON"),
        (b"not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (_with("v", 2), "version"),
        (_with("v", ...), "version"),
        (_with("type", "queue"), "type"),
        (_with("campaign", "Renewals"), "campaign"),
        (_with("campaign", ...), "campaign: missing"),
        (_with("mode", "blaster"), "mode"),
        (_with("state", "dialling"), "state"),
        (_with("paced", "fast"), "paced"),
        (_with("reason", None), "reason"),
        (_with("queue", 5), "queue"),
        (_with("queue", ...), "queue: missing"),
        (_with("dialling", -1), "dialling"),
        (_with("ringing", 1.0), "ringing"),
        (_with("waiting", True), "waiting"),
        (_with("connected", "7"), "connected"),
        (_with("agents", [1]), "agents"),
        (_with("agents.free", None), "agents.free"),
        (_with("today.live", ...), "today.live: missing"),
        (_with("window.days", 0), "window.days"),
        (_with("window.abandoned", 4000), "window.abandoned"),
        (_with("window.rate", None), "window.rate"),
        (_with("window.rate", 1.5), "window.rate"),
        (_with("life", None), "life"),
        (_with("life.rate", "2%"), "life.rate"),
        (_with("cap", 3), "cap"),
        (_with("target", -0.01), "target"),
        (_with("budget_left", "lots"), "budget_left"),
        (_with("contacts_left", None), "contacts_left"),
        (_with("dialer", 1234), "dialer"),
        (_with("at", None), "at"),
        (json.dumps({**EXAMPLE, "at": float("nan")}).encode(), "at"),
        (json.dumps({**EXAMPLE, "budget_left": float("inf")}).encode(), "budget_left"),
        (_with("life", {"live": 0, "abandoned": 0, "rate": 0.0}), "life.rate"),
    ],
)
def test_malformed_payloads_are_refused_in_one_line(data: bytes, says: str) -> None:
    with pytest.raises(CampaignPayloadError, match=says) as caught:
        parse_campaign_payload(data)
    assert isinstance(caught.value, ValueError)
    assert "\n" not in str(caught.value)


COUNT = st.integers(min_value=0, max_value=10**9)
FRACTION = st.floats(min_value=0, max_value=1)
NUMBER = st.floats(allow_nan=False, allow_infinity=False)


@st.composite
def periods(draw: st.DrawFn) -> tuple[int, int]:
    live = draw(COUNT)
    return live, draw(st.integers(min_value=0, max_value=live))


@st.composite
def any_figures(draw: st.DrawFn) -> CampaignFigures:
    w_live, w_abandoned = draw(periods())
    l_live, l_abandoned = draw(periods())
    return CampaignFigures(
        campaign=draw(st.from_regex(snapshot.NAME_RE, fullmatch=True)),
        mode=draw(st.sampled_from(snapshot.MODES)), state=draw(st.sampled_from(snapshot.STATES)),
        queue=draw(st.none() | st.text()), paced=draw(st.sampled_from(snapshot.PACED)),
        reason=draw(st.text()), dialling=draw(COUNT), ringing=draw(COUNT), waiting=draw(COUNT),
        connected=draw(COUNT), messages=draw(COUNT),
        agents=AgentCounts(*(draw(COUNT) for _ in range(5))),
        today=DayFigures(*(draw(COUNT) for _ in range(4))),
        window=RateFigures(live=w_live, abandoned=w_abandoned, days=draw(st.integers(1, 366))),
        life=RateFigures(live=l_live, abandoned=l_abandoned), cap=draw(FRACTION),
        target=draw(FRACTION), budget_left=draw(NUMBER), contacts_left=draw(COUNT),
        dialer=draw(st.text()), at=draw(NUMBER),
    )  # fmt: skip


@given(any_figures())
def test_any_figures_round_trip(f: CampaignFigures) -> None:
    assert parse_campaign_payload(encode_campaign_payload(f)) == f
