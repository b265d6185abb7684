"""The scripts end to end: the Asterisk double places the call, our server runs the flow against
the real PostgreSQL (call log, directory, callbacks, survey) and Mosquitto (screen-pop), and a
scripted AMI peer (tests/fake_ami.py) receives the actions."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import datetime as dt
import json
import secrets
from collections.abc import AsyncIterator
from typing import Any

import aiomqtt
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from callcenter import config, directory
from callcenter.agi import callback_store
from callcenter.agi.callback import CallbackService, originate_fields
from callcenter.agi.flows import Services, build_scripts
from callcenter.agi.ivr import load_ivrs
from callcenter.agi.options import AgiOptions
from callcenter.agi.screenpop import ScreenPopPublisher
from callcenter.agi.server import AgiServer
from callcenter.ami import wanted
from callcenter.ami.link import AmiLink
from callcenter.db.engine import session_scope
from callcenter.db.models import Call, Queue
from callcenter.db.models_ivr import Callback, SurveyAnswer
from tests.fake_ami import FakeAmi, FakeConnection, frame
from tests.test_agi_double import AsteriskDouble, CallRecord
from tests.test_agi_ivr import RAW

NODE = "pbx-test"
NOW = dt.datetime(2026, 11, 25, 9, 0, tzinfo=dt.UTC)  # Wednesday 10:00 in Madrid: open
CALLER = "5551230001"


def ok_responder(message: str) -> Any:
    def reply(fields: dict[str, str]) -> bytes:
        return frame(f"Response: Success\r\nActionID: {fields['ActionID']}\r\nMessage: {message}")

    return reply


AMI_REPLIES = {
    "QueueAdd": ok_responder("Added interface to queue"),
    "QueueRemove": ok_responder("Removed interface from queue"),
    "QueuePause": ok_responder("Interface paused successfully"),
    "Originate": ok_responder("Originate successfully queued"),
    "Hangup": ok_responder("Channel Hungup"),
}


def node_settings(port: int) -> config.NodeSettings:
    return config.NodeSettings(
        name=NODE, port=port, secret=config.Secret("s3cret"), connect_timeout=1.0,
        ping_interval=30.0, ping_timeout=2.0,
    )  # fmt: skip


class Rig:
    """Server + services + AMI link for one test."""

    def __init__(self, engine: Engine, ami_port: int, prefix: str, **options: Any) -> None:
        opts = AgiOptions(node=NODE, **options)
        self.ami = AmiLink(node_settings(ami_port))
        self.callbacks = CallbackService(
            engine, self.ami, NODE, opts, clock=lambda: NOW.timestamp()
        )
        self.screenpop = ScreenPopPublisher(
            config.MqttSettings(topic_prefix=prefix, client_id=prefix), ttl=600
        )
        raw = copy.deepcopy(RAW)
        raw["main"]["timezone"] = "Europe/Madrid"
        self.services = Services(
            node=NODE, options=opts, ivrs=load_ivrs(raw, "UTC"), engine=engine, ami=self.ami,
            callbacks=self.callbacks, screenpop=self.screenpop, clock=lambda: NOW,
        )  # fmt: skip
        self.server = AgiServer(build_scripts(self.services), host="127.0.0.1", port=0)
        self.stop = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Rig:
        await self.server.start()
        self.tasks = [
            asyncio.create_task(self.ami.run(self.stop)),
            asyncio.create_task(self.screenpop.run()),
        ]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop.set()
        self.screenpop.stop()
        await self.server.close(grace=1.0)
        async with asyncio.timeout(5):
            await asyncio.gather(*self.tasks, return_exceptions=True)

    async def call(self, **kwargs: Any) -> CallRecord:
        return await AsteriskDouble(self.server.port, **kwargs).call()


@contextlib.asynccontextmanager
async def rig(
    engine: Engine, *, ami: bool = True, **options: Any
) -> AsyncIterator[tuple[Rig, FakeConnection | None]]:
    prefix = f"cctest-{secrets.token_hex(4)}"
    async with FakeAmi(extra=dict(AMI_REPLIES)) as fake:
        port = fake.port if ami else 1  # nothing listens on port 1: AMI down
        async with Rig(engine, port, prefix, **options) as r:
            conn = await fake.accept(resync=False) if ami else None
            yield r, conn


def seed(engine: Engine) -> None:
    with session_scope(engine) as s:
        directory.add_queue(s, "sales", max_wait_seconds=120)
        directory.add_queue(s, "support")
        directory.add_agent(s, name="alice", extension="1001", pin="1234", full_name="Alice")
        directory.add_agent(s, name="bob", extension="1002", pin="5678")
        directory.join_queue(s, "sales", "alice", penalty=1)
        directory.join_queue(s, "support", "alice", penalty=2)
        directory.join_queue(s, "sales", "bob")
        for i, (days, agent, outcome) in enumerate(
            [(5, "alice", "answered"), (1, None, "abandoned"), (400, "bob", "answered")]
        ):
            started = NOW - dt.timedelta(days=days)
            s.add(Call(node=NODE, uniqueid=f"old.{i}", linkedid=f"old.{i}", caller_number=CALLER,
                       started_at=started, queue="sales", agent=agent, outcome=outcome,
                       answered_at=started if agent else None, talk_seconds=60.0 if agent else None,
                       ivr_path="main:welcome[1]>sales"))  # fmt: skip


@pytest.fixture
def db(clean_db: Engine) -> Engine:
    seed(clean_db)
    return clean_db


# --- ivr ---------------------------------------------------------------------------------------


async def test_ivr_routes_to_a_queue_with_history_and_screenpop(db: Engine) -> None:
    async with rig(db, preferred_agent_days=30) as (r, _):
        record = await r.call(script="ivr", args=["100"], dtmf="1")
        async with asyncio.timeout(5):
            while r.screenpop.published < 1:
                await asyncio.sleep(0.02)
        v = record.variables
        assert v["IVR_TARGET"] == "queue"
        assert v["QUEUE"] == "sales"
        assert v["QUEUE_PRIORITY"] == "5"
        assert v["QUEUE_TIMEOUT"] == "120"
        assert v["IVR_PATH"] == "main:welcome[1]>sales"
        assert v["IVR_NAME"] == "main"
        assert v["IVR_DIGITS"] == "1"
        assert v["IVR_CLOSED"] == "no"
        assert v["IVR_LANGUAGE"] == "en"
        assert float(v["IVR_SECONDS"]) >= 0
        assert v["SURVEY"] == "yes"
        assert v["CALLBACK_OFFER"] == "no"
        assert v["CALLER_HISTORY_CALLS"] == "2"  # the one 400 days ago is too old
        assert v["CALLER_HISTORY_ANSWERED"] == "1"
        assert v["CALLER_HISTORY_LAST_OUTCOME"] == "abandoned"
        assert v["CALLER_HISTORY_LAST_AGENT"] == "alice"
        assert v["PREFERRED_AGENT"] == "alice"
        assert v["PREFERRED_AGENT_INTERFACE"] == "PJSIP/1001"
        assert v["PREFERRED_AGENT_TIMEOUT"] == "15"
        assert record.commands[0] == "ANSWER"
        # A desktop that looks later still finds it: retained, keyed by the caller's uniqueid.
        topic = f"{r.screenpop.prefix}/{NODE}/screenpop/1795342827.0"
        async with aiomqtt.Client("127.0.0.1", 1883) as client:
            await client.subscribe(topic, qos=1)
            async with asyncio.timeout(5):
                message = await anext(aiter(client.messages))
            assert message.retain
            assert isinstance(message.payload, bytes)
            pop = json.loads(message.payload)
            await client.publish(topic, b"", qos=1, retain=True)  # leave the broker clean
    assert pop["v"] == 1
    assert pop["type"] == "screenpop"
    assert pop["queue"] == "sales"
    assert pop["caller_number"] == CALLER
    assert pop["preferred_agent"] == "alice"
    assert [h["outcome"] for h in pop["history"]] == ["abandoned", "answered"]


async def test_ivr_preferred_agent_can_be_switched_off(db: Engine) -> None:
    async with rig(db, preferred_agent_days=0) as (r, _):
        record = await r.call(script="ivr", args=["main"], dtmf="1")
    assert "PREFERRED_AGENT" not in record.variables
    assert record.variables["CALLER_HISTORY_LAST_AGENT"] == "alice"


async def test_ivr_other_targets(db: Engine) -> None:
    async with rig(db) as (r, _):
        ext = await r.call(script="ivr", args=["100"], dtmf="ttt")
        cb = await r.call(script="ivr", args=["100"], dtmf="2", callerid="5559990000")
    assert ext.variables["IVR_TARGET"] == "extension"
    assert ext.variables["IVR_EXTEN"] == ext.variables["IVR_EXTENSION"] == "1001"
    assert cb.variables["IVR_TARGET"] == "callback"
    assert cb.variables["QUEUE"] == "support"
    assert cb.variables["CALLER_HISTORY_CALLS"] == "0"
    assert "PREFERRED_AGENT" not in cb.variables


async def test_ivr_hang_up_mid_menu_still_records_the_path(db: Engine) -> None:
    async with rig(db) as (r, _):
        record = await r.call(script="ivr", args=["100"], dtmf="7h")
        await asyncio.sleep(0.1)
        assert r.screenpop.published == 0
    v = record.variables
    assert v["IVR_TARGET"] == "hangup"
    assert v["IVR_PATH"] == "main:welcome[7!]"
    assert v["IVR_DIGITS"] == "7"
    hung = record.commands.index("CHANNEL STATUS")
    assert all(c.startswith("SET VARIABLE") for c in record.commands[hung + 1 :])
    assert r.server.stats.hung_up == 1


async def test_ivr_without_database_still_routes(clean_db: Engine) -> None:
    dead = sa.create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none",
                            connect_args={"connect_timeout": 1})  # fmt: skip
    async with rig(clean_db) as (r, _):
        r.services.engine = dead
        record = await r.call(script="ivr", args=["100"], dtmf="1")
    assert record.variables["QUEUE"] == "sales"
    assert record.variables["CALLER_HISTORY_CALLS"] == "0"
    assert "QUEUE_TIMEOUT" not in record.variables
    dead.dispose()


async def test_ivr_unknown_is_a_failure(db: Engine) -> None:
    async with rig(db) as (r, _):
        main = dataclasses.replace(r.services.ivrs["main"], dids=())
        r.services.ivrs = {"a": main, "b": main}  # not "100" (agi_dnid), no default, two
        record = await r.call(script="ivr", args=["nope"])
    assert record.failure
    assert record.commands == ["FAILURE"]


# --- agent feature codes -------------------------------------------------------------------------


def sent(conn: FakeConnection | None, action: str) -> list[dict[str, str]]:
    assert conn is not None
    return [
        {k: v for k, v in a.items() if k != "ActionID"}
        for a in conn.actions
        if a["Action"] == action
    ]


async def test_agent_login_adds_to_each_queue(db: Engine) -> None:
    async with rig(db) as (r, conn):
        record = await r.call(script="agent-login", args=["1001"], channel="PJSIP/1001-0000000a",
                              callerid="1001", dtmf="9999#1234#")  # fmt: skip
    assert record.variables["AGENT_STATUS"] == "ok"
    assert record.commands.count("GET DATA agent-pass 6000 12") == 2
    assert 'STREAM FILE agent-incorrect ""' in record.commands
    assert sent(conn, "QueueAdd") == [
        {"Action": "QueueAdd", "Queue": "sales", "Interface": "PJSIP/1001", "Penalty": "1",
         "Paused": "false", "MemberName": "alice", "StateInterface": "PJSIP/1001"},
        {"Action": "QueueAdd", "Queue": "support", "Interface": "PJSIP/1001", "Penalty": "2",
         "Paused": "false", "MemberName": "alice", "StateInterface": "PJSIP/1001"},
    ]  # fmt: skip


async def test_unicode_agent_logs_in_and_is_surveyed_under_their_name(db: Engine) -> None:
    with session_scope(db) as s:
        directory.add_agent(s, name="Renée", extension="1005", pin="2468")
        directory.join_queue(s, "sales", "Renée")
    async with rig(db) as (r, conn):
        login = await r.call(script="agent-login", channel="PJSIP/1005-0000000b", dtmf="2468#")
        # Queue's MEMBERNAME reaches the survey as an AGI argument, in UTF-8 as Asterisk sends.
        await r.call(script="survey", args=["sales", "Renée"], dtmf="45",
                     variables={"IVR_NAME": "main"})  # fmt: skip
    assert login.variables["AGENT_STATUS"] == "ok"
    assert sent(conn, "QueueAdd") == [
        {"Action": "QueueAdd", "Queue": "sales", "Interface": "PJSIP/1005", "Penalty": "0",
         "Paused": "false", "MemberName": "Renée", "StateInterface": "PJSIP/1005"},
    ]  # fmt: skip
    assert survey_rows(db) == {"agent": (4, "Renée", "sales"), "fix": (5, "Renée", "sales")}


async def test_agent_login_bad_pin_and_unknown_phone(db: Engine) -> None:
    async with rig(db) as (r, conn):
        bad = await r.call(script="agent-login", channel="PJSIP/1002-00000001", dtmf="1#2#3#")
        # The caller ID is not trusted for a PJSIP channel: the endpoint 1999 is nobody.
        unknown = await r.call(script="agent-login", channel="PJSIP/1999-00000002",
                               callerid="1001", dtmf="1234#")  # fmt: skip
    assert bad.variables["AGENT_STATUS"] == "badpin"
    assert unknown.variables["AGENT_STATUS"] == "unknown"
    assert sent(conn, "QueueAdd") == []


async def test_agent_logout_removes_from_every_queue(db: Engine) -> None:
    async with rig(db) as (r, conn):
        assert conn is not None
        conn.queue_status = [
            "Event: QueueMember\r\nQueue: vip\r\nName: alice\r\nLocation: PJSIP/1001\r\n"
            "StateInterface: PJSIP/1001\r\nMembership: dynamic\r\nPenalty: 0\r\nCallsTaken: 0\r\n"
            "LastCall: 0\r\nLastPause: 0\r\nLoginTime: 0\r\nInCall: 0\r\nStatus: 1\r\nPaused: 0\r\n"
            "PausedReason: \r\nWrapuptime: 0"
        ]
        record = await r.call(script="agent-logout", channel="PJSIP/1001-00000003")
    assert record.variables["AGENT_STATUS"] == "ok"
    assert sent(conn, "QueueStatus") == [{"Action": "QueueStatus", "Member": "PJSIP/1001"}]
    assert sent(conn, "QueueRemove") == [
        {"Action": "QueueRemove", "Queue": q, "Interface": "PJSIP/1001"}
        for q in ("sales", "support", "vip")
    ]


async def test_agent_pause_and_unpause(db: Engine) -> None:
    async with rig(db) as (r, conn):
        await r.call(script="agent-pause", args=["1001", "lunch"], channel="PJSIP/1001-00000004")
        await r.call(script="agent-pause", args=["7"], channel="PJSIP/1001-00000005")
        await r.call(script="agent-pause", args=[], channel="PJSIP/1001-00000006")
        record = await r.call(script="agent-unpause", args=["1001"], channel="PJSIP/1001-00000007")
    assert record.variables["AGENT_STATUS"] == "ok"
    base = {"Action": "QueuePause", "Interface": "PJSIP/1001"}
    assert sent(conn, "QueuePause") == [
        {**base, "Paused": "true", "Reason": "lunch"},
        {**base, "Paused": "true", "Reason": "7"},
        {**base, "Paused": "true"},
        {**base, "Paused": "false"},
    ]


async def test_feature_code_with_ami_down(db: Engine) -> None:
    async with rig(db, ami=False) as (r, _):
        r.services.ami  # noqa: B018 - the link keeps retrying port 1
        record = await r.call(script="agent-pause", channel="PJSIP/1001-00000008")
    assert record.variables["AGENT_STATUS"] == "noami"
    assert 'STREAM FILE beeperr ""' in record.commands


# --- callback -------------------------------------------------------------------------------------


def callbacks(engine: Engine) -> list[Callback]:
    with session_scope(engine) as s:
        return list(s.scalars(sa.select(Callback).order_by(Callback.id)))


async def test_callback_request_stores_and_places_the_placeholder(db: Engine) -> None:
    async with rig(db) as (r, conn):
        record = await r.call(
            script="callback", args=["sales", "3"], dtmf="1",
            variables={"IVR_NAME": "main", "OUTBOUND_TRUNK": "trunk1", "QUEUE_PRIORITY": "5"},
        )  # fmt: skip
    (row,) = callbacks(db)
    assert (row.queue, row.number, row.priority, row.position) == ("sales", CALLER, 5, 3)
    assert row.dial == f"PJSIP/{CALLER}@trunk1"
    assert row.status == "pending"
    assert row.caller_uniqueid == "1795342827.0"
    assert row.node == NODE
    v = record.variables
    assert v["CALLBACK_ID"] == str(row.id)
    assert v["CALLBACK_NUMBER"] == CALLER
    assert v["CALLBACK_PLACED"] == "yes"
    # "1" pressed during the offer accepts the caller ID at once.
    assert record.commands[:3] == [
        "GET VARIABLE IVR_NAME",
        "STREAM FILE vm-num-i-have 12",
        "GET VARIABLE CALLBACK_DIAL",
    ]
    (originate,) = sent(conn, "Originate")
    cid = f"cb-{row.id}-{int(NOW.timestamp())}"
    assert originate == {
        "Action": "Originate", "Channel": "Local/hold@queue-callback",
        "Context": "queue-callback", "Exten": "connect", "Priority": "1",
        "Timeout": str((120 + 60) * 1000), "CallerID": f'"Callback" <{CALLER}>',
        "ChannelId": cid, "OtherChannelId": f"{cid}-q",
        "Variable": f"CALLBACK_ID={row.id}", "Async": "true",
    }  # fmt: skip
    assert row.placeholder == cid
    # The fake keeps the first of the repeated Variable headers; all of them:
    row_view = callback_store.get(db, row.id)
    assert row_view is not None
    assert originate_fields(row_view, 120, NOW)["Variable"] == [
        f"CALLBACK_ID={row.id}",
        f"CALLBACK_NUMBER={CALLER}",
        f"CALLBACK_DIAL=PJSIP/{CALLER}@trunk1",
        "QUEUE=sales",
        "CALLBACK_QUEUE=sales",
        "QUEUE_PRIORITY=5",
        "CALLBACK_PRIO=5",
        "CALLBACK_POSITION=3",
    ]


async def test_callback_other_number_and_no_trunk(db: Engine) -> None:
    async with rig(db) as (r, _):
        other = await r.call(
            script="callback",
            args=["support"],
            dtmf="25550001234#1",
            variables={"IVR_NAME": "main", "CALLBACK_DIAL": "Local/x@y"},
        )
        none = await r.call(script="callback", args=["sales"], dtmf="1", uniqueid="9.9",
                            variables={"IVR_NAME": "main"})  # fmt: skip
    assert other.variables["CALLBACK_NUMBER"] == "5550001234"
    assert none.variables["CALLBACK_NUMBER"] == ""  # no OUTBOUND_TRUNK: declined
    (row,) = callbacks(db)
    assert row.number == "5550001234"
    assert row.dial == "Local/x@y"
    assert row.position is None


async def test_callback_restart_safety_and_life_cycle(db: Engine) -> None:
    """A pending callback in the database (the service was down) is placed by a fresh
    service; a live placeholder is left alone; AgentConnect, DialEnd and Hangup move it on."""
    cid = _pending_callback(db, NOW - dt.timedelta(minutes=5))
    async with callback_service(db, callback_attempts=2, callback_retry_seconds=0) as (
        service,
        conn,
    ):
        await _originated(service, 1)
        placeholder = f"cb-{cid}-{int(NOW.timestamp())}"
        (originate,) = sent(conn, "Originate")
        assert originate["ChannelId"] == placeholder
        # Alive (listed by CoreShowChannels): nothing more is originated.
        conn.channels = [
            f"Event: CoreShowChannel\r\nChannel: Local/hold@queue-callback-00000000;2\r\n"
            f"Uniqueid: {placeholder}-q"
        ]
        assert await service.scan() == 0
        # An agent takes it; the customer does not answer; then the placeholder hangs up.
        await _agent_dials(conn, db, cid, placeholder, "alice", "NOANSWER", "pending")
        row = callback_store.get(db, cid)
        assert row is not None
        assert row.attempts == 1
        assert row.agent == "alice"
        conn.channels = []
        service.wake()
        await _originated(service, 2)
        await _agent_dials(conn, db, cid, placeholder, "bob", "ANSWER", "connected")
    row = callback_store.get(db, cid)
    assert row is not None
    assert row.agent == "bob"
    assert row.attempts == 2


async def _agent_dials(
    conn: FakeConnection, db: Engine, cid: int, placeholder: str, agent: str, dial: str, then: str
) -> None:
    """``agent`` takes the callback's placeholder (it is dialing), and the customer's dial
    ends with ``dial``: the callback is ``then``."""
    await conn.send(event("AgentConnect", Uniqueid=f"{placeholder}-q", MemberName=agent))
    await _wait_status(db, cid, "dialing")
    await conn.send(event("DialEnd", Uniqueid=placeholder, DialStatus=dial))
    await _wait_status(db, cid, then)


def _pending_callback(db: Engine, at: dt.datetime) -> int:
    """A callback asked for at ``at`` and not placed yet (as if the service had been down)."""
    return callback_store.create(
        db, node=NODE, queue="sales", number="5557654321", caller_uniqueid="77.1",
        caller_number="5557654321", priority=3, position=None, dial="PJSIP/5557654321@t",
        now=at,
    )  # fmt: skip


@contextlib.asynccontextmanager
async def callback_service(
    db: Engine, **options: Any
) -> AsyncIterator[tuple[CallbackService, FakeConnection]]:
    """A running CallbackService on the rig's fake AMI connection, stopped on the way out."""
    async with rig(db, **options) as (r, conn):
        assert conn is not None
        service = CallbackService(
            db, r.ami, NODE, r.services.options, clock=lambda: NOW.timestamp()
        )
        stop = asyncio.Event()
        task = asyncio.create_task(service.run(stop))
        try:
            yield service, conn
        finally:
            stop.set()
            await task


