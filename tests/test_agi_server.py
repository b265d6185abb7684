"""The FastAGI server and the channel API against the Asterisk double (recorded wire protocol):
every error reply, hang-ups, the session cap, time-outs, garbage, and a fuzzed peer with a
ticker proving the event loop never stalls."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callcenter.agi.channel import (
    AgiCommandError,
    AgiCommandFailed,
    CallerHungUp,
    Channel,
    SessionLost,
)
from callcenter.agi.flows import demo
from callcenter.agi.server import AgiServer, Script
from tests import traces
from tests.test_agi_double import ENV_TEMPLATE, AsteriskDouble, environment


@contextlib.asynccontextmanager
async def serving(scripts: Mapping[str, Script], **kwargs: Any) -> AsyncIterator[AgiServer]:
    server = AgiServer(scripts, host="127.0.0.1", port=0, **kwargs)
    await server.start()
    try:
        yield server
    finally:
        await server.close(grace=2.0)


async def test_demo_flow_sends_the_recorded_commands() -> None:
    """The recorded ``ivr`` script's commands, byte for byte (inbound-answered/agi-raw-out)."""
    async with serving({"demo": demo}) as server:
        record = await AsteriskDouble(server.port, script="demo", dtmf="1").call()
    recorded = (traces.traces_dir() / "inbound-answered" / "agi-raw-out.txt").read_bytes()
    assert record.received.startswith(recorded)
    assert record.commands[4] == "SET VARIABLE IVR_PATH demo:menu[1]>sales"
    assert record.variables["QUEUE"] == "sales"
    assert record.closed_by_server
    assert not record.failure
    assert server.stats.completed == 1


async def test_demo_flow_timeout_goes_to_support() -> None:
    async with serving({"demo": demo}) as server:
        record = await AsteriskDouble(server.port, script="demo", dtmf="t").call()
    assert record.model.commands[2] == "GET DATA beep 5000 1"
    assert record.variables["QUEUE"] == "support"
    assert record.variables["IVR_PATH"] == "demo:menu[t]>support"


async def test_recorded_error_session_through_the_channel() -> None:
    """The agi-errors conversation, driven through the channel API: 510 and 520 raise
    AgiCommandError (with the whole usage), WAIT FOR DIGIT's -1 then HANGUP + 511 raise
    CallerHungUp, and the commands Asterisk allows on a dead channel still work."""
    seen: dict[str, Any] = {}

    async def errors(channel: Channel) -> None:
        seen["args"] = channel.args
        await channel.answer()
        with pytest.raises(AgiCommandError) as e510:
            await channel.command("FOO BAR BAZ")
        seen["510"] = e510.value.reply.code
        with pytest.raises(AgiCommandError) as e520:
            await channel.command("STREAM FILE")
        seen["520"] = e520.value.reply
        with pytest.raises(AgiCommandError):
            await channel.command("GET DATA")
        seen["channel"] = await channel.get_variable("CHANNEL")
        seen["status"] = await channel.channel_status()
        with pytest.raises(CallerHungUp):
            await channel.wait_for_digit(15.0)
        seen["hung_up"] = channel.hung_up
        with pytest.raises(CallerHungUp):
            await channel.stream("beep")  # refused locally: nothing sent
        seen["after"] = await channel.get_variable("CHANNEL")
        await channel.verbose("after hangup", 1)
        await channel.command("NOOP")

    async with serving({"errors": errors}) as server:
        double = AsteriskDouble(server.port, script="errors?case=1", args=["alpha", "beta gamma"],
                                dtmf="h")  # fmt: skip
        record = await double.call()
    assert seen["args"] == ("alpha", "beta gamma")
    assert seen["510"] == 510
    assert seen["520"].code == 520
    assert "PLAYBACKSTATUS" in seen["520"].text
    assert seen["channel"] == seen["after"] == "PJSIP/trunk-00000000"
    assert seen["status"] == 6
    assert seen["hung_up"]
    recorded = (traces.traces_dir() / "agi-errors" / "agi-raw-out.txt").read_text().splitlines()
    # Ours probes with CHANNEL STATUS after -1, exactly as the recorder did; STREAM FILE is
    # not sent once we know the channel is dead (Asterisk would answer 511).
    assert record.commands == [c for c in recorded if c != 'STREAM FILE beep ""']
    assert server.stats.completed == 1


