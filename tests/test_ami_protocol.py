"""AMI framing: every recorded byte parses, at any chunking, back to exactly the same bytes."""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter.ami.protocol import (
    ActionValue,
    AmiParser,
    Banner,
    Frame,
    FrameTooLarge,
    MalformedMessage,
    Message,
    encode_action,
)
from tests import traces

AMI_FILES = [(s, i) for s in traces.scenarios() for i in range(len(traces.ami_files(s)))]
AMI_IDS = [f"{s}-{i + 1}" for s, i in AMI_FILES]


def parse_chunks(chunks: list[bytes], *, expect_banner: bool = True) -> list[Frame]:
    parser = AmiParser(expect_banner=expect_banner)
    frames: list[Frame] = []
    for chunk in chunks:
        frames.extend(parser.feed(chunk))
    return frames


def serialize(frames: list[Frame]) -> bytes:
    """Frames back to wire bytes: banner line, then ``Key: value`` lines and a blank line."""
    out = []
    for frame in frames:
        if isinstance(frame, Banner):
            out.append(frame.text + "\r\n")
        else:
            assert isinstance(frame, Message), frame
            out.append("".join(f"{k}: {v}\r\n" for k, v in frame.pairs) + "\r\n")
    return "".join(out).encode("utf-8")


def frame_ends(data: bytes) -> list[int]:
    """Offsets just after the banner line and after each frame's blank line."""
    ends = [data.index(b"\r\n") + 2]
    pos = ends[0]
    while (end := data.find(b"\r\n\r\n", pos)) >= 0:
        pos = end + 4
        ends.append(pos)
    return ends


@pytest.mark.parametrize(("scenario", "index"), AMI_FILES, ids=AMI_IDS)
def test_trace_parses_back_to_the_same_bytes(scenario: str, index: int) -> None:
    data = traces.ami_bytes(scenario)[index]
    frames = parse_chunks([data])
    assert isinstance(frames[0], Banner)
    assert frames[0].text == "Asterisk Call Manager/11.0.0"  # README: the banner of this build
    assert all(isinstance(f, Message) for f in frames[1:])
    assert serialize(frames) == data
    assert len(frames) == len(frame_ends(data))


@pytest.mark.parametrize("scenario", traces.scenarios())
def test_recorded_socket_reads_give_the_same_frames(scenario: str) -> None:
    """Feeding the chunks exactly as the recorder read them from the socket."""
    chunks = traces.timeline(scenario)
    files = traces.ami_bytes(scenario)
    conns = sorted({c.conn for c in chunks if c.dir == "in"}, key=lambda c: int(c[4:]))
    assert len(conns) == len(files)
    for conn, data in zip(conns, files, strict=True):
        received = [c.data for c in chunks if c.conn == conn and c.dir == "in"]
        assert b"".join(received) == data  # README: the timeline joins to ami.txt
        assert parse_chunks(received) == parse_chunks([data])


@pytest.mark.parametrize(("scenario", "index"), AMI_FILES, ids=AMI_IDS)
def test_split_anywhere_near_frame_boundaries(scenario: str, index: int) -> None:
    """Two chunks, cut at every offset within 4 bytes of a frame end (CR/LF of the
    terminator split every way) in the first 16 kB, plus 40 cuts spread over the file."""
    data = traces.ami_bytes(scenario)[index]
    window = data[: next((e for e in frame_ends(data) if e >= 16_000), len(data))]
    expected = parse_chunks([window])
    cuts = {c for e in frame_ends(window) for c in range(e - 4, e + 5) if 0 < c < len(window)}
    for cut in sorted(cuts):
        assert parse_chunks([window[:cut], window[cut:]]) == expected, cut
    whole = parse_chunks([data])
    for k in range(1, 41):
        cut = len(data) * k // 41
        assert parse_chunks([data[:cut], data[cut:]]) == whole, cut


