"""QA scorecards in a real browser (Debian's Chromium driven by Playwright), against the
whole web app as ``callcenter run`` serves it: a supervisor opens the QA page, picks a
recording nobody scored, scores it beside its player and saves; the agent logs in to the
desktop, opens their QA scores and sees the score, the comment and each answer.

Screenshots are kept in ``test-artifacts/``. Skipped, with the reason, where Chromium or the
playwright package is missing.
"""

from __future__ import annotations

import dataclasses
import re
import wave
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from callcenter import config, directory
from callcenter.db.models_quality import Recording
from callcenter.quality import store
from callcenter.wallboard import accounts
from tests.browser import ARTIFACTS
from tests.conftest import count
from tests.qa_support import add_form, add_recording
from tests.test_wallboard_browser import wallboard_running
from tests.test_wallboard_support import PASSWORD, add_user, wallboard_settings

if TYPE_CHECKING:
    from playwright.async_api import Browser

TIMEOUT = 10_000  # ms: a page of this app loads in well under a second here


def silent_wav(path: Path, seconds: float = 2.0) -> None:
    """A recording as MixMonitor writes one (16-bit PCM, 8 kHz, mono): silence."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x00" * int(8000 * seconds))


@pytest.mark.slow
async def test_a_supervisor_scores_a_call_and_the_agent_sees_the_score(
    browser: Browser, settings: config.Settings, clean_db: Engine, tmp_path: Path
) -> None:
    add_user(clean_db, "sam")
    with Session(clean_db) as s, s.begin():
        directory.add_queue(s, "sales")
        directory.add_agent(s, name="alice", extension="1001", pin="2468")
        accounts.set_agent_password(s, "alice", PASSWORD)
    form = add_form(clean_db)
    rec = add_recording(clean_db, agent="alice", queue="sales")
    with Session(clean_db) as s:
        path = s.get_one(Recording, rec).path
    # The file where the recordings' audio route looks for it (once that route exists: this
    # test asks nothing of it beyond the player's src).
    silent_wav(tmp_path / path)
    s_ = wallboard_settings(settings)
    if hasattr(s_, "recording"):
        s_ = dataclasses.replace(s_, recording=dataclasses.replace(s_.recording, dir=str(tmp_path)))
    ARTIFACTS.mkdir(exist_ok=True)
    async with wallboard_running(s_, clean_db) as wb:
        base = f"http://127.0.0.1:{wb.port}"

        # --- the supervisor ---
        sup = await browser.new_context(viewport={"width": 1440, "height": 900})
        page = await sup.new_page()
        page.set_default_timeout(TIMEOUT)
        await page.goto(f"{base}/login")
        await page.fill("input[name=name]", "sam")
        await page.fill("input[name=password]", PASSWORD)
        await page.click("button[type=submit]")
        await page.wait_for_url(f"{base}/board")
        await page.click("header nav >> text=QA")
        await page.wait_for_url(f"{base}/qa")
        await page.click(f"#qa-unscored a[href='/qa/evaluate/{rec}']")
        await page.wait_for_url(f"{base}/qa/evaluate/{rec}")
        player = page.locator("audio#qa-player")
        assert await player.get_attribute("src") == f"/recordings/{rec}/audio"
        assert await page.locator("#qa-agent").text_content() == "alice"
        # The browser refuses to send an unanswered form (every radio group is required).
        await page.click("#qa-form button[type=submit]")
        assert page.url == f"{base}/qa/evaluate/{rec}"
        assert count(clean_db, "qa_evaluations") == 0
        greeted, needed, polite = form.questions
        await page.check(f"input[name=q{greeted.id}][value='1']")
        await page.check(f"input[name=q{needed.id}][value='4']")
        await page.check(f"input[name=q{polite.id}][value='1']")
        await page.fill("textarea[name=comment]", "Clear and friendly. Confirm the order number.")
        await page.screenshot(path=str(ARTIFACTS / "qa-evaluate.png"), full_page=True)
        await page.click("#qa-form button[type=submit]")
        await page.wait_for_url(re.compile(r".*/qa/evaluations/\d+$"))
        assert await page.locator(".qa-score").text_content() == "90.0%"
        await page.screenshot(path=str(ARTIFACTS / "qa-result.png"), full_page=True)
        await page.goto(f"{base}/qa")
        assert "1 evaluation, mean 90.0%" in (await page.locator("main h2").text_content() or "")
        await page.screenshot(path=str(ARTIFACTS / "qa-report.png"), full_page=True)
        await sup.close()

        # --- the agent ---
        agent = await browser.new_context(viewport={"width": 1280, "height": 800})
        page = await agent.new_page()
        page.set_default_timeout(TIMEOUT)
        await page.goto(f"{base}/agent/login")
        await page.fill("input[name=name]", "alice")
        await page.fill("input[name=password]", PASSWORD)
        await page.click("button[type=submit]")
        await page.wait_for_url(f"{base}/agent")
        await page.click("a#my-qa")
        await page.wait_for_url(f"{base}/agent/qa")
        row = page.locator("#qa-mine tr[data-evaluation]")
        assert await row.count() == 1
        assert await row.locator("[data-f=score]").text_content() == "90.0%"
        assert "Clear and friendly. Confirm the order number." in (await row.text_content() or "")
        await page.click("#qa-mine summary")
        answers = page.locator("#qa-mine .qa-answer-list li")
        assert await answers.nth(1).text_content() == "Found out what the caller needed: 4 / 5"
        await page.screenshot(path=str(ARTIFACTS / "qa-agent.png"), full_page=True)
        await agent.close()
    with Session(clean_db) as s:
        (saved,) = store.list_evaluations(s)
    assert (saved.agent, saved.evaluator, saved.score, saved.critical_failed) == (
        "alice",
        "sam",
        90.0,
        False,
    )
