"""Call recording against a real Asterisk with SIPp phones: the queue records every call
(``record_policy = all``), the agent's SIPp phone streams a 440 Hz tone, the agent mutes the
recording for a few seconds from the desk; then the file is a WAV of the talk time that
Python's ``wave`` (and ``sox`` where installed) reads, silent exactly where it was muted, its
row says so, a supervisor plays it through the web app with range requests and the agent
cannot reach it. A second call records on demand: the agent presses "Record" on the desk
(Chromium), mutes and resumes.

Skipped, with the reason, without Asterisk or SIPp (and the browser part without Chromium).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import re
import shutil
import struct
import subprocess
import time
import wave
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from callcenter import config
from callcenter.db.models import Queue
from callcenter.db.models_quality import Recording, RecordingListen
from callcenter.wallboard import accounts
from callcenter.wallboard.app import Wallboard
from tests.browser import ARGS, ARTIFACTS, CHROMIUM
from tests.e2e import conftest as e2e
from tests.e2e.conftest import SIPP_DIR, Pbx, Stack, stack, tone_file
from tests.test_asterisk_live import asterisk_binary, free_port

pytestmark = pytest.mark.asterisk

PASSWORD = "correct horse battery"
TALK_MS = 11000
#: RMS of a 100 ms window below this is silence (the tone is about 5,600).
SILENT = 60.0


@pytest.fixture(scope="module")
def rec_pbx(tmp_path_factory: pytest.TempPathFactory, engine: Engine) -> Iterator[Pbx]:
    """A private Asterisk whose queue ``sales`` records every call (rendered so: the dialplan
    global QREC_sales=all), the recordings in its own directory."""
    binary = asterisk_binary()
    sipp = e2e.sipp_binary()
    e2e.require_sounds(binary)
    saved = dict(e2e.QUEUE)
    e2e.QUEUE["record_policy"] = "all"  # the seed (and each test's re-seed) of queue sales
    try:
        with e2e.start_pbx(tmp_path_factory.mktemp("e2e-rec"), engine, binary, sipp) as pbx:
            recording = config.RecordingSettings(dir=str(pbx.directory / "recordings"))
            yield dataclasses.replace(
                pbx, settings=dataclasses.replace(pbx.settings, recording=recording)
            )
    except RuntimeError as exc:
        pytest.fail(str(exc))
    finally:
        e2e.QUEUE.clear()
        e2e.QUEUE.update(saved)


# --- audio ------------------------------------------------------------------------------------


def windows_rms(path: Path, window: float = 0.1) -> tuple[list[float], float]:
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth()) == (1, 2)
        rate = w.getframerate()
        raw = w.readframes(w.getnframes())
    samples = struct.unpack(f"<{len(raw) // 2}h", raw)
    step = int(rate * window)
    out = []
    for i in range(0, len(samples) - step + 1, step):
        chunk = samples[i : i + step]
        out.append(math.sqrt(sum(x * x for x in chunk) / len(chunk)))
    return out, len(samples) / rate


def longest_silence(rms: list[float], window: float = 0.1) -> tuple[float, float]:
    """(start, length) in seconds of the longest run of silent windows."""
    best = (0.0, 0.0)
    start = None
    for i, value in enumerate([*rms, math.inf]):
        if value < SILENT:
            start = i if start is None else start
        elif start is not None:
            if (i - start) * window > best[1]:
                best = (start * window, (i - start) * window)
            start = None
    return best


# --- the phones and the web -------------------------------------------------------------------


async def tone_phone(st: Stack, tmp: Path, talk_ms: int = TALK_MS) -> None:
    """Alice's phone: registers, answers, streams the tone while the call lasts, hangs up
    ``talk_ms`` after answering (scripts/sipp/agent-answer.xml with rtp_stream added)."""
    text = (SIPP_DIR / "agent-answer.xml").read_text()
    ack = '<recv request="ACK" rtd="true" crlf="true"/>'
    assert ack in text
    stream = f'<nop><action><exec rtp_stream="{tone_file(tmp / "tone.wav")},-1,0"/></action></nop>'
    text = text.replace(ack, f"{ack}\n  {stream}")
    text = re.sub(r'(<recv request="BYE" timeout=")\d+', rf"\g<1>{talk_ms}", text)
    xml = tmp / "agent-tone.xml"
    xml.write_text(text)
    port = free_port(udp_too=True)
    target = f"127.0.0.1:{st.pbx.sip_port}"
    reg = st.phones._start(
        ["-sf", str(SIPP_DIR / "register.xml"), "-p", str(port), "-s", "1001", "-au", "1001",
         "-ap", st.pbx.secrets["alice"], "-m", "1", "-aa", "-timeout", "10s", target],
        "1001-register",
    )  # fmt: skip
    assert await e2e.wait_exit(reg, 15) == 0, reg.text()[-2000:]
    st.phones._start(["-sf", str(xml), "-p", str(port), "-aa", "-m", "10", target], "1001-uas")


@contextlib.asynccontextmanager
async def web(st: Stack) -> AsyncIterator[tuple[str, Wallboard]]:
    """The whole wallboard (MQTT feed, AMI links) on a free port, with supervisor sam and
    alice's desk password."""
    with Session(st.engine) as s, s.begin():
        accounts.add_user(s, "sam", PASSWORD, "supervisor")
        accounts.set_agent_password(s, "alice", PASSWORD)
    settings = dataclasses.replace(
        st.settings,
        wallboard=config.WallboardSettings(port=0, secret_key=config.Secret("e2e-rec")),
    )
    wb = Wallboard(settings, engine=st.engine)
    stop = asyncio.Event()
    task = asyncio.create_task(wb.run(stop), name="e2e-wallboard")
    try:
        async with asyncio.timeout(10):
            await wb.started.wait()
        yield f"http://127.0.0.1:{wb.port}", wb
    finally:
        stop.set()
        async with asyncio.timeout(20):
            await task


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html) or re.search(
        r'name="csrf" content="([^"]+)"', html
    )
    assert found, html[:500]
    return found.group(1)