async def _originated(service: CallbackService, count: int) -> None:
    async with asyncio.timeout(5):
        while service.originated < count:
            await asyncio.sleep(0.02)


def event(name: str, **fields: str) -> bytes:
    """An AMI event as Asterisk frames it (Privilege second), with the fields that matter."""
    privilege = "agent,all" if name.startswith("Agent") else "call,all"
    lines = [f"Event: {name}", f"Privilege: {privilege}", *(f"{k}: {v}" for k, v in fields.items())]
    return frame("\r\n".join(lines))


async def _wait_status(engine: Engine, cid: int, status: str) -> None:
    async with asyncio.timeout(5):
        while (row := callback_store.get(engine, cid)) is None or row.status != status:
            await asyncio.sleep(0.02)


async def test_callback_finds_its_originate_response_by_its_own_action_id(db: Engine) -> None:
    """The placeholder's Originate carries an ActionID of its own that begins with
    ``cb-`` (the IVR's AMI user is sent only those OriginateResponses: wanted.IVR); a Failure
    for it puts the callback back to be placed again, and the other events of the call
    it follows pass the IVR user's filter too."""
    cid = _pending_callback(db, NOW)
    async with callback_service(db, callback_retry_seconds=0) as (service, conn):
        await _originated(service, 1)
        (action,) = [a for a in conn.actions if a["Action"] == "Originate"]
        action_id = action["ActionID"]
        assert action_id.startswith(wanted.CALLBACK_PREFIX)
        placeholder = action["ChannelId"]
        for name, fields in (
            ("AgentConnect", {"Uniqueid": f"{placeholder}-q", "Linkedid": placeholder}),
            ("DialEnd", {"Uniqueid": placeholder, "DestUniqueid": "1796.5"}),
            ("Hangup", {"Uniqueid": f"{placeholder}-q"}),
        ):
            assert wanted.IVR.passes({"Event": name, **fields}), name
        failure = {"ActionID": action_id, "Response": "Failure", "Reason": "0"}
        assert wanted.IVR.passes({"Event": "OriginateResponse", **failure})
        await conn.send(event("OriginateResponse", **failure))
        await _originated(service, 2)
    second = [a["ActionID"] for a in conn.actions if a["Action"] == "Originate"][1]
    assert second.startswith(wanted.CALLBACK_PREFIX)
    assert second != action_id
    row = callback_store.get(db, cid)
    assert row is not None
    assert (row.status, row.placeholder) == ("pending", placeholder)


