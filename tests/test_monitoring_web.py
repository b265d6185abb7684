"""Live monitoring from the board, over HTTP: who may, when, and the Originate that reaches
AMI (a peer that speaks Asterisk's wire protocol, tests/fake_ami.py, behind the wallboard's own
AMI link). Every attempt is a monitor_sessions row. tests/e2e/test_monitoring.py does it on a
real Asterisk with SIPp phones."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from callcenter import config, directory, tokens
from callcenter.db.models import Call
from callcenter.wallboard import accounts
from callcenter.wallboard.control import links_for
from tests.fake_ami import FakeAmi, FakeConnection, frame
from tests.test_wallboard_support import (
    PASSWORD,
    add_token,
    agent_payload,
    csrf_of,
    http,
    login,
    node_payload,
    wallboard_settings,
)

Client = TestClient[Any, Any]
NODE = "pbx1"
CALL = "1795000000.7"
CHANNEL = "PJSIP/1001-0000002a"
JSON = {"Accept": "application/json"}


def queued(fields: dict[str, str]) -> bytes:
    """manager.c's answer to an Async Originate (recorded: originate-outcomes)."""
    return frame(
        f"Response: Success\r\nActionID: {fields['ActionID']}\r\n"
        "Message: Originate successfully queued"
    )


def refused(fields: dict[str, str]) -> bytes:
    return frame(
        f"Response: Error\r\nActionID: {fields['ActionID']}\r\n"
        "Message: Originate Access Forbidden: app or data blacklisted"
    )


@pytest.fixture
def seeded(settings: config.Settings, clean_db: Engine) -> config.Settings:
    with Session(clean_db) as s, s.begin():
        accounts.add_user(s, "sam", PASSWORD, "supervisor", phone="2001")
        accounts.add_user(s, "ada", PASSWORD, "admin")  # no phone
        directory.add_queue(s, "sales")
        directory.add_agent(s, name="alice", extension="1001", pin="2468")
        directory.add_agent(s, name="bob", extension="1002", pin="2468")
        directory.add_agent(s, name="sup", extension="2001", pin="2468")  # sam's phone
        accounts.set_agent_password(s, "alice", PASSWORD)
        now = dt.datetime.now(dt.UTC)
        s.add(Call(node=NODE, uniqueid=CALL, linkedid=CALL, direction="inbound",
                   caller_number="2015550123", started_at=now, queue="sales", agent="alice",
                   agent_channel=CHANNEL, answered_at=now))  # fmt: skip
    return wallboard_settings(settings)


@pytest.fixture
async def fake() -> AsyncIterator[FakeAmi]:
    async with FakeAmi(extra={"Originate": queued}) as peer:
        yield peer


@dataclasses.dataclass
class Board:
    client: Client
    conn: FakeConnection
    engine: Engine

    def originates(self) -> list[dict[str, str]]:
        return [
            {k: v for k, v in a.items() if k != "ActionID"}
            for a in self.conn.actions
            if a["Action"] == "Originate"
        ]

    def rows(self) -> list[dict[str, Any]]:
        with self.engine.connect() as c:
            query = sa.text(
                "SELECT user_name, mode, agent, node, agent_channel, phone, result, error "
                "FROM monitor_sessions ORDER BY id"
            )
            return [dict(r._mapping) for r in c.execute(query)]

    async def monitor(
        self, agent: str, mode: str, csrf: str, **kw: Any
    ) -> tuple[int, dict[str, Any]]:
        """Post as board.js does (fetch, JSON answer)."""
        resp = await self.client.post(
            f"/agents/{NODE}/{agent}/monitor",
            data={"mode": mode, "csrf": csrf},
            headers=kw.pop("headers", JSON),
            **kw,
        )
        body: dict[str, Any] = await resp.json()
        return resp.status, body

    async def monitor_form(self, agent: str, mode: str, csrf: str) -> int:
        """Post the plain form (no script): a redirect, or the error as text."""
        resp = await self.client.post(
            f"/agents/{NODE}/{agent}/monitor",
            data={"mode": mode, "csrf": csrf},
            allow_redirects=False,
        )
        return resp.status


@pytest.fixture
def board_stack(
    seeded: config.Settings, clean_db: Engine, fake: FakeAmi
) -> tuple[config.Settings, FakeAmi]:
    node = config.NodeSettings(
        name=NODE, port=fake.port, secret=config.Secret("s3cret"), connect_timeout=2.0
    )
    # The call log is 0.2 s behind at most: an unknown channel is refused after 1.2 s.
    return (
        dataclasses.replace(
            seeded, nodes=(node,), bridge=dataclasses.replace(seeded.bridge, flush_interval=0.2)
        ),
        fake,
    )


