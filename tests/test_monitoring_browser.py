"""The board's Listen / Whisper / Barge buttons in Chromium, under the page's own CSP: shown
to a supervisor with a phone on agents who are on a call only, and following the agent's
state live; a click posts with the session's CSRF token and the Originate reaches the AMI
peer (tests/fake_ami.py); Barge asks first. Skipped where Chromium or playwright is absent.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from typing import TYPE_CHECKING

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from callcenter import config
from callcenter.db.models import Call
from callcenter.wallboard import accounts
from callcenter.wallboard.control import links_for
from tests.fake_ami import FakeAmi
from tests.test_monitoring_web import CALL, CHANNEL, NODE, queued
from tests.test_wallboard_browser import publish, wallboard_running
from tests.test_wallboard_support import (
    PASSWORD,
    agent_payload,
    clear_retained,
    node_payload,
    wallboard_settings,
)

if TYPE_CHECKING:
    from playwright.async_api import Browser


@pytest.mark.slow
async def test_the_monitoring_buttons_follow_the_agent_and_ring_the_supervisor(
    browser: Browser, settings: config.Settings, clean_db: Engine
) -> None:
    with Session(clean_db) as db, db.begin():
        accounts.add_user(db, "sam", PASSWORD, phone="2001")
        now = dt.datetime.now(dt.UTC)
        db.add(Call(node=NODE, uniqueid=CALL, linkedid=CALL, caller_number="2015550123",
                   started_at=now, queue="sales", agent="alice", agent_channel=CHANNEL,
                   answered_at=now))  # fmt: skip
    async with FakeAmi(extra={"Originate": queued}) as fake:
        node = config.NodeSettings(name=NODE, port=fake.port, secret=config.Secret("s3cret"))
        s = dataclasses.replace(wallboard_settings(settings), nodes=(node,))
        prefix = s.mqtt.topic_prefix
        try:
            async with wallboard_running(s, clean_db, links=links_for(s.nodes)) as wb:
                link = await fake.accept(resync=False)
                await publish(prefix, [
                    (f"{NODE}/status", node_payload(NODE, True)),
                    (f"{NODE}/agents/alice", agent_payload(
                        NODE, "alice", "on_call", interface="PJSIP/1001", call=CALL)),
                    (f"{NODE}/agents/bob", agent_payload(NODE, "bob", interface="PJSIP/1002")),
                ])  # fmt: skip
                page = await browser.new_page(viewport={"width": 1600, "height": 900})
                problems: list[str] = []
                page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda e: problems.append(str(e)))
                base = f"http://127.0.0.1:{wb.port}"
                await page.goto(f"{base}/login")
                await page.fill("input[name=name]", "sam")
                await page.fill("input[name=password]", PASSWORD)
                await page.click("button[type=submit]")
                await page.wait_for_url(f"{base}/board")
                alice, bob = "#agents [data-key='pbx1/alice']", "#agents [data-key='pbx1/bob']"
                for mode in ("listen", "whisper", "barge"):
                    await page.locator(f"{alice} .btn-{mode}").wait_for(state="visible")
                    assert not await page.is_visible(f"{bob} .btn-{mode}")

                await page.click(f"{alice} .btn-whisper")
                notice = page.locator("#notice")
                await notice.wait_for(state="visible")
                assert await notice.inner_text() == "whisper: alice - your phone 2001 rings"
                # Barge asks first; dismissed, nothing is sent.
                page.once("dialog", lambda d: asyncio.ensure_future(d.dismiss()))
                await page.click(f"{alice} .btn-barge")
                await asyncio.sleep(0.5)
                page.once("dialog", lambda d: asyncio.ensure_future(d.accept()))
                await page.click(f"{alice} .btn-barge")
                async with asyncio.timeout(5):
                    while sum(a["Action"] == "Originate" for a in link.actions) < 2:
                        await asyncio.sleep(0.05)
                sent = [a["Data"] for a in link.actions if a["Action"] == "Originate"]
                assert sent == [f"{CHANNEL},qwEu", f"{CHANNEL},qBEu"]

                # alice's call ends: her buttons go; bob takes one: his come.
                await publish(prefix, [
                    (f"{NODE}/agents/alice", agent_payload(NODE, "alice", "wrap_up",
                                                            interface="PJSIP/1001")),
                    (f"{NODE}/agents/bob", agent_payload(NODE, "bob", "on_call",
                                                          interface="PJSIP/1002", call="2.1")),
                ])  # fmt: skip
                await page.locator(f"{alice} .btn-listen").wait_for(state="hidden")
                await page.locator(f"{bob} .btn-listen").wait_for(state="visible")
                assert problems == []  # the page keeps to its CSP
        finally:
            await clear_retained(prefix)
