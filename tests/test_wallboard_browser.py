"""The board in a real browser (Debian's Chromium driven by Playwright), fed by recorded
Asterisk traffic through the fake AMI peer, the real bridge and the real Mosquitto.

What a supervisor does: logs in, sees the queue, sees a caller wait and an agent take the
call within a second of the events reaching the bridge, pauses the agent (the QueuePause
reaches the AMI peer with the agent's interface and the reason). Screenshots of both layouts
are kept in ``test-artifacts/``. Skipped, with the reason, where Chromium or the playwright
package is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiomqtt
import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from callcenter import config, directory
from callcenter.agi.features import queue_add_actions
from callcenter.db.models import Call
from callcenter.wallboard.app import Wallboard
from tests.browser import ARTIFACTS
from tests.calllog import with_visit
from tests.fake_ami import FakeAmi, FakeConnection, frame, recorded_events
from tests.test_bridge import bridge_running, bridge_settings
from tests.test_wallboard_api import add_agents, reply
from tests.test_wallboard_support import (
    PASSWORD,
    add_token,
    add_user,
    agent_payload,
    clear_retained,
    node_payload,
    queue_payload,
    wallboard_settings,
)

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

#: The issue's bound: a figure changes on the board within a second of the event.
WITHIN = 1.0


def split_after(frames: list[str], event: str) -> int:
    return next(i for i, f in enumerate(frames) if f.startswith(f"Event: {event}\r\n")) + 1


async def accept_both(fake: FakeAmi) -> tuple[FakeConnection, FakeConnection]:
    """The bridge's connection (Events: on, resynced) and the wallboard's AMI link (Events:
    off, actions only), in whichever order they came."""
    bridge = link = None
    async with asyncio.timeout(10):
        while bridge is None or link is None:
            conn = await fake.connections.get()
            await conn.logged_in.wait()
            login = next(a for a in conn.actions if a.get("Action") == "Login")
            if login.get("Events") == "off":
                link = conn
            else:
                await conn.resynced.wait()
                bridge = conn
    return bridge, link


def queue_pause_ok(fields: dict[str, str]) -> bytes:
    aid = fields.get("ActionID", "")
    return frame(f"Response: Success\r\nActionID: {aid}\r\nMessage: Interface paused successfully")


@contextlib.asynccontextmanager
async def wallboard_running(
    settings: config.Settings, engine: Engine, **kwargs: Any
) -> AsyncIterator[Wallboard]:
    wb = Wallboard(settings, engine=engine, **kwargs)
    stop = asyncio.Event()
    task = asyncio.create_task(wb.run(stop))
    try:
        async with asyncio.timeout(10):
            await wb.started.wait()
        yield wb
    finally:
        stop.set()
        async with asyncio.timeout(15):
            await task


async def until(page: Page, script: str, arg: Any = None, timeout: float = WITHIN) -> float:
    """Seconds until ``script`` holds in the page; fails past ``timeout``."""
    started = time.perf_counter()
    await page.wait_for_function(script, arg=arg, timeout=timeout * 1000, polling="raf")
    return time.perf_counter() - started


CELL = "(k, f) => document.querySelector(`#queues [data-key='${k}'] [data-f='${f}']`)?.textContent"
AGENT = "(k, f) => document.querySelector(`#agents [data-key='${k}'] [data-f='${f}']`)?.textContent"


def cell_is(kind: str, key: str, field: str, value: str) -> tuple[str, list[str]]:
    return f"([k, f, v]) => ({kind})(k, f) === v", [key, field, value]


@pytest.mark.slow
async def test_board_follows_the_bridge_and_a_supervisor_pauses_an_agent(
    browser: Browser, settings: config.Settings, clean_db: Engine, tmp_path: Path
) -> None:
    add_user(clean_db, "sam")
    frames = recorded_events("inbound-answered")
    joined, connected = split_after(frames, "QueueCallerJoin"), split_after(frames, "AgentConnect")
    async with FakeAmi(extra={"QueuePause": queue_pause_ok}) as fake:
        s = bridge_settings(settings, fake.port, tmp_path)
        s = dataclasses.replace(
            s, wallboard=config.WallboardSettings(port=0, secret_key=config.Secret("browser-test"))
        )
        try:
            async with bridge_running(s), wallboard_running(s, clean_db) as wb:
                bridge, link = await accept_both(fake)
                # The test's own probes are JavaScript strings: let them past our CSP here
                # (the TV page below runs under the CSP, and must not break it).
                context = await browser.new_context(
                    viewport={"width": 1440, "height": 900}, bypass_csp=True
                )
                page = await context.new_page()
                base = f"http://127.0.0.1:{wb.port}"
                await page.goto(f"{base}/login")
                await page.fill("input[name=name]", "sam")
                await page.fill("input[name=password]", PASSWORD)
                await page.click("button[type=submit]")
                await page.wait_for_url(f"{base}/board")
                await until(page, "document.body.dataset.live === '1'", timeout=5)
                await until(page, "document.querySelector('#nodes .node.up') !== null", timeout=5)

                # A caller joins the queue: the board shows them waiting.
                await bridge.send_frames(frames[:joined])
                took = [await until(page, *cell_is(CELL, "sales", "waiting", "1"))]
                took.append(
                    await until(page, *cell_is(AGENT, "pbx-test/Alice", "state", "Available"))
                )
                # The longest wait ticks in the browser: its text moves on while the time
                # it counts from (from the server) stays the same.
                since = (
                    "document.querySelector(\"#queues [data-key='sales'] "
                    "[data-f='longest_wait_since']\").dataset.since"
                )
                start = await page.evaluate(since)
                first = await page.evaluate(f"({CELL})('sales', 'longest_wait_since')")
                await until(
                    page, f"({CELL})('sales', 'longest_wait_since') !== {first!r}", timeout=2.5
                )
                assert await page.evaluate(since) == start != ""

                # Alice answers: the queue empties, she is on the call, with the caller.
                await bridge.send_frames(frames[joined:connected])
                took.append(await until(page, *cell_is(CELL, "sales", "waiting", "0")))
                took.append(
                    await until(page, *cell_is(AGENT, "pbx-test/Alice", "state", "On call"))
                )
                took.append(
                    await until(
                        page, *cell_is(AGENT, "pbx-test/Alice", "caller", "5551230001 Carol Caller")
                    )
                )
                ARTIFACTS.mkdir(exist_ok=True)
                await page.screenshot(path=str(ARTIFACTS / "wallboard-laptop.png"), full_page=True)
                await bridge.send_frames(frames[connected:])  # the call ends
                # Today's figures come from the call log once the bridge has written it.
                await until(page, *cell_is(CELL, "sales", "answered", "1"), timeout=5)
                await until(
                    page, *cell_is(AGENT, "pbx-test/Alice", "state", "Available"), timeout=5
                )

                # The supervisor pauses Alice from the board.
                row = "#agents [data-key='pbx-test/Alice']"
                await page.fill(f"{row} input[name=reason]", "coaching")
                await page.click(f"{row} .btn-pause")
                async with asyncio.timeout(WITHIN * 2):
                    while not any(a.get("Action") == "QueuePause" for a in link.actions):
                        await asyncio.sleep(0.02)
                pause = next(a for a in link.actions if a.get("Action") == "QueuePause")
                assert pause["Interface"] == "PJSIP/agent1001"
                assert pause["Paused"] == "true"
                assert pause["Reason"] == "coaching"
                assert "Queue" not in pause  # every queue, as the agent's own feature code
                await until(page, "!document.getElementById('notice').hidden")
                assert "sent to Asterisk" in await page.inner_text("#notice")
                # Asterisk then reports the pause; the board shows it.
                paused = next(
                    f
                    for f in recorded_events("agent-lifecycle")
                    if f.startswith("Event: QueueMemberPause\r\n")
                )
                await bridge.send_frames(
                    [paused.replace("PausedReason: lunch", "PausedReason: coaching")]
                )
                took.append(await until(page, *cell_is(AGENT, "pbx-test/Alice", "state", "Paused")))
                took.append(
                    await until(page, *cell_is(AGENT, "pbx-test/Alice", "reason", "coaching"))
                )
                assert await page.is_visible(f"{row} .btn-unpause")

                tv = await browser.new_page(viewport={"width": 1920, "height": 1080})
                problems: list[str] = []
                tv.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
                tv.on("pageerror", lambda e: problems.append(str(e)))
                session = [c for c in await context.cookies() if c["name"] == "cc_session"]
                await tv.context.add_cookies(
                    [{"name": c["name"], "value": c["value"], "url": base} for c in session]
                )
                await tv.goto(f"{base}/board?layout=tv")
                await tv.wait_for_selector("#queues .tile[data-key='sales']")
                await asyncio.sleep(1.5)  # the stream's snapshot, a tick or two
                assert await tv.inner_text("#agents [data-key='pbx-test/Alice'] .state") == "Paused"
                assert problems == []  # the page's own script keeps to our CSP
                await tv.screenshot(path=str(ARTIFACTS / "wallboard-tv.png"))
                # The PBX connection drops: the node shows DOWN.
                bridge.drop()
                took.append(
                    await until(
                        page,
                        'document.querySelector("#nodes '
                        "[data-node='pbx-test']\").classList.contains('down')",
                        timeout=2,
                    )
                )
                # ... and what the board held of it is unknown now, not "Paused" as before.
                took.append(
                    await until(page, *cell_is(AGENT, "pbx-test/Alice", "state", "Unknown"))
                )

                history = await page.goto(f"{base}/history")
                assert history is not None
                assert history.status == 200
                await page.screenshot(path=str(ARTIFACTS / "wallboard-history.png"))
                print("board updated after", [f"{t * 1000:.0f} ms" for t in took])
        finally:
            await clear_retained(s.mqtt.topic_prefix)


async def publish(prefix: str, items: list[tuple[str, bytes]]) -> None:
    ident = f"{prefix}-pub-{secrets.token_hex(3)}"
    async with aiomqtt.Client("127.0.0.1", 1883, identifier=ident) as client:
        for topic, payload in items:
            await client.publish(f"{prefix}/{topic}", payload, qos=1, retain=True)


def has_class(selector: str, name: str) -> str:
    return f"document.querySelector(\"{selector}\")?.classList.contains('{name}') === true"


@pytest.mark.slow
async def test_a_screen_with_its_token_sees_alerts_and_nodes_live(
    browser: Browser, settings: config.Settings, clean_db: Engine
) -> None:
    """Messages published straight to MQTT (as the bridge would): thresholds colour the
    figures, a node going down shows, agents come and go; the screen cannot act."""
    token = add_token(clean_db, "lobby")
    s = wallboard_settings(settings)
    prefix = s.mqtt.topic_prefix
    try:
        async with wallboard_running(s, clean_db, links={}) as wb:
            base = f"http://127.0.0.1:{wb.port}"
            anonymous = await browser.new_page()
            await anonymous.goto(f"{base}/board")
            assert anonymous.url == f"{base}/login"  # not logged in: the login page
            await anonymous.close()

            context = await browser.new_context(
                viewport={"width": 1920, "height": 1080}, bypass_csp=True
            )
            page = await context.new_page()
            await page.goto(f"{base}/tv?token={token}")
            assert page.url == f"{base}/board?layout=tv"  # the token left the address bar
            await until(page, "document.body.dataset.live === '1'", timeout=5)
            now = time.time()
            await publish(
                prefix,
                [
                    ("pbx1/status", node_payload("pbx1", True)),
                    (
                        "pbx1/queues/sales",
                        queue_payload(
                            "pbx1",
                            "sales",
                            waiting=2,
                            longest_wait_since=now - 5,
                            logged_in=2,
                            available=1,
                            on_call=1,
                        ),
                    ),
                    (
                        "pbx1/agents/Alice",
                        agent_payload("pbx1", "Alice", "on_call", since=now - 65),
                    ),
                    (
                        "pbx1/agents/Bob",
                        agent_payload("pbx1", "Bob", "paused", reason="lunch", since=now - 300),
                    ),
                ],
            )
            tile = "#queues [data-key='sales']"
            await until(page, *cell_is(CELL, "sales", "waiting", "2"))
            await until(page, "document.querySelectorAll('#agents .card').length === 2")
            assert not await page.evaluate(has_class(f"{tile} [data-f='waiting']", "alert"))
            assert await page.query_selector("form.act") is None  # a screen cannot act
            # Over the thresholds: 6 waiting (>= 5), the longest for 90 s (>= 60 s).
            await publish(
                prefix,
                [
                    (
                        "pbx1/queues/sales",
                        queue_payload(
                            "pbx1", "sales", waiting=6, longest_wait_since=now - 90, logged_in=2
                        ),
                    )
                ],
            )
            await until(page, has_class(f"{tile} [data-f='waiting']", "alert"))
            await until(page, has_class(f"{tile} [data-f='longest_wait_since']", "alert"))
            await publish(prefix, [("pbx1/status", node_payload("pbx1", False))])
            await until(
                page,
                "document.querySelector(\"#nodes [data-node='pbx1']\").classList.contains('down')",
            )
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "wallboard-tv-alerts.png"))
            await publish(prefix, [("pbx1/agents/Bob", agent_payload("pbx1", "Bob", "logged_out"))])
            await until(page, "document.querySelectorAll('#agents .card').length === 1")
    finally:
        await clear_retained(prefix)


# --- issue 12: an operator's first week ---------------------------------------------------------


async def logged_in_page(browser: Browser, base: str, **context: Any) -> Page:
    ctx = await browser.new_context(viewport={"width": 1440, "height": 900}, bypass_csp=True,
                                    **context)  # fmt: skip
    page = await ctx.new_page()
    await page.goto(f"{base}/login")
    await page.fill("input[name=name]", "sam")
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base}/board")
    await until(page, "document.body.dataset.live === '1'", timeout=5)
    return page


def text_is(selector: str, value: str) -> tuple[str, list[str]]:
    return "([s, v]) => document.querySelector(s)?.textContent === v", [selector, value]


@pytest.mark.slow
async def test_configured_agents_show_dimmed_and_a_supervisor_logs_one_in(
    browser: Browser, settings: config.Settings, clean_db: Engine
) -> None:
    """Right after set-up nobody has logged in: the board still shows every configured queue
    (by display name) and agent (by full name, dimmed), and a total; the supervisor's Log in
    sends *11's QueueAdds, and the agent shows logged in only when the bridge says so."""
    add_user(clean_db, "sam")
    add_agents(clean_db)
    async with FakeAmi(extra={"QueueAdd": reply("Added interface to queue")}) as fake:
        node = config.NodeSettings(name="pbx1", port=fake.port, secret=config.Secret("s3cret"))
        s = dataclasses.replace(wallboard_settings(settings), nodes=(node,))
        prefix = s.mqtt.topic_prefix
        try:
            async with wallboard_running(s, clean_db) as wb:
                link = await fake.accept(resync=False)
                page = await logged_in_page(browser, f"http://127.0.0.1:{wb.port}")
                sales, alice = "#queues [data-key='sales']", "#agents [data-key='pbx1/Alice']"
                await until(page, *text_is(f"{sales} [data-f='title']", "Sales team"), timeout=5)
                assert await page.inner_text(f"{sales} [data-f='alias']") == "sales"
                assert await page.is_visible("#queues [data-key='support']")
                assert await page.inner_text("#queue-total [data-f='title']") == "All queues"
                await until(page, *text_is(f"{alice} [data-f='title']", "Alice Doe"), timeout=5)
                assert await page.inner_text(f"{alice} [data-f='state']") == "Logged out"
                assert await page.inner_text(f"{alice} [data-f='queues']") == "sales, support"
                assert await page.inner_text("#agents [data-key='pbx1/Bob'] [data-f='title']") == (
                    "Bob"
                )
                dimmed = f'getComputedStyle(document.querySelector("{alice} th")).opacity'
                assert float(await page.evaluate(dimmed)) < 0.6
                assert not await page.is_visible(f"{alice} .btn-pause")
                ARTIFACTS.mkdir(exist_ok=True)
                await page.screenshot(path=str(ARTIFACTS / "wallboard-configured.png"))

                await page.click(f"{alice} .btn-login")
                async with asyncio.timeout(WITHIN * 2):
                    while sum(a.get("Action") == "QueueAdd" for a in link.actions) < 2:
                        await asyncio.sleep(0.02)
                adds = [
                    {k: v for k, v in a.items() if k != "ActionID"}
                    for a in link.actions
                    if a.get("Action") == "QueueAdd"
                ]
                assert adds == queue_add_actions("Alice", "PJSIP/1001", {"sales": 0, "support": 2})
                await until(page, "!document.getElementById('notice').hidden")
                assert "sent to Asterisk" in await page.inner_text("#notice")
                # Not logged in until Asterisk, through the bridge, says so.
                await asyncio.sleep(0.3)
                assert await page.inner_text(f"{alice} [data-f='state']") == "Logged out"
                await publish(prefix, [
                    ("pbx1/status", node_payload("pbx1", True)),
                    ("pbx1/agents/Alice", agent_payload("pbx1", "Alice", since=time.time(),
                                                        interface="PJSIP/1001")),
                ])  # fmt: skip
                await until(page, *cell_is(AGENT, "pbx1/Alice", "state", "Available"), timeout=2)
                assert float(await page.evaluate(dimmed)) == 1
                assert not await page.is_visible(f"{alice} .btn-login")
                assert await page.inner_text("#queue-total [data-f='logged_in']") == "1"
        finally:
            await clear_retained(prefix)


