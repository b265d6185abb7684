"""The web server's gates: who may see, who may act, forged and hostile requests.

Runs the wallboard's aiohttp application on a test server against the test database; the
live state is fed directly (the MQTT path has its own tests)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy.engine import Engine

from callcenter import config
from callcenter.wallboard.auth import LoginThrottle, Signer
from tests.test_wallboard_support import (
    PASSWORD,
    add_token,
    add_user,
    agent_payload,
    csrf_of,
    http,
    login,
    node_payload,
    queue_payload,
    wallboard_settings,
)

Client = TestClient[Any, Any]


@pytest.fixture
def wb_settings(settings: config.Settings, clean_db: Engine) -> config.Settings:
    add_user(clean_db)
    return wallboard_settings(settings)


PROTECTED_GET = [
    "/board",
    "/board?layout=tv",
    "/history",
    "/api/v1/board",
    "/api/v1/queues",
    "/api/v1/agents",
    "/api/v1/nodes",
    "/api/v1/kpis",
    "/api/v1/history",
    "/events",
    "/metrics",
]


async def test_unauthenticated_requests_are_refused(
    wb_settings: config.Settings, clean_db: Engine
) -> None:
    async with http(wb_settings, clean_db) as (_, client):
        for path in PROTECTED_GET:
            resp = await client.get(path, allow_redirects=False)
            if path.startswith(("/api/", "/events", "/metrics")):
                assert resp.status == 401, path
                assert "error" in await resp.json(), path
            else:
                assert resp.status == 303, path
                assert resp.headers["Location"] == "/login"
        for path in ("/agents/pbx1/Alice/pause", "/api/v1/agents/pbx1/Alice/pause", "/logout"):
            resp = await client.post(path, data={"csrf": "x"}, allow_redirects=False)
            assert resp.status in (401, 303), path
        # A forged session cookie: signed with another key.
        forged = Signer("another key").sign(
            "session", {"sub": "user:sam", "csrf": "x", "exp": 4102444800}
        )
        client.session.cookie_jar.update_cookies({"cc_session": forged})
        assert (await client.get("/api/v1/board")).status == 401


async def test_login_session_cookie_and_logout(
    wb_settings: config.Settings, clean_db: Engine
) -> None:
    async with http(wb_settings, clean_db) as (_, client):
        page = await client.get("/login")
        nonce = csrf_of(await page.text())
        resp = await client.post(
            "/login",
            data={"name": "sam", "password": PASSWORD, "csrf": nonce},
            allow_redirects=False,
        )
        assert resp.status == 303
        cookie = resp.headers.getall("Set-Cookie")
        session = next(c for c in cookie if c.startswith("cc_session="))
        assert "HttpOnly" in session
        assert "SameSite=Strict" in session
        board = await client.get("/board")
        assert board.status == 200
        html = await board.text()
        assert "Content-Security-Policy" in board.headers
        token = csrf_of(html)
        assert (await client.get("/api/v1/board")).status == 200
        # Log out without the token: refused; with it: the session ends.
        assert (await client.post("/logout", data={}, allow_redirects=False)).status == 403
        out = await client.post("/logout", data={"csrf": token}, allow_redirects=False)
        assert out.status == 303
        assert (await client.get("/api/v1/board")).status == 401


async def test_wrong_password_and_rate_limit(
    wb_settings: config.Settings, clean_db: Engine
) -> None:
    async with http(wb_settings, clean_db) as (wb, client):
        wb.parts.limiter = LoginThrottle(attempts=3, window=60, address_attempts=10)
        for attempt in range(4):
            page = await client.get("/login")
            resp = await client.post(
                "/login",
                data={"name": "sam", "password": "wrong", "csrf": csrf_of(await page.text())},
            )
            assert resp.status == (401 if attempt < 3 else 429)
        assert int(resp.headers["Retry-After"]) > 0
        # Even the right password waits now: the limit is on the name from this address.
        page = await client.get("/login")
        resp = await client.post(
            "/login", data={"name": "sam", "password": PASSWORD, "csrf": csrf_of(await page.text())}
        )
        assert resp.status == 429
        # Another name from here may still try; nobody elsewhere is locked out.
        assert wb.parts.limiter.retry_after("127.0.0.1", "user:nobody") == 0
        assert wb.parts.limiter.retry_after("192.0.2.7", "user:sam") == 0


async def test_login_form_without_its_nonce_is_refused(
    wb_settings: config.Settings, clean_db: Engine
) -> None:
    async with http(wb_settings, clean_db) as (_, client):
        await client.get("/login")
        for data in (
            {"name": "sam", "password": PASSWORD},
            {"name": "sam", "password": PASSWORD, "csrf": "guess"},
        ):
            resp = await client.post("/login", data=data, allow_redirects=False)
            assert resp.status == 403
        page = await client.get("/login")
        resp = await client.post(
            "/login",
            data={"name": "sam", "password": PASSWORD, "csrf": csrf_of(await page.text())},
            headers={"Origin": "http://evil.example"},
            allow_redirects=False,
        )
        assert resp.status == 403


async def test_forged_action_posts_are_refused(
    wb_settings: config.Settings, clean_db: Engine
) -> None:
    async with http(wb_settings, clean_db) as (wb, client):
        wb.parts.state.apply("x/pbx1/agents/Alice", agent_payload("pbx1", "Alice"))
        token = await login(client)
        url = "/agents/pbx1/Alice/pause"
        for data, headers in (
            ({}, {}),  # no token
            ({"csrf": "forged"}, {}),  # a wrong one
            ({"csrf": token}, {"Origin": "http://evil.example"}),  # right token, other site
        ):
            resp = await client.post(url, data=data, headers=headers, allow_redirects=False)
            assert resp.status == 403, (data, headers)
        api = "/api/v1/agents/pbx1/Alice/pause"
        assert (await client.post(api, json={})).status == 403  # no X-CSRF-Token
        resp = await client.post(api, json={}, headers={"X-CSRF-Token": "forged"})
        assert resp.status == 403
        assert "CSRF" in (await resp.json())["error"]


async def test_tv_token_is_read_only_and_revocable(
    wb_settings: config.Settings, clean_db: Engine
) -> None:
    secret = add_token(clean_db, "lobby")
    async with http(wb_settings, clean_db) as (wb, client):
        wb.parts.state.apply("x/pbx1/agents/Alice", agent_payload("pbx1", "Alice"))
        assert (await client.get("/tv?token=nope", allow_redirects=False)).status == 401
        resp = await client.get(f"/tv?token={secret}", allow_redirects=False)
        assert resp.status == 303
        assert resp.headers["Location"] == "/board?layout=tv"
        assert resp.headers["Referrer-Policy"] == "same-origin"
        board = await client.get("/board")
        html = await board.text()
        assert 'class="tiles"' in html
        assert "/agents/pbx1/Alice/pause" not in html  # no action forms for a screen
        token = csrf_of(html)
        resp = await client.post("/agents/pbx1/Alice/pause", data={"csrf": token})
        assert resp.status == 403
        # Bearer: read-only too.
        bearer = {"Authorization": f"Bearer {secret}"}
        async with client.session.get(
            client.make_url("/api/v1/kpis"), headers=bearer, cookies={}
        ) as r:
            assert r.status == 200
        # Revoked: the screen's session ends at the next refresh of the directory.
        from sqlalchemy.orm import Session

        from callcenter.wallboard import accounts

        with Session(clean_db) as s, s.begin():
            accounts.revoke_token(s, "lobby")
        await wb.parts.auth.cache.reload()
        assert (await client.get("/api/v1/board")).status == 401


async def test_hostile_requests_get_clean_4xx(
    wb_settings: config.Settings, clean_db: Engine
) -> None:
    async with http(wb_settings, clean_db) as (wb, client):
        wb.parts.state.apply("x/pbx1/agents/Alice", agent_payload("pbx1", "Alice"))
        token = await login(client)
        api = "/api/v1/agents/pbx1/Alice/pause"
        headers = {"X-CSRF-Token": token, "Content-Type": "application/json"}
        big = await client.post(api, data=b"{" + b" " * (200 * 1024) + b"}", headers=headers)
        assert big.status == 413
        assert "error" in await big.json()
        bad = await client.post(api, data=b'{"reason": ', headers=headers)
        assert bad.status == 400
        assert "not JSON" in (await bad.json())["error"]
        assert (await client.post(api, data=b"[1]", headers=headers)).status == 400
        assert (await client.post(api, data=b'{"reason": 7}', headers=headers)).status == 400
        form = await client.post(
            "/agents/pbx1/Alice/pause", data={"csrf": token, "reason": "x" * (200 * 1024)}
        )
        assert form.status == 413
        for path in (
            "/static/../app.py",
            "/static/%2e%2e/app.py",
            "/static/..%2fapp.py",
            "/static/%2e%2e%2f%2e%2e%2fconfig.py",
            "/static//etc/passwd",
        ):
            resp = await client.get(path)
            assert resp.status in (403, 404), path
            assert "import" not in await resp.text()
        assert (await client.get("/static/board.css")).status == 200
        assert (await client.get("/history?day=yesterday")).status == 400
        assert (await client.get("/history?day=1999-01-01")).status == 400
        assert (await client.get("/api/v1/history?day=2999-01-01")).status == 400
        assert (await client.get("/api/v1/history?queue=Robert');DROP")).status == 400
        assert (await client.get("/board?layout=../../x")).status == 400
        assert (await client.get("/nowhere")).status == 404
        resp = await client.post("/agents/pbx1/Alice/dance", data={"csrf": token})
        assert resp.status in (404, 405)
        unknown = await client.post("/agents/pbx1/Nobody/pause", data={"csrf": token})
        assert unknown.status == 404
        bad_reason = await client.post(
            "/agents/pbx1/Alice/pause", data={"csrf": token, "reason": "a|b"}
        )
        assert bad_reason.status == 400


async def test_action_without_ami_says_why(wb_settings: config.Settings, clean_db: Engine) -> None:
    async with http(wb_settings, clean_db) as (wb, client):
        wb.parts.state.apply("x/pbx1/agents/Alice", agent_payload("pbx1", "Alice"))
        token = await login(client)
        resp = await client.post(
            "/api/v1/agents/pbx1/Alice/pause",
            json={"reason": "coaching"},
            headers={"X-CSRF-Token": token},
        )
        assert resp.status == 404  # no AMI link for node pbx1 in this test
        assert "pbx1" in (await resp.json())["error"]


async def test_unicode_user_logs_in_and_acts_on_a_unicode_agent(
    wb_settings: config.Settings, clean_db: Engine
) -> None:
    add_user(clean_db, "josé")
    async with http(wb_settings, clean_db) as (wb, client):
        wb.parts.state.apply("x/pbx1/agents/Renée", agent_payload("pbx1", "Renée"))
        # Typed with a combining accent, as some keyboards send it: the same user.
        token = await login(client, "jose\u0301")
        html = await (await client.get("/board")).text()
        assert "Renée" in html
        assert "/agents/pbx1/Ren%C3%A9e/pause" in html  # the form's URL, percent-encoded
        for agent in ("Ren%C3%A9e", "Rene%CC%81e"):  # NFC and NFD in the URL: one agent
            resp = await client.post(
                f"/api/v1/agents/pbx1/{agent}/pause",
                json={"reason": "coaching"},
                headers={"X-CSRF-Token": token},
            )
            # Found; then no AMI link for node pbx1 in this test.
            assert (await resp.json())["error"] == "node pbx1 is not configured"
        nobody = await client.post(
            "/api/v1/agents/pbx1/Ren%C3%A9/pause", headers={"X-CSRF-Token": token}
        )
        assert "no agent René is logged in" in (await nobody.json())["error"]


async def test_board_renders_the_live_state_on_the_server(
    wb_settings: config.Settings, clean_db: Engine
) -> None:
    async with http(wb_settings, clean_db) as (wb, client):
        state = wb.parts.state
        state.apply(
            "x/pbx1/queues/sales",
            queue_payload("pbx1", "sales", waiting=7, logged_in=2, available=1),
        )
        state.apply("x/pbx1/agents/Alice", agent_payload("pbx1", "Alice", "paused", reason="lunch"))
        await login(client)
        html = await (await client.get("/board")).text()
        assert 'data-key="sales"' in html
        assert 'class="num big alert">7<' in html  # 7 waiting >= 5: an alert
        assert "state-paused" in html
        assert "lunch" in html
        assert "/agents/pbx1/Alice/unpause" in html


async def test_streams_end_when_the_server_stops(
    wb_settings: config.Settings, clean_db: Engine
) -> None:
    async with http(wb_settings, clean_db) as (wb, client):
        await login(client)
        resp = await client.get("/events")
        assert resp.headers["Content-Type"] == "text/event-stream"
        first = await asyncio.wait_for(resp.content.readuntil(b"\n\n"), 5)
        assert b"event: snapshot" in first
        wb.parts.hub.close()
        rest = await asyncio.wait_for(resp.content.read(), 5)
        assert b"event: clock" in rest
        assert not wb.parts.hub.subscribers


async def test_an_http10_stream_is_plain_bytes_until_the_connection_ends(
    wb_settings: config.Settings, clean_db: Engine
) -> None:
    """HTTP/1.0 (nginx's default towards its upstream) has no chunked coding: the hub writes
    the events as they are and the body ends with the connection."""
    async with http(wb_settings, clean_db) as (wb, client):
        await login(client)
        jar = client.session.cookie_jar
        async with (
            aiohttp.ClientSession(version=aiohttp.HttpVersion10, cookie_jar=jar) as old,
            old.get(client.make_url("/events")) as resp,
        ):
            assert resp.status == 200
            assert "Transfer-Encoding" not in resp.headers
            first = await asyncio.wait_for(resp.content.readuntil(b"\n\n"), 5)
            assert first.startswith(b"retry: 2000\nid: 0\nevent: snapshot\n")
            state = wb.parts.state
            state.apply("x/pbx1/queues/sales", queue_payload("pbx1", "sales", waiting=3))
            assert wb.parts.hub.flush()  # what the hub's task does (not running here)
            rest = b""
            while b"event: delta" not in rest:
                rest += await asyncio.wait_for(resp.content.readuntil(b"\n\n"), 5)
            assert b'"waiting":3' in rest
            wb.parts.hub.close()
            await asyncio.wait_for(resp.content.read(), 5)
            assert not wb.parts.hub.subscribers


# --- a screen without its token, the icon (issue 12, point 9) ----------------------------------


async def test_tv_without_a_token_explains_how_to_get_one(
    wb_settings: config.Settings, clean_db: Engine
) -> None:
    async with http(wb_settings, clean_db) as (_, client):
        for url, says in (
            ("/tv", "This screen has no token yet."),
            ("/tv?token=cctv_wrong", "unknown or revoked"),
        ):
            resp = await client.get(url, allow_redirects=False)
            assert resp.status == 401, url
            assert resp.content_type == "text/html"
            html = await resp.text()
            assert says in html
            assert "callcenter users token add" in html  # how to get one
            assert 'href="/login"' in html  # and where supervisors go instead
            assert "Content-Security-Policy" in resp.headers
        # A supervisor already logged in who follows /tv gets the TV layout.
        await login(client)
        resp = await client.get("/tv", allow_redirects=False)
        assert resp.status == 303
        assert resp.headers["Location"] == "/board?layout=tv"


async def test_the_favicon_is_served(wb_settings: config.Settings, clean_db: Engine) -> None:
    async with http(wb_settings, clean_db) as (_, client):
        resp = await client.get("/favicon.ico", allow_redirects=False)
        assert resp.status == 301
        assert resp.headers["Location"] == "/static/favicon.svg"
        icon = await client.get("/favicon.ico")
        assert icon.status == 200
        assert icon.content_type == "image/svg+xml"
        assert (await icon.text()).startswith("<svg")
        page = await (await client.get("/login")).text()
        assert '<link rel="icon" href="/static/favicon.svg"' in page


async def test_board_renders_configured_agents_and_unknown_nodes_on_the_server(
    wb_settings: config.Settings, clean_db: Engine
) -> None:
    from sqlalchemy.orm import Session

    from callcenter import directory

    with Session(clean_db) as s, s.begin():
        directory.add_queue(s, "sales", display_name="Sales team")
        directory.add_agent(s, name="Alice", extension="1001", pin="4321", full_name="Alice Doe")
        directory.join_queue(s, "sales", "Alice")
    async with http(wb_settings, clean_db) as (wb, client):
        await login(client)
        html = await (await client.get("/board")).text()
        assert "Sales team" in html
        assert 'class="agent state-logged_out"' in html
        assert "Alice Doe" in html
        assert "/agents/local/Alice/login" in html
        assert 'id="queue-total"' in html
        state = wb.parts.state
        state.apply("x/local/status", node_payload("local", False))
        state.apply("x/local/queues/sales", queue_payload("local", "sales", waiting=7))
        state.apply("x/local/agents/Alice", agent_payload("local", "Alice"))
        html = await (await client.get("/board")).text()
        assert "Asterisk node local is DOWN (connection refused)" in html
        assert 'class="num big ">?<' in html  # the 7 waiting are the past, not the present
        assert 'class="agent state-unknown"' in html


# --- outbound campaigns: the dialer's retained snapshots (issue 13, "Live view") ---------------


async def test_campaign_tiles_from_retained_snapshots_on_the_broker(
    wb_settings: config.Settings, clean_db: Engine
) -> None:
    """The dialer's retained snapshot is on the broker before the wallboard starts: the board
    (page and JSON) shows the campaign's tile, its text escaped; an empty retained payload
    takes it away, and with no campaign left there is no campaign section."""
    import aiohttp

    from callcenter.campaigns.snapshot import campaign_topic
    from tests.test_wallboard_api import conforms
    from tests.test_wallboard_browser import publish, wallboard_running
    from tests.test_wallboard_live import campaign_bytes
    from tests.test_wallboard_support import clear_retained

    prefix = wb_settings.mqtt.topic_prefix
    topic = campaign_topic(prefix, "renewals").removeprefix(f"{prefix}/")
    hostile = '<img src=x onerror="alert(1)"> & co'
    try:
        await publish(prefix, [(topic, campaign_bytes(reason=hostile, budget_left=-3.0))])
        async with wallboard_running(wb_settings, clean_db, links={}) as wb:
            base = f"http://127.0.0.1:{wb.port}"
            async with asyncio.timeout(5):
                while "renewals" not in wb.parts.state.campaigns:
                    await asyncio.sleep(0.02)
            # unsafe: keep cookies of an IP address host (127.0.0.1)
            async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as web:
                page = await (await web.get(f"{base}/login")).text()
                nonce = page.split('name="csrf" value="')[1].split('"')[0]
                form = {"name": "sam", "password": PASSWORD, "csrf": nonce}
                await web.post(f"{base}/login", data=form)
                for layout in ("laptop", "tv"):
                    html = await (await web.get(f"{base}/board?layout={layout}")).text()
                    assert 'id="campaign-box" class="campaigns" aria-label="Campaigns">' in html
                    assert '<article class="tile campaign state-running" data-key="renewals">' in (
                        html
                    )
                    assert 'data-f="window_rate" data-fmt="pct1" data-lv="window_level" ' \
                        'class="huge ok">2.3%</span>' in html  # fmt: skip
                    assert 'data-f="cap" data-fmt="pct1">3.0%<' in html
                    assert 'data-f="budget_left" data-fmt="int">0<' in html  # not -3
                    assert 'data-f="contacts_left" data-fmt="int">4211<' in html
                    assert 'data-f="agents_free" data-fmt="int">1<' in html
                    assert 'data-f="agents_logged_in" data-fmt="int">10<' in html
                    assert hostile not in html
                    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt; &amp; co" in html
                board = await (await web.get(f"{base}/api/v1/board")).json()
                (row,) = board["campaigns"]
                assert (row["campaign"], row["reason"], row["budget_left"]) == (
                    "renewals", hostile, 0)  # fmt: skip
                doc = await (await web.get(f"{base}/api/openapi.json")).json()
                conforms(board, doc["paths"]["/api/v1/board"]["get"]["responses"]["200"]
                         ["content"]["application/json"]["schema"], doc)  # fmt: skip

                await publish(prefix, [(topic, b"")])  # the campaign was removed
                async with asyncio.timeout(5):
                    while wb.parts.state.campaigns:
                        await asyncio.sleep(0.02)
                assert (await (await web.get(f"{base}/api/v1/board")).json())["campaigns"] == []
                html = await (await web.get(f"{base}/board")).text()
                assert 'id="campaign-box" class="campaigns" aria-label="Campaigns" hidden>' in html
                assert 'data-key="renewals"' not in html
    finally:
        await clear_retained(prefix)