async def log_in(session: aiohttp.ClientSession, base: str, agent: bool) -> str:
    prefix = "/agent" if agent else ""
    async with session.get(f"{base}{prefix}/login") as page:
        nonce = csrf_of(await page.text())
    name = "alice" if agent else "sam"
    async with session.post(
        f"{base}{prefix}/login",
        allow_redirects=False,
        data={"name": name, "password": PASSWORD, "csrf": nonce},
    ) as resp:
        assert resp.status == 303, await resp.text()  # fmt: skip
    async with session.get(f"{base}{'/agent' if agent else '/board'}") as page:
        return csrf_of(await page.text())


def client() -> aiohttp.ClientSession:
    # The server is an IP address: aiohttp keeps cookies for those only when told to.
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


def rows(engine: Engine) -> list[Recording]:
    with Session(engine) as s:
        return list(s.scalars(sa.select(Recording).order_by(Recording.id)))


async def until(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def on_call(wb: Wallboard) -> None:
    def alice_talks() -> bool:
        return any(a.agent == "alice" and a.state == "on_call"
                   for a in wb.parts.state.agents.values())  # fmt: skip

    await until(alice_talks, 30, "alice on a call")


# --- the tests --------------------------------------------------------------------------------


async def test_a_recorded_call_muted_for_a_while(
    rec_pbx: Pbx, engine: Engine, tmp_path: Path
) -> None:
    async with stack(rec_pbx, engine, tmp_path) as st, web(st) as (base, wb):
        await tone_phone(st, tmp_path)
        await st.login("alice")
        async with client() as agent, client() as sup:
            csrf = await log_in(agent, base, agent=True)
            st.phones.callers(1, patience_ms=40000)
            await on_call(wb)
            rec = (await until(lambda: rows(engine), 10, "the recording's row"))[0]
            assert (rec.reason, rec.state, rec.queue, rec.agent) == ("policy", "recording",
                                                                     "sales", "alice")  # fmt: skip
            status = await (await agent.get(f"{base}/agent/recording")).json()
            assert status["call"]["recording"] is True, status
            await asyncio.sleep(max(0.0, rec.started_at.timestamp() + 3.0 - time.time()))
            async with agent.post(
                f"{base}/agent/recording/mute", json={"csrf": csrf, "on": "true"}
            ) as resp:
                assert resp.status == 200, await resp.text()  # fmt: skip
            muted_at = time.time()
            await asyncio.sleep(3.0)
            async with agent.post(
                f"{base}/agent/recording/mute", json={"csrf": csrf, "on": "false"}
            ) as resp:
                assert resp.status == 200, await resp.text()  # fmt: skip
            resumed_at = time.time()
            done = await until(lambda: [r for r in rows(engine) if r.state == "done"], 30,
                               "the recording to complete")  # fmt: skip
            rec = done[0]
            # The agent never reaches the recording.
            async with agent.get(
                f"{base}/recordings/{rec.id}/audio", allow_redirects=False
            ) as resp:
                assert (resp.status, resp.headers["Location"]) == (303, "/agent")  # fmt: skip
            # A supervisor plays it, seeking with ranges: one listen.
            await log_in(sup, base, agent=False)
            path = Path(rec_pbx.settings.recording.dir) / rec.path
            whole = path.read_bytes()
            async with sup.get(
                f"{base}/recordings/{rec.id}/audio", headers={"Range": "bytes=0-"}
            ) as resp:
                assert resp.status == 206
                assert await resp.read() == whole  # fmt: skip
            mid = len(whole) // 2
            async with sup.get(
                f"{base}/recordings/{rec.id}/audio", headers={"Range": f"bytes={mid}-"}
            ) as resp:
                assert resp.status == 206
                assert await resp.read() == whole[mid:]  # fmt: skip
            page = await (await sup.get(f"{base}/recordings/{rec.id}")).text()
            assert "Muted 1 time for 0:03 in all" in page, page
    with Session(engine) as s:
        talk = s.execute(sa.text("SELECT talk_seconds FROM calls WHERE uniqueid = :u"),
                         {"u": rec.uniqueid}).scalar_one()  # fmt: skip
        heard = s.execute(sa.select(RecordingListen.user_name, RecordingListen.action)).all()
    assert [tuple(h) for h in heard] == [("sam", "play")]
    rms, seconds = windows_rms(path)
    # A file of the call's length, as its row says.
    assert abs(seconds - talk) <= 1.0, (seconds, talk)
    assert abs(seconds - TALK_MS / 1000) <= 1.0, seconds
    assert rec.duration_ms is not None
    assert abs(rec.duration_ms - seconds * 1000) < 2
    assert rec.size_bytes == path.stat().st_size
    if shutil.which("sox"):
        sox = await asyncio.to_thread(
            subprocess.run, ["sox", "--i", "-D", str(path)], capture_output=True, text=True,
            check=True, timeout=10,
        )  # fmt: skip
        assert abs(float(sox.stdout) - seconds) < 0.01
    # Silence where it was muted, the tone everywhere else; the row says how long.
    start, length = longest_silence(rms)
    expected = resumed_at - muted_at
    assert abs(length - expected) <= 0.4, (start, length, expected)
    assert abs(start - (muted_at - rec.started_at.timestamp())) <= 0.5, start
    assert abs(rec.muted_ms - expected * 1000) <= 400, (rec.muted_ms, expected)
    assert rec.mutes == 1
    loud = [v for i, v in enumerate(rms) if not start - 0.3 <= i * 0.1 <= start + length + 0.3]
    assert min(loud[3:-3]) > 1000, "the tone is heard outside the muted stretch"


async def test_the_agent_records_on_demand_from_the_desk(
    rec_pbx: Pbx, engine: Engine, tmp_path: Path
) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    api = pytest.importorskip("playwright.async_api", reason="the playwright package is absent")
    async with stack(rec_pbx, engine, tmp_path) as st:
        # This queue's calls are recorded on demand: the policy in the database (the desk
        # reads it) and the dialplan's global (rendered as QREC_sales; set it live).
        with Session(engine) as s, s.begin():
            s.execute(sa.update(Queue).where(Queue.name == "sales").values(
                record_policy="on_demand"))  # fmt: skip
        ami = await rec_pbx.ami()
        try:
            reply = await ami.send(Action="Setvar", Variable="QREC_sales", Value="on_demand")
            assert reply["Response"] == "Success", reply
        finally:
            await ami.close()
        await tone_phone(st, tmp_path, talk_ms=12000)
        await st.login("alice")
        async with web(st) as (base, wb), api.async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
            try:
                page = await browser.new_page()
                await page.goto(f"{base}/agent/login")
                await page.fill("input[name=name]", "alice")
                await page.fill("input[name=password]", PASSWORD)
                await page.click("button[type=submit]")
                await page.wait_for_url(f"{base}/agent")
                st.phones.callers(1, patience_ms=40000)
                await on_call(wb)
                await page.wait_for_selector("#rec-record", state="visible", timeout=10_000)
                assert await page.is_hidden("#rec-mute")
                await asyncio.sleep(1.0)
                await page.click("#rec-record")
                rec = (await until(lambda: rows(engine), 10, "the on-demand row"))[0]
                await page.wait_for_selector("#rec-mute", state="visible", timeout=5_000)
                await page.click("#rec-mute")
                await page.wait_for_selector("#rec-resume", state="visible", timeout=5_000)
                await page.screenshot(path=str(ARTIFACTS / "agent-desk-recording-muted.png"))
                await asyncio.sleep(2.0)
                await page.click("#rec-resume")
                await page.wait_for_selector("#rec-mute", state="visible", timeout=5_000)
                done = await until(lambda: [r for r in rows(engine) if r.state == "done"], 30,
                                   "done")  # fmt: skip
                rec = done[0]
                # A supervisor finds it in the list and plays it in the browser's player,
                # which loads the WAV and seeks with range requests.
                sup = await browser.new_page()
                await sup.goto(f"{base}/login")
                await sup.fill("input[name=name]", "sam")
                await sup.fill("input[name=password]", PASSWORD)
                await sup.click("button[type=submit]")
                await sup.wait_for_url(f"{base}/board")
                await sup.click("nav a[href='/recordings']")
                await sup.click(f"#recordings tr[data-id='{rec.id}'] a")
                await sup.wait_for_url(f"{base}/recordings/{rec.id}")
                await sup.wait_for_function(
                    "() => document.querySelector('#rec-player').readyState >= 1", timeout=10_000
                )
                duration = await sup.evaluate("document.querySelector('#rec-player').duration")
                assert rec.duration_ms is not None
                assert abs(duration * 1000 - rec.duration_ms) < 50, (duration, rec.duration_ms)
                await sup.evaluate(
                    """() => new Promise((done) => {
                         const a = document.querySelector('#rec-player');
                         a.addEventListener('seeked', done, { once: true });
                         a.currentTime = a.duration * 0.75;
                       })"""
                )
                await sup.screenshot(path=str(ARTIFACTS / "recording-page.png"), full_page=True)
            finally:
                await browser.close()
    with Session(engine) as s:
        heard = s.execute(sa.select(RecordingListen.user_name, RecordingListen.action)).all()
    # Loading the player is one listen; its seek is none.
    assert [tuple(h) for h in heard] == [("sam", "play")]
    assert (rec.reason, rec.requested_by, rec.mutes) == ("on_demand", "alice", 1)
    assert 1500 <= rec.muted_ms <= 3500, rec.muted_ms
    # It started when asked, well after the answer, and ran to the end of the call.
    with Session(engine) as s:
        answered = s.execute(sa.text("SELECT answered_at FROM calls WHERE uniqueid = :u"),
                             {"u": rec.uniqueid}).scalar_one()  # fmt: skip
    assert (rec.started_at - answered).total_seconds() >= 1.0
    assert rec.duration_ms is not None
    assert abs(rec.duration_ms / 1000 - (rec.ended_at - rec.started_at).total_seconds()) <= 1.0


async def test_a_sampled_queue_records_its_share(
    rec_pbx: Pbx, engine: Engine, tmp_path: Path
) -> None:
    """The dialplan's draw (RAND(0,999) against the share in thousandths): a share of 1
    records every call, a share of 0 none. Set live as the rendered globals would be."""
    async with stack(rec_pbx, engine, tmp_path) as st:
        await st.login("alice")
        await st.phones.phone("alice", "1001", "answer", talk_ms=2000)
        for answered, share in enumerate(("1000", "0"), start=1):
            ami = await rec_pbx.ami()
            try:
                for name, value in (("QREC_sales", "sampled"), ("QRECSHARE_sales", share)):
                    reply = await ami.send(Action="Setvar", Variable=name, Value=value)
                    assert reply["Response"] == "Success", reply
            finally:
                await ami.close()
            await e2e.wait_exit(st.phones.callers(1, patience_ms=20000), 40)

            def closed(n: int = answered) -> bool:
                with engine.connect() as conn:
                    done = conn.scalar(sa.text("SELECT count(*) FROM calls WHERE outcome IS "
                                               "NOT NULL AND agent = 'alice'"))  # fmt: skip
                return (done or 0) >= n

            await until(closed, 15, "the call to be closed")
            await asyncio.sleep(0.5)
        await until(lambda: [r for r in rows(engine) if r.state == "done"], 15, "done")
    recorded = rows(engine)
    assert [(r.reason, r.queue, r.agent) for r in recorded] == [("sampled", "sales", "alice")]
