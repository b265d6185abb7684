"""Satisfaction on the wallboard: today's CSAT and NPS per queue (and over all queues), with
their numbers of answers, in the server's render of both layouts, in the JSON API as the
OpenAPI document says, in /metrics' queue figures, and live in a real browser (the board's
script formats them as the server does)."""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from callcenter import config, directory
from callcenter.db.models import Call
from callcenter.db.models_ivr import SurveyAnswer
from tests.browser import ARTIFACTS
from tests.calllog import with_visit
from tests.test_wallboard_api import conforms
from tests.test_wallboard_browser import (
    CELL,
    cell_is,
    logged_in_page,
    until,
    wallboard_running,
)
from tests.test_wallboard_support import (
    add_token,
    add_user,
    clear_retained,
    http,
    login,
    wallboard_settings,
)

if TYPE_CHECKING:
    from playwright.async_api import Browser


def today_or_skip() -> dt.datetime:
    """A minute ago, today in the site's time zone (UTC: no settings file)."""
    now = dt.datetime.now(dt.UTC)
    if now.hour == 0 and now.minute < 3:
        pytest.skip("too close to midnight UTC for answers 'today'")
    return now - dt.timedelta(minutes=1)


def add_day(engine: Engine, at: dt.datetime) -> None:
    """sales: one call, a CSAT 5 and a 3, an NPS 6. support: a call, no answer. vip: no call,
    one NPS 10 (a survey of an older call)."""
    with Session(engine) as s, s.begin():
        for name, sl in (("sales", 20), ("support", 30), ("vip", 45)):
            directory.add_queue(s, name, service_level_seconds=sl)
        s.add_all(with_visit([
            Call(node="pbx1", uniqueid=f"b.{n}", linkedid=f"b.{n}", started_at=at,
                 queued_at=at, answered_at=at + dt.timedelta(seconds=3), queue=queue,
                 agent="alice", wait_seconds=3, talk_seconds=30, outcome="answered")
            for n, queue in enumerate(("sales", "support"))
        ]))  # fmt: skip
        for n, (question, score, scale, queue) in enumerate(
            [("agent", 5, 5, "sales"), ("agent", 3, 5, "sales"), ("recommend", 6, 10, "sales"),
             ("recommend", 10, 10, "vip")]
        ):  # fmt: skip
            s.add(SurveyAnswer(node="pbx1", uniqueid=f"s.{n}", question=question,
                               score=score, scale=scale, agent="alice", queue=queue,
                               answered_at=at))  # fmt: skip


def cell(html: str, queue: str, field: str) -> str:
    """The text of ``field`` in the queue's row or tile of a rendered board."""
    start = html.index(f'data-key="{queue}"')
    found = re.compile(rf'data-f="{field}"[^>]*>([^<]*)<').search(html, start)
    assert found, (queue, field)
    return found.group(1)


@pytest.fixture
def wb_settings(settings: config.Settings, clean_db: Engine) -> config.Settings:
    add_user(clean_db)
    return wallboard_settings(settings)


async def test_the_board_renders_today_s_satisfaction(
    wb_settings: config.Settings, clean_db: Engine
) -> None:
    add_day(clean_db, today_or_skip())
    async with http(wb_settings, clean_db) as (wb, client):
        await wb.parts.kpis.refresh()
        await login(client)
        for layout in ("laptop", "tv"):
            html = await (await client.get(f"/board?layout={layout}")).text()
            assert cell(html, "sales", "csat") == "50%", layout
            assert cell(html, "sales", "csat_n") == "2"
            assert cell(html, "sales", "nps") == "-100"
            assert cell(html, "sales", "nps_n") == "1"
            # Nobody answered: "—" and n=0, never 0%.
            assert cell(html, "support", "csat") == "—"
            assert cell(html, "support", "csat_n") == "0"
            assert cell(html, "support", "nps") == "—"
            assert cell(html, "vip", "nps") == "+100"
            assert cell(html, "vip", "offered") == "0"
            # All queues: CSAT 1 of 2, NPS (1 promoter - 1 detractor) of 2.
            total = html[html.index('id="queue-total"') :]
            assert re.search(r'data-f="csat"[^>]*>50%<', total)
            assert re.search(r'data-f="nps"[^>]*>0<', total)
            assert re.search(r'data-f="nps_n"[^>]*>2<', total)
            # The template rows of new queues start at "—", n=0.
            template = html[html.index('id="queue-tpl"') :]
            assert re.search(r'data-f="csat" data-fmt="csat">—<', template)


