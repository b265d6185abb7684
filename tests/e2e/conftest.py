"""End-to-end harness: a private Asterisk with our rendered configuration, our services in
process, SIPp agent phones registered as the PJSIP endpoints and SIPp callers through a trunk.

Skipped, with the reason, where Asterisk (ASTERISK_BIN or PATH) or SIPp (``sipp`` on PATH, with
SIPp's RFC 4733 DTMF pcaps) is absent.

One Asterisk per module (booting takes a few seconds); each test gets an empty database, its
own bridge + IVR service, its own MQTT topic prefix and its own SIPp processes. The directory
(agents with their SIP secrets, the queue) is written before rendering and re-written with the
same secrets after each test's truncation, so the rendered pjsip.conf always matches the DB.

Asterisk quirks the harness relies on (see tests/fixtures/asterisk-traces/README.md):

- The trunk and the phones all send from 127.0.0.1 and ``endpoint_identifier_order = ip,...``
  tries the address first, so the trunk's ``identify`` matches the caller's *port* too
  (``match = 127.0.0.1:<port>``); otherwise a phone's REGISTER would be the trunk's.
- A registered contact is qualified (OPTIONS) at once and every 30 s; a phone that does not
  answer them is Unavailable and app_queue never rings it. SIPp's ``-aa`` answers them.
- ``rewrite_contact = yes``: calls go to the address and port the REGISTER came from, so the
  phone's UAS scenario runs on the port the register scenario used (one after the other).

Every wait has a time-out; Asterisk and every SIPp are stopped in ``finally`` blocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import math
import re
import shutil
import struct
import subprocess
import time
import zoneinfo
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from callcenter import config, directory
from callcenter.agi.app import AgiService, build_services
from callcenter.agi.ivr import load_ivrs
from callcenter.asterisk import files, inputs, run
from callcenter.asterisk.render import RenderOptions, Trunk, render
from callcenter.bridge.app import Bridge
from callcenter.db.engine import session_scope
from callcenter.db.models import Agent
from tests.e2e import recorder
from tests.test_asterisk_live import (
    Ami,
    asterisk_binary,
    free_port,
    port_environment,
    stop,
    wait_booted,
)
from tests.test_bridge import MqttWatcher

SIPP_DIR = Path(__file__).resolve().parents[2] / "scripts" / "sipp"
DTMF_PCAP = Path("/usr/share/sip-tester/dtmf_2833_1.pcap")
DID = "100"
SIPP_TIMEOUT = 60.0
ADMIN_SECRET = "e2e-admin-secret-0123456789"

#: The e2e queue: short ring and retry so ring-no-answer and time-outs happen within seconds.
QUEUE: dict[str, Any] = {
    "ring_seconds": 4,
    "retry_seconds": 1,
    "wrapup_seconds": 2,
    "max_wait_seconds": 10,
    "announce_position": False,
    "announce_holdtime": False,
    "autopause": False,
}

#: (name, extension) of the agents with phones.
AGENTS = (("alice", "1001"), ("bob", "1002"))

IVRS: dict[str, Any] = {
    "main": {
        "start": "welcome",
        "dids": [DID],
        "nodes": {
            "welcome": {"prompt": "beep", "choices": {"1": "sales"}},
            "sales": {"target": "queue", "queue": "sales"},
        },
    }
}


def sipp_binary() -> str:
    found = shutil.which("sipp")
    if found is None:
        pytest.skip("needs SIPp (`sipp` on PATH; Debian: apt-get install sip-tester)")
    if not DTMF_PCAP.is_file():
        pytest.skip(f"needs SIPp's RFC 4733 DTMF pcaps ({DTMF_PCAP})")
    return found


@dataclasses.dataclass
class Pbx:
    binary: Path
    sipp: str
    directory: Path
    settings: config.Settings
    proc: subprocess.Popen[bytes]
    caller_port: int
    secrets: dict[str, str]
    sounds: Path
    agents: list[tuple[str, str]] = dataclasses.field(default_factory=lambda: list(AGENTS))

    @property
    def sip_port(self) -> int:
        return self.settings.asterisk.sip_port

    @property
    def ami_port(self) -> int:
        return self.settings.node("local").port

    @property
    def queue_log(self) -> Path:
        return self.directory / "log" / "queue_log"

    def log_tail(self) -> str:
        path = self.directory / "stdout.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    async def qualify_trunk(self) -> None:
        """Qualify the trunk's contact now. Asterisk qualifies it every 60 s; one qualify while
        no SIPp listened on the callers' port left it Unreachable, and a Dial() to it is then
        CHANUNAVAIL without trying (the callback's call to the customer)."""
        admin = await Ami.login(self.ami_port, "e2e-admin", ADMIN_SECRET)
        try:
            reply = await admin.send(Action="PJSIPQualify", Endpoint="sipp")
            assert reply.get("Response") == "Success", reply
        finally:
            await admin.close()

    async def ami(self, events: str = "off") -> Ami:
        secret = self.settings.node("local").secret.reveal()
        return await Ami.login(self.ami_port, "callcenter", secret, events)


def seed_directory(
    engine: Engine,
    secrets: Mapping[str, str] | None = None,
    agents: Sequence[tuple[str, str]] = AGENTS,
) -> dict[str, str]:
    """The queue and the agents (members of it); with ``secrets``, the agents' SIP secrets are
    set to those (so a truncated database matches the rendered pjsip.conf again)."""
    with session_scope(engine) as s:
        directory.add_queue(s, "sales", **QUEUE)
        for name, ext in agents:
            directory.add_agent(s, name=name, extension=ext, pin="2468")
            directory.join_queue(s, "sales", name)
        if secrets:
            for agent in s.scalars(sa.select(Agent)):
                agent.sip_secret = secrets[agent.name]
    with session_scope(engine) as s:
        return {a.name: a.sip_secret for a in s.scalars(sa.select(Agent))}


def truncate(engine: Engine) -> None:
    from tests.conftest import truncate_all

    truncate_all(engine)


@contextlib.contextmanager
def start_pbx(
    where: Path,
    engine: Engine,
    binary: Path,
    sipp: str,
    agents: Sequence[tuple[str, str]] = AGENTS,
    environ: Mapping[str, str] | None = None,
    systemname: str = "",
) -> Iterator[Pbx]:
    """Seed the directory, render from it (simulation contexts included) and run Asterisk in
    ``where`` on free ports until the block ends; ``environ``: more settings (CALLCENTER_*);
    ``systemname``: Asterisk's, which prefixes every uniqueid (``<name>-<epoch>.<n>``), so
    that two instances of one test never share one. Raises RuntimeError if it does not boot."""
    env = {**port_environment(), "CALLCENTER_DATABASE__URL": engine.url.render_as_string(False)}
    env.update(environ or {})
    env["CALLCENTER_NODES__LOCAL__SECRET"] = "e2e-ami-secret-0123456789"
    env["CALLCENTER_CONFIG"] = ""
    env["CALLCENTER_NODES__LOCAL__QUEUE_LOG_PATH"] = str(where / "log" / "queue_log")
    settings = config.load(environ=env)
    module_dir, data_dir = run.installation_dirs(binary)
    if not data_dir:
        raise RuntimeError(f"no sounds next to {binary}: the IVR's prompts cannot play")
    truncate(engine)
    secrets = seed_directory(engine, agents=agents)
    with session_scope(engine) as s:
        agent_confs, queues = inputs.load(s)
    caller_port = free_port(udp_too=True)
    trunk = Trunk("sipp", "127.0.0.1", port=caller_port, match=(f"127.0.0.1:{caller_port}",))
    options = RenderOptions(
        directory=where, module_dir=module_dir, data_dir=data_dir, simulation=True
    )
    rendered = render(settings, agent_confs, queues, [trunk], options)
    run.prepare(where)
    files.write_set(rendered, where / "etc")
    if systemname:  # asterisk.conf ends with its [options] section
        with (where / "etc" / "asterisk.conf").open("a") as fh:
            fh.write(f"systemname = {systemname}\n")
    # A test-only administrator for PJSIPQualify (class "system", which the rendered bridge
    # user rightly lacks): see Pbx.qualify_trunk. It reads call and agent events too, without
    # the bridge user's eventfilter: a test that watches what our services do not read
    # (ChanSpyStart) logs in as this one with Events on.
    with (where / "etc" / "manager.conf").open("a") as fh:
        fh.write(
            f"\n[e2e-admin]\nsecret = {ADMIN_SECRET}\ndeny = 0.0.0.0/0.0.0.0\n"
            "permit = 127.0.0.1/255.255.255.255\nread = system,call,agent\nwrite = system\n"
        )
        # The dialer recordings' listener (tests/e2e/recorder.py): every event, unfiltered.
        fh.write(recorder.manager_section())
    with (where / "stdout.log").open("wb") as log:
        proc = subprocess.Popen(
            run.command_line(binary, where), stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        pbx = Pbx(
            binary, sipp, where, settings, proc, caller_port, secrets, Path(data_dir) / "sounds",
            list(agents),
        )  # fmt: skip
        try:
            try:
                secret = settings.node("local").secret.reveal()
                asyncio.run(wait_booted(pbx.ami_port, "callcenter", secret))
            except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
                raise RuntimeError(
                    f"Asterisk did not boot ({exc!r}); its output:\n{pbx.log_tail()}"
                ) from exc
            yield pbx
        finally:
            stop(binary, where, proc)


def require_sounds(binary: Path) -> None:
    """The IVR's prompts are Asterisk's core sounds: an Asterisk built without them (the
    build downloads them; Debian ships them as asterisk-core-sounds-en-gsm) cannot play them."""
    _, data_dir = run.installation_dirs(binary)
    en = Path(data_dir) / "sounds" / "en" if data_dir else None
    if en is None or not any(en.glob("beep.*")):
        pytest.skip(
            f"needs Asterisk's core sounds next to {binary} ({en}/beep.*): install them "
            "with Asterisk, or copy Debian's asterisk-core-sounds-en-gsm there"
        )


@pytest.fixture(scope="module")
def pbx(tmp_path_factory: pytest.TempPathFactory, engine: Engine) -> Iterator[Pbx]:
    binary = asterisk_binary()
    sipp = sipp_binary()
    require_sounds(binary)
    try:
        with start_pbx(tmp_path_factory.mktemp("e2e"), engine, binary, sipp) as pbx:
            yield pbx
    except RuntimeError as exc:
        pytest.fail(str(exc))


# --- SIPp -----------------------------------------------------------------------------------


def scenario(
    tmp: Path,
    name: str,
    *,
    ring_ms: int | None = None,
    talk_ms: int | None = None,
    patience_ms: int | None = None,
    later: tuple[int, str] | None = None,
    first_digit: str = "1",
    audio: Path | None = None,
) -> Path:
    """A copy of scripts/sipp/<name>.xml with its ring, talk or patience timeout replaced;
    ``first_digit``: the caller's first key; ``later=(ms, digit)``: the caller keys ``digit``
    ``ms`` after the first (the survey's answer, the callback's confirmation). SIPp replays a
    pcap with its recorded RTP sequence numbers and timestamps, and Asterisk ignores an RFC 4733
    event whose timestamp is not after the last one's, so the later key is played from a copy
    of the pcap moved forward in RTP time (:func:`later_pcap`). ``audio``: a µ-law WAV the
    phone streams, looped, while the call is up, as a person talks (:func:`tone_file`): an
    agent from the answer, a caller from a second after its keys (not during them: two RTP
    sources at once would make Asterisk miss a key)."""
    text = (SIPP_DIR / f"{name}.xml").read_text()
    key = '<nop><action><exec play_pcap_audio="/usr/share/sip-tester/dtmf_2833_1.pcap"/>'
    first = key.replace("dtmf_2833_1", f"dtmf_2833_{first_digit}")
    text = text.replace(key, first, 1)
    if later is not None:
        ms, digit = later
        again = key.replace(str(DTMF_PCAP), str(later_pcap(tmp, digit)))
        text = text.replace(
            first, f'{first}</action></nop>\n  <pause milliseconds="{ms}"/>\n  {again}', 1
        )
    if audio is not None:
        stream = f'<nop><action><exec rtp_stream="{audio},-1,0"/></action></nop>'
        ack = '<recv request="ACK" rtd="true" crlf="true"/>'
        bye = '<recv request="BYE" timeout="'
        if name.startswith("agent-") and ack in text:
            text = text.replace(ack, f"{ack}\n  {stream}", 1)
        elif name == "caller":
            text = text.replace(bye, f'<pause milliseconds="1000"/>\n  {stream}\n  {bye}', 1)
        else:
            raise ValueError(f"scenario {name} has no place for audio")
    if ring_ms is not None:
        text = re.sub(r'(<recv request="CANCEL" timeout=")\d+', rf"\g<1>{ring_ms}", text)
    if talk_ms is not None or patience_ms is not None:
        value = talk_ms if talk_ms is not None else patience_ms
        text = re.sub(r'(<recv request="BYE" timeout=")\d+', rf"\g<1>{value}", text)
    tag = f"{ring_ms}-{talk_ms}-{patience_ms}-{later and ''.join(map(str, later))}-{first_digit}"
    tag += "-audio" if audio is not None else ""
    out = tmp / f"{name}-{tag}.xml"
    out.write_text(text)
    return out


def later_pcap(tmp: Path, digit: str, seconds: int = 60) -> Path:
    """SIPp's dtmf_2833_<digit>.pcap with every RTP timestamp ``seconds`` later (8 kHz) and the
    sequence numbers moved on (Ethernet + IPv4 without options + UDP: RTP at byte 42)."""
    raw = bytearray(DTMF_PCAP.with_name(f"dtmf_2833_{digit}.pcap").read_bytes())
    offset = 24  # pcap global header
    while offset + 16 <= len(raw):
        length = struct.unpack_from("<I", raw, offset + 8)[0]
        rtp = offset + 16 + 42
        seq, stamp = struct.unpack_from(">HI", raw, rtp + 2)
        struct.pack_into(">HI", raw, rtp + 2, (seq + 50 * seconds) % 65536,
                         (stamp + 8000 * seconds) % 2**32)  # fmt: skip
        offset += 16 + length
    out = tmp / f"dtmf_2833_{digit}_later.pcap"
    out.write_bytes(bytes(raw))
    return out


# --- audio: what SIPp phones send while a call is up --------------------------------------------


def ulaw(sample: int) -> int:
    """One 16-bit sample as G.711 µ-law (the classic encoder: bias 0x84, clip 32635)."""
    sign = 0x80 if sample < 0 else 0
    magnitude = min(abs(sample), 32635) + 0x84
    exponent = max(0, min(7, (magnitude >> 7).bit_length() - 1))
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def tone_file(path: Path, seconds: int = 30, hz: int = 440) -> Path:
    """A µ-law WAV (format 7, 8 kHz mono) that SIPp's rtp_stream sends as PCMU."""
    data = bytes(ulaw(int(8000 * math.sin(2 * math.pi * hz * i / 8000)))
                 for i in range(8000 * seconds))  # fmt: skip
    fmt = struct.pack("<IHHIIHHH", 18, 7, 1, 8000, 8000, 1, 8, 0)
    path.write_bytes(b"RIFF" + struct.pack("<I", 4 + 26 + 8 + len(data)) + b"WAVE" + b"fmt "
                     + fmt + b"data" + struct.pack("<I", len(data)) + data)  # fmt: skip
    return path


@dataclasses.dataclass
class Sipp:
    proc: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class Phones:
    """SIPp processes of one test, all stopped by :meth:`close`."""

    def __init__(self, pbx: Pbx, tmp: Path) -> None:
        self.pbx = pbx
        self.tmp = tmp
        self.procs: list[Sipp] = []
        self._audio: Path | None = None

    def audio(self) -> Path:
        """The WAV phones stream with ``audio=True`` (made once)."""
        if self._audio is None:
            self._audio = tone_file(self.tmp / "talk.wav", seconds=5, hz=300)
        return self._audio

    def _start(self, args: Sequence[str], tag: str) -> Sipp:
        log = self.tmp / f"sipp-{tag}.log"
        fh = log.open("wb")
        cmd = [
            self.pbx.sipp, "-nostdin", "-i", "127.0.0.1", "-mi", "127.0.0.1",
            "-cp", str(free_port(udp_too=True)), "-mp", str(free_port(udp_too=True)),
            "-trace_err", "-error_file", str(self.tmp / f"sipp-{tag}-errors.log"),
            *args,
        ]  # fmt: skip
        proc = subprocess.Popen(
            cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=self.tmp, start_new_session=True,
        )  # fmt: skip
        fh.close()
        sipp = Sipp(proc, log)
        self.procs.append(sipp)
        return sipp

    async def phone(
        self,
        name: str,
        extension: str,
        behaviour: str,
        *,
        ring_ms: int | None = None,
        talk_ms: int | None = None,
        trace: bool = False,
        audio: bool = False,
    ) -> Sipp:
        """Register ``extension`` with the agent's secret, then run ``agent-<behaviour>.xml``
        on the same port (answers qualify OPTIONS with -aa). ``trace``: SIPp writes every SIP
        message it sends and receives to ``<tmp>/sipp-<extension>-messages.log``."""
        target = f"127.0.0.1:{self.pbx.sip_port}"
        for attempt in range(3):
            port = free_port(udp_too=True)
            reg = self._start(
                ["-sf", str(SIPP_DIR / "register.xml"), "-p", str(port), "-s", extension,
                 "-au", extension, "-ap", self.pbx.secrets[name], "-m", "1", "-aa",
                 "-timeout", "10s", target],
                f"{extension}-register",
            )  # fmt: skip
            rc = await _wait_exit(reg.proc, 15)
            # 254: SIPp could not bind a port another process took after free_port() looked
            # (many phones start at once): again, on other ports.
            if rc != 254 or attempt == 2:
                break
        assert rc == 0, f"{extension} did not register (rc {rc}):\n{reg.text()[-2000:]}"
        xml = scenario(self.tmp, f"agent-{behaviour}", ring_ms=ring_ms, talk_ms=talk_ms,
                       audio=self.audio() if audio else None)  # fmt: skip
        messages = self.tmp / f"sipp-{extension}-messages.log"
        more = ["-trace_msg", "-message_file", str(messages)] if trace else []
        return self._start(
            ["-sf", str(xml), "-p", str(port), "-aa", "-m", "100", *more, target],
            f"{extension}-uas",
        )

    async def feature_code(self, name: str, extension: str, code: str) -> None:
        """Dial a feature code from the agent's phone (authenticated), until Asterisk hangs up."""
        sipp = self._start(
            ["-sf", str(SIPP_DIR / "feature-code.xml"), "-p", str(free_port(udp_too=True)),
             "-s", code, "-key", "user", extension, "-au", extension,
             "-ap", self.pbx.secrets[name], "-m", "1", "-aa", "-timeout", "20s",
             f"127.0.0.1:{self.pbx.sip_port}"],
            f"{extension}-code-{len(self.procs)}",
        )  # fmt: skip
        rc = await _wait_exit(sipp.proc, 25)
        assert rc == 0, f"{extension} {code} failed (rc {rc}):\n{sipp.text()[-2000:]}"

    def callers(
        self,
        count: int,
        *,
        patience_ms: int,
        rate: int = 1,
        limit: int | None = None,
        later: tuple[int, str] | None = None,
        first_digit: str = "1",
        inf: Path | None = None,
        audio: bool = False,
    ) -> Sipp:
        """``count`` callers to the DID through the trunk, ``rate`` per second, at most
        ``limit`` (default ``count``) at once; ``later``, ``first_digit``: see
        :func:`scenario`; ``inf``: their caller IDs (default scripts/sipp/callers.csv)."""
        xml = scenario(
            self.tmp, "caller", patience_ms=patience_ms, later=later, first_digit=first_digit,
            audio=self.audio() if audio else None,
        )  # fmt: skip
        return self._start(
            ["-sf", str(xml), "-p", str(self.pbx.caller_port), "-s", DID,
             "-inf", str(inf or SIPP_DIR / "callers.csv"), "-m", str(count),
             "-l", str(limit or count),
             "-r", str(rate), "-aa", f"127.0.0.1:{self.pbx.sip_port}"],
            f"callers-{len(self.procs)}",
        )  # fmt: skip

    def close(self) -> None:
        for sipp in self.procs:
            if sipp.proc.poll() is None:
                sipp.proc.terminate()
                try:
                    sipp.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    sipp.proc.kill()
                    sipp.proc.wait(timeout=5)


async def _wait_exit(proc: subprocess.Popen[bytes], timeout: float) -> int | None:
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return proc.poll()


async def wait_exit(sipp: Sipp, timeout: float = SIPP_TIMEOUT) -> int:
    rc = await _wait_exit(sipp.proc, timeout)
    assert rc is not None, f"SIPp still running after {timeout}s:\n{sipp.text()[-2000:]}"
    return rc


# --- the services ---------------------------------------------------------------------------


@dataclasses.dataclass
class Stack:
    """What one test runs against: the settings, the bridge, the MQTT watcher, the phones."""

    pbx: Pbx
    settings: config.Settings
    engine: Engine
    bridge: Bridge
    mqtt: MqttWatcher
    phones: Phones

    @property
    def prefix(self) -> str:
        return f"{self.settings.mqtt.topic_prefix}/local"

    async def login(self, *names: str) -> None:
        """Log agents in as the agent-login feature code does (QueueAdd of PJSIP/<ext>)."""
        ami = await self.pbx.ami()
        try:
            for name, ext in self.pbx.agents:
                if name in names:
                    reply = await ami.send(
                        Action="QueueAdd", Queue="sales", Interface=f"PJSIP/{ext}",
                        MemberName=name, StateInterface=f"PJSIP/{ext}", Penalty="0",
                        Paused="false",
                    )  # fmt: skip
                    assert reply["Response"] == "Success", reply
        finally:
            await ami.close()

    async def logout_all(self) -> None:
        ami = await self.pbx.ami()
        try:
            for _, ext in self.pbx.agents:
                await ami.send(Action="QueueRemove", Queue="sales", Interface=f"PJSIP/{ext}")
        finally:
            await ami.close()


@contextlib.asynccontextmanager
async def stack(
    pbx: Pbx,
    engine: Engine,
    tmp: Path,
    *,
    ivrs: Mapping[str, Any] = IVRS,
    agi: Mapping[str, Any] | None = None,
) -> AsyncIterator[Stack]:
    """Bridge + IVR service in process on a freshly seeded database, an MQTT watcher on the
    test's own prefix, and SIPp phones; everything stopped on the way out."""
    import secrets as pysecrets

    truncate(engine)
    seed_directory(engine, pbx.secrets, pbx.agents)
    tag = pysecrets.token_hex(4)
    s = dataclasses.replace(
        pbx.settings,
        mqtt=dataclasses.replace(
            pbx.settings.mqtt, topic_prefix=f"cce2e-{tag}", client_id=f"cce2e-{tag}"
        ),
        bridge=dataclasses.replace(
            pbx.settings.bridge, spool_dir=str(tmp / "spool"), flush_interval=0.2
        ),
        agi=dataclasses.replace(pbx.settings.agi, host="127.0.0.1", **(agi or {})),
    )
    agi_service = AgiService(
        s, services=build_services(s, ivrs=load_ivrs(ivrs, "UTC", sounds_dir=pbx.sounds))
    )
    bridge = Bridge(s)
    stop_event = asyncio.Event()
    watcher = MqttWatcher(s.mqtt.topic_prefix)
    phones = Phones(pbx, tmp)
    tasks = [
        asyncio.create_task(bridge.run(stop_event), name="e2e-bridge"),
        asyncio.create_task(agi_service.run(stop_event), name="e2e-agi"),
    ]
    watch = asyncio.create_task(watcher.run())
    st = Stack(pbx, s, engine, bridge, watcher, phones)
    try:
        await asyncio.wait_for(watcher.ready.wait(), 10)
        async with asyncio.timeout(20):
            while bridge.nodes[0].counters.resyncs < 1:
                await asyncio.sleep(0.05)
        yield st
    finally:
        phones.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(10):
                await st.logout_all()
        stop_event.set()
        async with asyncio.timeout(20):
            await asyncio.gather(*tasks)
        watch.cancel()
        await asyncio.gather(watch, return_exceptions=True)
        with contextlib.suppress(Exception):
            await watcher.clear_retained()


def report_json(settings: config.Settings) -> dict[str, Any]:
    """`callcenter report --json` as a subprocess would run it, against the test database."""
    from click.testing import CliRunner

    from callcenter.cli.main import cli

    env = {"CALLCENTER_DATABASE__URL": settings.database.url, "CALLCENTER_CONFIG": ""}
    result = CliRunner().invoke(cli, ["report", "--json", "--since", "-1h"], env=env)
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.output)
    return data


#: Zones 12 hours of the day apart at most 3.5 hours: one has any wanted hour.
ZONES = (
    "Asia/Tokyo", "Asia/Kolkata", "Europe/Berlin", "Europe/London", "America/Sao_Paulo",
    "America/New_York", "America/Chicago", "America/Los_Angeles", "Pacific/Honolulu",
    "Pacific/Auckland", "Australia/Sydney", "Asia/Dubai",
)  # fmt: skip


def zone_where(hours: range) -> str:
    """A time zone whose local hour is now in ``hours``: contacts there are in a campaign's
    calling window (8:00-21:00 by default) whatever the hour of the run."""
    now = dt.datetime.now(dt.UTC)
    for name in ZONES:
        if now.astimezone(zoneinfo.ZoneInfo(name)).hour in hours:
            return name
    raise AssertionError("no zone with the wanted hour")  # 12 zones cover every hour
