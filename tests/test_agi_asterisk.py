"""The IVR on a real Asterisk (marker ``asterisk``; skipped with the reason where there is none).

A private Asterisk is rendered from issue 3's templates (callcenter.asterisk.render) into a
temporary directory, on free ports, plus a ``[sim-caller]`` context as in the recorded traces:
Answer, Wait(SIM_PRE), SendDTMF(SIM_DIGITS), Wait(SIM_HOLD), Hangup. A call is originated as
``Local/<n>@sim-caller`` into ``from-trunk``: its ``;1`` half runs the rendered inbound dialplan
(AGI to our FastAGI server running the ``ivr`` script), its ``;2`` half keys the digits. The
call must come out of the IVR into the queue the digits chose, with IVR_PATH on the channel.

The binary comes from ASTERISK_BIN or PATH (``ASTERISK_BIN=/opt/asterisk/sbin/asterisk``).
Every wait has a time-out, and Asterisk is always stopped at the end.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from callcenter import directory
from callcenter.agi.callback import CallbackService
from callcenter.agi.flows import Services, build_scripts
from callcenter.agi.ivr import load_ivrs
from callcenter.agi.options import AgiOptions
from callcenter.agi.server import AgiServer
from callcenter.ami.link import AmiLink
from callcenter.asterisk import files, run, sample
from callcenter.asterisk.render import QueueConf, RenderOptions, render
from callcenter.config import Settings
from callcenter.db.engine import session_scope
from tests.test_asterisk_live import Ami, asterisk_binary, port_environment, stop, wait_booted

pytestmark = pytest.mark.asterisk

SIM_CALLER = """
; Test only: a caller that keys digits (as in tests/fixtures/asterisk-traces' sim-caller).
[sim-caller]
exten => _X.,1,Answer()
 same => n,Wait(${SIM_PRE})
 same => n,SendDTMF(${SIM_DIGITS},250)
 same => n,Wait(${SIM_HOLD})
 same => n,Hangup()
"""

IVRS = {
    "main": {
        "start": "welcome",
        "dids": ["100"],
        "nodes": {
            "welcome": {"prompt": "hello-world", "choices": {"1": "sales", "2": "support"}},
            "sales": {"target": "queue", "queue": "sales"},
            "support": {"target": "queue", "queue": "support", "priority": 3},
        },
    }
}


@dataclass
class Pbx:
    binary: Path
    directory: Path
    settings: Settings
    proc: subprocess.Popen[bytes]
    sounds: Path

    @property
    def secret(self) -> str:
        return self.settings.node("local").secret.reveal()

    def log_tail(self) -> str:
        path = self.directory / "stdout.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""


@pytest.fixture(scope="module")
def pbx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pbx]:
    binary = asterisk_binary()
    where = tmp_path_factory.mktemp("agi-asterisk")
    settings = sample.settings(port_environment())
    module_dir, data_dir = run.installation_dirs(binary)
    if not data_dir:
        pytest.skip(f"no sounds next to {binary}: the IVR's prompts cannot play")
    options = RenderOptions(directory=where, module_dir=module_dir, data_dir=data_dir)
    quiet = {"announce_position": False, "announce_holdtime": False, "max_wait_seconds": 20}
    queues = [QueueConf("sales", **quiet), QueueConf("support", **quiet)]  # type: ignore[arg-type]
    rendered = render(settings, sample.AGENTS[:1], queues, [], options)
    rendered["extensions.conf"] += SIM_CALLER.encode()
    run.prepare(where)
    files.write_set(rendered, where / "etc")
    with (where / "stdout.log").open("wb") as log:
        proc = subprocess.Popen(
            run.command_line(binary, where),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        pbx = Pbx(binary, where, settings, proc, Path(data_dir) / "sounds")
        try:
            try:
                asyncio.run(wait_booted(settings.node("local").port, "callcenter", pbx.secret))
            except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
                pytest.fail(f"Asterisk did not boot ({exc!r}); its output:\n{pbx.log_tail()}")
            yield pbx
        finally:
            stop(binary, where, proc)


async def _call_through_ivr(pbx: Pbx, engine: Engine, digits: str) -> dict[str, str]:
    """Originate a sim-caller keying ``digits`` into from-trunk/100; the QueueCallerJoin of
    the call and the IVR_PATH of its channel."""
    node = pbx.settings.node("local")
    options = AgiOptions(node="local")
    ami_link = AmiLink(node)
    services = Services(
        node="local",
        options=options,
        ivrs=load_ivrs(IVRS, "UTC", sounds_dir=pbx.sounds),
        engine=engine,
        ami=ami_link,
        callbacks=CallbackService(engine, ami_link, "local", options),
        screenpop=None,
    )
    server = AgiServer(build_scripts(services), host="127.0.0.1", port=pbx.settings.agi.port)
    await server.start()
    try:
        async with asyncio.timeout(40):
            ami = await Ami.login(node.port, "callcenter", pbx.secret, events="agent,call")
            try:
                reply = await ami.send(
                    Action="Originate",
                    Channel="Local/5551230001@sim-caller",
                    Context="from-trunk",
                    Exten="100",
                    Priority="1",
                    CallerID='"Carol Caller" <5551230001>',
                    Variable=f"SIM_PRE=2,SIM_DIGITS={digits},SIM_HOLD=8",
                    Async="true",
                )
                assert reply["Response"] == "Success", reply
                join = await ami.wait_event("QueueCallerJoin")
                path = await ami.send(Action="Getvar", Channel=join["Channel"], Variable="IVR_PATH")
                prio = await ami.send(
                    Action="Getvar", Channel=join["Channel"], Variable="QUEUE_PRIORITY"
                )
                await ami.send(Action="Hangup", Channel=join["Channel"])
            finally:
                await ami.close()
    finally:
        await server.close(grace=5.0)
    assert server.stats.completed == 1, (server.stats, pbx.log_tail())
    return {
        "queue": join["Queue"],
        "context": join.get("Context", ""),
        "ivr_path": path.get("Value", ""),
        "priority": prio.get("Value", ""),
    }


@pytest.fixture
def queues_db(clean_db: Engine) -> Engine:
    with session_scope(clean_db) as s:
        directory.add_queue(s, "sales", max_wait_seconds=20)
        directory.add_queue(s, "support", max_wait_seconds=20)
    return clean_db


async def test_dtmf_from_the_caller_walks_the_ivr_into_the_queue(
    pbx: Pbx, queues_db: Engine
) -> None:
    result = await _call_through_ivr(pbx, queues_db, "2")
    assert result["queue"] == "support"
    assert result["ivr_path"] == "main:welcome[2]>support"
    assert result["priority"] == "3"


async def test_another_key_another_queue(pbx: Pbx, queues_db: Engine) -> None:
    result = await _call_through_ivr(pbx, queues_db, "1")
    assert result["queue"] == "sales"
    assert result["ivr_path"] == "main:welcome[1]>sales"


async def test_agent_login_feature_code_adds_the_member(pbx: Pbx, queues_db: Engine) -> None:
    """*11 from the agent's phone (a Local caller with the agent's caller ID, keying the PIN):
    the real app_queue gets the member with its name and state interface."""
    with session_scope(queues_db) as s:
        directory.add_agent(s, name="alice", extension="1001", pin="2468")
        directory.join_queue(s, "sales", "alice", penalty=2)
    node = pbx.settings.node("local")
    options = AgiOptions(node="local")
    ami_link = AmiLink(node)
    services = Services(
        node="local", options=options, ivrs={}, engine=queues_db, ami=ami_link,
        callbacks=CallbackService(queues_db, ami_link, "local", options), screenpop=None,
    )  # fmt: skip
    server = AgiServer(build_scripts(services), host="127.0.0.1", port=pbx.settings.agi.port)
    await server.start()
    stop_link = asyncio.Event()
    link = asyncio.create_task(ami_link.run(stop_link))
    try:
        async with asyncio.timeout(40):
            await ami_link.wait_session(10)
            ami = await Ami.login(node.port, "callcenter", pbx.secret, events="agent")
            try:
                reply = await ami.send(
                    Action="Originate", Channel="Local/1001@sim-caller", Context="agents",
                    Exten="*11", Priority="1", CallerID='"Alice" <1001>',
                    Variable="SIM_PRE=2,SIM_DIGITS=2468#,SIM_HOLD=6", Async="true",
                )  # fmt: skip
                assert reply["Response"] == "Success", reply
                added = await ami.wait_event("QueueMemberAdded")
                members = await ami.send_list(Action="QueueStatus", Queue="sales")
                await ami.send(Action="QueueRemove", Queue="sales", Interface="PJSIP/1001")
            finally:
                await ami.close()
    finally:
        stop_link.set()
        await link
        await server.close(grace=5.0)
    assert added["Queue"] == "sales"
    assert added["MemberName"] == "alice"
    assert added["Interface"] == "PJSIP/1001"
    assert added["StateInterface"] == "PJSIP/1001"
    assert added["Penalty"] == "2"
    assert [m["Name"] for m in members if m.get("Event") == "QueueMember"] == ["alice"]


async def test_a_wrong_pin_is_logged_without_the_pin(
    pbx: Pbx, queues_db: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """*11 keyed with a wrong PIN (a security event): a WARNING naming the agent, their
    extension and the calling channel, never the digits keyed; nobody is logged in."""
    caplog.set_level(logging.INFO, logger="callcenter.agi.features")
    with session_scope(queues_db) as s:
        directory.add_agent(s, name="alice", extension="1001", pin="2468")
        directory.join_queue(s, "sales", "alice")
    node = pbx.settings.node("local")
    options = AgiOptions(node="local")
    ami_link = AmiLink(node)
    services = Services(
        node="local", options=options, ivrs={}, engine=queues_db, ami=ami_link,
        callbacks=CallbackService(queues_db, ami_link, "local", options), screenpop=None,
    )  # fmt: skip
    server = AgiServer(build_scripts(services), host="127.0.0.1", port=pbx.settings.agi.port)
    await server.start()
    stop_link = asyncio.Event()
    link = asyncio.create_task(ami_link.run(stop_link))
    try:
        async with asyncio.timeout(40):
            await ami_link.wait_session(10)
            ami = await Ami.login(node.port, "callcenter", pbx.secret)
            try:
                reply = await ami.send(
                    Action="Originate", Channel="Local/1001@sim-caller", Context="agents",
                    Exten="*11", Priority="1", CallerID='"Alice" <1001>',
                    Variable="SIM_PRE=2,SIM_DIGITS=1357#,SIM_HOLD=3", Async="true",
                )  # fmt: skip
                assert reply["Response"] == "Success", reply
                while not any("wrong PIN" in r.getMessage() for r in caplog.records):
                    await asyncio.sleep(0.1)
                members = await ami.send_list(Action="QueueStatus", Queue="sales")
            finally:
                await ami.close()
    finally:
        stop_link.set()
        await link
        await server.close(grace=5.0)
    (wrong,) = [r for r in caplog.records if "wrong PIN" in r.getMessage()]
    assert wrong.levelno == logging.WARNING
    message = wrong.getMessage()
    assert message.startswith("agi: wrong PIN for agent alice (extension 1001) from Local/1001@")
    assert "try 1 of 3" in message
    features = [r.getMessage() for r in caplog.records if r.name == "callcenter.agi.features"]
    assert not any("1357" in text for text in features), features
    assert [m for m in members if m.get("Event") == "QueueMember"] == []


async def test_callback_placeholder_waits_in_the_queue(pbx: Pbx, queues_db: Engine) -> None:
    """The placeholder our service originates joins the queue through issue 3's
    [queue-callback] hold extension, as ``<ChannelId>-q`` with the caller's priority."""
    import datetime as dt

    from callcenter.agi import callback_store

    cid = callback_store.create(
        queues_db, node="local", queue="support", number="5550001111", caller_uniqueid="x.1",
        caller_number="5550001111", priority=4, position=None,
        dial="Local/5550001111@sim-caller", now=dt.datetime.now(dt.UTC),
    )  # fmt: skip
    node = pbx.settings.node("local")
    options = AgiOptions(node="local")
    ami_link = AmiLink(node)
    service = CallbackService(queues_db, ami_link, "local", options)
    stop_link = asyncio.Event()
    link = asyncio.create_task(ami_link.run(stop_link))
    try:
        async with asyncio.timeout(40):
            await ami_link.wait_session(10)
            ami = await Ami.login(node.port, "callcenter", pbx.secret, events="agent")
            try:
                assert await service.place_now(cid)
                join = await ami.wait_event("QueueCallerJoin")
                entries = await ami.send_list(Action="QueueStatus", Queue="support")
                row = callback_store.get(queues_db, cid)
                assert row is not None
                assert row.placeholder is not None
                await ami.send(Action="Hangup", Channel=f"{row.placeholder}-q")
            finally:
                await ami.close()
    finally:
        stop_link.set()
        await link
    assert join["Queue"] == "support"
    assert join["Uniqueid"] == f"{row.placeholder}-q"
    assert join["CallerIDNum"] == "5550001111"
    (entry,) = [e for e in entries if e.get("Event") == "QueueEntry"]
    assert entry["Priority"] == "4"