@pytest.mark.parametrize(("scenario", "index"), AMI_FILES, ids=AMI_IDS)
def test_byte_at_a_time(scenario: str, index: int) -> None:
    """1-byte reads (7-byte reads for burst, 673 kB, to keep the suite fast)."""
    data = traces.ami_bytes(scenario)[index]
    size = 1 if len(data) < 100_000 else 7
    chunks = [data[i : i + size] for i in range(0, len(data), size)]
    assert parse_chunks(chunks) == parse_chunks([data])


@pytest.mark.skipif(not traces.have_traces(), reason="recorded Asterisk traces not found")
@settings(max_examples=60, deadline=None, database=None)
@given(st.data())
def test_any_chunking_gives_the_same_frames(data: st.DataObject) -> None:
    scenario = data.draw(st.sampled_from(["restart", "inbound-timeout", "agent-lifecycle"]))
    raw = traces.ami_bytes(scenario)[0][:12_000]
    cuts = sorted(data.draw(st.sets(st.integers(0, len(raw)), max_size=40)))
    bounds = [0, *cuts, len(raw)]
    chunks = [raw[a:b] for a, b in itertools.pairwise(bounds)]
    assert parse_chunks(chunks) == parse_chunks([raw])


def test_utf8_character_split_between_reads_survives() -> None:
    frame = "Event: Newchannel\r\nCallerIDName: José\r\n\r\n".encode()
    split = frame.index("é".encode()) + 1  # between the two bytes of é
    frames = parse_chunks([b"Asterisk Call Manager/11.0.0\r\n" + frame[:split], frame[split:]])
    assert isinstance(frames[1], Message)
    assert frames[1]["CallerIDName"] == "José"


def test_invalid_utf8_is_replaced_not_dropped() -> None:
    frames = parse_chunks([b"Banner\r\nEvent: X\r\nName: Jos\xe9!\r\n\r\n"])
    assert isinstance(frames[1], Message)
    assert frames[1]["Name"] == "Jos\ufffd!"


def test_values_empty_repeated_and_with_colons() -> None:
    raw = (
        b"Banner\r\nEvent: Status\r\nAccountCode: \r\nAppData: Inbound: a: b\r\n"
        b"ChanVariable: A=1\r\nChanVariable: B=2\r\n\r\n"
    )
    message = parse_chunks([raw])[1]
    assert isinstance(message, Message)
    assert message["AccountCode"] == ""
    assert message["AppData"] == "Inbound: a: b"
    assert message["ChanVariable"] == "A=1"  # the first, as Asterisk's astman_get_header
    assert message.getall("ChanVariable") == ["A=1", "B=2"]
    assert message.event == "Status"
    assert message.response is None
    assert message.action_id is None
    assert "AppData" in message
    assert message.get("Missing") is None
    assert message.pairs[0] == ("Event", "Status")


def test_malformed_line_reports_the_frame_and_keeps_the_stream_in_step() -> None:
    raw = b"Banner\r\nEvent: X\r\nno colon here\r\nFoo: bar\r\n\r\nEvent: Y\r\nKey:\r\n\r\n"
    frames = parse_chunks([raw])
    bad = frames[1]
    assert isinstance(bad, MalformedMessage)
    assert bad.raw == "Event: X\r\nno colon here\r\nFoo: bar"
    assert "no colon here" in bad.error
    assert bad.pairs == (("Event", "X"), ("Foo", "bar"))
    good = frames[2]
    assert isinstance(good, Message)
    assert good["Key"] == ""  # "Key:" without the space is tolerated as empty


def test_oversized_frame_is_an_error_and_memory_stays_bounded() -> None:
    parser = AmiParser(max_frame_chars=1 << 20)
    assert parser.feed(b"Asterisk Call Manager/11.0.0\r\n") == [
        Banner("Asterisk Call Manager/11.0.0")
    ]
    junk = b"X" * 65_536
    errors: list[Frame] = []
    for _ in range(160):  # 10 MiB without a blank line
        errors.extend(parser.feed(junk))
        assert parser.buffered <= (1 << 20) + len(junk)
    assert len(errors) == 1
    assert isinstance(errors[0], FrameTooLarge)
    assert errors[0].limit == 1 << 20
    # The junk ends at the next blank line; the stream carries on after it.
    assert parser.feed(b"XX\r\n\r\nEvent: Ok\r\n\r\n") == [Message.from_pairs([("Event", "Ok")])]


