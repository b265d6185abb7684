"""Live monitoring on a real Asterisk: a SIPp caller comes through the IVR and the queue to
alice's SIPp phone; a supervisor clicks Listen, Whisper and Barge on the board (over HTTP, as
board.js posts), and their own SIPp phone (endpoint 2001) is rung into ChanSpy on alice's
channel of that call. Checked for each mode: the ChanSpyStart event (spyer: the supervisor's
phone, spyee: alice's channel), the monitor_sessions row, and what each party hears.

What a party hears is measured with audio: the supervisor's phone sends a 1 kHz tone; the
party being measured echoes back everything it receives (SIPp ``-rtp_echo``), and a MixMonitor
on that party's channel records what Asterisk reads from it (``r()``: the echo, i.e. what the
party heard). The other party streams digital silence, so that Asterisk keeps writing frames
to the measured party (ChanSpy mixes a whisper into frames written to the channel; a silent
call would carry none). Not the transmit side (``t()``): audiohooks hand frames to spies
*before* whispers are mixed in (main/audiohook.c, audio_audiohook_write_list), so a recording
of what is sent to a channel never contains a whisper.

- listen: neither the agent nor the caller hears the supervisor;
- whisper: the agent does, the caller does not;
- barge: both do.

An agent's own session cannot monitor: 403, no Originate, no spy.

Skipped, with the reason, without Asterisk or SIPp.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import dataclasses
import math
import re
import struct
import time
import wave
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from callcenter import config
from callcenter.wallboard import accounts
from callcenter.wallboard.app import Wallboard
from tests.e2e.conftest import (
    ADMIN_SECRET,
    AGENTS,
    DID,
    DTMF_PCAP,
    SIPP_DIR,
    Pbx,
    Sipp,
    Stack,
    _wait_exit,
    require_sounds,
    scenario,
    sipp_binary,
    stack,
    start_pbx,
    ulaw,
)
from tests.test_asterisk_live import Ami, asterisk_binary, free_port

pytestmark = pytest.mark.asterisk

PASSWORD = "correct horse battery"
SUPERVISOR_PHONE = "2001"
#: alice and bob, and the supervisor's phone: an agent entry that logs in to no queue is how
#: the private Asterisk gets an endpoint for it (its pjsip.conf holds the agents' phones).
E2E_AGENTS = (*AGENTS, ("sup", SUPERVISOR_PHONE))
MODES = ("listen", "whisper", "barge")
#: Mean amplitude above which a 20 ms window holds the tone (full scale 32767; the tone is
#: sent at 8000, silence decodes to exactly 0).
HEARD = 1000.0


@pytest.fixture(scope="module")
def pbx(tmp_path_factory: pytest.TempPathFactory, engine: Engine) -> Iterator[Pbx]:
    binary = asterisk_binary()
    sipp = sipp_binary()
    require_sounds(binary)
    try:
        with start_pbx(tmp_path_factory.mktemp("e2e-monitor"), engine, binary, sipp,
                       E2E_AGENTS) as pbx:  # fmt: skip
            yield pbx
    except RuntimeError as exc:
        pytest.fail(str(exc))


# --- media: G.711 µ-law RTP in pcap files SIPp replays (play_pcap_audio) --------------------


def rtp_pcap(path: Path, payload: Callable[[int], bytes], seconds: float, *, seq: int,
             stamp: int, ssrc: int) -> Path:  # fmt: skip
    """A pcap of ``seconds`` of 20 ms PCMU packets (payload(i) for the i-th) with the link,
    IP and UDP headers of SIPp's own DTMF pcaps (SIPp rewrites addresses and ports)."""
    template = DTMF_PCAP.read_bytes()
    eth = template[24 + 16 : 24 + 16 + 14]
    out = bytearray(template[:24])
    for i in range(int(seconds * 50)):
        body = payload(i)
        rtp = struct.pack(">BBHII", 0x80, 0x80 if i == 0 else 0, (seq + i) % 65536,
                          (stamp + 160 * i) % 2**32, ssrc) + body  # fmt: skip
        udp = struct.pack(">HHHH", 49176, 10000, 8 + len(rtp), 0) + rtp
        src, dst = bytes([192, 168, 0, 3]), bytes([192, 168, 0, 1])
        header = (0x45, 0, 20 + len(udp), i % 65536, 0, 64, 17, 0, src, dst)
        ip = bytearray(struct.pack(">BBHHHBBH4s4s", *header))
        words = struct.unpack(">10H", bytes(ip))
        total = sum(words)
        total = (total & 0xFFFF) + (total >> 16)
        struct.pack_into(">H", ip, 10, ~((total & 0xFFFF) + (total >> 16)) & 0xFFFF)
        packet = eth + bytes(ip) + udp
        at = 1_000_000 + i * 0.02
        out += struct.pack("<IIII", int(at), round((at % 1) * 1e6), len(packet), len(packet))
        out += packet
    path.write_bytes(bytes(out))
    return path


