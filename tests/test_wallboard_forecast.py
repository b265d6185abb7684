"""The history page's forecast: the chart of a day's half hours (forecast against offered,
agents needed against logged in), its errors, the line that says there is no history, and
the cache that bounds what browsers cost the database.

The call log is tests/forecast_history.py's: a known weekly pattern growing 5% a week."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from callcenter import config
from callcenter.planning.store import day_forecast
from callcenter.wallboard.fmt import pct
from callcenter.wallboard.history import HistoryCache
from tests import forecast_history as fh
from tests.test_wallboard_support import add_user, http, login, wallboard_settings

Client = TestClient[Any, Any]


@pytest.fixture
def wb_settings(settings: config.Settings, clean_db: Engine) -> config.Settings:
    add_user(clean_db)
    return wallboard_settings(settings)


def forecast_of(engine: Engine, queue: str | None) -> Any:
    with Session(engine) as s:
        return day_forecast(s, queue, fh.DAY, tz=ZoneInfo("UTC"), now=dt.datetime.now(dt.UTC))


def section(html: str) -> str:
    found = re.search(r'<section class="forecast".*?</section>', html, re.S)
    assert found, "no forecast section"
    return found.group(0)


async def test_the_history_page_shows_the_forecast_against_the_day(
    wb_settings: config.Settings, clean_db: Engine
) -> None:
    fh.fill(clean_db)
    expected = forecast_of(clean_db, "sales")
    async with http(wb_settings, clean_db) as (wb, client):
        await login(client)
        resp = await client.get(f"/history?day={fh.DAY}&queue=sales")
        assert resp.status == 200
        html = section(await resp.text())
        assert 'id="forecast-chart"' in html
        # A bar per half hour of the day (all over), the forecast's steps, both staffing lines.
        assert html.count('<rect class="offered"') == 48
        assert html.count('<rect class="logged-in') == 48
        for line in ("forecast-line", "required-a", "required-c"):
            assert f'class="{line}" points="' in html
        assert f'<strong id="day-mape">{pct(expected.day_mape)}</strong>' in html
        assert f'<strong id="backtest-mape">{pct(expected.backtest.mape)}</strong>' in html
        assert f"seasonal naive, the same half hour a week earlier: " \
               f"{pct(expected.backtest.naive_mape)}" in html  # fmt: skip
        # At 10:00 the spike: more calls than forecast; fewer agents than needed are red.
        peak = expected.slots[20]
        assert f"10:00 offered {peak.offered}, forecast {peak.forecast:.1f}" in html
        assert '<rect class="logged-in short"' in html
        assert f"up to {max(s.agents_a for s in expected.slots)} (Erlang A)" in html
        queries = wb.parts.history.queries
        again = await client.get(f"/history?day={fh.DAY}&queue=sales")
        assert again.status == 200
        assert wb.parts.history.queries == queries  # a past day: from the cache

        everything = section(await (await client.get(f"/history?day={fh.DAY}")).text())
        assert 'id="forecast-chart"' in everything
        assert "the sum of each queue's forecast and agents" in everything

        support = await client.get(f"/history?day={fh.DAY}&queue=support")
        assert support.status == 200
        html = section(await support.text())
        assert "No history to forecast from: support had no calls in the" in html
        assert "forecast-chart" not in html


async def test_the_history_page_without_any_call_log(
    wb_settings: config.Settings, clean_db: Engine
) -> None:
    async with http(wb_settings, clean_db) as (_, client):
        await login(client)
        resp = await client.get("/history")
        assert resp.status == 200
        html = section(await resp.text())
        assert "No history to forecast from: no calls in any queue in the 8 weeks" in html
        assert "forecast-chart" not in html


async def test_the_cache_learns_once_a_week_and_follows_today(clean_db: Engine) -> None:
    """What the forecast learned of the weeks before is computed once per week and queue
    however many browsers ask; today's calls and agents again after ``today_ttl``; a past
    day's not again."""
    fh.fill(clean_db)
    cache = HistoryCache(clean_db, config.ReportingSettings(), ZoneInfo("UTC"), today_ttl=0)
    today = dt.datetime.now(dt.UTC).date()
    first = await asyncio.gather(*(cache.forecast(today, "sales", 0.8) for _ in range(10)))
    assert cache.queries == 2  # the week's model, the day against it
    assert all(f is first[0] for f in first)
    await cache.forecast(today, "sales", 0.8)
    assert cache.queries == 3  # today again, the model kept
    past = await cache.forecast(fh.DAY, "sales", 0.8)
    assert past == forecast_of(clean_db, "sales")
    await cache.forecast(fh.DAY, "sales", 0.8)
    assert cache.queries == 5
    await cache.close()