async def test_callback_expiry_and_cancelled_placeholders(db: Engine) -> None:
    old = callback_store.create(
        db, node=NODE, queue="sales", number="5551112222", caller_uniqueid="1.1",
        caller_number="", priority=0, position=None, dial="PJSIP/5551112222@t",
        now=NOW - dt.timedelta(hours=13),
    )  # fmt: skip
    gone = callback_store.create(
        db, node=NODE, queue="sales", number="5553334444", caller_uniqueid="2.2",
        caller_number="", priority=0, position=None, dial="PJSIP/5553334444@t", now=NOW,
    )  # fmt: skip
    callback_store.update(db, gone, status="cancelled", placeholder="cb-x-1")
    async with rig(db) as (r, conn):
        await r.callbacks.scan()
    row = callback_store.get(db, old)
    assert row is not None
    assert row.status == "failed"
    assert [a["Channel"] for a in sent(conn, "Hangup")] == ["cb-x-1-q", "cb-x-1"]
    row = callback_store.get(db, gone)
    assert row is not None
    assert row.placeholder is None
    assert row.status == "cancelled"
    assert sent(conn, "Originate") == []


# --- survey ---------------------------------------------------------------------------------------


def survey_rows(engine: Engine) -> dict[str, tuple[int, str | None, str | None]]:
    with session_scope(engine) as s:
        rows = s.scalars(sa.select(SurveyAnswer)).all()
        return {a.question: (a.score, a.agent, a.queue) for a in rows}