@pytest.mark.slow
async def test_a_node_that_is_down_shows_across_the_board(
    browser: Browser, settings: config.Settings, clean_db: Engine
) -> None:
    """Asterisk goes away: a banner says so, and the figures of that node read unknown (no
    agent left "Available" with a timer ticking); they come back with the node."""
    add_user(clean_db, "sam")
    s = wallboard_settings(settings)
    prefix = s.mqtt.topic_prefix
    try:
        async with wallboard_running(s, clean_db, links={}) as wb:
            base = f"http://127.0.0.1:{wb.port}"
            page = await logged_in_page(browser, base)
            now = time.time()
            await publish(prefix, [
                ("pbx1/status", node_payload("pbx1", True)),
                ("pbx1/queues/sales", queue_payload(
                    "pbx1", "sales", waiting=2, longest_wait_since=now - 5, logged_in=1,
                    available=1)),
                ("pbx1/agents/Alice", agent_payload("pbx1", "Alice", since=now - 65)),
            ])  # fmt: skip
            await until(page, *cell_is(CELL, "sales", "waiting", "2"), timeout=2)
            await until(page, *cell_is(AGENT, "pbx1/Alice", "state", "Available"))
            assert await page.is_hidden("#banner")

            await publish(prefix, [("pbx1/status", node_payload("pbx1", False))])
            took = await until(page, *cell_is(CELL, "sales", "waiting", "?"))
            await until(page, "!document.getElementById('banner').hidden")
            banner = await page.inner_text("#banner")
            assert "pbx1 is DOWN (connection refused)" in banner
            assert "queues and agents are unknown" in banner
            for field in ("longest_wait_since", "logged_in", "available"):
                assert await page.evaluate(f"({CELL})('sales', '{field}')") == "?", field
            assert await page.evaluate(has_class("#queues [data-key='sales']", "unknown"))
            await until(page, *cell_is(AGENT, "pbx1/Alice", "state", "Unknown"))
            assert await page.evaluate(f"({AGENT})('pbx1/Alice', 'since')") == "-"
            await asyncio.sleep(1.5)  # two ticks: nothing of pbx1 ticks on
            assert await page.evaluate(f"({CELL})('sales', 'longest_wait_since')") == "?"
            assert await page.evaluate(f"({AGENT})('pbx1/Alice', 'since')") == "-"
            assert await page.inner_text("#queue-total [data-f='waiting']") == "?"
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "wallboard-node-down.png"))
            tv = await page.context.new_page()
            await tv.goto(f"{base}/board?layout=tv")
            assert await tv.inner_text("#queues [data-key='sales'] [data-f='waiting']") == "?"
            assert await tv.inner_text("#agents [data-key='pbx1/Alice'] .state") == "Unknown"
            await tv.screenshot(path=str(ARTIFACTS / "wallboard-tv-node-down.png"))

            await publish(prefix, [("pbx1/status", node_payload("pbx1", True))])
            await until(page, *cell_is(CELL, "sales", "waiting", "2"))
            await until(page, *cell_is(AGENT, "pbx1/Alice", "state", "Available"))
            await until(page, "document.getElementById('banner').hidden")
            print(f"node down shown after {took * 1000:.0f} ms")
    finally:
        await clear_retained(prefix)


