"""The web app's defences of issue 16: the login throttle (per address and account, never a
lockout from elsewhere), client addresses behind a trusted proxy, Secure cookies and HSTS,
sessions revoked on the server at logout, log lines a client cannot forge, 503 without
internals while the database is away, and HTTPS with a configured certificate.

Runs the wallboard's application on a test server against the test database (and, for the
database being away, against a port where nothing listens: a real refused connection)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import logging
import shutil
import socket
import ssl
import subprocess
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from callcenter import config, logsafe
from callcenter.db import engine as db
from callcenter.db.models_wallboard import RevokedSession
from callcenter.wallboard import accounts
from callcenter.wallboard.app import tls_context
from callcenter.wallboard.auth import (
    LoginThrottle,
    Signer,
    forwarded_client,
    parse_networks,
    throttle_key,
)
from callcenter.wallboard.control import ControlError, check_reason
from callcenter.wallboard.openapi import document
from tests.test_wallboard_browser import wallboard_running
from tests.test_wallboard_support import (
    PASSWORD,
    add_user,
    agent_payload,
    csrf_of,
    http,
    login,
    wallboard_settings,
)

Client = TestClient[Any, Any]
PROXIES = parse_networks(["127.0.0.1", "10.0.0.0/8"])


# --- pure: who the client is -------------------------------------------------------------------


def test_the_client_is_the_peer_unless_the_peer_is_a_trusted_proxy() -> None:
    # An untrusted peer: its X-Forwarded-* are its own claims.
    assert forwarded_client("203.0.113.9", ["1.2.3.4"], ["https"], PROXIES) is None
    assert forwarded_client("127.0.0.1", [], [], ()) is None  # no proxy configured
    # The nearest proxy appended the client; what the client wrote to the left is ignored.
    assert forwarded_client("127.0.0.1", ["6.6.6.6, 198.51.100.4"], ["https"], PROXIES) == (
        "198.51.100.4",
        "https",
    )
    # Two trusted hops: the right-most address that is not a trusted proxy.
    assert forwarded_client("127.0.0.1", ["198.51.100.4, 10.1.2.3"], [], PROXIES) == (
        "198.51.100.4",
        "http",
    )
    # Several header copies are one list; one proto per hop: the chosen hop's.
    assert forwarded_client(
        "127.0.0.1", ["198.51.100.4", "10.1.2.3"], ["https", "http"], PROXIES
    ) == ("198.51.100.4", "https")
    # Every hop a trusted proxy: the left-most (the proxies asked themselves).
    assert forwarded_client("127.0.0.1", ["10.0.0.2, 10.0.0.3"], [], PROXIES) == (
        "10.0.0.2",
        "http",
    )
    # No header: the proxy itself; garbage stops the walk at the last sound address.
    assert forwarded_client("127.0.0.1", [], ["HTTPS"], PROXIES) == ("127.0.0.1", "https")
    assert forwarded_client("127.0.0.1", ["unknown"], [], PROXIES) == ("127.0.0.1", "http")
    assert forwarded_client("127.0.0.1", ["x\ny, 10.0.0.9"], [], PROXIES) == ("10.0.0.9", "http")
    # Forms proxies write: ports, brackets, IPv4-mapped peers; anything but https is http.
    assert forwarded_client("::ffff:127.0.0.1", ["[2001:db8::1]:4711"], ["ftp"], PROXIES) == (
        "2001:db8::1",
        "http",
    )
    assert forwarded_client("127.0.0.1", ["198.51.100.4:5060"], [], PROXIES) == (
        "198.51.100.4",
        "http",
    )
    with pytest.raises(ValueError, match="not an IP address"):
        parse_networks(["10.0.0.0/33"])


def test_ipv6_clients_are_counted_per_64() -> None:
    assert throttle_key("2001:db8:1:2::5") == throttle_key("2001:db8:1:2:ffff::1")
    assert throttle_key("2001:db8:1:2::5") != throttle_key("2001:db8:1:3::5")
    assert throttle_key("192.0.2.1") == "192.0.2.1"


# --- pure: the throttle, on a fake clock -------------------------------------------------------


def test_a_lockout_holds_one_address_and_account_never_the_account_everywhere() -> None:
    now = [1000.0]
    t = LoginThrottle(attempts=5, window=300, address_attempts=20, clock=lambda: now[0])
    attacker, owner = "203.0.113.9", "198.51.100.4"
    locks = []
    for _ in range(5):
        assert t.retry_after(attacker, "user:sam") == 0
        locks.append(t.failed(attacker, "user:sam"))
        now[0] += 1
    assert locks == [None, None, None, None, "account"]
    assert t.retry_after(attacker, "user:sam") == pytest.approx(300 - 5)
    # The supervisor, elsewhere, is not locked out; nor is another account from there.
    assert t.retry_after(owner, "user:sam") == 0
    assert t.retry_after(attacker, "user:ann") == 0
    # One wrong try a minute from the attacker cannot keep anyone else out, and the
    # attacker's own lock ends with the window.
    now[0] += 300
    assert t.retry_after(attacker, "user:sam") == 0
    # Many accounts from one address: the address limit.
    for i in range(19):
        assert t.failed(attacker, f"user:u{i}") is None
    assert t.failed(attacker, "user:v") == "address"
    assert t.retry_after(attacker, "user:fresh") > 0
    assert t.retry_after(owner, "user:fresh") == 0
    # A success clears its own pair only.
    t2 = LoginThrottle(attempts=2, window=60, address_attempts=10, clock=lambda: now[0])
    t2.failed(owner, "user:sam")
    t2.succeeded(owner, "user:sam")
    t2.failed(owner, "user:sam")
    assert t2.retry_after(owner, "user:sam") == 0


# --- pure: log lines ---------------------------------------------------------------------------


def test_client_values_cannot_start_a_log_line() -> None:
    forged = "break\nINFO callcenter.wallboard.control: wallboard: sam logged Alice out"
    assert "\n" not in logsafe.clean(forged)
    assert logsafe.clean(forged).startswith("break\\nINFO")
    for char in ("\r", "\x1b", "\x85", "\u2028", "\u2029", "\u202e", "\x00"):
        assert char not in logsafe.clean(f"a{char}b")
    assert logsafe.clean("a\\nb") == "a\\\\nb"  # typed by the client: still told apart
    assert logsafe.clean("x" * 1000).endswith("...(+800)")
    gate = logsafe.LogGate(burst=2, period=60, clock=lambda: 0.0)
    assert [gate.admit("k")[0] for _ in range(4)] == [True, True, False, False]


def test_a_pause_reason_is_one_line_of_plain_text() -> None:
    assert check_reason(" lunch \n") == "lunch"
    for bad in ("break\nwallboard: forged", "a\rb", "a\u2028b", "a|b", "x" * 65):
        with pytest.raises(ControlError):
            check_reason(bad)


# --- settings ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CALLCENTER_WALLBOARD__TRUSTED_PROXIES": "10.0.0.1,nonsense"}, "'nonsense' is not"),
        ({"CALLCENTER_WALLBOARD__TLS_CERT": "/etc/cert.pem"}, "tls_key is not"),
        ({"CALLCENTER_WALLBOARD__HSTS": "-1"}, "wallboard.hsts"),
        ({"CALLCENTER_WALLBOARD__LOGIN_ADDRESS_ATTEMPTS": "0"}, "login_address_attempts"),
    ],
)
def test_bad_web_settings_are_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(config.ConfigError, match=message) as caught:
        config.load(environ={"CALLCENTER_CONFIG": "", **env})
    assert "CALLCENTER_WALLBOARD__" in str(caught.value)


def test_tls_files_that_cannot_serve_are_named(tmp_path: Path) -> None:
    assert tls_context("", "") is None
    with pytest.raises(config.ConfigError, match="cannot read"):
        tls_context(str(tmp_path / "none.pem"), str(tmp_path / "none.key"))
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(config.ConfigError, match="not a PEM certificate"):
        tls_context(str(junk), str(junk))


# --- over HTTP ---------------------------------------------------------------------------------


@pytest.fixture
def wb_settings(settings: config.Settings, clean_db: Engine) -> config.Settings:
    add_user(clean_db)
    return wallboard_settings(settings)


@pytest.fixture
def proxied(settings: config.Settings, clean_db: Engine) -> config.Settings:
    """Behind a proxy on this machine (the test client connects from 127.0.0.1)."""
    add_user(clean_db)
    return wallboard_settings(settings, trusted_proxies=("127.0.0.1",))


async def post_login(client: Client, name: str, password: str,
                     headers: dict[str, str] | None = None) -> aiohttp.ClientResponse:  # fmt: skip
    page = await client.get("/login", headers=headers)
    return await client.post(
        "/login",
        data={"name": name, "password": password, "csrf": csrf_of(await page.text())},
        headers=headers,
        allow_redirects=False,
    )


async def test_an_attacker_elsewhere_cannot_lock_the_supervisor_out(
    proxied: config.Settings, clean_db: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "callcenter")
    attacker = {"X-Forwarded-For": "203.0.113.9"}
    async with http(proxied, clean_db) as (_, client):
        statuses = [(await post_login(client, "sam", "guess", attacker)).status for _ in range(7)]
        assert statuses == [401] * 5 + [429] * 2
        # The supervisor, from their own desk, logs in at once.
        ok = await post_login(client, "sam", PASSWORD, {"X-Forwarded-For": "198.51.100.4"})
        assert ok.status == 303
    lines = [r.getMessage() for r in caplog.records]
    assert sum("failed login of user sam from 203.0.113.9" in m for m in lines) == 5
    assert any("203.0.113.9 locked out for user sam for 300 s" in m for m in lines)
    assert not any("198.51.100.4" in m for m in lines)


async def test_forwarded_headers_from_anyone_else_are_ignored(
    wb_settings: config.Settings, clean_db: Engine
) -> None:
    async with http(wb_settings, clean_db) as (_, client):
        # No trusted proxy: a new X-Forwarded-For per try changes nothing.
        statuses = [
            (await post_login(client, "sam", "guess", {"X-Forwarded-For": f"192.0.2.{i}"})).status
            for i in range(6)
        ]
        assert statuses == [401] * 5 + [429]
        resp = await post_login(client, "sam", PASSWORD, {"X-Forwarded-Proto": "https"})
        assert resp.status == 429
        assert "Strict-Transport-Security" not in resp.headers
        page = await client.get("/login", headers={"X-Forwarded-Proto": "https"})
        assert "Secure" not in page.headers["Set-Cookie"]


async def test_behind_a_tls_proxy_cookies_are_secure_with_hsts(
    proxied: config.Settings, clean_db: Engine
) -> None:
    https = {"X-Forwarded-For": "198.51.100.4", "X-Forwarded-Proto": "https"}
    async with http(proxied, clean_db) as (_, client):
        page = await client.get("/login", headers=https)
        nonce = next(c for c in page.headers.getall("Set-Cookie") if c.startswith("cc_login="))
        assert "Secure" in nonce
        # The test client speaks plain HTTP to the "proxy": it keeps Secure cookies to itself,
        # so this browser's nonce cookie goes back by hand.
        resp = await client.post(
            "/login",
            data={"name": "sam", "password": PASSWORD, "csrf": csrf_of(await page.text())},
            headers={**https, "Cookie": nonce.split(";")[0]},
            allow_redirects=False,
        )
        assert resp.status == 303
        cookie = next(c for c in resp.headers.getall("Set-Cookie") if c.startswith("cc_session="))
        assert "Secure" in cookie
        assert resp.headers["Strict-Transport-Security"] == "max-age=31536000"
        plain = await client.get("/login", headers={"X-Forwarded-Proto": "http"})
        assert "Strict-Transport-Security" not in plain.headers
        assert "Secure" not in plain.headers["Set-Cookie"]
        # Every other header stays (the probe: CSP, frame-ancestors, nosniff).
        assert "frame-ancestors 'none'" in plain.headers["Content-Security-Policy"]
        assert plain.headers["X-Content-Type-Options"] == "nosniff"


def session_cookie(client: Client) -> str:
    return next(c.value for c in client.session.cookie_jar if c.key == "cc_session")


async def test_a_logged_out_session_cookie_is_refused_everywhere(
    wb_settings: config.Settings, clean_db: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "callcenter")
    async with (
        http(wb_settings, clean_db) as (_, client),
        http(wb_settings, clean_db) as (other, elsewhere),
    ):
        token = await login(client)
        stolen = session_cookie(client)
        elsewhere.session.cookie_jar.update_cookies({"cc_session": stolen})
        assert (await elsewhere.get("/api/v1/board")).status == 200  # another process
        out = await client.post("/logout", data={"csrf": token}, allow_redirects=False)
        assert out.status == 303
        # The old cookie, replayed: refused at once in the process that logged out...
        client.session.cookie_jar.update_cookies({"cc_session": stolen})
        assert (await client.get("/api/v1/board")).status == 401
        assert (await client.get("/board", allow_redirects=False)).headers["Location"] == "/login"
        # ...and in every other once it has read the table (within DirectoryCache.period).
        await other.parts.auth.cache.reload()
        assert (await elsewhere.get("/api/v1/board")).status == 401
        with Session(clean_db) as s:
            (row,) = s.scalars(sa.select(RevokedSession))
            assert row.principal == "user:sam"
            assert row.expires_at > row.revoked_at
        # A post with the old cookie and its token: refused, and logged.
        resp = await client.post("/logout", data={"csrf": token}, allow_redirects=False)
        assert resp.status == 303  # no session: to the login page
        assert (await login(client)) != token  # a new session works
        bad = await client.post("/logout", data={"csrf": "forged"}, allow_redirects=False)
        assert bad.status == 403
    assert any(
        "refused POST /logout from 127.0.0.1 (user:sam): 403" in r.getMessage()
        for r in caplog.records
    )


async def test_an_agent_logout_revokes_the_agents_session(
    wb_settings: config.Settings, clean_db: Engine
) -> None:
    from callcenter import directory

    with Session(clean_db) as s, s.begin():
        directory.add_queue(s, "sales")
        directory.add_agent(s, name="alice", extension="1001", pin="2468")
        accounts.set_agent_password(s, "alice", PASSWORD)
    async with http(wb_settings, clean_db) as (_, client):
        page = await client.get("/agent/login")
        resp = await client.post(
            "/agent/login",
            data={"name": "alice", "password": PASSWORD, "csrf": csrf_of(await page.text())},
            allow_redirects=False,
        )
        assert resp.status == 303
        stolen = session_cookie(client)
        csrf = csrf_of(await (await client.get("/agent")).text())
        out = await client.post("/agent/logout", json={"csrf": csrf}, allow_redirects=False)
        assert out.status == 303
        client.session.cookie_jar.update_cookies({"cc_session": stolen})
        again = await client.get("/agent", allow_redirects=False)
        assert again.headers["Location"] == "/agent/login"


async def test_expired_revocations_are_purged(
    wb_settings: config.Settings, clean_db: Engine
) -> None:
    past = dt_utc(-3600)
    with Session(clean_db) as s, s.begin():
        s.add(RevokedSession(sid="old", principal="user:sam", expires_at=past))
        s.add(RevokedSession(sid="live", principal="user:sam", expires_at=dt_utc(3600)))
    async with http(wb_settings, clean_db) as (wb, _):
        cache = wb.parts.auth.cache
        assert cache.is_revoked("live")
        assert not cache.is_revoked("old")
    with Session(clean_db) as s:
        assert set(s.scalars(sa.select(RevokedSession.sid))) == {"live"}


def dt_utc(offset: float) -> Any:
    import datetime as dt

    return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=offset)


async def test_typed_values_cannot_forge_log_lines(
    wb_settings: config.Settings, clean_db: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, "callcenter")
    forged = "wallboard: sam logged Alice out of sales on pbx1"
    async with http(wb_settings, clean_db) as (wb, client):
        wb.parts.state.apply("x/pbx1/agents/Alice", agent_payload("pbx1", "Alice"))
        resp = await post_login(client, f"mallory\n{forged}", "guess")
        assert resp.status == 401
        token = await login(client)
        resp = await client.post(
            "/api/v1/agents/pbx1/Alice/pause",
            json={"reason": f"break\n{forged}"},
            headers={"X-CSRF-Token": token},
        )
        assert resp.status == 400
        form = await client.post(
            "/agents/pbx1/Alice/pause",
            data={"csrf": token, "reason": f"lunch\r\n{forged}"},
            allow_redirects=False,
        )
        assert form.status == 400
        # A path with a line end, refused for its CSRF token: logged, escaped.
        resp = await client.post("/agents/pbx1/Alice%0Aforged/pause", data={"csrf": "x"})
        assert resp.status == 403
    messages = [r.getMessage() for r in caplog.records]
    assert any("failed login of user mallory\\nwallboard: sam logged" in m for m in messages)
    assert any("/agents/pbx1/Alice\\nforged/pause" in m for m in messages)
    for message in messages:
        assert not {"\n", "\r"} & set(message), message
    assert not any(m.startswith(forged) for m in messages)


# --- the database away -------------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.fixture
def dead_engine(settings: config.Settings) -> Iterator[tuple[Engine, int]]:
    port = closed_port()
    url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/nothing"
    engine = db.make_engine(dataclasses.replace(settings.database, url=url, connect_timeout=2))
    yield engine, port
    engine.dispose()


async def test_with_the_database_away_viewers_get_503_and_nothing_of_it(
    wb_settings: config.Settings, dead_engine: tuple[Engine, int], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "callcenter")
    engine, port = dead_engine
    far = int(time.time()) + 3600
    signer = Signer("test-secret")  # wallboard_settings' key: the app trusts the signed cookie
    viewer = signer.sign("session", {"sub": "user:sam", "name": "sam", "role": "supervisor",
                                     "csrf": "c", "sid": "s1", "exp": far})  # fmt: skip
    agent = signer.sign("session", {"sub": "agent:alice", "name": "alice", "role": "agent",
                                    "csrf": "c", "sid": "s2", "exp": far})  # fmt: skip
    async with http(wb_settings, engine) as (wb, client):
        client.session.cookie_jar.update_cookies({"cc_session": viewer})
        await wb.parts.kpis.refresh()
        bodies = []
        for path in ["/api/v1/history"] * 5 + ["/api/v1/history?day=2026-01-05", "/api/v1/kpis"]:
            resp = await client.get(path)
            assert resp.status == 503, path
            assert await resp.json() == {"error": "database unavailable"}
            assert resp.headers["Retry-After"] == "5"
            bodies.append(await resp.text())
        page = await client.get("/history")
        assert page.status == 503
        assert page.headers["Retry-After"] == "5"
        bodies.append(await page.text())
        board = await client.get("/api/v1/board")  # from memory: still served
        assert board.status == 200
        assert (await board.json())["kpis"]["error"].startswith("the call log is unavailable")
        bodies.append(await board.text())
        client.session.cookie_jar.update_cookies({"cc_session": agent})
        desk = await client.get("/agent")
        assert desk.status == 503
        bodies.append(await desk.text())
        # The CRM's API: the same answer.
        client.session.cookie_jar.update_cookies({"cc_session": viewer})
        crm = await client.get("/api/v1/customers")
        assert crm.status == 503
        assert await crm.json() == {"error": "database unavailable"}
    for body in bodies:
        for secret in ("127.0.0.1", str(port), "refused", "Traceback", "psycopg", "nothing"):
            assert secret not in body
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    unavailable = [r.getMessage() for r in caplog.records if "answering 503" in r.getMessage()]
    assert len(unavailable) == 1, unavailable  # one line per kind of failure, not per request
    assert str(port) in unavailable[0]  # the operator's log has the detail


# --- HTTPS -------------------------------------------------------------------------------------


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[str, str]:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed (apt-get install openssl)")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    return str(cert), str(key)


async def test_with_a_certificate_the_wallboard_serves_https_only(
    settings: config.Settings, clean_db: Engine, certificate: tuple[str, str]
) -> None:
    cert, key = certificate
    s = wallboard_settings(settings, tls_cert=cert, tls_key=key)
    async with wallboard_running(s, clean_db, links={}) as wb:
        assert wb.tls is not None
        assert wb.tls.minimum_version == ssl.TLSVersion.TLSv1_2
        trust = ssl.create_default_context(cafile=cert)
        reader, writer = await asyncio.open_connection("127.0.0.1", wb.port, ssl=trust)
        version = writer.get_extra_info("ssl_object").version()
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()
        assert version in ("TLSv1.2", "TLSv1.3")
        async with (
            aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as web,
            web.get(f"https://127.0.0.1:{wb.port}/login", ssl=trust) as resp,
        ):
            assert resp.status == 200
            assert resp.headers["Strict-Transport-Security"] == "max-age=31536000"
            assert "Secure" in resp.headers["Set-Cookie"]
        # An old client (TLS 1.1 at most) gets no connection.
        old = ssl.create_default_context(cafile=cert)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.1 is, precisely
            old.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
            old.maximum_version = ssl.TLSVersion.TLSv1_1
        with pytest.raises((ssl.SSLError, ConnectionError)):
            await asyncio.open_connection("127.0.0.1", wb.port, ssl=old)
        # Plain HTTP on the same port: no answer to read.
        async with aiohttp.ClientSession() as web:
            with pytest.raises(aiohttp.ClientError):
                await web.get(f"http://127.0.0.1:{wb.port}/login")
    del reader


# --- the history API and its document ----------------------------------------------------------


async def test_history_refuses_an_empty_day_as_its_document_says(
    wb_settings: config.Settings, clean_db: Engine
) -> None:
    async with http(wb_settings, clean_db) as (_, client):
        await login(client)
        for query in ("day=", "day=yesterday", "day=1999-12-31", "queue=Bad%20Queue"):
            resp = await client.get(f"/api/v1/history?{query}")
            assert resp.status == 400, query
            assert "error" in await resp.json()
        assert (await client.get("/api/v1/history")).status == 200  # left out: today
        assert (await client.get("/api/v1/history?queue=")).status == 200  # empty: all queues
        # The CRM's whole numbers likewise (schemathesis found these accepted empty).
        for query in (
            "/api/v1/calls?limit=",
            "/api/v1/cases?customer=",
            "/api/v1/customers/1?calls=",
        ):
            assert (await client.get(query)).status == 400, query
    op = document()["paths"]["/api/v1/history"]["get"]
    assert {"200", "400", "401", "403", "503"} <= set(op["responses"])
    assert "empty" in op["parameters"][0]["description"]
    kpis = document()["paths"]["/api/v1/kpis"]["get"]["responses"]
    assert "Retry-After" in kpis["503"]["headers"]


def test_trusted_proxies_default_to_none() -> None:
    s = config.load(environ={"CALLCENTER_CONFIG": ""})
    assert s.wallboard.trusted_proxies == ()
    assert isinstance(parse_networks(["::1"])[0], ipaddress.IPv6Network)


async def test_requests_that_are_not_http_cost_the_log_one_short_line(
    wb_settings: config.Settings, clean_db: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "callcenter")
    async with wallboard_running(wb_settings, clean_db, links={}) as wb:
        for _ in range(25):
            reader, writer = await asyncio.open_connection("127.0.0.1", wb.port)
            try:
                writer.write(b"GET /login HTTP/1.1\r\nHost: x\r\nX-Probe: a\x00\nforged\r\n\r\n")
                status = await reader.readline()
            finally:
                writer.close()
                with contextlib.suppress(ConnectionError):
                    await writer.wait_closed()
            assert b" 400 " in status, status
    bad = [r for r in caplog.records if r.name == "callcenter.wallboard.http"]
    assert 1 <= len(bad) <= 10  # at most ten a minute, then a count of the rest
    for record in bad:
        assert record.levelno == logging.WARNING
        assert record.exc_info is None
        assert "not valid HTTP from 127.0.0.1" in record.getMessage()
        assert "\n" not in record.getMessage()
