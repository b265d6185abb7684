"""What the fuzzer found (scripts/bench_fuzz.py, docs/fuzzing.md), each as the smallest input
that showed it, and the fuzzer's property in short: no exception escapes the AMI reader, the
typed events or the AGI channel, and no input holds the event loop for long.

Found, and fixed where named:

- AMI ``Timestamp: 1e999`` (or ``inf``, ``nan``, ``179661996257997``): ``parse_event`` took it
  as the event's time, which the call log cannot format: the bridge's reader stopped
  (``events.event_time``).
- AMI: a NUL byte in a frame, which PostgreSQL text refuses (``AmiParser.feed``).
- AGI ``200 result=99999999999999999999`` to STREAM FILE / WAIT FOR DIGIT / SAY: ``chr()``
  raised OverflowError out of the channel (``channel._digit``).
- AGI ``endpos=²`` (a digit to ``str.isdigit``, not to ``int``): ValueError
  (``Reply.endpos``).
- AGI ``agi_request: agi://[...`` without ``agi_network_script``: ``urlsplit`` raised out of
  ``Environment.script``, killing the session task and leaving the socket open.
- AGI quadratic regexes: a 64 kB reply ``200 result=1 ( a=) a=) ... !`` took 25 s (the data's
  end was found by a regex over the rest of the line after every ``)``), and
  ``200 x (99999...`` 30 s (``key=value`` pairs searched from every letter of a long word).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Awaitable, Callable

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter.agi.channel import AgiError, Channel
from callcenter.agi.protocol import (
    AgiParser,
    Environment,
    ProtocolError,
    Reply,
    parse_reply,
)
from callcenter.agi.server import AgiServer
from callcenter.ami import events as ev
from callcenter.ami.connection import _Protocol
from callcenter.ami.protocol import AmiParser, FrameTooLarge, MalformedMessage, Message
from callcenter.bridge.rows import EVENT_COLUMNS, copy_timestamp, event_row
from tests.test_agi_double import ENV_TEMPLATE

RECEIVED = 1_795_343_011.5

# --- AMI -----------------------------------------------------------------------------------


def _events(data: bytes) -> list[ev.Event]:
    frames = AmiParser(expect_banner=False).feed(data)
    return [
        ev.parse_event(f, RECEIVED, "n")
        for f in frames
        if isinstance(f, Message | MalformedMessage)
    ]


@pytest.mark.parametrize(
    "stamp", ["1e999", "inf", "-inf", "nan", "179661996257997", "1e20", "-5", "253402300800"]
)
def test_timestamp_the_call_log_cannot_store_falls_back_to_receive_time(stamp: str) -> None:
    data = f"Event: Hangup\r\nTimestamp: {stamp}\r\nUniqueid: 1.1\r\nCause: 16\r\n\r\n".encode()
    (event,) = _events(data)
    assert isinstance(event, ev.Hangup)
    assert event.time == RECEIVED
    copy_timestamp(event.time)  # what the bridge does with it first (its audit row)


def test_a_valid_timestamp_is_still_the_events_time() -> None:
    (event,) = _events(b"Event: Hangup\r\nTimestamp: 1795343011.000001\r\nUniqueid: 1.1\r\n\r\n")
    assert event.time == 1795343011.000001
    (bad,) = _events(b"Event: X\r\nTimestamp: nan\r\n\r\n")  # an unknown event too
    assert bad.time == RECEIVED


def test_nul_is_replaced_so_the_call_log_can_store_the_frame(database_url: str) -> None:
    """PostgreSQL text refuses NUL: the audit row of such a frame failed its whole batch, at
    every retry from the spool. No Asterisk string holds one; the parser replaces it."""
    data = b"Event: UserEvent\r\nUserEvent: X\r\nData: a\x00b\r\nUniqueid: 1.1\r\n\r\n"
    (frame,) = AmiParser(expect_banner=False).feed(data)
    assert isinstance(frame, Message)
    assert frame["Data"] == "a\ufffdb"
    line = event_row("n", "k:1", RECEIVED, "UserEvent", frame.text, None, "1.1", None)
    with psycopg.connect(database_url.replace("+psycopg", "")) as conn, conn.cursor() as cur:
        with cur.copy(f"COPY call_events ({', '.join(EVENT_COLUMNS)}) FROM STDIN") as copy:
            copy.write(line)
        cur.execute("SELECT raw FROM call_events WHERE dedup_key = 'k:1'")
        assert cur.fetchone() == (frame.text,)
        conn.rollback()


# --- AGI -----------------------------------------------------------------------------------


class _Replies:
    """A channel transport that answers each command with the next recorded reply line(s),
    through the real parser."""

    def __init__(self, data: bytes) -> None:
        self.parser = AgiParser(expect_environment=False)
        self.items = self.parser.feed(data)
        self.hung_up = False

    async def command(self, line: bytes, timeout: float) -> Reply:
        while self.items:
            item = self.items.pop(0)
            if isinstance(item, Reply):
                return item
            self.hung_up = True
        raise AgiError("no more replies")


def _channel(data: bytes) -> Channel:
    env = AgiParser().feed(ENV_TEMPLATE)[0]
    assert isinstance(env, Environment)
    return Channel(_Replies(data), env)


@pytest.mark.parametrize("result", ["99999999999999999999", "1114112", "-99999999999999999999"])
async def test_a_digit_result_out_of_range_is_no_digit(result: str) -> None:
    reply = f"200 result={result}\n".encode()
    assert await _channel(reply).stream("hello-world", "12") == ""
    assert await _channel(reply).wait_for_digit(1.0) == ""
    assert await _channel(reply).say_number(5, "#") == ""


@pytest.mark.parametrize("raw", ["²", "--5", "9" * 5000, "+5", "1_0", "٣"])
def test_endpos_that_is_not_a_plain_integer_is_none(raw: str) -> None:
    assert parse_reply(200, f"result=0 endpos={raw}").endpos is None
    assert parse_reply(200, "result=0 endpos=-12").endpos == -12


def test_bad_request_url_without_network_script_is_no_script() -> None:
    env = Environment({"agi_request": "agi://[::1/ivr?case=1"})
    assert env.script == "ivr"
    assert Environment({"agi_request": "agi://[x"}).script == ""


async def test_bad_request_url_ends_the_session_with_failure() -> None:
    """The session answers FAILURE and closes, instead of dying with the socket open."""
    server = AgiServer({"ivr": _never}, host="127.0.0.1", port=0, env_timeout=2.0)
    await server.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        env = b"agi_network: yes\nagi_request: agi://[127.0.0.1/nosuch\nagi_channel: PJSIP/t\n\n"
        writer.write(env)
        async with asyncio.timeout(5):
            answer = await reader.read()
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    finally:
        await server.close(grace=1.0)
    assert answer == b"FAILURE\n"
    assert server.stats.unknown_script == 1


async def _never(channel: Channel) -> None:
    raise AssertionError("the script must not run")


_OLD_TAIL = re.compile(r"(\s+\w+=\S*)*\s*", re.DOTALL)


def _old_data_end(rest: str) -> int:
    """The rule as the old code applied it (one regex per ``)``): the specification."""
    end = len(rest)
    while (end := rest.rfind(")", 0, end)) > 0:
        if _OLD_TAIL.fullmatch(rest, end + 1):
            return end
    return -1


def _old_data(text: str) -> str | None:
    m = re.match(r"result=(\S*)(.*)", text, re.DOTALL)
    assert m is not None
    rest = m.group(2).lstrip(" ")
    if not rest.startswith("("):
        return None
    end = _old_data_end(rest)
    return rest[1:end] if end > 0 else None


@pytest.mark.parametrize(
    "line",
    [
        "200 result=1 (" + " a=)" * 16_000 + " !",
        "200 result=1 (" + " a=b)" * 13_000 + " !",
        "200 rsult=1 (" + "9" * 60_000,
        "200 result=1 (" + "x=" * 30_000,
        "200 result=1 " + "(" * 30_000 + ")" * 30_000,
    ],
    ids=["pairs-and-parens", "pairs-with-values", "long-word", "long-key", "nested"],
)
def test_a_64k_reply_line_parses_in_linear_time(line: str) -> None:
    parser = AgiParser(expect_environment=False)
    started = time.perf_counter()
    (reply,) = parser.feed(line.encode() + b"\n")
    took = time.perf_counter() - started
    assert isinstance(reply, Reply)
    assert took < 2.0, f"{took:.1f} s for a {len(line)}-character line (was 25 s and more)"


@settings(max_examples=300, deadline=None, database=None)
@given(st.text(st.sampled_from("() =a1é_\t)x"), max_size=24))
def test_data_ends_where_the_old_rule_said(tail: str) -> None:
    text = "result=1 (" + tail
    assert parse_reply(200, text).data == _old_data(text)


@settings(max_examples=300, deadline=None, database=None)
@given(st.text(st.sampled_from("a9=é )(_-\t=x"), max_size=24))
def test_pairs_are_those_of_the_old_pattern(text: str) -> None:
    old = dict(re.findall(r"(\w+)=(\S*)", text))
    assert dict(parse_reply(200, "x " + text).extra) == old


# --- the fuzzer's property, in short -----------------------------------------------------------

_ODD = [
    "", " ", "-1", "0", "1e999", "nan", "inf", "-inf", "179661996257997", "9" * 5000, "²",
    "٣", "1_0", "0x1f", "true", "12:34", "99:99:99:99", "<unknown>", "a: b", "\x00", "\ufffd",
]  # fmt: skip
_KEYS = [
    "Timestamp", "Uniqueid", "Queue", "MemberName", "Interface", "Name", "Location",
    "HoldTime", "TalkTime", "RingTime", "Position", "Status", "Paused", "InCall", "Penalty",
    "Duration", "Cause", "Reason", "ServicelevelPerf", "ListItems", "Variable", "UserEvent",
    "ActionID", "Message", "EventList",
]  # fmt: skip
_HEADS = [
    *(f"Event: {name}" for name in sorted(ev.EVENT_TYPES)),
    "Event: X",
    "Response: Success",
    "Response: Follows",
]
_NOISE = [b"\r\n", b"\r\n\r\n", b"\n", b"\r", b":", b": ", b"\x00", b"\xff", b"\xc3"]


@st.composite
def ami_frames(draw: st.DrawFn) -> bytes:
    """A frame of ``Key: value`` lines (an event's or a reply's), odd values, bits of noise."""
    head = draw(st.sampled_from(_HEADS))
    values = st.sampled_from(_ODD) | st.text(max_size=8)
    lines = draw(st.lists(st.tuples(st.sampled_from(_KEYS), values), max_size=8))
    text = "\r\n".join([head, *(f"{k}: {v}" for k, v in lines)]).encode("utf-8", "surrogatepass")
    if draw(st.booleans()):
        at = draw(st.integers(min_value=0, max_value=len(text)))
        text = text[:at] + draw(st.sampled_from(_NOISE) | st.binary(max_size=4)) + text[at:]
    return text + b"\r\n\r\n"


ami_streams = st.lists(ami_frames(), min_size=1, max_size=6).map(b"".join)


class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.aborted = False

    def abort(self) -> None:
        self.aborted = True


async def _read_ami(stream: bytes, size: int) -> None:
    protocol = _Protocol(time.time)
    protocol.connection_made(_Transport())
    for i in range(0, len(stream), size):
        started = time.perf_counter()
        protocol.data_received(stream[i : i + size])
        while (item := protocol.take()) is not None:
            if isinstance(item.frame, FrameTooLarge):
                continue
            event = ev.parse_event(item.frame, item.at, "n")
            copy_timestamp(event.time)
        assert time.perf_counter() - started < 0.5
    protocol.connection_lost(None)


@settings(max_examples=300, deadline=None, database=None)
@given(ami_streams, st.integers(min_value=1, max_value=64), st.booleans())
def test_ami_reader_never_raises_and_events_are_storable(
    data: bytes, size: int, banner: bool
) -> None:
    """Bytes through the bridge's reader, then every frame it queues typed: nothing raises,
    no read holds the loop, every event's time can be stored."""
    banner_line = b"Asterisk Call Manager/11.0.0\r\n" if banner else b""
    asyncio.run(_read_ami(banner_line + data, size))