async def test_hangup_during_get_data_and_missing_sound() -> None:
    outcome: dict[str, Any] = {}

    async def script(channel: Channel) -> None:
        outcome["missing"] = await channel.stream("no-such-sound", "12")
        with pytest.raises(AgiCommandFailed):
            await channel.get_data("no-such-sound", 1.0, 1)
        try:
            await channel.get_data("beep", 1.0, 4)
        except CallerHungUp:
            outcome["hung_up"] = True
            await channel.set_variable("IVR_PATH", "main:menu")
            raise

    async with serving({"s": script}) as server:
        double = AsteriskDouble(server.port, script="s", dtmf="12h", sounds={"beep"})
        record = await double.call()
    assert outcome == {"missing": "", "hung_up": True}
    assert record.variables["IVR_PATH"] == "main:menu"
    assert server.stats.hung_up == 1


async def test_collect_digits_terminator_and_several_prompts() -> None:
    got: list[Any] = []

    async def script(channel: Channel) -> None:
        got.append(
            await channel.collect_digits(["a", "b"], timeout=1, max_digits=5, terminator="*")
        )
        got.append(await channel.collect_digits(["a"], timeout=1, max_digits=5))
        got.append(await channel.collect_digits([], timeout=1, max_digits=2))

    async with serving({"s": script}) as server:
        record = await AsteriskDouble(server.port, script="s", dtmf="12*34#t").call()
    assert [(d.digits, d.timed_out) for d in got] == [("12", False), ("34", False), ("", True)]
    assert record.commands[:2] == ["STREAM FILE a 0123456789*#", "WAIT FOR DIGIT 1000"]
    assert record.commands[3] == "GET DATA a 1000 5"


async def test_unknown_script_and_script_bug_answer_failure() -> None:
    async def buggy(channel: Channel) -> None:
        raise RuntimeError("bug")

    async with serving({"buggy": buggy}) as server:
        unknown = await AsteriskDouble(server.port, script="nope").call()
        bug = await AsteriskDouble(server.port, script="buggy").call()
    assert unknown.failure
    assert unknown.commands == ["FAILURE"]
    assert bug.failure
    assert server.stats.unknown_script == 1
    assert server.stats.failed == 1


async def test_session_cap_refuses_politely() -> None:
    release = asyncio.Event()

    async def hold(channel: Channel) -> None:
        await release.wait()

    async with serving({"hold": hold}, max_sessions=2) as server:
        held = [asyncio.create_task(AsteriskDouble(server.port, script="hold").call())
                for _ in range(2)]  # fmt: skip
        while server.active < 2:
            await asyncio.sleep(0.01)
        refused = await AsteriskDouble(server.port, script="hold").call()
        assert refused.failure  # AGISTATUS=FAILURE at once, not a hang
        release.set()
        records = await asyncio.gather(*held)
    assert all(r.closed_by_server and not r.failure for r in records)
    assert server.stats.refused == 1
    assert server.stats.completed == 2


async def test_silent_peer_and_slow_asterisk_time_out() -> None:
    async def script(channel: Channel) -> None:
        await channel.answer()

    async with serving({"s": script}, env_timeout=0.2, command_timeout=0.2) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        assert await asyncio.wait_for(reader.read(), 2) == b""  # closed after env_timeout
        writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(environment("s"))
        assert await asyncio.wait_for(reader.readline(), 2) == b"ANSWER\n"
        assert await asyncio.wait_for(reader.read(), 2) == b""  # no reply: session lost
        writer.close()
    assert server.stats.lost == 2