async def test_the_api_has_satisfaction_as_its_document_says(
    wb_settings: config.Settings, clean_db: Engine
) -> None:
    add_day(clean_db, today_or_skip())
    token = add_token(clean_db, "prometheus")
    async with http(wb_settings, clean_db) as (wb, client):
        await wb.parts.kpis.refresh()
        await wb.parts.auth.cache.reload()
        await login(client)
        doc = await (await client.get("/api/openapi.json")).json()
        got: dict[str, Any] = {}
        for path in ("/api/v1/kpis", "/api/v1/queues", "/api/v1/board"):
            schema = doc["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]
            got[path] = await (await client.get(path)).json()
            conforms(got[path], schema["schema"], doc, path)
        metrics = await client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert metrics.status == 200  # vip, with answers and no call, has every figure
        assert 'callcenter_queue_today_offered{queue="vip"} 0' in await metrics.text()
    kpis = got["/api/v1/kpis"]
    assert kpis["queues"]["sales"]["csat"] == 0.5
    assert kpis["queues"]["support"]["csat_n"] == 0
    assert kpis["queues"]["support"]["csat"] is None
    assert kpis["total"]["nps_n"] == 2
    queues = {q["queue"]: q for q in got["/api/v1/queues"]["queues"]}
    assert (queues["vip"]["nps"], queues["vip"]["nps_n"]) == (100.0, 1)
    assert got["/api/v1/board"]["total"]["csat_n"] == 2


# --- live, in a browser ------------------------------------------------------------------------


@pytest.mark.slow
async def test_the_board_script_shows_new_answers_as_the_server_would(
    browser: Browser, settings: config.Settings, clean_db: Engine
) -> None:
    at = today_or_skip()
    add_user(clean_db, "sam")
    add_day(clean_db, at)
    s = wallboard_settings(settings)
    try:
        async with wallboard_running(s, clean_db, links={}) as wb:
            page = await logged_in_page(browser, f"http://127.0.0.1:{wb.port}")
            problems: list[str] = []
            page.on("pageerror", lambda e: problems.append(str(e)))
            await until(page, *cell_is(CELL, "sales", "csat", "50%"), timeout=5)
            assert await page.evaluate(f"({CELL})('support', 'csat')") == "—"
            # Two more answers: a promoter in support, a passive in sales.
            with Session(clean_db) as db, db.begin():
                for n, (score, queue) in enumerate(((9, "support"), (7, "sales"))):
                    db.add(SurveyAnswer(node="pbx1", uniqueid=f"t.{n}",
                                        question="recommend", score=score, scale=10,
                                        queue=queue, answered_at=at))  # fmt: skip
            wb.parts.kpis.poke()
            await until(page, *cell_is(CELL, "support", "nps", "+100"), timeout=5)
            assert await page.evaluate(f"({CELL})('support', 'nps_n')") == "1"
            assert await page.evaluate(f"({CELL})('sales', 'nps')") == "-50"  # 0 - 1 of 2
            assert await page.evaluate(f"({CELL})('support', 'csat')") == "—"
            nps_total = "#queue-total [data-f='nps']"
            assert await page.inner_text(nps_total) == "+25"  # (2 - 1) of 4
            assert problems == []
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "wallboard-satisfaction.png"))
            tv = await page.context.new_page()
            await tv.goto(f"http://127.0.0.1:{wb.port}/board?layout=tv")
            assert await tv.inner_text("#queues [data-key='support'] [data-f='nps']") == "+100"
            await tv.screenshot(path=str(ARTIFACTS / "wallboard-tv-satisfaction.png"))
    finally:
        await clear_retained(s.mqtt.topic_prefix)