@dataclasses.dataclass
class Running:
    wb: Any
    board: Board


@pytest.fixture
async def running(
    board_stack: tuple[config.Settings, FakeAmi], clean_db: Engine
) -> AsyncIterator[Running]:
    s, fake = board_stack
    links = links_for(s.nodes)
    stop = asyncio.Event()
    task = asyncio.create_task(links[NODE].run(stop))
    try:
        async with http(s, clean_db, links) as (wb, client):
            conn = await fake.accept(resync=False)
            state = wb.parts.state
            state.apply(f"x/{NODE}/status", node_payload(NODE, True))
            alice = agent_payload(
                NODE, "alice", "on_call", interface="PJSIP/1001", call=CALL, call_queue="sales"
            )
            state.apply(f"x/{NODE}/agents/alice", alice)
            bob = agent_payload(NODE, "bob", "available", interface="PJSIP/1002")
            state.apply(f"x/{NODE}/agents/bob", bob)
            yield Running(wb, Board(client, conn, clean_db))
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


async def test_a_supervisor_listens_whispers_and_barges_through_ami(running: Running) -> None:
    b = running.board
    csrf = await login(b.client, "sam")
    html = await (await b.client.get("/board")).text()
    for mode in ("listen", "whisper", "barge"):
        assert f'name="mode" value="{mode}"' in html
    assert "/agents/pbx1/alice/monitor" in html
    for mode in ("listen", "whisper", "barge"):
        status, body = await b.monitor("alice", mode, csrf)
        assert status == 200, body
        assert body["ok"] is True
        assert body["phone"] == "2001"
        assert body["message"] == f"{mode}: alice - your phone 2001 rings"
    options = {"listen": "qEu", "whisper": "qwEu", "barge": "qBEu"}
    assert b.originates() == [
        {
            "Action": "Originate",
            "Channel": "PJSIP/2001",
            "Application": "ChanSpy",
            "Data": f"{CHANNEL},{options[mode]}",
            "Timeout": "30000",
            "CallerID": f'"{mode.capitalize()} alice" <1001>',
            # Repeated keys: the fake keeps the first Variable line, as astman_get_header.
            "Variable": f"CC_MONITOR_MODE={mode}",
            "Async": "true",
        }
        for mode in ("listen", "whisper", "barge")
    ]
    assert b.rows() == [
        {"user_name": "sam", "mode": mode, "agent": "alice", "node": NODE,
         "agent_channel": CHANNEL, "phone": "2001", "result": "originated", "error": ""}
        for mode in ("listen", "whisper", "barge")
    ]  # fmt: skip
    # The form without fetch: back to the board.
    assert await b.monitor_form("alice", "listen", csrf) == 303


async def test_who_may_not_monitor_gets_403_and_is_logged(
    running: Running, clean_db: Engine
) -> None:
    b = running.board
    client = b.client
    # Nobody logged in: 401 (JSON) or the login page; nothing to log, nobody to name.
    assert (await b.monitor("alice", "listen", "x"))[0] == 401
    assert await b.monitor_form("alice", "listen", "x") == 303
    # A supervisor without the session's CSRF token (a forged post).
    await login(client, "sam")
    status, body = await b.monitor("alice", "barge", "forged")
    assert status == 403
    assert body["error"] == "the form's CSRF token is missing or wrong: reload the page"
    # An agent's desktop session: refused as JSON and as a plain form post.
    client.session.cookie_jar.clear()
    page = await client.get("/agent/login")
    resp = await client.post(
        "/agent/login",
        data={"name": "alice", "password": PASSWORD, "csrf": csrf_of(await page.text())},
        allow_redirects=False,
    )
    assert resp.status == 303
    agent_csrf = csrf_of(await (await client.get("/agent")).text())
    assert (await b.monitor("alice", "listen", agent_csrf))[0] == 403
    assert await b.monitor_form("alice", "whisper", agent_csrf) == 403
    # A screen's token: a session that only watches.
    client.session.cookie_jar.clear()
    tv = add_token(clean_db, "lobby")
    await running.wb.parts.auth.cache.reload()
    assert (await client.get(f"/tv?token={tv}", allow_redirects=False)).status == 303
    tv_csrf = csrf_of(await (await client.get("/board")).text())
    assert (await b.monitor("alice", "listen", tv_csrf))[0] == 403
    # API tokens, even of scope write: monitoring needs a person at the board.
    client.session.cookie_jar.clear()
    with Session(clean_db) as s, s.begin():
        _, api = tokens.add_token(s, "crm", "write")
    await running.wb.parts.auth.cache.reload()
    status, _ = await b.monitor(
        "alice", "listen", "", headers={**JSON, "Authorization": f"Bearer {api}"}
    )
    assert status == 403
    assert b.originates() == []
    logged = [(r["user_name"], r["mode"], r["result"], r["error"].split(":")[0]) for r in b.rows()]
    assert logged == [
        ("sam", "barge", "refused", "the form's CSRF token is missing or wrong"),
        ("agent:alice", "listen", "refused", "an agent's session may not monitor calls"),
        ("agent:alice", "whisper", "refused", "an agent's session may not monitor calls"),
        ("token:lobby", "listen", "refused", "a screen's token only watches the board"),
        ("api:crm", "listen", "refused", "an API token may not monitor calls"),
    ]  # fmt: skip


