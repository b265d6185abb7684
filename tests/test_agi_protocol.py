"""The pure AGI parser and encoder, on the recorded bytes fed in every chunking."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.agi.protocol import (
    AgiParser,
    Environment,
    HangupNotice,
    ProtocolError,
    Reply,
    TruncatedMessage,
    encode_command,
    parse_reply,
    quote_arg,
)
from tests import traces
from tests.test_agi_double import ENV_TEMPLATE, environment, parse_args


def feed_chunks(data: bytes, size: int, parser: AgiParser | None = None) -> list[object]:
    parser = parser or AgiParser()
    out: list[object] = []
    for i in range(0, len(data), size):
        out.extend(parser.feed(data[i : i + size]))
    return out


@pytest.mark.parametrize("size", [1, 2, 7, 64, 100_000])
def test_environment_in_any_chunks(size: int) -> None:
    items = feed_chunks(ENV_TEMPLATE, size)
    assert len(items) == 1
    env = items[0]
    assert isinstance(env, Environment)
    assert env.script == "ivr"
    assert env.args == ("arg1",)
    assert env.channel == "PJSIP/trunk-00000000"
    assert env.uniqueid == "1795342827.0"
    assert env.callerid == "5551230001"
    assert env.calleridname == "Carol Caller"
    assert env.get("agi_accountcode") == ""  # "agi_accountcode: " with its trailing space
    assert env.get("agi_rdnis") == "unknown"


def test_script_keeps_query_apart_and_args_keep_spaces() -> None:
    folder = traces.traces_dir() / "agi-errors"
    raw = (folder / "agi-raw-in.txt").read_bytes()
    items = feed_chunks(raw, 5)
    env = items[0]
    assert isinstance(env, Environment)
    assert env.get("agi_network_script") == "errors?case=1"
    assert env.script == "errors"
    assert env.query == {"case": "1"}
    assert env.args == ("alpha", "beta gamma")


def test_script_from_request_when_no_network_script() -> None:
    # launch_netscript leaves agi_network_script out when the URL has no script.
    env = Environment({"agi_request": "agi://127.0.0.1:4573/survey?x=1"})
    assert env.script == "survey"
    assert Environment({"agi_request": "agi://127.0.0.1:4573"}).script == ""
    assert Environment({"agi_callerid": "unknown"}).callerid == ""


@pytest.mark.parametrize("size", [1, 3, 50, 100_000])
def test_recorded_error_replies(size: int) -> None:
    """agi-errors: 200, 510, two multi-line 520s, 200 (data), 200, -1, HANGUP, 511..."""
    raw = (traces.traces_dir() / "agi-errors" / "agi-raw-in.txt").read_bytes()
    items = feed_chunks(raw, size)
    assert isinstance(items[0], Environment)
    replies = items[1:]
    kinds = [r.code if isinstance(r, Reply) else "HANGUP" for r in replies]
    assert kinds == [200, 510, 520, 520, 200, 200, 200, "HANGUP", 511, 511, 200, 200, 200]
    usage = replies[2]
    assert isinstance(usage, Reply)
    assert usage.text.startswith("Invalid command syntax.  Proper usage follows:\nSend the given")
    assert usage.text.endswith("    <value>FAILED</value>\nEnd of proper usage.")
    assert len(usage.text.splitlines()) == 7
    data = replies[4]
    assert isinstance(data, Reply)
    assert data.data == "PJSIP/trunk-00000000"
    wait = replies[6]
    assert isinstance(wait, Reply)
    assert wait.value == -1
    assert isinstance(replies[7], HangupNotice)


@pytest.mark.parametrize(
    ("line", "result", "data", "endpos"),
    [
        ("200 result=0", "0", None, None),
        ("200 result=0 endpos=11234", "0", None, 11234),
        ("200 result=49 endpos=5617", "49", None, 5617),
        ("200 result=1 (PJSIP/trunk-00000000)", "1", "PJSIP/trunk-00000000", None),
        ("200 result= (timeout)", "", "timeout", None),
        ("200 result=12 (timeout)", "12", "timeout", None),
        ("200 result=-1 (hangup) endpos=120", "-1", "hangup", 120),
        ("200 result=1 (a) b (c d)", "1", "a) b (c d", None),
        ("200 result=1 ()", "1", "", None),
        ("200 result=-1", "-1", None, None),
    ],
)
def test_reply_fields(line: str, result: str, data: str | None, endpos: int | None) -> None:
    (reply,) = AgiParser(expect_environment=False).feed(line.encode() + b"\n")
    assert isinstance(reply, Reply)
    assert (reply.code, reply.result, reply.data, reply.endpos) == (200, result, data, endpos)


def test_single_line_520_and_hangup_between_replies() -> None:
    parser = AgiParser(expect_environment=False)
    items = parser.feed(b"520 Invalid command syntax.  Proper usage not available.\nHANGUP\n")
    assert isinstance(items[0], Reply)
    assert items[0].code == 520
    assert isinstance(items[1], HangupNotice)
    assert parse_reply(510, "Invalid or unknown command").code == 510


@pytest.mark.parametrize(
    "data",
    [b"agi_network: yes\nagi_net", b"agi_network: yes\n", b"200 result=0\n520-Invalid\nmore\n"],
)
def test_eof_inside_an_item_is_truncated(data: bytes) -> None:
    parser = AgiParser(expect_environment=not data.startswith(b"200"))
    parser.feed(data)
    with pytest.raises(TruncatedMessage):
        parser.feed_eof()


def test_clean_eof() -> None:
    parser = AgiParser()
    parser.feed_eof()  # nothing sent at all
    parser = AgiParser()
    parser.feed(ENV_TEMPLATE + b"200 result=0\n")
    parser.feed_eof()


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n",
        b"agi_network yes\n",
        ENV_TEMPLATE + b"hello\n",
        ENV_TEMPLATE + b"20 result=0\n",
    ],
)
def test_garbage_is_a_protocol_error(data: bytes) -> None:
    parser = AgiParser()
    with pytest.raises(ProtocolError):
        parser.feed(data)
    with pytest.raises(ProtocolError):
        parser.feed(b"200 result=0\n")  # stays failed


def test_limits() -> None:
    with pytest.raises(ProtocolError, match="without a line end"):
        AgiParser(max_line=100).feed(b"a" * 101)
    with pytest.raises(ProtocolError, match="environment lines"):
        AgiParser(max_env_lines=3).feed(b"".join(b"agi_k%d: v\n" % i for i in range(4)))
    with pytest.raises(ProtocolError, match="lines"):
        AgiParser(expect_environment=False, max_block_lines=3).feed(b"520-x\na\nb\nc\nd\n")


def test_encode_command_quotes_like_parse_args() -> None:
    assert encode_command("STREAM FILE", "hello-world", "") == b'STREAM FILE hello-world ""\n'
    assert encode_command("GET DATA", "beep", 5000, 1) == b"GET DATA beep 5000 1\n"
    assert encode_command("SET VARIABLE", "QUEUE", "sales") == b"SET VARIABLE QUEUE sales\n"
    assert encode_command("VERBOSE", "after hangup", 1) == b'VERBOSE "after hangup" 1\n'
    assert quote_arg('a "b" \\c') == '"a \\"b\\" \\\\c"'


@pytest.mark.parametrize("bad", ["a\nNOOP", "x\r", "\0"])
def test_encode_refuses_injection(bad: str) -> None:
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        encode_command("SET VARIABLE", "X", bad)


def test_encode_refuses_bad_names_and_long_lines() -> None:
    with pytest.raises(ValueError, match="command name"):
        encode_command("NOOP\nHANGUP")
    with pytest.raises(ValueError, match="longer"):
        encode_command("SET VARIABLE", "X", "y" * 9000)


@given(
    st.lists(
        st.text(st.characters(exclude_characters="\r\n\0", exclude_categories=["Cs"]), max_size=30),
        max_size=6,
    )
)
def test_any_arguments_survive_parse_args(args: list[str]) -> None:
    line = encode_command("SET VARIABLE", *args).decode().rstrip("\n")
    assert parse_args(line) == ["SET", "VARIABLE", *args]


@given(st.binary(max_size=300), st.integers(min_value=1, max_value=40))
def test_parser_never_raises_anything_else(data: bytes, size: int) -> None:
    parser = AgiParser()
    try:
        feed_chunks(environment() + data, size, parser)
        parser.feed_eof()
    except ProtocolError:
        pass