_REFUSALS = ["510 Invalid or unknown command", "511 Command Not Permitted", "520 No usage"]


@st.composite
def agi_replies(draw: st.DrawFn) -> bytes:
    """What Asterisk answers: 200 replies with odd results, data and pairs; the other codes,
    multi-line usage, HANGUP; bits of noise."""
    lines = []
    for _ in range(draw(st.integers(min_value=1, max_value=12))):
        kind = draw(st.sampled_from(["200", "200", "200", "other", "520-", "HANGUP"]))
        if kind == "200":
            result = draw(st.sampled_from(["0", "1", "-1", "49", "99999999999999999999",
                                           "1114112", "", "٣", "9" * 5000]))  # fmt: skip
            value = draw(st.sampled_from(["", " (timeout)", " (a (b) c)", " (", " )", " ((x)"]))
            pairs = draw(st.sampled_from(["", " endpos=0", " endpos=²", " endpos=--5", " a=)"]))
            lines.append(f"200 result={result}{value}{pairs}")
        elif kind == "other":
            lines.append(draw(st.sampled_from(_REFUSALS)))
        elif kind == "520-":
            lines += ["520-Invalid command syntax.  Proper usage follows:", "usage", "520 End"]
        else:
            lines.append("HANGUP")
    data = ("\n".join(lines) + "\n").encode()
    if draw(st.booleans()):
        at = draw(st.integers(min_value=0, max_value=len(data)))
        data = data[:at] + draw(st.sampled_from(_NOISE) | st.binary(max_size=4)) + data[at:]
    return data


