"""The SIP attack alert on the supervisors' board: the bridge's retained ``sip_alerts`` payload
read by the live state, the banner text, a delta that carries the status alone, and the page
rendered on the server with it."""

from __future__ import annotations

import json

import pytest
from sqlalchemy.engine import Engine

from callcenter import config
from callcenter.security import alerts
from callcenter.security.alerts import AlertsPayloadError, alerts_of, alerts_payload, banner
from callcenter.wallboard import model
from callcenter.wallboard.board import Board
from callcenter.wallboard.live import LiveState
from callcenter.wallboard.options import WallboardOptions
from tests.test_security_store import offender
from tests.test_wallboard_support import http, login, queue_payload, wallboard_settings

TOPIC = alerts.topic("x")


def payload(*offenders: object, at: float = 5.0) -> bytes:
    return json.dumps(alerts_payload(list(offenders), at)).encode()  # type: ignore[arg-type]


def test_the_payload_round_trips_and_names_the_worst() -> None:
    many = [offender(f"203.0.113.{n}", failures=10 + n, blocked=n % 2 == 0) for n in range(25)]
    data = alerts_payload(many, 7.0)
    assert (data["type"], data["count"], len(data["alerts"])) == ("sip_alerts", 25, 20)
    record = alerts_of(json.loads(json.dumps(data)))
    assert record.count == 25
    assert record.alerts[0].address == "203.0.113.0"
    text = banner(record)
    assert text == (
        "SIP login attack: 203.0.113.0 (10 failed, blocked), 203.0.113.1 (11 failed), "
        "203.0.113.2 (12 failed, blocked) and 22 more: see `callcenter security list`."
    )
    allowed = alerts_of(alerts_payload([offender("127.0.0.1", allowed=True)], 1.0))
    assert banner(allowed) == (
        "SIP login attack: 127.0.0.1 (12 failed, allowed: not blocked): see "
        "`callcenter security list`."
    )
    assert banner(None) == ""
    assert banner(alerts_of(alerts_payload([], 1.0))) == ""


@pytest.mark.parametrize(
    "bad",
    [{"count": -1, "alerts": [], "at": 1}, {"count": 1, "alerts": {}, "at": 1},
     {"count": 1, "alerts": [], "at": True}, {"count": 1, "alerts": [{"address": 1}], "at": 1},
     {"count": 1, "alerts": [{"address": "a", "failures": 1, "last_seen": "x"}], "at": 1}],
)  # fmt: skip
def test_payloads_the_board_cannot_read(bad: dict[str, object]) -> None:
    with pytest.raises(AlertsPayloadError):
        alerts_of(bad)
    with pytest.raises(model.PayloadError):
        model.parse({"v": 1, "type": "sip_alerts", **bad})


def test_the_banner_follows_the_retained_list() -> None:
    state = LiveState()
    board = Board(state, dict, WallboardOptions(), ["pbx1"], clock=lambda: 10.0)
    state.apply("x/pbx1/queues/sales", queue_payload("pbx1", "sales"))
    board.delta()
    assert "sip_alert" not in board.status()
    state.apply(TOPIC, payload(offender("203.0.113.5", blocked=True)))
    delta = board.delta()
    assert delta is not None
    assert delta["status"]["sip_alert"].startswith("SIP login attack: 203.0.113.5 (12 failed")
    assert "queues" not in delta  # the status alone: not every row again
    assert "nodes" not in delta
    assert board.snapshot()["status"]["sip_alert"] == delta["status"]["sip_alert"]
    state.apply(TOPIC, payload(offender("203.0.113.5", blocked=True)))
    assert board.delta() is None  # the same list again: nothing changed
    state.apply(TOPIC, payload())  # the alerts ended
    delta = board.delta()
    assert delta is not None
    assert "sip_alert" not in delta["status"]
    state.apply(TOPIC, payload(offender("203.0.113.5")))
    state.apply(TOPIC, b"")  # the retained topic deleted
    delta = board.delta()
    assert delta is not None
    assert "sip_alert" not in delta["status"]


async def test_the_board_page_shows_the_alert(settings: config.Settings, clean_db: Engine) -> None:
    from tests.test_wallboard_support import add_user

    add_user(clean_db)
    async with http(wallboard_settings(settings), clean_db) as (wb, client):
        wb.parts.state.apply(TOPIC, payload(offender("203.0.113.5", failures=57, blocked=True)))
        await login(client)
        html = await (await client.get("/board")).text()
        assert "SIP login attack: 203.0.113.5 (57 failed, blocked)" in html
        board = await (await client.get("/api/v1/board")).json()
        assert board["status"]["sip_alert"].startswith("SIP login attack")
