"""Helpers of the wallboard's tests (no tests of its own): a wallboard against the test
database, an HTTP client for it, logging in, and MQTT payloads as the bridge publishes them."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import re
import secrets
from collections.abc import AsyncIterator
from typing import Any

import aiomqtt
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from callcenter import config
from callcenter.ami.link import AmiLink
from callcenter.wallboard import accounts
from callcenter.wallboard.app import Wallboard

PASSWORD = "correct horse battery"


PREFIX = "cc"


def wallboard_settings(base: config.Settings, **wallboard: Any) -> config.Settings:
    """Own MQTT prefix and client id (test runs may overlap on one broker), a free port."""
    tag = secrets.token_hex(4)
    return dataclasses.replace(
        base,
        mqtt=config.MqttSettings(topic_prefix=f"cctest-{tag}", client_id=f"cctest-{tag}"),
        wallboard=config.WallboardSettings(
            port=0, secret_key=config.Secret("test-secret"), **wallboard
        ),
    )


def add_user(engine: Engine, name: str = "sam", role: str = "supervisor") -> None:
    with Session(engine) as s, s.begin():
        accounts.add_user(s, name, PASSWORD, role)


def add_token(engine: Engine, label: str = "lobby") -> str:
    with Session(engine) as s, s.begin():
        return accounts.add_token(s, label)[1]


@contextlib.asynccontextmanager
async def http(
    settings: config.Settings, engine: Engine, links: dict[str, AmiLink] | None = None
) -> AsyncIterator[tuple[Wallboard, TestClient[Any, Any]]]:
    """The wallboard's web application on a test server, without its background tasks: the
    test feeds the live state itself and reloads users (and the roster of queues and agents)
    when it added some."""
    wb = Wallboard(settings, engine=engine, links=links or {})
    await wb.parts.auth.cache.reload()
    await wb.parts.roster.reload()
    async with TestClient(TestServer(wb.make_app())) as client:
        yield wb, client


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html) or re.search(
        r'name="csrf-token" content="([^"]*)"', html
    )
    assert found, "no CSRF token in the page"
    return found.group(1)


async def login(client: TestClient[Any, Any], name: str = "sam", password: str = PASSWORD) -> str:
    """Log in through the form; the session's CSRF token (from the board page)."""
    page = await client.get("/login")
    nonce = csrf_of(await page.text())
    resp = await client.post(
        "/login",
        data={"name": name, "password": password, "csrf": nonce},
        allow_redirects=False,
    )
    assert resp.status == 303, await resp.text()
    board = await client.get("/board")
    assert board.status == 200
    return csrf_of(await board.text())


# --- payloads as callcenter.bridge.publisher makes them ----------------------------------


def queue_payload(node: str, queue: str, **counts: Any) -> bytes:
    base: dict[str, Any] = {
        "v": 1,
        "type": "queue",
        "node": node,
        "queue": queue,
        "waiting": 0,
        "longest_wait_since": None,
        "logged_in": 0,
        "available": 0,
        "ringing": 0,
        "on_call": 0,
        "wrap_up": 0,
        "paused": 0,
        "unavailable": 0,
    }
    return json.dumps({**base, **counts}).encode()


def agent_payload(node: str, agent: str, state: str = "available", **fields: Any) -> bytes:
    base: dict[str, Any] = {
        "v": 1,
        "type": "agent",
        "node": node,
        "agent": agent,
        "interface": f"PJSIP/{agent.lower()}",
        "state": state,
        "reason": None,
        "since": 1795000000.0,
        "logged_in_at": 1795000000.0,
        "call": None,
        "call_queue": None,
        "wrapup_until": None,
        "queues": {
            "sales": {
                "penalty": 0,
                "paused": state == "paused",
                "paused_reason": "",
                "status": 1,
                "in_call": False,
                "calls_taken": 0,
            }
        },
    }
    return json.dumps({**base, **fields}).encode()


def call_payload(node: str, uniqueid: str, closed: bool = False, **fields: Any) -> bytes:
    base: dict[str, Any] = {
        "v": 1,
        "type": "call",
        "node": node,
        "uniqueid": uniqueid,
        "linkedid": uniqueid,
        "caller_number": "5551230001",
        "caller_name": "Carol Caller",
        "closed": closed,
        "queue": "sales",
        "agent": None,
    }
    return json.dumps({**base, **fields}).encode()


def node_payload(node: str, connected: bool, since: float = 1795000000.0) -> bytes:
    return json.dumps(
        {
            "v": 1,
            "type": "node",
            "node": node,
            "connected": connected,
            "detail": "Asterisk Call Manager/11.0.0" if connected else "connection refused",
            "since": since,
        }
    ).encode()


async def clear_retained(prefix: str, settle: float = 0.5) -> None:
    """Leave the broker as we found it: empty every retained topic under ``prefix``."""
    held: list[str] = []
    ident = f"{prefix}-cleanup-{secrets.token_hex(3)}"
    async with aiomqtt.Client("127.0.0.1", 1883, identifier=ident) as client:
        await client.subscribe(f"{prefix}/#", qos=1)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(settle):
                async for msg in client.messages:
                    if msg.retain and msg.payload:
                        held.append(str(msg.topic))
        for topic in held:
            await client.publish(topic, b"", qos=1, retain=True)