@pytest.mark.slow
async def test_a_caller_still_in_time_and_calls_still_talking_do_not_mislead(
    browser: Browser, settings: config.Settings, clean_db: Engine
) -> None:
    """The issue's board: three calls answered in 2-4 s and still talking, a caller who has
    waited 0 s. Not SL 75% in red and AHT 0:00: SL 100%, ASA 0:03, no AHT yet."""
    now = dt.datetime.now(dt.UTC)
    if now.hour == 0 and now.minute < 2:
        pytest.skip("too close to midnight UTC for calls 'today'")
    add_user(clean_db, "sam")
    with Session(clean_db) as db, db.begin():
        directory.add_queue(db, "sales", service_level_seconds=20)
        rows = []
        for n, wait in enumerate((2, 3, 4)):
            queued = now - dt.timedelta(seconds=wait + 50)
            rows.append(Call(node="pbx1", uniqueid=f"9.{n}", linkedid=f"9.{n}",
                             started_at=queued, queued_at=queued, queue="sales", agent="alice",
                             answered_at=queued + dt.timedelta(seconds=wait),
                             wait_seconds=wait, outcome="answered"))  # fmt: skip
        queued = now - dt.timedelta(seconds=0.5)
        rows.append(Call(node="pbx1", uniqueid="9.9", linkedid="9.9", started_at=queued,
                         queued_at=queued, queue="sales"))  # fmt: skip
        db.add_all(with_visit(rows))
    s = wallboard_settings(settings)
    try:
        async with wallboard_running(s, clean_db, links={}) as wb:
            page = await logged_in_page(browser, f"http://127.0.0.1:{wb.port}")
            await until(page, *cell_is(CELL, "sales", "answered", "3"), timeout=5)
            assert await page.evaluate(f"({CELL})('sales', 'offered')") == "4"
            assert await page.evaluate(f"({CELL})('sales', 'service_level')") == "100%"
            sl = "#queues [data-key='sales'] [data-f='service_level']"
            assert not await page.evaluate(has_class(sl, "alert"))
            assert await page.evaluate(f"({CELL})('sales', 'asa')") == "0:03"
            assert await page.evaluate(f"({CELL})('sales', 'aht')") == "-"
            assert await page.inner_text("#queue-total [data-f='service_level']") == "100%"
            assert "not yet missed" in await page.inner_text("footer")
    finally:
        await clear_retained(s.mqtt.topic_prefix)