async def test_nothing_to_spy_on_or_no_phone_is_409(running: Running, clean_db: Engine) -> None:
    b = running.board
    csrf = await login(b.client, "ada")  # an administrator without a phone
    html = await (await b.client.get("/board")).text()
    assert "/monitor" not in html  # no buttons without a phone
    status, body = await b.monitor("alice", "listen", csrf)
    assert status == 409
    assert "no phone" in body["error"]
    b.client.session.cookie_jar.clear()
    csrf = await login(b.client, "sam")
    status, body = await b.monitor("bob", "listen", csrf)
    assert (status, body["error"]) == (409, "bob is not on a call (available)")
    status, body = await b.monitor("carol", "whisper", csrf)
    assert (status, body["error"]) == (409, "carol is not logged in on node pbx1")
    # The call log does not name alice's channel (yet): refused after waiting for it.
    with Session(clean_db) as s, s.begin():
        s.execute(sa.update(Call).values(agent_channel=None))
    started = asyncio.get_running_loop().time()
    status, body = await b.monitor("alice", "barge", csrf)
    assert status == 409
    assert "try again" in body["error"]
    assert asyncio.get_running_loop().time() - started >= 1.0
    # The node is down: whether alice is on a call is unknown.
    running.wb.parts.state.apply(f"x/{NODE}/status", node_payload(NODE, False))
    status, body = await b.monitor("alice", "listen", csrf)
    assert status == 409
    assert "node pbx1 is down" in body["error"]
    # Bad input: no such mode (not logged: it names no session), a name that is no agent's.
    assert (await b.monitor("alice", "spy", csrf))[0] == 400
    assert (await b.monitor("a%20b", "listen", csrf))[0] == 404
    assert b.originates() == []
    assert [(r["user_name"], r["agent"], r["result"], r["phone"]) for r in b.rows()] == [
        ("ada", "alice", "refused", ""),
        ("sam", "bob", "refused", "2001"),
        ("sam", "carol", "refused", "2001"),
        ("sam", "alice", "refused", "2001"),
        ("sam", "alice", "refused", "2001"),
    ]


async def test_asterisk_saying_no_is_a_failed_attempt(running: Running) -> None:
    b = running.board
    b.conn.extra["Originate"] = refused
    csrf = await login(b.client, "sam")
    status, body = await b.monitor("alice", "whisper", csrf)
    assert status == 502
    assert "Originate Access Forbidden" in body["error"]
    (row,) = b.rows()
    assert (row["result"], row["agent_channel"], row["phone"]) == ("failed", CHANNEL, "2001")
    assert "Originate Access Forbidden" in row["error"]


async def test_the_phone_counts_as_soon_as_it_is_set(running: Running, clean_db: Engine) -> None:
    """The POST reads the phone from the database at that moment; the board's buttons follow
    with the next refresh of the users (seconds)."""
    b = running.board
    csrf = await login(b.client, "ada")
    with Session(clean_db) as s, s.begin():
        accounts.set_user_phone(s, "ada", "2001")
    status, _ = await b.monitor("alice", "listen", csrf)
    assert status == 200
    await running.wb.parts.auth.cache.reload()
    assert "/agents/pbx1/alice/monitor" in await (await b.client.get("/board")).text()
    # The TV layout never shows them.
    assert "/monitor" not in await (await b.client.get("/board?layout=tv")).text()
