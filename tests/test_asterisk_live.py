"""The rendered configuration on a real Asterisk (skipped, with the reason, where there is none).

One private Asterisk per module, on free ports in a temporary directory: its modules load, the
bridge's AMI user logs in and is refused what it has no right to, every queue and agent phone is
there, a call into the trunk context reaches our FastAGI address and times out of its queue with
EXITWITHTIMEOUT, and a re-render reloads into the running instance. A second test drives
`callcenter asterisk run` itself from the database, reloads it and stops it with SIGTERM.

The binary comes from ASTERISK_BIN or PATH (e.g. ``ASTERISK_BIN=/opt/asterisk/sbin/asterisk``).
Every wait has a time-out, and Asterisk is always stopped at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from callcenter.ami import wanted
from callcenter.asterisk import files, reload, run, sample
from callcenter.asterisk.render import (
    LOADED_MODULES,
    REQUIRED_MODULES,
    AgentConf,
    QueueConf,
    RenderOptions,
    Trunk,
    render,
)
from callcenter.config import Settings
from tests.conftest import Cli

pytestmark = pytest.mark.asterisk

ADMIN_SECRET = "test-admin-secret"
#: The sample's agents and one whose name (and so caller ID and mailbox name) is not ASCII.
AGENTS = (*sample.AGENTS, AgentConf("Renée", "1005", "renee-sip-secret-0123456789abcd", "Renée"))
BOOT_TIMEOUT = 60.0


def asterisk_binary() -> Path:
    try:
        return run.find_binary(sample.settings())
    except run.AsteriskNotFound as exc:
        pytest.skip(f"needs a real Asterisk (set ASTERISK_BIN or put it on PATH): {exc}")


# --- ports ----------------------------------------------------------------------------------

_taken: set[int] = set()


def free_port(udp_too: bool = False) -> int:
    """A TCP port nobody listens on (and, with ``udp_too``, free for UDP as well)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            if port in _taken:
                continue
            if udp_too:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                    try:
                        udp.bind(("127.0.0.1", port))
                    except OSError:
                        continue
        _taken.add(port)
        return port
    raise RuntimeError("no free port")


def port_environment() -> dict[str, str]:
    # RTP ports are even (RTCP takes the odd one above): Asterisk warns about an odd start.
    rtp = 40000 + 2 * ((os.getpid() * 97 + len(_taken) * 211) % 10000)
    return {
        "CALLCENTER_NODES__LOCAL__PORT": str(free_port()),
        "CALLCENTER_ASTERISK__SIP_PORT": str(free_port(udp_too=True)),
        "CALLCENTER_AGI__PORT": str(free_port()),
        "CALLCENTER_ASTERISK__RTP_START": str(rtp),
        "CALLCENTER_ASTERISK__RTP_END": str(rtp + 100),
    }


# --- a minimal AMI client -------------------------------------------------------------------


class Ami:
    """Just enough AMI for the checks; every read is under the caller's time-out."""

    _ids = itertools.count(1)

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.events: list[dict[str, str]] = []

    @classmethod
    async def login(cls, port: int, username: str, secret: str, events: str = "off") -> Ami:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        banner = await reader.readline()
        assert banner.startswith(b"Asterisk Call Manager/"), banner
        ami = cls(reader, writer)
        reply = await ami.send(Action="Login", Username=username, Secret=secret, Events=events)
        assert reply.get("Response") == "Success", reply
        return ami

    async def read(self) -> dict[str, str]:
        raw = await self.reader.readuntil(b"\r\n\r\n")
        fields: dict[str, str] = {}
        for line in raw.decode("utf-8", "replace").split("\r\n"):
            key, sep, value = line.partition(": ")
            if sep:
                fields.setdefault(key, value)
        return fields

    async def _write(self, fields: dict[str, str]) -> str:
        action_id = f"t{next(self._ids)}"
        lines = [f"{k}: {v}" for k, v in {**fields, "ActionID": action_id}.items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await self.writer.drain()
        return action_id

    async def send(self, **fields: str) -> dict[str, str]:
        action_id = await self._write(fields)
        while True:
            message = await self.read()
            if message.get("ActionID") == action_id and "Response" in message:
                return message
            if "Event" in message:
                self.events.append(message)

    async def send_list(self, **fields: str) -> list[dict[str, str]]:
        """A list action: the events between its Response and the ``*Complete`` event."""
        action_id = await self._write(fields)
        items: list[dict[str, str]] = []
        while True:
            message = await self.read()
            if message.get("ActionID") != action_id:
                if "Event" in message:
                    self.events.append(message)
                continue
            if message.get("Response") == "Error":
                raise AssertionError(f"{fields['Action']}: {message}")
            if message.get("EventList") == "Complete":
                return items
            if "Event" in message:
                items.append(message)

    async def wait_event(self, name: str) -> dict[str, str]:
        for event in self.events:
            if event.get("Event") == name:
                return event
        while True:
            message = await self.read()
            if message.get("Event") == name:
                return message

    async def close(self) -> None:
        try:
            await self._write({"Action": "Logoff"})
        finally:
            self.writer.close()


async def wait_booted(port: int, username: str, secret: str) -> None:
    """Until AMI answers and Asterisk says FullyBooted (it accepts logins before that)."""
    deadline = time.monotonic() + BOOT_TIMEOUT
    while True:
        try:
            async with asyncio.timeout(10):
                ami = await Ami.login(port, username, secret, events="system")
                try:
                    await ami.wait_event("FullyBooted")
                finally:
                    await ami.close()
                return
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.3)