def call_score(engine: Engine, uniqueid: str) -> int | None:
    with engine.connect() as conn:
        return conn.scalar(sa.select(Call.survey_score).where(Call.uniqueid == uniqueid))


async def test_survey_stores_scores_with_the_agent(db: Engine) -> None:
    async with rig(db) as (r, _):
        record = await r.call(script="survey", args=["sales", "alice"], dtmf="495",
                              variables={"IVR_NAME": "main"})  # fmt: skip
    assert survey_rows(db) == {"agent": (4, "alice", "sales"), "fix": (5, "alice", "sales")}
    assert call_score(db, "1795342827.0") == 5  # (4 + 5) / 2 rounded half up
    assert record.variables["SURVEY_SCORES"] == "agent=4,fix=5"
    assert 'STREAM FILE invalid ""' in record.commands


async def test_survey_keeps_answers_of_a_caller_who_hangs_up(db: Engine) -> None:
    with session_scope(db) as s:  # the bridge wrote the call already
        s.add(Call(node=NODE, uniqueid="5.5", linkedid="5.5", caller_number=CALLER,
                   started_at=NOW, queue="sales", agent="bob", outcome="answered"))  # fmt: skip
    async with rig(db) as (r, _):
        await r.call(script="survey", args=["", "bob"], dtmf="2h", uniqueid="5.5",
                     variables={"IVR_NAME": "main", "QUEUE": "sales"})  # fmt: skip
    assert survey_rows(db) == {"agent": (2, "bob", "sales")}
    assert call_score(db, "5.5") == 2
    with db.connect() as conn:  # the bridge's columns are untouched
        assert conn.scalar(sa.select(Call.outcome).where(Call.uniqueid == "5.5")) == "answered"


