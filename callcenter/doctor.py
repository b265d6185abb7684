"""``callcenter doctor``: check every part the call center depends on, and say how to fix it.

Each check has a time-out, runs concurrently with the others, and never raises: it returns a
:class:`Check` whose ``fix`` tells the operator what to do.
"""

from __future__ import annotations

import asyncio
import enum
import socket
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from callcenter.ami.protocol import AmiParser, Message, encode_action
from callcenter.config import NodeSettings, Settings
from callcenter.db import engine as db


class Status(enum.StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""


async def check_database(settings: Settings) -> Check:
    name = "database"
    where = settings.database.display_url()

    def probe() -> db.SchemaStatus:
        engine = db.make_engine(settings.database, poolclass=sa.pool.NullPool)
        try:
            return db.status(engine)
        finally:
            engine.dispose()

    try:
        st = await asyncio.wait_for(asyncio.to_thread(probe), settings.database.connect_timeout + 2)
    except TimeoutError:
        return Check(name, Status.FAIL, f"{where}: no answer", "start PostgreSQL; check the URL")
    except Exception as exc:
        text = db.describe_error(settings.database, exc)
        if "does not exist" in text:
            return Check(name, Status.FAIL, text, "run `callcenter db upgrade`")
        return Check(
            name,
            Status.FAIL,
            text,
            "start PostgreSQL (`scripts/setup.sh services`) or fix [database] url",
        )
    if not st.up_to_date:
        return Check(
            name,
            Status.FAIL,
            f"{where}: schema at {st.current or 'nothing'}, code needs {st.head}",
            "run `callcenter db upgrade`",
        )
    return Check(name, Status.OK, f"{where}: schema at {st.current}")


async def check_broker(settings: Settings) -> Check:
    import aiomqtt  # imported here: paho pulls in a fair amount for a CLI start-up

    m = settings.mqtt
    where = f"mqtt://{m.host}:{m.port}"
    try:
        async with asyncio.timeout(5):
            async with aiomqtt.Client(
                m.host,
                m.port,
                username=m.username or None,
                password=m.password.reveal() or None,
                identifier="callcenter-doctor",
                timeout=4,
            ) as client:
                await client.publish(f"{m.topic_prefix}/doctor", b"ping", qos=1)
    except TimeoutError:
        return Check("broker", Status.FAIL, f"{where}: no answer", "start Mosquitto")
    except (aiomqtt.MqttError, OSError) as exc:
        return Check(
            "broker",
            Status.FAIL,
            f"{where}: {exc}",
            "start Mosquitto (`scripts/setup.sh services`) or fix [mqtt]",
        )
    return Check("broker", Status.OK, f"{where}: connected and published")


async def _reply(reader: asyncio.StreamReader, parser: AmiParser, action_id: str) -> Message:
    """The reply to ``action_id``, skipping the banner and any event before it."""
    while True:
        data = await reader.read(65536)
        if not data:
            raise asyncio.IncompleteReadError(b"", None)
        for frame in parser.feed(data):
            if isinstance(frame, Message) and frame.action_id == action_id:
                return frame


def node_logins(node: NodeSettings) -> list[tuple[str, NodeSettings]]:
    """Each AMI user our services log in to ``node`` as: the bridge's, and the IVR's and the
    dialer's where they have their own (``ivr_username``, ``dialer_username``)."""
    logins = [("", node)]
    for role, username in (("ivr", node.ivr_username), ("dialer", node.dialer_username)):
        if username and username != node.username:
            logins.append((role, node.login_as(username)))
    return logins


async def check_node(node: NodeSettings, role: str = "") -> Check:
    """Log in as ``node.username`` (``role``: whose user it is, for the message)."""
    name = f"ami {node.name}" + (f" ({role})" if role else "")
    where = f"{node.host}:{node.port}"
    try:
        async with asyncio.timeout(node.connect_timeout + 3):
            reader, writer = await asyncio.open_connection(node.host, node.port)
            try:
                banner = (await reader.readline()).decode("utf-8", "replace").strip()
                if not banner.startswith("Asterisk Call Manager"):
                    return Check(
                        name,
                        Status.FAIL,
                        f"{where}: not AMI ({banner[:40]!r})",
                        "point [nodes.*] host/port at Asterisk's manager.conf port",
                    )
                writer.write(
                    encode_action(
                        {
                            "Action": "Login",
                            "ActionID": "doctor-1",
                            "Username": node.username,
                            "Secret": node.secret.reveal(),
                            "Events": "off",
                        }
                    )
                )
                await writer.drain()
                reply = await _reply(reader, AmiParser(expect_banner=False), "doctor-1")
                if reply.response != "Success":
                    return Check(
                        name,
                        Status.FAIL,
                        f"{where}: login as {node.username} refused ({reply.get('Message', '?')})",
                        (
                            f"add the {role} user to manager.conf (`callcenter asterisk "
                            f"render` writes it) or set [nodes.{node.name}] {role}_username "
                            '= "" to share the bridge\'s'
                        )
                        if role
                        else "check username/secret against manager.conf",
                    )
                writer.write(encode_action({"Action": "Logoff", "ActionID": "doctor-2"}))
                await writer.drain()
            finally:
                writer.close()
    except TimeoutError:
        return Check(name, Status.FAIL, f"{where}: no answer", "is Asterisk running?")
    except ValueError as exc:  # a line break in username/secret: refused before sending
        return Check(name, Status.FAIL, f"{where}: {exc}", "fix [nodes.*] username/secret")
    except (OSError, asyncio.IncompleteReadError) as exc:
        return Check(
            name,
            Status.FAIL,
            f"{where}: {exc.__class__.__name__}: {exc}",
            "start Asterisk (`callcenter asterisk run`) or fix [nodes.*]",
        )
    return Check(name, Status.OK, f"{where}: {banner}, logged in as {node.username}")


async def check_agi_port(settings: Settings) -> Check:
    host, port = settings.agi.host, settings.agi.port
    try:
        async with asyncio.timeout(3):
            _, writer = await asyncio.open_connection(host, port)
            writer.close()
    except (OSError, TimeoutError):
        # Free is fine before start-up; say so rather than fail.
        free = _port_free(host, port)
        if free:
            return Check(
                "fastagi",
                Status.WARN,
                f"{host}:{port}: nothing listens yet",
                "start `callcenter agi` (or `callcenter run`)",
            )
        return Check(
            "fastagi",
            Status.FAIL,
            f"{host}:{port}: in use but not answering",
            "free the port or change [agi] port",
        )
    return Check("fastagi", Status.OK, f"{host}:{port}: listening")


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


async def check_asterisk_config(settings: Settings) -> Check:
    etc = Path(settings.asterisk.directory) / "etc"
    needed = ["asterisk.conf", "manager.conf", "queues.conf", "extensions.conf", "pjsip.conf"]
    missing = [n for n in needed if not (etc / n).is_file()]
    if missing:
        return Check(
            "asterisk config",
            Status.WARN,
            f"{etc}: not rendered ({', '.join(missing)} missing)",
            "run `callcenter asterisk render` (used by `callcenter asterisk run`)",
        )
    return Check("asterisk config", Status.OK, f"{etc}: rendered")


async def check_spool(settings: Settings) -> Check:
    """How much of the call log waits on disk for the database (the bridge's spool)."""
    from callcenter.bridge.app import spool_path
    from callcenter.bridge.spool import Spool

    path = spool_path(settings)
    if not path.exists():
        return Check("call-log spool", Status.OK, f"{path}: empty")
    spool = Spool(path, max_bytes=settings.bridge.spool_max_mb * 1024 * 1024)
    detail = f"{path}: {spool.depth} batches ({spool.size / 1e6:.1f} MB) wait for the database"
    if spool.size >= spool.max_bytes * 0.9:
        return Check(
            "call-log spool", Status.FAIL, detail, "bring PostgreSQL back: the spool is full"
        )
    return Check(
        "call-log spool",
        Status.WARN,
        detail,
        "bring PostgreSQL back; the bridge writes the spool when it returns",
    )


async def run_checks(settings: Settings) -> list[Check]:
    checks: list[Awaitable[Check]] = [
        check_database(settings),
        check_broker(settings),
        *(check_node(login, role) for n in settings.nodes for role, login in node_logins(n)),
        check_agi_port(settings),
        check_asterisk_config(settings),
        check_spool(settings),
    ]
    return list(await asyncio.gather(*checks))