# --- the instance ---------------------------------------------------------------------------


@dataclass
class Instance:
    binary: Path
    directory: Path
    settings: Settings
    files: dict[str, bytes]
    queues: list[QueueConf]
    proc: subprocess.Popen[bytes]
    options: RenderOptions
    trunks: list[Trunk] = field(default_factory=list)

    @property
    def ami_port(self) -> int:
        return self.settings.node("local").port

    @property
    def secret(self) -> str:
        return self.settings.node("local").secret.reveal()

    async def bridge(self, events: str = "off") -> Ami:
        return await Ami.login(self.ami_port, "callcenter", self.secret, events)

    async def admin(self) -> Ami:
        return await Ami.login(self.ami_port, "test-admin", ADMIN_SECRET)

    def console(self, command: str) -> str:
        return reload.console(self.binary, self.directory, command)

    def log_tail_full(self) -> str:
        return (self.directory / "stdout.log").read_text(errors="replace")

    def log_tail(self) -> str:
        path = self.directory / "stdout.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""


def stop(binary: Path, directory: Path, proc: subprocess.Popen[bytes]) -> None:
    """Stop the instance for sure: `core stop now`, then SIGTERM, then SIGKILL."""
    if proc.poll() is None:
        with contextlib.suppress(reload.ReloadError):
            reload.console(binary, directory, "core stop now")
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Instance]:
    binary = asterisk_binary()
    directory = tmp_path_factory.mktemp("asterisk")
    settings = sample.settings(port_environment())
    module_dir, data_dir = run.installation_dirs(binary)
    options = RenderOptions(directory=directory, module_dir=module_dir, data_dir=data_dir)
    # The default music class: a queue's own class needs <data dir>/moh/<class>/ to exist.
    queues = [dataclasses.replace(q, music_class="default") for q in sample.QUEUES]
    queues.append(QueueConf("quick", max_wait_seconds=2, announce_position=False))
    trunks = [Trunk("provider", "127.0.0.1", port=free_port(udp_too=True))]
    rendered = render(settings, AGENTS, queues, trunks, options)
    run.prepare(directory)
    files.write_set(rendered, directory / "etc")
    # A test-only administrator for ModuleCheck and PJSIPShowEndpoints (class "system"),
    # which the rendered bridge user rightly lacks.
    with (directory / "etc" / "manager.conf").open("a") as fh:
        fh.write(
            f"\n[test-admin]\nsecret = {ADMIN_SECRET}\ndeny = 0.0.0.0/0.0.0.0\n"
            "permit = 127.0.0.1/255.255.255.255\nread = system\nwrite = system\n"
        )
    log = (directory / "stdout.log").open("wb")
    proc = subprocess.Popen(
        run.command_line(binary, directory),
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    inst = Instance(binary, directory, settings, rendered, queues, proc, options, trunks)
    try:
        try:
            asyncio.run(wait_booted(inst.ami_port, "callcenter", inst.secret))
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            pytest.fail(f"Asterisk did not boot ({exc!r}); its output:\n{inst.log_tail()}")
        yield inst
    finally:
        stop(binary, directory, proc)
        log.close()


# --- the checks -----------------------------------------------------------------------------


def test_boots_without_a_warning(instance: Instance) -> None:
    """Every file Asterisk looks for at start is rendered and every option is understood."""
    boot = instance.log_tail_full().split("Asterisk Ready.")[0]
    noisy = [line for line in boot.splitlines() if "WARNING[" in line or "ERROR[" in line]
    assert not noisy, "\n".join(noisy)


async def test_modules_are_loaded(instance: Instance) -> None:
    wanted = [*REQUIRED_MODULES, *LOADED_MODULES]
    module_dir = Path(instance.options.module_dir) if instance.options.module_dir else None
    if module_dir is not None:
        missing = [m for m in wanted if not (module_dir / m).is_file()]
        assert not missing, f"not in this build ({module_dir}): {missing}"
    async with asyncio.timeout(20):
        admin = await instance.admin()
        try:
            for module in ("app_queue.so", "res_agi.so", "chan_pjsip.so"):
                reply = await admin.send(Action="ModuleCheck", Module=module)
                assert reply["Response"] == "Success", (module, reply)
            not_loaded = []
            for module in wanted:
                reply = await admin.send(Action="ModuleCheck", Module=module)
                if reply["Response"] != "Success":
                    not_loaded.append(module)
            assert not not_loaded, not_loaded
        finally:
            await admin.close()


async def test_bridge_user_logs_in_and_is_refused_outside_its_rights(instance: Instance) -> None:
    async with asyncio.timeout(20):
        ami = await instance.bridge()
        try:
            assert (await ami.send(Action="Ping"))["Response"] == "Success"
            refused = [
                {"Action": "Command", "Command": "core show version"},
                {"Action": "ModuleCheck", "Module": "app_queue.so"},
                {"Action": "Reload", "Module": "app_queue.so"},
                {"Action": "GetConfig", "Filename": "manager.conf"},
                {"Action": "UpdateConfig", "SrcFilename": "x.conf", "DstFilename": "x.conf"},
                {"Action": "PJSIPShowEndpoints"},
            ]
            for action in refused:
                reply = await ami.send(**action)
                assert reply["Response"] == "Error", (action, reply)
                assert reply.get("Message") == "Permission denied", (action, reply)
            # Originate may not start System(): that needs the "system" class.
            reply = await ami.send(
                Action="Originate",
                Channel="Local/s@dialer-abandon",
                Application="System",
                Data="true",
                Async="true",
            )
            assert reply["Response"] == "Error", reply
            # What the bridge needs works.
            assert (await ami.send_list(Action="CoreShowChannels")) == []
            reply = await ami.send(Action="Getvar", Variable="QTIMEOUT_sales")
            assert reply.get("Value") == "300", reply
            reply = await ami.send(Action="Getvar", Variable="VM_INFO(1001@callcenter,exists)")
            assert reply.get("Value") == "1", reply
        finally:
            await ami.close()


async def test_every_queue_shows_in_queue_status(instance: Instance) -> None:
    async with asyncio.timeout(20):
        ami = await instance.bridge()
        try:
            items = await ami.send_list(Action="QueueStatus")
        finally:
            await ami.close()
    params = {e["Queue"]: e for e in items if e.get("Event") == "QueueParams"}
    assert set(params) == {q.name for q in instance.queues}
    assert params["support-east"]["Strategy"] == "leastrecent"
    assert params["support-east"]["Max"] == "25"
    assert params["support-east"]["ServiceLevel"] == "30"


async def test_every_agent_endpoint_is_there(instance: Instance) -> None:
    enabled = {a.extension for a in AGENTS if a.enabled}
    disabled = {a.extension for a in AGENTS if not a.enabled}
    shown = instance.console("pjsip show endpoints")
    for ext in enabled:
        assert f"Endpoint:  {ext}/" in shown, shown
    for ext in disabled:
        assert f"Endpoint:  {ext}/" not in shown
    async with asyncio.timeout(20):
        admin = await instance.admin()
        try:
            listed = await admin.send_list(Action="PJSIPShowEndpoints")
        finally:
            await admin.close()
    names = {e["ObjectName"] for e in listed if e.get("Event") == "EndpointList"}
    assert names == enabled | {t.name for t in instance.trunks}


def test_a_unicode_agent_reads_back_from_pjsip_and_voicemail(instance: Instance) -> None:
    """The endpoint is the extension; the name is its caller ID and its mailbox's name."""
    endpoint = instance.console("pjsip show endpoint 1005")
    assert '"Renée" <1005>' in endpoint, endpoint
    mailboxes = instance.console("voicemail show users for callcenter")
    assert "1005" in mailboxes
    assert "Renée" in mailboxes, mailboxes


async def test_a_call_into_the_trunk_context_reaches_fastagi_and_times_out(
    instance: Instance,
) -> None:
    sessions: asyncio.Queue[dict[str, str]] = asyncio.Queue()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        env: dict[str, str] = {}
        try:
            async with asyncio.timeout(10):
                while (line := await reader.readline()) not in (b"\n", b""):
                    key, _, value = line.decode().rstrip("\n").partition(": ")
                    env[key] = value
                # As the IVR does: say where the call goes (IVR_TARGET first: [inbound] sends
                # a call without it to the fallback queue), choose a queue, then return.
                writer.write(b"SET VARIABLE IVR_TARGET queue\n")
                await writer.drain()
                env["target_reply"] = (await reader.readline()).decode().strip()
                writer.write(b"SET VARIABLE QUEUE quick\n")
                await writer.drain()
                env["reply"] = (await reader.readline()).decode().strip()
        finally:
            writer.close()
            await sessions.put(env)

    server = await asyncio.start_server(serve, "127.0.0.1", instance.settings.agi.port)
    try:
        async with asyncio.timeout(30):
            ami = await instance.bridge()
            try:
                reply = await ami.send(
                    Action="Originate",
                    Channel="Local/100@from-trunk",
                    Application="Wait",
                    Data="10",
                    Async="true",
                )
                assert reply["Response"] == "Success", reply
            finally:
                await ami.close()
            env = await sessions.get()
    finally:
        server.close()
        await server.wait_closed()
    port = instance.settings.agi.port
    assert env["agi_network"] == "yes"
    assert env["agi_network_script"] == "ivr"
    assert env["agi_request"] == f"agi://127.0.0.1:{port}/ivr"
    assert env["agi_arg_1"] == "100"
    assert env["agi_context"] == "inbound"
    assert env["reply"] == "200 result=1"
    # Queue() got the queue's max wait (2 s) as its timeout: queue_log says EXITWITHTIMEOUT.
    queue_log = instance.directory / "log" / "queue_log"
    deadline = time.monotonic() + 20
    while "|quick|NONE|EXITWITHTIMEOUT|" not in _read(queue_log):
        assert time.monotonic() < deadline, _read(queue_log)
        await asyncio.sleep(0.2)
    assert "|quick|NONE|ENTERQUEUE|" in _read(queue_log)


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def _key(event: dict[str, str]) -> tuple[str, ...]:
    return tuple(event.get(k, "") for k in ("Event", "Timestamp", "Uniqueid", "DestUniqueid",
                                           "ActionID"))  # fmt: skip


async def test_the_dialer_and_the_ivr_are_sent_their_own_calls_only(instance: Instance) -> None:
    """The prefix filters of manager.conf on Asterisk itself (callcenter/ami/wanted.py
    ``DIALER``, ``IVR``): three calls are originated into a queue that times out, one with the
    dialer's ids (``dialer-``), one with a callback placeholder's (``cb-``), one with others.
    Of the events the bridge's user is sent whole, the dialer's and the IVR's users are sent
    exactly those ``Reader.passes`` says: the first call's and the second's only."""
    node = instance.settings.node("local")
    calls = (  # ChannelId, OtherChannelId, ActionID
        ("dialer-live-1", "dialer-live-1-2", "dialer-live-1"),
        ("cb-7-1796000000", "cb-7-1796000000-q", f"{wanted.CALLBACK_PREFIX}action/live/1"),
        ("other-live-1", "other-live-1-2", "action/live/1"),
    )
    async with asyncio.timeout(40):
        dialer = await Ami.login(instance.ami_port, node.dialer_username, instance.secret,
                                 wanted.DIALER_EVENT_CLASSES)  # fmt: skip
        ivr = await Ami.login(instance.ami_port, node.ivr_username, instance.secret,
                              wanted.IVR_EVENT_CLASSES)  # fmt: skip
        bridge = await instance.bridge("on")
        try:
            for channel_id, other_id, action_id in calls:
                fields = {
                    "Action": "Originate", "ActionID": action_id, "ChannelId": channel_id,
                    "OtherChannelId": other_id, "Channel": "Local/quick@queue-transfer/n",
                    "Application": "Wait", "Data": "1", "Timeout": "15000", "Async": "true",
                }  # fmt: skip
                bridge.writer.write(
                    ("".join(f"{k}: {v}\r\n" for k, v in fields.items()) + "\r\n").encode()
                )
            await bridge.writer.drain()
            seen: list[dict[str, str]] = []
            gone = {u for c in calls for u in c[:2]}
            while gone:  # Queue() times out after 2 s, the prompt answers, Wait(1) ends it
                message = await bridge.read()
                if message.get("Response") == "Error":
                    raise AssertionError(message)
                if "Event" in message:
                    seen.append(message)
                    if message["Event"] == "Hangup":
                        gone.discard(message.get("Uniqueid", ""))
            await asyncio.sleep(0.5)  # the same events, queued for the other sessions too
            for ami in (dialer, ivr):
                await ami.send(Action="Ping")
        finally:
            for ami in (dialer, ivr, bridge):
                await ami.close()
    for reader, got, whole in (
        (wanted.DIALER, dialer.events, {"Newchannel", "Hangup", "DialEnd", "OriginateResponse",
                                        "QueueCallerJoin"}),
        (wanted.IVR, ivr.events, {"Hangup", "DialEnd", "OriginateResponse"}),
    ):  # fmt: skip
        assert got, reader
        assert all(reader.passes(e) for e in got), got
        keys = {_key(e) for e in got}
        for event in seen:
            if event["Event"] in whole:
                assert (_key(event) in keys) == reader.passes(event), event
    names = {e["Event"] for e in dialer.events}
    assert names >= {"Newchannel", "Newstate", "DialEnd", "QueueCallerJoin", "OriginateResponse",
                     "Hangup"}  # fmt: skip
    assert {e.get("Linkedid", e.get("DestLinkedid")) for e in dialer.events} - {None} == {
        "dialer-live-1"
    }
    assert {(e["Event"], e.get("Uniqueid", e.get("ActionID"))) for e in ivr.events} == {
        ("Hangup", "cb-7-1796000000"), ("Hangup", "cb-7-1796000000-q"),
        ("OriginateResponse", "cb-7-1796000000"),
    }  # fmt: skip


async def test_a_unicode_member_name_passes_through_app_queue(instance: Instance) -> None:
    """What callcenter/names.py says of Asterisk, on Asterisk: a MemberName in UTF-8 comes back
    as it was in AMI events, queue_log and astdb. One over 79 bytes is cut inside a character,
    and then Asterisk's JSON refuses it: that member has no AMI events at all."""
    name, long = "Renée東京", "東" * 27  # 81 bytes
    async with asyncio.timeout(30):
        ami = await instance.bridge(events="agent")
        try:
            for interface, member in (("PJSIP/1001", name), ("PJSIP/1002", long)):
                reply = await ami.send(Action="QueueAdd", Queue="sales", Interface=interface,
                                       MemberName=member, StateInterface=interface)  # fmt: skip
                assert reply["Response"] == "Success", reply
            status = await ami.send_list(Action="QueueStatus", Queue="sales")
            astdb = instance.console("database get Queue/PersistentMembers sales")
            for interface in ("PJSIP/1001", "PJSIP/1002"):
                await ami.send(Action="QueueRemove", Queue="sales", Interface=interface)
            # Member events come through stasis, after the actions' responses.
            while not any(e.get("Event") == "QueueMemberRemoved" for e in ami.events):
                ami.events.append(await ami.read())
        finally:
            await ami.close()
    events = [(e.get("Event"), e.get("MemberName")) for e in ami.events]
    assert events == [("QueueMemberAdded", name), ("QueueMemberRemoved", name)]
    cut = "東" * 26 + "\ufffd"  # 79 bytes: the 27th character cut after its first byte
    members = {e["StateInterface"]: e["Name"] for e in status if e.get("Event") == "QueueMember"}
    assert members == {"PJSIP/1001": name, "PJSIP/1002": cut}
    assert f";{name};PJSIP/1001;" in astdb
    assert f";{cut};PJSIP/1002;" in astdb
    assert "Invalid UTF-8 string" in instance.log_tail_full()
    queue_log = (instance.directory / "log" / "queue_log").read_bytes()
    assert f"|sales|{name}|ADDMEMBER|".encode() in queue_log
    assert f"|sales|{name}|REMOVEMEMBER|".encode() in queue_log


async def test_reload_applies_a_new_queue(instance: Instance) -> None:
    queues = [*instance.queues, QueueConf("late", max_wait_seconds=77)]
    new = render(instance.settings, AGENTS, queues, instance.trunks, instance.options)
    # Against the first render (the manager.conf on disk also holds the test administrator).
    changed = sorted(n for n in new if new[n] != instance.files[n])
    assert changed == ["extensions.conf", "queues.conf", "voicemail.conf"]
    files.write_set(new, instance.directory / "etc", only=changed)
    todo = reload.plan(changed)
    assert todo == reload.ReloadPlan(("app_queue.so", "app_voicemail.so", "pbx_config.so"), ())
    answers = reload.reload_modules(instance.binary, instance.directory, todo.modules)
    assert len(answers) == 3
    async with asyncio.timeout(20):
        ami = await instance.bridge()
        try:
            items = await ami.send_list(Action="QueueStatus", Queue="late")
            timeout = await ami.send(Action="Getvar", Variable="QTIMEOUT_late")
        finally:
            await ami.close()
    assert [e["Queue"] for e in items if e.get("Event") == "QueueParams"] == ["late"]
    assert timeout.get("Value") == "77"


# --- `callcenter asterisk run` itself -------------------------------------------------------


@pytest.fixture
def asterisk_cli(run_cli: Cli) -> Cli:
    """The CLI (whose `asterisk` group main.py registers)."""
    return run_cli


async def test_cli_run_from_the_database_reload_and_sigterm(
    asterisk_cli: Cli, tmp_path: Path
) -> None:
    binary = asterisk_binary()
    directory = tmp_path / "instance"
    env = {
        **port_environment(),
        "CALLCENTER_NODES__LOCAL__SECRET": "cli-run-secret",
        "CALLCENTER_ASTERISK__DIRECTORY": str(directory),
        "ASTERISK_BIN": str(binary),
    }
    asterisk_cli.env.update(env)
    asterisk_cli.ok("queues", "add", "dbq", "--max-wait", "45")
    asterisk_cli.ok("agents", "add", "zed", "-e", "3001", "--pin", "1234", "--queue", "dbq")
    port = int(env["CALLCENTER_NODES__LOCAL__PORT"])
    with (tmp_path / "run.log").open("wb") as log:
        # Popen only forks and execs; waiting on the process is done in a thread below.
        proc = subprocess.Popen(  # noqa: ASYNC220
            [sys.executable, "-m", "callcenter", "asterisk", "run"],
            env={**os.environ, **asterisk_cli.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            try:
                await wait_booted(port, "callcenter", "cli-run-secret")
            except (OSError, TimeoutError) as exc:
                tail = (tmp_path / "run.log").read_text(errors="replace")[-3000:]
                pytest.fail(f"`callcenter asterisk run` did not boot ({exc!r}):\n{tail}")
            assert (directory / "etc" / "asterisk.conf").is_file()
            shown = reload.console(binary, directory, "pjsip show endpoints")
            assert "Endpoint:  3001/" in shown
            async with asyncio.timeout(20):
                ami = await Ami.login(port, "callcenter", "cli-run-secret")
                try:
                    queues = await ami.send_list(Action="QueueStatus")
                    assert {e["Queue"] for e in queues if e.get("Event") == "QueueParams"} == {
                        "dbq"
                    }
                finally:
                    await ami.close()
            # A change in the database, then `callcenter asterisk reload`.
            asterisk_cli.ok("queues", "add", "dbq2")
            result = asterisk_cli("asterisk", "reload")
            assert result.exit_code == 0, result.output
            assert result.output.splitlines() == [
                "changed: extensions.conf, queues.conf, voicemail.conf",
                "reloaded: app_queue.so, app_voicemail.so, pbx_config.so",
            ]
            async with asyncio.timeout(20):
                ami = await Ami.login(port, "callcenter", "cli-run-secret")
                try:
                    queues = await ami.send_list(Action="QueueStatus", Queue="dbq2")
                finally:
                    await ami.close()
            assert [e["Queue"] for e in queues if e.get("Event") == "QueueParams"] == ["dbq2"]
            # `run` exec'd Asterisk: SIGTERM to that process stops Asterisk, cleanly.
            os.kill(proc.pid, signal.SIGTERM)
            code = await asyncio.to_thread(proc.wait, 30)
            assert code == 0, (tmp_path / "run.log").read_text(errors="replace")[-2000:]
            assert not run.is_running(directory)
            assert "Asterisk cleanly ending" in (tmp_path / "run.log").read_text()
        finally:
            stop(binary, directory, proc)


def test_nothing_is_left_running(instance: Instance) -> None:
    """Stopping works (the module fixture stops it again, harmlessly)."""
    stop(instance.binary, instance.directory, instance.proc)
    assert instance.proc.returncode is not None
    assert not run.is_running(instance.directory)
