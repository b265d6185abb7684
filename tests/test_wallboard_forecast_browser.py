"""The history page's forecast chart in a real browser (Debian's Chromium driven by
Playwright), under the wallboard's own Content-Security-Policy: a supervisor logs in, picks a
day and a queue, and sees the chart of forecast against offered calls and agents needed
against logged in, styled by the stylesheet (no inline style, no script), with the errors of
the forecast. A screenshot is kept in ``test-artifacts/wallboard-forecast.png``. Skipped, with
the reason, where Chromium or the playwright package is missing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from sqlalchemy.engine import Engine

from callcenter import config
from tests import forecast_history as fh
from tests.browser import ARTIFACTS
from tests.test_wallboard_browser import wallboard_running
from tests.test_wallboard_support import PASSWORD, add_user, clear_retained, wallboard_settings

if TYPE_CHECKING:
    from playwright.async_api import Browser


CHART = "#forecast-chart"


@pytest.mark.slow
async def test_the_history_page_shows_the_forecast_chart(
    browser: Browser, settings: config.Settings, clean_db: Engine
) -> None:
    add_user(clean_db, "sam")
    fh.fill(clean_db)
    s = wallboard_settings(settings)
    try:
        async with wallboard_running(s, clean_db) as wb:
            base = f"http://127.0.0.1:{wb.port}"
            ctx = await browser.new_context(viewport={"width": 1440, "height": 1000})
            page = await ctx.new_page()
            refused: list[str] = []
            page.on("console", lambda m: refused.append(m.text) if m.type == "error" else None)
            await page.goto(f"{base}/login")
            await page.fill("input[name=name]", "sam")
            await page.fill("input[name=password]", PASSWORD)
            await page.click("button[type=submit]")
            await page.wait_for_url(f"{base}/board")

            await page.goto(f"{base}/history")
            await page.fill("input[name=day]", fh.DAY.isoformat())
            await page.select_option("select[name=queue]", "sales")
            await page.click("form.pick button[type=submit]")
            await page.wait_for_url(f"{base}/history?day={fh.DAY}&queue=sales")

            chart = page.locator(CHART)
            await chart.scroll_into_view_if_needed()
            assert await chart.is_visible()
            box = await chart.bounding_box()
            assert box is not None
            assert box["width"] > 800
            assert box["height"] > 300
            assert await page.locator(f"{CHART} rect.offered").count() == 48
            assert await page.locator(f"{CHART} rect.logged-in").count() == 48
            assert await page.locator(f"{CHART} rect.logged-in.short").count() > 0
            for line in ("forecast-line", "required-a", "required-c"):
                points = await page.get_attribute(f"{CHART} polyline.{line}", "points")
                assert points
                assert len(points.split()) == 96  # a step per half hour
            # The stylesheet's colours reached the SVG (the CSP allows no inline style).
            fill = "sel => getComputedStyle(document.querySelector(sel)).fill"
            assert await page.evaluate(fill, f"{CHART} rect.offered") == "rgb(52, 152, 219)"
            stroke = "sel => getComputedStyle(document.querySelector(sel)).stroke"
            assert await page.evaluate(stroke, f"{CHART} .forecast-line") == "rgb(241, 196, 15)"
            assert (await page.inner_text("#day-mape")).endswith("%")
            assert (await page.inner_text("#backtest-mape")).endswith("%")
            title = await page.locator(f"{CHART} rect.offered >> nth=20").text_content()
            assert (title or "").startswith("10:00 offered ")
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "wallboard-forecast.png"), full_page=True)

            # A queue with no history: the line that says so, no chart.
            await page.goto(f"{base}/history?day={fh.DAY}&queue=support")
            assert "No history to forecast from" in await page.inner_text(".no-history")
            assert await page.locator(CHART).count() == 0
            assert not [m for m in refused if "Content Security Policy" in m], refused
            await ctx.close()
    finally:
        await clear_retained(s.mqtt.topic_prefix)