@pytest.mark.slow
async def test_a_screen_without_its_token_is_told_how_to_get_one(
    browser: Browser, settings: config.Settings, clean_db: Engine
) -> None:
    s = wallboard_settings(settings)
    async with wallboard_running(s, clean_db, links={}) as wb:
        base = f"http://127.0.0.1:{wb.port}"
        page = await browser.new_page()
        problems: list[str] = []
        page.on("pageerror", lambda e: problems.append(str(e)))
        resp = await page.goto(f"{base}/tv")
        assert resp is not None
        assert resp.status == 401
        assert "This screen has no token yet." in await page.inner_text("main")
        assert "callcenter users token add" in await page.inner_text("main")
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "wallboard-tv-no-token.png"))
        await page.click("text=Supervisors: log in")
        await page.wait_for_url(f"{base}/login")
        icon = await page.goto(f"{base}/favicon.ico")
        assert icon is not None
        assert icon.status == 200
        assert page.url == f"{base}/static/favicon.svg"
        assert icon.headers["content-type"] == "image/svg+xml"
        assert problems == []


# --- issue 13: outbound campaigns on the board ----------------------------------------------------


@pytest.mark.slow
async def test_a_campaign_tile_appears_with_its_abandon_rate_against_the_cap(
    browser: Browser, settings: config.Settings, clean_db: Engine
) -> None:
    """The dialer publishes a campaign's snapshot: a tile appears on the supervisor's board
    (and a screen's) with its abandon rate, coloured against the target and the cap as it
    moves; the pacer's reason is text, never markup; the campaign's removal takes the tile,
    and the section, away."""
    from callcenter.campaigns.snapshot import RateFigures
    from tests.test_wallboard_live import campaign_bytes

    def snap(**changes: Any) -> bytes:  # published now, as the dialer does
        return campaign_bytes(at=time.time(), **changes)

    add_user(clean_db, "sam")
    s = wallboard_settings(settings)
    prefix = s.mqtt.topic_prefix
    tile = "#campaigns [data-key='renewals']"
    rate = f"{tile} [data-f='window_rate']"
    hostile = '<img src=x onerror="document.body.dataset.owned=1">'
    try:
        async with wallboard_running(s, clean_db, links={}) as wb:
            page = await logged_in_page(browser, f"http://127.0.0.1:{wb.port}")
            assert await page.is_hidden("#campaign-box")  # no campaign: no section
            await publish(prefix, [("campaigns/renewals", snap(reason=hostile))])
            took = await until(page, *text_is(rate, "2.3%"), timeout=2)
            assert await page.is_visible("#campaign-box")
            assert await page.evaluate(has_class(rate, "ok"))
            for field, text in (("title", "renewals"), ("state", "running"),
                                ("mode", "predictive"), ("dialling", "2"), ("ringing", "5"),
                                ("live_today", "160"), ("agents_free", "1"),
                                ("agents_logged_in", "10"), ("cap", "3.0%"),
                                ("budget_left", "22"), ("contacts_left", "4211"),
                                ("reason", hostile)):  # fmt: skip
                assert await page.text_content(f"{tile} [data-f='{field}']") == text, field
            assert await page.query_selector(f"{tile} img") is None
            assert await page.evaluate("document.body.dataset.owned") is None

            # Above the target (2.5%): a warning; at the cap (3%): red.
            await publish(prefix, [("campaigns/renewals", snap(
                window=RateFigures(live=1000, abandoned=27, days=30)))])  # fmt: skip
            await until(page, *text_is(rate, "2.7%"))
            assert await page.evaluate(has_class(rate, "warn"))
            assert not await page.evaluate(has_class(rate, "ok"))
            await publish(prefix, [("campaigns/renewals", snap(
                state="paused", window=RateFigures(live=1000, abandoned=30, days=30),
                life=RateFigures(live=1000, abandoned=31), budget_left=-1.0))])  # fmt: skip
            await until(page, *text_is(rate, "3.0%"))
            assert await page.evaluate(has_class(rate, "alert"))
            assert await page.evaluate(has_class(f"{tile} [data-f='life_rate']", "alert"))
            assert await page.evaluate(has_class(tile, "state-paused"))
            assert await page.inner_text(f"{tile} [data-f='budget_left']") == "0"
            red = f'getComputedStyle(document.querySelector("{rate}")).backgroundColor'
            assert await page.evaluate(red) == "rgb(231, 76, 60)"  # --alert
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "wallboard-campaign.png"), full_page=True)

            tv = await page.context.new_page()
            await tv.goto(f"http://127.0.0.1:{wb.port}/board?layout=tv")
            assert await tv.inner_text(rate) == "3.0%"  # rendered by the server
            await tv.screenshot(path=str(ARTIFACTS / "wallboard-tv-campaign.png"))

            await publish(prefix, [("campaigns/renewals", b"")])  # the campaign was removed
            await until(page, f'document.querySelector("{tile}") === null')
            await until(page, "document.getElementById('campaign-box').hidden")
            print(f"campaign tile shown after {took * 1000:.0f} ms")
    finally:
        await clear_retained(prefix)