def test_oversized_banner_line() -> None:
    parser = AmiParser(max_frame_chars=64)
    frames = parser.feed(b"A" * 100)
    assert len(frames) == 1
    assert isinstance(frames[0], FrameTooLarge)


def test_without_banner() -> None:
    frames = parse_chunks([b"Event: A\r\n\r\n\r\n\r\nEvent: B\r\n\r\n"], expect_banner=False)
    assert frames == [Message.from_pairs([("Event", "A")]), Message.from_pairs([("Event", "B")])]


def test_encode_action() -> None:
    pause: dict[str, ActionValue] = {"Action": "QueuePause", "Paused": True, "Penalty": 2}
    assert encode_action(pause) == (b"Action: QueuePause\r\nPaused: true\r\nPenalty: 2\r\n\r\n")
    originate = encode_action(
        {"Action": "Originate", "Variable": ["A=1", "B=x: y"], "Async": "true"}
    )
    assert originate == (
        b"Action: Originate\r\nVariable: A=1\r\nVariable: B=x: y\r\nAsync: true\r\n\r\n"
    )
    pairs = encode_action([("Action", "Login"), ("Username", "José")])
    assert pairs == "Action: Login\r\nUsername: José\r\n\r\n".encode()
    assert parse_chunks([pairs], expect_banner=False) == [
        Message.from_pairs([("Action", "Login"), ("Username", "José")])
    ]


@pytest.mark.parametrize(
    "action",
    [
        {"Action": "QueueLog", "Message": "hi\r\nAction: Logoff"},
        {"Action": "Originate", "Variable": ["A=1", "B=2\nAction: Logoff"]},
        {"Action": "Ping", "Bad\r\nKey": "x"},
        {"Action": "Ping", "": "x"},
        {"Action": "Ping", "With: colon": "x"},
        {},
    ],
)
def test_encode_action_rejects_injection_and_bad_keys(action: Mapping[str, ActionValue]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011  (the message varies by case)
        encode_action(action)


# --- the parser's fast path against a plain reference ---------------------------------------

# Lines made of the pieces that can fool a split on ": " once the CRLFs are joined: values
# with ": " or ending in ":" or " ", keys ending in ":", lines with no ": " at all.
_PIECES = st.sampled_from(["Key", "Event", "V", ":", " ", ": ", "::", "a b", "x:", "", "é"])
_LINE = st.lists(_PIECES, min_size=1, max_size=6).map("".join).filter(lambda s: s != "")


def _reference(block: str) -> Message | MalformedMessage:
    """What a frame means, line by line: the first ": " splits; "Key:" is an empty value;
    any other line without ": " makes the frame malformed; a key maps to its first value."""
    pairs: list[tuple[str, str]] = []
    bad = False
    for line in block.split("\r\n"):
        key, sep, value = line.partition(": ")
        if sep:
            pairs.append((key, value))
        elif line.endswith(":") and len(line) > 1:
            pairs.append((line[:-1], ""))
        else:
            bad = True
    if bad:
        return MalformedMessage(block, "", tuple(pairs))
    return Message.from_pairs(pairs)


@settings(max_examples=600)
@given(st.lists(_LINE, min_size=1, max_size=8))
def test_fast_path_means_what_each_line_says(lines: list[str]) -> None:
    block = "\r\n".join(lines)
    frames = parse_chunks([block.encode() + b"\r\n\r\n"], expect_banner=False)
    assert len(frames) == 1
    got, want = frames[0], _reference(block)
    assert type(got) is type(want), (block, got)
    if isinstance(got, Message):
        assert isinstance(want, Message)
        assert dict(got.fields) == dict(want.fields)
        assert got.pairs == want.pairs
        assert got.text == block
    else:
        assert isinstance(got, MalformedMessage)
        assert isinstance(want, MalformedMessage)
        assert got.pairs == want.pairs
        assert got.raw == block