def tone(tmp: Path, seconds: float = 4.0) -> Path:
    samples = [ulaw(round(8000 * math.sin(2 * math.pi * 1000 * n / 8000))) for n in range(160)]
    frame = bytes(samples)  # 1 kHz: a whole number of periods in 20 ms
    return rtp_pcap(tmp / "tone.pcap", lambda _: frame, seconds, seq=100, stamp=0, ssrc=0x5EE)


def silence(tmp: Path, seconds: float = 90.0) -> Path:
    frame = bytes([0xFF]) * 160  # µ-law 0xFF decodes to 0
    # After the DTMF pcap in RTP time and sequence (Asterisk follows one stream per port).
    return rtp_pcap(tmp / "silence.pcap", lambda _: frame, seconds, seq=20000,
                    stamp=8000 * 120, ssrc=0x51E)  # fmt: skip


def is_closed(path: Path) -> bool:
    data = path.read_bytes() if path.exists() else b""
    return len(data) > 44 and struct.unpack_from("<I", data, 4)[0] == len(data) - 8


async def closed(path: Path, timeout: float = 10.0) -> Path:
    """``path`` once Asterisk has closed it: MixMonitor closes its files on its own thread
    after StopMixMonitor, and writes the WAV header's sizes then (format_wav.c)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if is_closed(path):
            return path
        await asyncio.sleep(0.1)
    raise AssertionError(f"{path} was not closed within {timeout}s")


def peak(path: Path) -> tuple[float, float]:
    """The loudest 20 ms of a recording (its mean absolute amplitude), and its length in
    seconds (a recording that holds nothing proves nothing)."""
    with wave.open(str(path)) as w:
        assert (w.getsampwidth(), w.getframerate()) == (2, 8000), path
        samples = array.array("h", w.readframes(w.getnframes()))
    windows = [samples[i : i + 160] for i in range(0, len(samples) - 159, 160)]
    loudest = max((sum(abs(s) for s in w) / len(w) for w in windows), default=0.0)
    return loudest, len(samples) / 8000


# --- SIPp -----------------------------------------------------------------------------------


def with_media(xml: Path, pcap: Path, *, after: str, pause_ms: int = 0) -> Path:
    """``xml`` playing ``pcap`` ``pause_ms`` after the element ``after`` (a regex). SIPp
    plays one pcap at a time per call: a new play cancels the one still playing."""
    text = xml.read_text()
    play = f'<nop><action><exec play_pcap_audio="{pcap}"/></action></nop>'
    if pause_ms:
        play = f'<pause milliseconds="{pause_ms}"/>\n  {play}'
    text, n = re.subn(f"({after})", rf"\1\n  {play}", text, count=1)
    assert n == 1, after
    out = xml.with_name(f"{xml.stem}-{pcap.stem}.xml")
    out.write_text(text)
    return out


async def phone(st: Stack, name: str, ext: str, xml: Path, *extra: str) -> Sipp:
    """Register ``ext`` as the agent ``name`` does, then answer with ``xml`` (as
    tests/e2e/conftest.py's Phones.phone, with ``extra`` SIPp options)."""
    pbx = st.pbx
    port = free_port(udp_too=True)
    target = f"127.0.0.1:{pbx.sip_port}"
    reg = st.phones._start(
        ["-sf", str(SIPP_DIR / "register.xml"), "-p", str(port), "-s", ext, "-au", ext,
         "-ap", pbx.secrets[name], "-m", "1", "-aa", "-timeout", "10s", target],
        f"{ext}-register",
    )  # fmt: skip
    rc = await _wait_exit(reg.proc, 15)
    assert rc == 0, f"{ext} did not register (rc {rc}):\n{reg.text()[-2000:]}"
    return st.phones._start(
        ["-sf", str(xml), "-p", str(port), "-aa", "-m", "100", *extra, target], f"{ext}-uas"
    )


def caller(st: Stack, xml: Path, *extra: str) -> Sipp:
    return st.phones._start(
        ["-sf", str(xml), "-p", str(st.pbx.caller_port), "-s", DID,
         "-inf", str(SIPP_DIR / "callers.csv"), "-m", "1", *extra,
         "-aa", f"127.0.0.1:{st.pbx.sip_port}"],
        "caller",
    )  # fmt: skip


# --- AMI events -----------------------------------------------------------------------------


class Events:
    """Every AMI event from the start, read in the background."""

    def __init__(self, ami: Ami) -> None:
        self.ami = ami
        self.seen: list[dict[str, str]] = []
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                message = await self.ami.read()
                if "Event" in message:
                    self.seen.append(message)

    async def wait(
        self, name: str, timeout: float = 20.0, since: int = 0, **fields: str
    ) -> dict[str, str]:
        """The first event ``name`` from the ``since``-th on whose ``fields`` start so."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.seen[since:]:
                if event.get("Event") == name and all(
                    event.get(k, "").startswith(v) for k, v in fields.items()
                ):
                    return event
            await asyncio.sleep(0.05)
        raise AssertionError(f"no {name} {fields} within {timeout}s")

    def named(self, name: str) -> list[dict[str, str]]:
        return [e for e in self.seen if e.get("Event") == name]

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self.ami.close()


# --- the wallboard, and a browser's posts ---------------------------------------------------


@contextlib.asynccontextmanager
async def wallboard(st: Stack) -> AsyncIterator[Wallboard]:
    settings = dataclasses.replace(
        st.settings,
        wallboard=config.WallboardSettings(port=0, secret_key=config.Secret("e2e-monitor")),
    )
    wb = Wallboard(settings, engine=st.engine)
    stop = asyncio.Event()
    task = asyncio.create_task(wb.run(stop), name="e2e-wallboard")
    try:
        async with asyncio.timeout(10):
            await wb.started.wait()
        yield wb
    finally:
        stop.set()
        async with asyncio.timeout(20):
            await task


def browser() -> aiohttp.ClientSession:
    """A client that keeps cookies of 127.0.0.1 (aiohttp's jar refuses those of an IP address
    unless told otherwise)."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


def csrf_in(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html) or re.search(
        r'name="csrf-token" content="([^"]+)"', html
    )
    assert found, html[:500]
    return found.group(1)


async def log_in(http: aiohttp.ClientSession, base: str, path: str, name: str) -> str:
    """Log in through the form at ``path`` (/login or /agent/login); the session's CSRF token."""
    nonce = csrf_in(await (await http.get(f"{base}{path}")).text())
    form = {"name": name, "password": PASSWORD, "csrf": nonce}
    resp = await http.post(f"{base}{path}", data=form, allow_redirects=False)
    assert resp.status == 303, await resp.text()
    page = await http.get(f"{base}{resp.headers['Location']}")
    return csrf_in(await page.text())


async def monitor(http: aiohttp.ClientSession, base: str, mode: str, csrf: str
                  ) -> tuple[int, dict[str, Any]]:  # fmt: skip
    resp = await http.post(f"{base}/agents/local/alice/monitor", data={"mode": mode, "csrf": csrf},
                           headers={"Accept": "application/json"})  # fmt: skip
    return resp.status, await resp.json()


async def eventually(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout}s")


# --- the test -------------------------------------------------------------------------------


@pytest.mark.parametrize("measured", ["caller", "agent"])
async def test_a_supervisor_listens_whispers_and_barges_on_a_real_call(
    pbx: Pbx, engine: Engine, tmp_path: Path, measured: str
) -> None:
    """One call; the supervisor's phone is rung for listen, whisper and barge in turn; the
    ``measured`` party echoes what it hears, the other streams silence."""
    hears = {"caller": {"listen": False, "whisper": False, "barge": True},
             "agent": {"listen": False, "whisper": True, "barge": True}}[measured]  # fmt: skip
    quiet = silence(tmp_path)
    async with stack(pbx, engine, tmp_path) as st:
        with Session(engine) as s, s.begin():
            accounts.add_user(s, "sam", PASSWORD, "supervisor", phone=SUPERVISOR_PHONE)
            accounts.set_agent_password(s, "alice", PASSWORD)
        # ChanSpyStart/Stop are no events our services read: the bridge user's eventfilter
        # leaves them out, the test-only administrator sees them.
        ami = await Ami.login(pbx.ami_port, "e2e-admin", ADMIN_SECRET, "on")
        events = Events(ami)
        admin = await Ami.login(pbx.ami_port, "e2e-admin", ADMIN_SECRET)
        try:
            # The supervisor's phone answers after 0.5 s, sends the tone for 4 s, hangs up at 5.
            sup_xml = with_media(scenario(tmp_path, "agent-answer", ring_ms=500, talk_ms=5000),
                                 tone(tmp_path), after=r'<recv request="ACK"[^>]*/>')  # fmt: skip
            await phone(st, "sup", SUPERVISOR_PHONE, sup_xml)
            agent_xml = scenario(tmp_path, "agent-answer", ring_ms=500, talk_ms=120_000)
            caller_xml = scenario(tmp_path, "caller", patience_ms=120_000)
            if measured == "agent":
                await phone(st, "alice", "1001", agent_xml, "-rtp_echo")
                dtmf = r"dtmf_2833_1\.pcap\"/></action></nop>"
                caller_xml = with_media(caller_xml, quiet, after=dtmf, pause_ms=1500)
            else:
                agent_xml = with_media(agent_xml, quiet, after=r'<recv request="ACK"[^>]*/>')
                await phone(st, "alice", "1001", agent_xml)
            await st.login("alice")
            async with wallboard(st) as wb, browser() as http:
                base = f"http://127.0.0.1:{wb.port}"
                csrf = await log_in(http, base, "/login", "sam")
                caller(st, caller_xml, *(["-rtp_echo"] if measured == "caller" else []))
                connect = await events.wait("AgentConnect", 30, MemberName="alice")
                agent_channel, caller_channel = connect["DestChannel"], connect["Channel"]
                await eventually(
                    lambda: (a := wb.parts.state.agents.get(("local", "alice"))) is not None
                    and a.state == "on_call", 10, "alice on a call on the board")  # fmt: skip
                listener = caller_channel if measured == "caller" else agent_channel

                for mode in MODES:
                    heard = tmp_path / f"{measured}-{mode}-heard.wav"
                    started = await admin.send(
                        Action="MixMonitor", Channel=listener,
                        File=str(tmp_path / f"{measured}-{mode}-mix.wav"),
                        Options=f"r({heard})",
                    )  # fmt: skip
                    assert started["Response"] == "Success", started
                    mark = len(events.seen)
                    status, body = await monitor(http, base, mode, csrf)
                    assert status == 200, body
                    spyer = f"PJSIP/{SUPERVISOR_PHONE}-"
                    spy = await events.wait(
                        "ChanSpyStart", 15, mark, SpyerChannel=spyer, SpyeeChannel=agent_channel
                    )
                    assert spy["SpyeeChannel"] == agent_channel
                    await events.wait("ChanSpyStop", 15, mark, SpyerChannel=spy["SpyerChannel"])
                    stopped = await admin.send(Action="StopMixMonitor", Channel=listener)
                    assert stopped["Response"] == "Success", stopped
                    loudest, seconds = peak(await closed(heard))
                    # Rung 0.5 s, then the tone for 4 s: the recording spans all of it.
                    assert seconds > 4.0, f"{heard}: {seconds:.1f} s"
                    if hears[mode]:
                        assert loudest > HEARD, (
                            f"{measured} did not hear the {mode} ({loudest:.0f})"
                        )
                    else:
                        assert loudest < 50, f"{measured} heard the {mode} ({loudest:.0f})"

                # Asterisk ran ChanSpy on the supervisor's channel, answered each time.
                responses = [e for e in events.named("OriginateResponse")
                             if e.get("Application") == "ChanSpy"]  # fmt: skip
                assert [(e["Response"], e["Reason"]) for e in responses] == [("Success", "4")] * 3
                assert all(e["Data"].startswith(f"{agent_channel},q") for e in responses)

                # alice's own desktop session may not monitor: 403, nothing sent to Asterisk.
                async with browser() as desk:
                    desk_csrf = await log_in(desk, base, "/agent/login", "alice")
                    status, body = await monitor(desk, base, "listen", desk_csrf)
                    assert status == 403, body
                await asyncio.sleep(1.0)
                assert len(events.named("ChanSpyStart")) == 3
                assert len(responses) == 3
        finally:
            # The call is still up in Asterisk (the SIPp phones just stop): end every channel,
            # or alice stays in use for the next test.
            with contextlib.suppress(Exception):
                await admin.send(Action="Hangup", Channel="/.*/")
            await events.close()
            await admin.close()
    with engine.connect() as c:
        rows = c.execute(sa.text("SELECT user_name, mode, agent, node, agent_channel, phone, "
                                 "result FROM monitor_sessions ORDER BY id")).all()  # fmt: skip
    assert [tuple(r) for r in rows] == [
        *(("sam", mode, "alice", "local", agent_channel, SUPERVISOR_PHONE, "originated")
          for mode in MODES),
        ("agent:alice", "listen", "alice", "local", "", "", "refused"),
    ]  # fmt: skip