# --- the composition root -------------------------------------------------------------------------


async def test_agi_service_runs_and_stops_cleanly(settings: config.Settings, db: Engine) -> None:
    """`callcenter agi` (and the part of `callcenter run`): AMI link, callbacks, screen-pops
    and the server come up from settings; a call is served; SIGTERM's stop ends it all."""
    from callcenter.agi.app import AgiService, build_services

    prefix = f"cctest-{secrets.token_hex(4)}"
    async with FakeAmi(extra=dict(AMI_REPLIES)) as fake:
        s = dataclasses.replace(
            settings,
            nodes=(node_settings(fake.port),),
            agi=config.AgiSettings(host="127.0.0.1", port=0, max_sessions=10),
            mqtt=config.MqttSettings(topic_prefix=prefix, client_id=prefix),
        )
        service = AgiService(s, services=build_services(s, ivrs=load_ivrs(RAW, "UTC")))
        stop = asyncio.Event()
        task = asyncio.create_task(service.run(stop))
        conn = await fake.accept(resync=False)  # the AMI link logged in
        async with asyncio.timeout(5):
            while service.server.port == 0:
                await asyncio.sleep(0.01)
        record = await AsteriskDouble(service.server.port, script="demo", dtmf="1").call()
        assert record.variables["QUEUE"] == "sales"
        assert conn.actions[0]["Action"] == "Login"
        stop.set()
        async with asyncio.timeout(15):
            await task
    assert service.server.stats.completed == 1


def test_max_waits_are_read_again_once_stale(clean_db: Engine) -> None:
    """The IVR reads a queue's max wait once per ``ttl``, not once per caller."""
    from callcenter.agi.history import MaxWaits

    with session_scope(clean_db) as s:
        directory.add_queue(s, "sales", max_wait_seconds=120)
    now = [100.0]
    waits = MaxWaits(clean_db, ttl=5.0, clock=lambda: now[0])
    assert waits("sales") == 120
    assert waits("nowhere") is None
    with session_scope(clean_db) as s:
        s.execute(sa.update(Queue).where(Queue.name == "sales").values(max_wait_seconds=60))
    now[0] += 4.9
    assert waits("sales") == 120  # still fresh
    now[0] += 0.2
    assert waits("sales") == 60
