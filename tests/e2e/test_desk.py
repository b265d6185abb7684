"""The agent's desktop in Chromium against a real Asterisk: a SIPp caller comes through the IVR
and the queue, the agent's page pops as their SIPp phone rings with the caller's history, the
agent creates the customer, opens a case and saves a disposition; the same number calls again
and the new pop shows that case.

Skipped, with the reason, without Asterisk, SIPp or Chromium (and the playwright package).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from callcenter import config
from callcenter.core.queue_log import parse_queue_log
from callcenter.crm import dispositions
from callcenter.wallboard import accounts
from callcenter.wallboard.app import Wallboard
from tests.browser import ARTIFACTS
from tests.e2e.conftest import Pbx, Stack, stack

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

pytestmark = pytest.mark.asterisk

PASSWORD = "correct horse battery"
NUMBER = "2015550123"  # a valid US number: the customer record takes it


@contextlib.asynccontextmanager
async def wallboard(st: Stack) -> AsyncIterator[str]:
    settings = dataclasses.replace(
        st.settings,
        wallboard=config.WallboardSettings(port=0, secret_key=config.Secret("e2e-desk")),
    )
    wb = Wallboard(settings, engine=st.engine)
    stop = asyncio.Event()
    task = asyncio.create_task(wb.run(stop), name="e2e-wallboard")
    try:
        async with asyncio.timeout(10):
            await wb.started.wait()
        yield f"http://127.0.0.1:{wb.port}"
    finally:
        stop.set()
        async with asyncio.timeout(20):
            await task


async def visible_text(page: Page, selector: str, needle: str, timeout: float) -> float:
    """Wait until ``selector`` shows ``needle``; when it did (time.time())."""
    await page.wait_for_function(
        "([s, n]) => (document.querySelector(s)?.textContent || '').includes(n)",
        arg=[selector, needle],
        timeout=timeout * 1000,
    )
    return time.time()


def connect_time(pbx: Pbx, start: int) -> float | None:
    entries = parse_queue_log(pbx.queue_log.read_text()[start:])
    return next((e.time for e in entries if e.event == "CONNECT"), None)


async def test_the_page_pops_with_the_history_and_the_agent_documents_the_call(
    pbx: Pbx, engine: Engine, tmp_path: Path, browser: Browser
) -> None:
    callers = tmp_path / "callers.csv"
    callers.write_text(f"SEQUENTIAL\n{NUMBER};Carol Caller\n")
    async with stack(pbx, engine, tmp_path) as st:
        with Session(engine) as s, s.begin():
            accounts.set_agent_password(s, "alice", PASSWORD)
            dispositions.add_code(
                s, dispositions.Owner(queue="sales"), "solved", label="Solved", effect="resolves"
            )
        # Alice's phone rings 2 s before it answers: the pop must come while it rings.
        await st.phones.phone("alice", "1001", "answer", ring_ms=2000, talk_ms=6000)
        await st.login("alice")
        async with wallboard(st) as base:
            page = await browser.new_page()
            await page.goto(f"{base}/agent/login")
            await page.fill("input[name=name]", "alice")
            await page.fill("input[name=password]", PASSWORD)
            await page.click("button[type=submit]")
            await page.wait_for_url(f"{base}/agent")
            await visible_text(page, "#state", "available", 10)

            start = len(pbx.queue_log.read_text()) if pbx.queue_log.exists() else 0
            st.phones.callers(1, patience_ms=30000, inf=callers)
            popped = await visible_text(page, "#pop-caller", NUMBER, 30)
            await visible_text(page, "#customer", "not a customer yet", 5)
            answered = None
            for _ in range(100):
                answered = connect_time(pbx, start)
                if answered is not None:
                    break
                await asyncio.sleep(0.1)
            assert answered is not None, "the agent never answered"
            # The page popped before the agent's phone answered (it rang 2 s).
            assert popped <= answered + 0.5, (popped, answered)
            await page.screenshot(path=str(ARTIFACTS / "agent-desk-pop.png"))

            await page.fill("#new-customer input[name=name]", "Carol Caller")
            await page.click("#new-customer button[type=submit]")
            await visible_text(page, "#message", "Customer created", 5)
            await page.fill("#new-case input[name=subject]", "billing question")
            await page.click("#new-case button[type=submit]")
            await visible_text(page, "#message", "opened", 5)
            case_number = (await page.text_content("#message") or "").split()[1]
            # The queue's codes were loaded with the pop.
            await page.wait_for_function(
                "() => document.querySelectorAll('#codes option').length > 0", timeout=10_000
            )
            await page.select_option("#codes", "solved")
            await page.select_option("#case-choice", case_number)
            await page.fill("#dispose textarea[name=notes]", "explained the bill")
            await page.click("#dispose button[type=submit]")
            await visible_text(page, "#message", "Disposition solved saved", 10)

            # The same number calls again: the pop shows the open case and the last call.
            await asyncio.sleep(7)  # the first call ends (talk 6 s) and wrap-up passes
            st.phones.callers(1, patience_ms=30000, inf=callers)
            await visible_text(page, "#cases", case_number, 30)
            await visible_text(page, "#past-calls", "explained the bill", 5)
            await page.screenshot(path=str(ARTIFACTS / "agent-desk-history.png"))
            await page.close()
