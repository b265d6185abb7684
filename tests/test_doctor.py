"""``callcenter doctor`` against real PostgreSQL and Mosquitto, and a small AMI listener."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import pytest

from callcenter import config, doctor
from callcenter.config import NodeSettings, Secret
from callcenter.doctor import Status
from tests.conftest import create_database, drop_database


@pytest.fixture
async def ami_listener() -> AsyncIterator[int]:
    """Speaks just enough AMI: the banner, then Login accepted for secret 'right'."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"Asterisk Call Manager/11.0.0\r\n")
        try:
            while True:
                raw = await reader.readuntil(b"\r\n\r\n")
                fields = dict(
                    line.split(": ", 1) for line in raw.decode().split("\r\n") if ": " in line
                )
                if fields.get("Action") == "Login":
                    ok = fields.get("Secret") == "right"
                    writer.write(
                        b"Response: Success\r\nActionID: doctor-1\r\n"
                        b"Message: Authentication accepted\r\n\r\n"
                        if ok
                        else b"Response: Error\r\nActionID: doctor-1\r\n"
                        b"Message: Authentication failed\r\n\r\n"
                    )
                else:
                    writer.write(b"Response: Goodbye\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


async def test_node_login_ok_refused_and_down(ami_listener: int) -> None:
    node = NodeSettings(name="pbx1", port=ami_listener, secret=Secret("right"))
    ok = await doctor.check_node(node)
    assert ok.status is Status.OK
    assert "logged in as callcenter" in ok.detail
    refused = await doctor.check_node(dataclasses.replace(node, secret=Secret("wrong")))
    assert refused.status is Status.FAIL
    assert "login as callcenter refused" in refused.detail
    injected = await doctor.check_node(
        dataclasses.replace(node, secret=Secret("right\r\nAction: Logoff"))
    )
    assert injected.status is Status.FAIL
    assert "CR/LF" in injected.detail
    down = await doctor.check_node(dataclasses.replace(node, port=9))
    assert down.status is Status.FAIL
    assert down.fix


def test_the_ivr_and_the_dialer_are_checked_as_their_own_users() -> None:
    node = NodeSettings(name="pbx1")
    roles = [(role, login.username) for role, login in doctor.node_logins(node)]
    assert roles == [("", "callcenter"), ("ivr", "callcenter-ivr"),
                     ("dialer", "callcenter-dialer")]  # fmt: skip
    shared = dataclasses.replace(node, ivr_username="", dialer_username="callcenter")
    assert [role for role, _ in doctor.node_logins(shared)] == [""]


async def test_a_missing_role_user_says_how_to_fix_it(ami_listener: int) -> None:
    node = NodeSettings(name="pbx1", port=ami_listener, secret=Secret("wrong"))
    refused = await doctor.check_node(node.login_as(node.ivr_username), "ivr")
    assert refused.name == "ami pbx1 (ivr)"
    assert "login as callcenter-ivr refused" in refused.detail
    assert "ivr_username" in refused.fix


async def test_database_checks(settings: config.Settings) -> None:
    assert (await doctor.check_database(settings)).status is Status.OK
    url = create_database()  # exists, but was never migrated
    try:
        empty = dataclasses.replace(settings, database=config.DatabaseSettings(url=url))
        result = await doctor.check_database(empty)
        assert result.status is Status.FAIL
        assert "callcenter db upgrade" in result.fix
    finally:
        drop_database(url)
    dead = dataclasses.replace(
        settings, database=config.DatabaseSettings(url="postgresql://postgres@127.0.0.1:9/x")
    )
    assert (await doctor.check_database(dead)).status is Status.FAIL


async def test_broker_checks(settings: config.Settings) -> None:
    assert (await doctor.check_broker(settings)).status is Status.OK
    dead = dataclasses.replace(settings, mqtt=config.MqttSettings(port=9))
    assert (await doctor.check_broker(dead)).status is Status.FAIL


async def test_agi_port(settings: config.Settings) -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    listening = dataclasses.replace(settings, agi=config.AgiSettings(port=port))
    assert (await doctor.check_agi_port(listening)).status is Status.OK
    server.close()
    await server.wait_closed()
    assert (await doctor.check_agi_port(listening)).status is Status.WARN


async def test_run_checks_covers_every_part(settings: config.Settings) -> None:
    names = [c.name for c in await doctor.run_checks(settings)]
    assert names == [
        "database",
        "broker",
        "ami local",
        "ami local (ivr)",
        "ami local (dialer)",
        "fastagi",
        "asterisk config",
        "call-log spool",
    ]