async def _run_channel(data: bytes) -> None:
    channel = _channel(data)
    steps: list[Callable[[], Awaitable[object]]] = [
        lambda: channel.answer(),
        lambda: channel.stream("hello-world", "12"),
        lambda: channel.get_data("beep", 1.0, 3),
        lambda: channel.wait_for_digit(1.0),
        lambda: channel.say_digits("12"),
        lambda: channel.get_variable("X"),
        lambda: channel.exec("Playback", "beep"),
        lambda: channel.channel_status(),
    ]
    for step in steps:
        with contextlib.suppress(AgiError):
            await step()


@settings(max_examples=300, deadline=None, database=None)
@given(agi_replies())
def test_agi_replies_raise_nothing_but_agi_errors(data: bytes) -> None:
    """Replies through the parser into every channel method and every derived field: only
    AgiError (which the server handles) or ProtocolError (the connection's) comes out."""
    try:
        items = AgiParser(expect_environment=False).feed(data)
    except ProtocolError:
        return
    for item in items:
        if isinstance(item, Reply):
            _ = (item.value, item.endpos, item.timed_out, item.data)
    asyncio.run(_run_channel(data))


_ENV_LINES = [
    *ENV_TEMPLATE.split(b"\n")[:-2],
    b"agi_request: agi://[::1/x",
    b"agi_network_script: a?b=%zz&c",
    b"agi_arg_1: \xff",
    b"agi_callerid: unknown",
    b"agi_x:",
    b": y",
    b"\x00",
]


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(st.sampled_from(_ENV_LINES), max_size=30))
def test_agi_environment_raises_only_protocol_error(lines: list[bytes]) -> None:
    data = b"\n".join(lines) + b"\n\n"
    try:
        items = AgiParser().feed(data)
    except ProtocolError:
        return
    for item in items:
        if isinstance(item, Environment):
            _ = (item.script, item.query, item.args, item.callerid, item.calleridname,
                 item.dnid, item.language, item.channel, item.uniqueid)  # fmt: skip