async def test_chatter_does_not_extend_a_wait() -> None:
    """HANGUP lines are not replies: a peer sending them forever still times out."""

    async def script(channel: Channel) -> None:
        await channel.answer()

    async with serving({"s": script}, command_timeout=0.3) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(environment("s"))
        assert await asyncio.wait_for(reader.readline(), 2) == b"ANSWER\n"
        t0 = time.monotonic()
        with contextlib.suppress(OSError):
            while not reader.at_eof() and time.monotonic() - t0 < 3:
                writer.write(b"HANGUP\n")
                await asyncio.sleep(0.05)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(reader.read(100), 0.01)
        assert time.monotonic() - t0 < 1.5
        writer.close()
    assert server.stats.lost == 1


async def test_peer_closing_mid_session_and_garbage_cost_one_session() -> None:
    async def script(channel: Channel) -> None:
        with pytest.raises(SessionLost):
            await channel.stream("hello-world")
        raise SessionLost("as expected")

    async with serving({"s": script}) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(environment("s"))
        await reader.readline()
        writer.write(b"200 res")  # half a reply, then EOF
        writer.write_eof()
        await asyncio.wait_for(reader.read(), 2)
        writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: example\r\n\r\n")
        assert await asyncio.wait_for(reader.read(), 2) == b""
        writer.close()
    assert server.stats.lost == 2


async def test_close_cancels_sessions_after_grace() -> None:
    started = asyncio.Event()

    async def forever(channel: Channel) -> None:
        started.set()
        await asyncio.sleep(3600)

    server = AgiServer({"f": forever}, host="127.0.0.1", port=0)
    await server.start()
    call = asyncio.create_task(AsteriskDouble(server.port, script="f").call())
    await started.wait()
    t0 = time.monotonic()
    await server.close(grace=0.2)
    assert time.monotonic() - t0 < 2
    record = await call
    assert record.closed_by_server


# --- fuzz: arbitrary bytes, half lines, early EOF; the loop keeps ticking ------------------------

chunks = st.lists(
    st.one_of(
        st.binary(max_size=64),
        st.sampled_from(
            [
                b"\n",
                b"HANGUP\n",
                b"200 result=0\n",
                b"520-Invalid\n",
                b"520 End\n",
                b"agi_x: y\n",
                b"200 result=1 (",
                b"\x00\xff",
                b"a" * 2000,
                ENV_TEMPLATE[:40],
                ENV_TEMPLATE,
            ]
        ),
    ),
    max_size=12,
)


async def _fuzz_one(port: int, parts: list[bytes], with_env: bool, close: str) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        if with_env:
            writer.write(environment("busy"))
        # The server may have hung up on us already (garbage): writing then fails, fine.
        with contextlib.suppress(OSError):
            for part in parts:
                writer.write(part)
                await asyncio.sleep(0)
            if close == "eof":
                writer.write_eof()
        if close == "abort":
            writer.transport.abort()
            return
        with contextlib.suppress(TimeoutError, ConnectionError):
            await asyncio.wait_for(reader.read(), 1.0)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def _busy(channel: Channel) -> None:
    await channel.answer()
    await channel.stream("hello-world", "12")
    await channel.get_data("beep", 0.2, 2)
    await channel.set_variable("X", "y z")


async def _fuzz(examples: list[tuple[list[bytes], bool, str]]) -> float:
    gaps: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        last = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(0.005)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    tick = asyncio.create_task(ticker())
    async with serving({"busy": _busy}, env_timeout=0.5, command_timeout=0.5) as server:
        await asyncio.gather(*(_fuzz_one(server.port, *e) for e in examples))
        # The server still serves a proper call afterwards.
        record = await AsteriskDouble(server.port, script="busy", dtmf="1t").call()
        assert record.commands[0] == "ANSWER"
        assert record.variables["X"] == "y z"
    stop.set()
    await tick
    return max(gaps)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(chunks, st.booleans(), st.sampled_from(["eof", "abort", "keep"])),
                min_size=1, max_size=8))  # fmt: skip
def test_fuzzed_peers_never_stall_the_loop(examples: list[tuple[list[bytes], bool, str]]) -> None:
    max_gap = asyncio.run(_fuzz(examples))
    assert max_gap < 0.25, f"the event loop stalled for {max_gap:.3f} s"
