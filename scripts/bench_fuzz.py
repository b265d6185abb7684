"""Hostile input, counted: the AMI and FastAGI parsers fed a million mutated inputs each.

A seeded mutation fuzzer, without coverage guidance (atheris installs here, but its loop owns
the process and drives one synchronous function: it cannot run the asyncio reader and server
below; docs/fuzzing.md says how it was used beside this). Each input is made from the recorded
traces (``tests/fixtures/asterisk-traces``) by stacking 1-4 mutations: bit flips, truncation,
huge lines, runs of a repeated slice or token, invalid UTF-8, NULs, missing colons,
duplicated lines (repeated keys), CRLF/LF mixes, odd or enormous values (``9`` x 5000,
``1e999``, ``nan``, ``٣``...), nested parentheses, splices of other recordings, other event
names and reply codes. One input in a hundred may grow past the parser's limits.

- AMI: bytes -> :class:`~callcenter.ami.connection._Protocol` (the bridge's reader: the
  incremental parser, and replies routed through panoramisk to the actions pending for their
  ActionIDs) -> :func:`~callcenter.ami.events.parse_event` on every frame it queues, as the
  bridge does. The bytes arrive in reads cut at random places (at most 256 KiB, asyncio's
  read size), some a byte at a time.
- AGI: an input is one FastAGI session through the server's own
  :class:`~callcenter.agi.server._Connection` and ``AgiServer._session``, over an in-memory
  transport: a mutated environment, then a mutated reply to each command that a flow using
  every :class:`~callcenter.agi.channel.Channel` method sends, then EOF.

An *escape*: an exception other than those the caller handles (AMI: any, the reader and
``parse_event`` never raise; AGI: anything but ``ProtocolError`` in the connection and
``AgiError`` out of the channel), a session still running once the peer has hung up, an
output that breaks its contract (an event time the call log cannot store, a NUL in a frame's
text, which PostgreSQL refuses), or a stall: one read that held the loop more than a second,
or more than 50 ms at over 20 us a byte parsed (super-linear work; a read parses its own bytes
and those the parser held, as a line or frame it ends is parsed whole). A read's block time
is wall time (capped by the CPU time of its whole input, so that a busy machine's scheduling
does not count) from the bytes in to the typed events out; the loop lag is the longest gap a
probe task saw between two of its turns (also capped by CPU time).

Keys: fuzz.{ami,agi}_inputs, _escapes, _max_block_ms, _loop_lag_ms, and fuzz.seconds.
``BENCH_FUZZ_AMI`` / ``BENCH_FUZZ_AGI`` set the counts (default 1,000,000 each),
``BENCH_FUZZ_SEED`` the seed. Input ``i`` depends only on the seed and ``i``:
``python scripts/bench_fuzz.py ami --only I`` prints it and replays it alone;
``python scripts/bench_fuzz.py agi -n 50000`` runs a shorter campaign.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import itertools
import logging
import math
import os
import random
import re
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from callcenter.agi.channel import (  # noqa: E402
    AgiCommandError,
    AgiCommandFailed,
    Channel,
)
from callcenter.agi.server import AgiServer, _Connection  # noqa: E402
from callcenter.ami import events as ev  # noqa: E402
from callcenter.ami.connection import _Action, _Protocol  # noqa: E402
from callcenter.ami.protocol import FrameTooLarge, MalformedMessage  # noqa: E402
from callcenter.bridge.rows import copy_timestamp  # noqa: E402

TRACES = Path(
    os.environ.get("CALLCENTER_TRACES", HERE.parent / "tests" / "fixtures" / "asterisk-traces")
)
N_AMI = int(os.environ.get("BENCH_FUZZ_AMI", "1000000"))
N_AGI = int(os.environ.get("BENCH_FUZZ_AGI", "1000000"))
SEED = int(os.environ.get("BENCH_FUZZ_SEED", "20261207"))

#: asyncio's selector transport reads at most this much per ``data_received``.
MAX_READ = 256 * 1024
#: Loop turns an AGI session may take after the peer hung up before it counts as stalled.
STALL_TURNS = 1000
#: A stall: one read held the loop this long, or longer than 50 ms at more than this per byte
#: (the parsers' linear cost is well under 1 us a byte: more is super-linear work, the
#: signature of a backtracking regex or a rescanned buffer).
STALL_S = 1.0
STALL_S_PER_BYTE = 20e-6
#: Escapes kept (with their input) for the report.
KEEP = 20

# --- the corpus ----------------------------------------------------------------------------


# NamedTuples and plain classes, not dataclasses: scripts/bench.py loads this file as a module
# it does not register in sys.modules, where @dataclass looks its module up.


class AmiCorpus(NamedTuple):
    banner: bytes
    streams: tuple[tuple[bytes, ...], ...]  # each recorded connection, frame by frame
    by_kind: tuple[tuple[bytes, ...], ...]  # the same frames grouped by Event/Response name


class AgiCorpus(NamedTuple):
    sessions: tuple[tuple[bytes, tuple[bytes, ...]], ...]  # (environment, replies)
    replies: tuple[bytes, ...]  # every distinct recorded reply


def _ami_files() -> list[Path]:
    return sorted(p for p in TRACES.glob("*/ami*.txt") if "sent" not in p.name)


@cache
def ami_corpus() -> AmiCorpus:
    streams: list[tuple[bytes, ...]] = []
    kinds: dict[bytes, list[bytes]] = {}
    banner = b"Asterisk Call Manager/11.0.0\r\n"
    for path in _ami_files():
        data = path.read_bytes()
        line = data.index(b"\r\n") + 2
        banner = data[:line]
        frames = [f + b"\r\n\r\n" for f in data[line:].split(b"\r\n\r\n") if f]
        streams.append(tuple(frames))
        for f in frames:
            kind = f.split(b"\r\n", 1)[0]
            kinds.setdefault(kind, []).append(f)
    if not streams:
        raise RuntimeError(f"no recorded AMI traffic under {TRACES}")
    return AmiCorpus(banner, tuple(streams), tuple(tuple(v[:200]) for v in kinds.values()))


def _agi_replies(data: bytes) -> tuple[bytes, tuple[bytes, ...]]:
    """A recorded session (``agi-raw-in.txt``): its environment and its replies, a multi-line
    ``520-`` reply as one item."""
    env, _, rest = data.partition(b"\n\n")
    replies: list[bytes] = []
    block: list[bytes] = []
    for line in rest.splitlines(keepends=True):
        if block:
            block.append(line)
            if line[:4] == block[0][:3] + b" ":
                replies.append(b"".join(block))
                block = []
        elif line[3:4] == b"-":
            block = [line]
        else:
            replies.append(line)
    return env + b"\n\n", tuple(replies)


@cache
def agi_corpus() -> AgiCorpus:
    paths = sorted(TRACES.glob("*/agi-raw-in.txt")) + sorted(
        TRACES.glob("*/agi-sessions/*-raw-in.txt")
    )
    sessions = tuple(_agi_replies(p.read_bytes()) for p in paths)
    if not sessions:
        raise RuntimeError(f"no recorded AGI traffic under {TRACES}")
    extra = (
        b"200 result=1 (timeout)\n",
        b"200 result= (timeout)\n",
        b"200 result=49 endpos=1234\n",
        b"200 result=-1 endpos=0\n",
        b"200 result=1 (a value (with) parens) endpos=7\n",
        b"520 Invalid command syntax.  Proper usage not available.\n",
        b"HANGUP\n",
    )
    replies = sorted({r for _, rs in sessions for r in rs} | set(extra))
    return AgiCorpus(sessions, tuple(replies))


# --- the mutator -----------------------------------------------------------------------------

_INTERESTING = (
    b"\x00", b"\xff", b"\r", b"\n", b"\r\n", b"\r\n\r\n", b":", b": ", b" ", b"\t", b"=",
    b"(", b")", b"-", b"\x80", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf",
    b"\xef\xbb\xbf", b"\xe2\x80\xa8",
)  # fmt: skip
_TOKENS = (
    b"Event: ", b"Response: ", b"ActionID: ", b"Timestamp: ", b"Uniqueid: ", b"Queue: ",
    b"Message: ", b"EventList: Complete\r\n", b"Response: Follows\r\n", b"Output: ",
    b"200 result=", b"520-", b"520 ", b"510 ", b"511 ", b"HANGUP\n", b" endpos=", b" a=b",
    b"agi_network_script: ", b"agi_request: agi://[", b"agi_arg_1: ", b"\n\n", b"result=",
)  # fmt: skip
_VALUES = (
    b"", b" ", b"-1", b"0", b"-0", b"4294967296", b"99999999999999999999999999", b"9" * 5000,
    b"1e999", b"-1e999", b"nan", b"inf", b"1e20", b"0x1f", b"1_000", b" 5 ", b"\xc2\xb2",
    b"\xd9\xa3", b"4.5", b"true", b"<unknown>", b"::", b"12:34", b"99:99:99:99", b"((((",
    b"))))", b"%00", b"%zz", b"\xff\xfe",
)  # fmt: skip
_EVENT_NAMES = (*(n.encode() for n in sorted(ev.EVENT_TYPES)), b"", b"Complete", b"X")
_KEY_VALUE = re.compile(rb"(?m)^([^\r\n:]{1,40}): ([^\r\n]*)$|result=(\S*)")
_COLON = re.compile(rb": |:|=")
_EOL = re.compile(rb"\r?\n")
_CODE = re.compile(rb"(?m)^\d{3}")


class Mutator:
    """Stacked byte-level and grammar-aware mutations, all drawn from ``rng``."""

    def __init__(self, rng: random.Random, splice: Sequence[bytes], huge: int, big: bool) -> None:
        self.rng = rng
        self.splice = splice
        self.limit = huge  # the parser's limit: huge lines go past it
        # Most inputs stay small (fast, and most of the parser's branches); a few go up to
        # and past the limit.
        self.huge = huge if big else 2048

    def mutate(self, data: bytes, count: int) -> bytes:
        for fn in self.rng.choices(_OPS, cum_weights=_CUM, k=count):
            # Twice the parser's limit is past every limit: more only costs memory and time.
            data = fn(self, data)[: 2 * self.limit]
        return data

    def _pos(self, data: bytes) -> int:
        return self.rng.randint(0, len(data))

    def bit_flip(self, data: bytes) -> bytes:
        if not data:
            return data
        out = bytearray(data)
        for _ in range(self.rng.randint(1, 8)):
            i = self.rng.randrange(len(out))
            out[i] ^= 1 << self.rng.randrange(8)
        return bytes(out)

    def set_byte(self, data: bytes) -> bytes:
        if not data:
            return data
        i = self.rng.randrange(len(data))
        return data[:i] + bytes([self.rng.randrange(256)]) + data[i + 1 :]

    def insert_interesting(self, data: bytes) -> bytes:
        i = self._pos(data)
        return data[:i] + self.rng.choice(_INTERESTING) + data[i:]

    def insert_token(self, data: bytes) -> bytes:
        i = self._pos(data)
        return data[:i] + self.rng.choice(_TOKENS) + data[i:]

    def delete_range(self, data: bytes) -> bytes:
        i = self._pos(data)
        n = self.rng.choice((1, 1, 2, 4, 16, max(1, len(data) // 4)))
        return data[:i] + data[i + n :]

    def truncate(self, data: bytes) -> bytes:
        return data[: self._pos(data)]

    def huge_line(self, data: bytes) -> bytes:
        """A run of one byte up to 1.5 times the parser's limit (a line or frame too long)."""
        i = self._pos(data)
        n = int(self.huge * 1.5 ** self.rng.uniform(-8, 1))
        return data[:i] + self.rng.choice((b"A", b" ", b"9", b")", b":", b"\xff")) * n + data[i:]

    def repeat_slice(self, data: bytes) -> bytes:
        """A short slice of the input or a token, repeated up to the parser's limit: what
        makes a parser that backtracks or rescans quadratic."""
        if data and self.rng.random() < 0.5:
            i = self.rng.randrange(len(data))
            piece = data[i : i + self.rng.randint(1, 12)]
        else:
            piece = self.rng.choice(_TOKENS) + self.rng.choice(_VALUES[:12])
        n = max(1, int(self.huge / len(piece) * 1.5 ** self.rng.uniform(-12, 0)))
        i = self._pos(data)
        return data[:i] + piece * n + data[i:]

    def invalid_utf8(self, data: bytes) -> bytes:
        i = self._pos(data)
        junk = bytes(self.rng.randrange(0x80, 0x100) for _ in range(self.rng.randint(1, 4)))
        return data[:i] + junk + data[i:]

    def _find(self, data: bytes, pattern: re.Pattern[bytes]) -> re.Match[bytes] | None:
        """A match of ``pattern`` at or after a random place (wrapping round)."""
        start = self._pos(data)
        return pattern.search(data, start) or pattern.search(data, 0, start + 64)

    def missing_colon(self, data: bytes) -> bytes:
        m = self._find(data, _COLON)
        if m is None:
            return data
        i = m.start()
        n = 2 if data[i : i + 2] == b": " else 1
        return data[:i] + self.rng.choice((b"", b" ", b":", b"::", b": :", b"\t")) + data[i + n :]

    def duplicate_line(self, data: bytes) -> bytes:
        """A line again (a repeated key), sometimes many times."""
        lines = data.splitlines(keepends=True)
        if not lines:
            return data
        k = self.rng.randrange(len(lines))
        times = self.rng.choice((1, 1, 2, 3, 50, 1000 if self.huge > 4096 else 10))
        return b"".join(lines[: k + 1] + [lines[k]] * times + lines[k + 1 :])

    def nul(self, data: bytes) -> bytes:
        i = self._pos(data)
        return data[:i] + b"\x00" * self.rng.choice((1, 1, 2, 64)) + data[i + 1 :]

    def line_ends(self, data: bytes) -> bytes:
        choice = self.rng.randrange(5)
        if choice == 0:
            return data.replace(b"\r\n", b"\n")
        if choice == 1:
            return data.replace(b"\n", b"\r\n")
        m = self._find(data, _EOL)
        if m is None:
            return data
        i = m.start()
        n = 2 if data[i : i + 1] == b"\r" else 1
        new = self.rng.choice((b"\n", b"\r", b"\r\r\n", b"\n\r", b"\r\n", b""))
        return data[:i] + new + data[i + n :]

    def odd_value(self, data: bytes) -> bytes:
        """The value of one ``Key: value`` (or ``result=``) replaced by an odd one."""
        m = self._find(data, _KEY_VALUE)
        if m is None:
            return data
        group = 2 if m.group(2) is not None else 3
        value = self.rng.choice(_VALUES)
        if self.rng.random() < 0.05:
            value = value * self.rng.randint(2, max(2, self.huge // max(1, len(value)) // 4))
        return data[: m.start(group)] + value + data[m.end(group) :]

    def splice_other(self, data: bytes) -> bytes:
        other = self.rng.choice(self.splice)
        a = self.rng.randrange(len(other) + 1)
        b = min(len(other), a + self.rng.randint(1, 400))
        i = self._pos(data)
        return data[:i] + other[a:b] + data[i:]

    def rename(self, data: bytes) -> bytes:
        """Another event name (AMI) or reply code (AGI)."""
        if b"Event: " in data:
            i = data.index(b"Event: ") + 7
            j = data.find(b"\r\n", i)
            j = len(data) if j < 0 else j
            return data[:i] + self.rng.choice(_EVENT_NAMES) + data[j:]
        m = self._find(data, _CODE)
        if m is None:
            return data
        i = m.start()
        code = self.rng.choice((b"200", b"510", b"511", b"520", b"100", b"999", b"000"))
        return data[:i] + code + data[i + 3 :]

    def nesting(self, data: bytes) -> bytes:
        n = self.rng.choice((10, 1000, self.huge // 4))
        i = self._pos(data)
        return data[:i] + b"(" * n + b"x" + b")" * n + data[i:]


_WEIGHTED: list[tuple[int, Callable[[Mutator, bytes], bytes]]] = [
    (8, Mutator.bit_flip),
    (6, Mutator.set_byte),
    (8, Mutator.insert_interesting),
    (6, Mutator.insert_token),
    (5, Mutator.delete_range),
    (4, Mutator.truncate),
    (1, Mutator.huge_line),
    (2, Mutator.repeat_slice),
    (4, Mutator.invalid_utf8),
    (5, Mutator.missing_colon),
    (5, Mutator.duplicate_line),
    (3, Mutator.nul),
    (5, Mutator.line_ends),
    (8, Mutator.odd_value),
    (3, Mutator.splice_other),
    (3, Mutator.rename),
    (1, Mutator.nesting),
]
_OPS = [fn for _, fn in _WEIGHTED]
_CUM = list(itertools.accumulate(w for w, _ in _WEIGHTED))


def cuts(rng: random.Random, size: int, boundaries: Sequence[int] = ()) -> list[int]:
    """Where the reads end: a few random places (some right at a frame boundary, some one
    byte off), never more than :data:`MAX_READ` apart."""
    points = {size}
    mode = rng.random()
    if mode < 0.35:
        points.update(rng.randint(1, max(1, size)) for _ in range(rng.randint(1, 6)))
    elif mode < 0.55 and boundaries:
        for b in rng.sample(list(boundaries), min(len(boundaries), 4)):
            points.add(max(1, min(size, b + rng.randint(-2, 2))))
    elif mode < 0.56:  # a byte (or a few) at a time
        step = rng.choice((1, 2, 3, 7, 64))
        points.update(range(step, size, step))
    ordered = sorted(p for p in points if 0 < p <= size)
    out: list[int] = []
    last = 0
    for p in ordered:
        while p - last > MAX_READ:
            last += MAX_READ
            out.append(last)
        out.append(p)
        last = p
    return out


# --- results -----------------------------------------------------------------------------------


class Tally:
    """What one campaign counted."""

    def __init__(self) -> None:
        self.inputs = 0
        self.escapes = 0
        self.max_block = 0.0
        self.loop_lag = 0.0
        self.worst = ""
        self.seen: list[str] = []
        self._reads: list[tuple[float, int]] = []
        self._cpu = 0.0

    def start(self) -> None:
        """An input begins: its reads are judged when it ends (:meth:`end`)."""
        self._reads = []
        self._cpu = time.thread_time()

    def block(self, seconds: float, size: int) -> None:
        """One synchronous stretch of ``seconds`` (wall clock) over ``size`` bytes: a read and
        what the parser held before it (a line or frame it completes is parsed whole)."""
        if seconds > 0.001:
            self._reads.append((seconds, size))

    def end(self, index: int, data: bytes) -> None:
        """The input is done: its longest reads, each capped by the CPU time the whole input
        used (on a loaded machine a read can take long in wall time because the process was
        not running: that is not the parser's doing)."""
        self.inputs += 1
        if not self._reads:
            return
        cpu = time.thread_time() - self._cpu
        for wall, size in self._reads:
            seconds = min(wall, cpu)
            if seconds > self.max_block:
                self.max_block = seconds
                self.worst = f"input {index}, {size} B parsed"
            if seconds > STALL_S or (seconds > 0.05 and seconds > size * STALL_S_PER_BYTE):
                self.escape(index, f"stall: {seconds * 1000:.0f} ms for {size} B", data)

    def escape(self, index: int, what: str, data: bytes) -> None:
        self.escapes += 1
        if len(self.seen) < KEEP:
            self.seen.append(f"input {index}: {what}\n  data[:300]={data[:300]!r} ({len(data)} B)")


class LagProbe:
    """A task that yields every turn; its longest gap is the longest the loop was held (in
    CPU time when that is less: a machine busy with other work deschedules the process,
    which holds nothing)."""

    def __init__(self) -> None:
        self.max_gap = 0.0
        self._stop = False
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        last, last_cpu = time.perf_counter(), time.thread_time()
        while not self._stop:
            await asyncio.sleep(0)
            now, cpu = time.perf_counter(), time.thread_time()
            self.max_gap = max(self.max_gap, min(now - last, cpu - last_cpu))
            last, last_cpu = now, cpu

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> float:
        self._stop = True
        if self._task is not None:
            await self._task
        return self.max_gap


def _time_ok(t: float) -> str | None:
    """None when the call log can store ``t``; else why not."""
    if not math.isfinite(t):
        return f"event time {t!r}"
    try:
        copy_timestamp(t)
        dt.datetime.fromtimestamp(t, dt.UTC)
    except (OverflowError, ValueError, OSError) as exc:
        return f"event time {t!r}: {exc!r}"
    return None


# --- AMI ----------------------------------------------------------------------------------------


class _AmiTransport(asyncio.Transport):
    """What ``_Protocol`` calls on its transport; records ``abort``."""

    def __init__(self) -> None:
        super().__init__()
        self.aborted = False

    def abort(self) -> None:
        self.aborted = True

    def is_closing(self) -> bool:
        return self.aborted

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def write(self, data: bytes | bytearray | memoryview) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


_ACTION_ID = re.compile(rb"ActionID: ([^\r\n]+)")


def ami_input(index: int, seed: int) -> tuple[bytes, list[int], list[tuple[str, bool]]]:
    """Input ``index``: the bytes, where the reads end, and the pending actions (ActionID,
    as_list) the reader routes replies to."""
    rng = random.Random(seed * 1_000_003 + index)
    corpus = ami_corpus()
    if rng.random() < 0.5:
        stream = rng.choice(corpus.streams)
        start = rng.randrange(len(stream))
        frames = list(stream[start : start + rng.randint(1, 4)])
    else:
        frames = [rng.choice(rng.choice(corpus.by_kind)) for _ in range(rng.randint(1, 3))]
    original = b"".join(frames)
    ids = [m.decode("utf-8", "replace") for m in _ACTION_ID.findall(original)]
    pending = [(aid, rng.random() < 0.5) for aid in ids if rng.random() < 0.7]
    body = original
    if rng.random() < 0.97:
        splice = rng.choice(corpus.by_kind)
        mutator = Mutator(rng, splice, huge=1 << 20, big=rng.random() < 0.01)
        if rng.random() < 0.5 and len(frames) > 1:
            k = rng.randrange(len(frames))
            frames[k] = mutator.mutate(frames[k], rng.randint(1, 4))
            body = b"".join(frames)
        else:
            body = mutator.mutate(original, rng.randint(1, 4))
    data = (corpus.banner if rng.random() < 0.9 else b"") + body
    bounds = [m.end() for m in re.finditer(rb"\r\n\r\n", data)][:8]
    return data, cuts(rng, len(data), bounds), pending


async def ami_one(index: int, data: bytes, ends: list[int], pending: list[tuple[str, bool]],
                  tally: Tally) -> None:  # fmt: skip
    """Feed one input through the reader and type every frame it queues. An input of many
    reads yields to the loop between them, as a socket's reads come in turns of their own."""
    transport = _AmiTransport()
    protocol = _Protocol(time.time)
    protocol.connection_made(transport)
    actions = []
    for aid, as_list in pending:
        action = _Action({"Action": "Ping", "ActionID": aid}, as_list=as_list)
        protocol.pending[aid] = action
        actions.append(action)
    last = 0
    perf = time.perf_counter
    for end in ends:
        if transport.aborted:  # asyncio delivers nothing more after abort()
            break
        held = protocol._parser.buffered  # parsed again with this read: part of its work
        t0 = perf()
        try:
            protocol.data_received(data[last:end])
        except Exception as exc:
            tally.escape(index, f"_Protocol.data_received: {exc!r}\n{traceback.format_exc()}",
                         data)  # fmt: skip
        while (item := protocol.take()) is not None:
            frame = item.frame
            if isinstance(frame, FrameTooLarge):
                raw = frame.prefix
            else:
                raw = frame.raw if isinstance(frame, MalformedMessage) else frame.text
            if "\x00" in raw:  # PostgreSQL text refuses NUL: the call log's batch would too
                tally.escape(index, "a NUL in a frame's text", data)
            if isinstance(frame, FrameTooLarge):
                continue
            try:
                event = ev.parse_event(frame, item.at, "fuzz")
            except Exception as exc:
                tally.escape(index, f"parse_event: {exc!r}\n{traceback.format_exc()}", data)
                continue
            problem = _time_ok(event.time)
            if problem is not None:
                tally.escape(index, f"parse_event: {problem}", data)
        tally.block(perf() - t0, held + end - last)
        last = end
        if len(ends) > 8 or len(data) > 65536:
            await asyncio.sleep(0)
    protocol.connection_lost(None)
    for action in actions:  # nobody awaits these: mark their outcome as seen
        if action.future.done() and not action.future.cancelled():
            action.future.exception()


async def fuzz_ami(n: int, seed: int) -> Tally:
    tally = Tally()
    probe = LagProbe()
    probe.start()
    for i in range(n):
        data, ends, pending = ami_input(i, seed)
        await asyncio.sleep(0)  # the probe measures the parsing, not the making of an input
        tally.start()
        await ami_one(i, data, ends, pending, tally)
        tally.end(i, data)
        await asyncio.sleep(0)
    tally.loop_lag = await probe.stop()
    return tally


# --- AGI ----------------------------------------------------------------------------------------


class _Asterisk(asyncio.Transport):
    """The Asterisk side of one FastAGI connection, in memory: the connection's transport.
    Each command written is answered with the next segment of the input (often at once,
    inside ``write``, so that a whole session runs in a few loop turns; sometimes later, by
    the driver, so that the waiting path runs too)."""

    def __init__(self, conn: _Connection, segments: list[bytes], rng: random.Random,
                 tally: Tally, index: int, data: bytes) -> None:  # fmt: skip
        super().__init__()
        self.conn = conn
        self.segments = segments
        self.next = 0
        self.rng = rng
        self.tally = tally
        self.index = index
        self.data = data
        self.closing = False
        self.lost_called = False
        self.eof = False

    # asyncio.Transport, as far as _Connection uses it
    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 4573) if name == "peername" else default

    def is_closing(self) -> bool:
        return self.closing

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self.closing and self.rng.random() < 0.85:
            self.feed_next()

    def abort(self) -> None:
        self._close()

    def close(self) -> None:
        self._close()

    def _close(self) -> None:
        if not self.closing:
            self.closing = True
            asyncio.get_running_loop().call_soon(self.lost)

    # the peer
    def lost(self) -> None:
        if not self.lost_called:
            self.lost_called = True
            self._call("connection_lost", self.conn.connection_lost, None)

    def _call(self, what: str, fn: Callable[..., object], *args: object) -> None:
        held = len(self.conn._parser._buf)  # parsed again with this read: part of its work
        t0 = time.perf_counter()
        try:
            fn(*args)
        except Exception as exc:
            self.tally.escape(self.index, f"_Connection.{what}: {exc!r}\n"
                              f"{traceback.format_exc()}", self.data)  # fmt: skip
        size = held + (len(args[0]) if args and isinstance(args[0], bytes) else 0)
        self.tally.block(time.perf_counter() - t0, size)

    def feed(self, segment: bytes) -> None:
        last = 0
        size = len(segment)
        if self.rng.random() < 0.25:
            ends = cuts(self.rng, size)
        else:  # whole, as far as asyncio reads at once
            ends = [*range(MAX_READ, size, MAX_READ), size]
        for end in ends:
            if self.closing:
                return
            self._call("data_received", self.conn.data_received, segment[last:end])
            last = end

    def feed_next(self) -> bool:
        """The next segment, or EOF when there is none; False once everything was sent."""
        if self.closing:
            return False
        if self.next < len(self.segments):
            self.next += 1
            self.feed(self.segments[self.next - 1])
            return True
        if not self.eof:
            self.eof = True
            self._call("eof_received", self.conn.eof_received)
            self.closing = True
            asyncio.get_running_loop().call_soon(self.lost)
            return True
        return False


def _segments(rng: random.Random, blob: bytes) -> list[bytes]:
    """A blob that was mutated whole, cut after random line ends."""
    ends = [m.end() for m in re.finditer(rb"\n", blob)]
    keep = sorted(rng.sample(ends, min(len(ends), rng.randint(1, 16)))) if ends else []
    out, last = [], 0
    for e in keep:
        out.append(blob[last:e])
        last = e
    if last < len(blob):
        out.append(blob[last:])
    return out


def agi_input(index: int, seed: int) -> tuple[list[bytes], list[int], random.Random]:
    """Input ``index``: what Asterisk sends, as segments (the environment, then about one per
    command), the steps the flow takes, and the random source that then cuts the reads."""
    rng = random.Random(seed * 1_000_003 + index)
    corpus = agi_corpus()
    plan = rng.sample(range(_STEPS), rng.randint(2, _STEPS))
    env, recorded = rng.choice(corpus.sessions)
    n = len(plan) + 2  # a -1 costs a CHANNEL STATUS more; collect_digits sends several
    replies = [*recorded[:n], *rng.choices(corpus.replies, k=max(0, n - len(recorded)))]
    if rng.random() < 0.1:
        replies.insert(rng.randrange(len(replies) + 1), b"HANGUP\n")
    mutator = Mutator(rng, corpus.replies, huge=64 * 1024, big=rng.random() < 0.01)
    mode = rng.random()
    segments = [env, *replies]
    if mode < 0.25:
        segments[0] = mutator.mutate(env, rng.randint(1, 3))
    elif mode < 0.75:
        for _ in range(rng.randint(1, 3)):
            k = rng.randrange(1, len(segments))
            segments[k] = mutator.mutate(segments[k], rng.randint(1, 3))
    elif mode < 0.97:
        segments = _segments(rng, mutator.mutate(b"".join(segments), rng.randint(1, 4)))
    return segments, plan, rng


#: How many steps :func:`_flow` has, and those of the session under way, in their order.
_STEPS = 14
_PLAN: list[int] = list(range(_STEPS))


async def _flow(channel: Channel) -> None:
    """Every channel method a flow uses, each refusal (510/520, a failed command) survived as
    a flow survives it; a hang-up or a lost session ends the flow, as in the real ones."""
    env = channel.env
    _ = (env.query, env.args, env.callerid, env.calleridname, env.dnid, env.language,
         env.channel, env.uniqueid, env.context, env.extension, env.request)  # fmt: skip
    steps: list[Callable[[], Any]] = [
        channel.answer,
        lambda: channel.stream("hello-world", "12"),
        lambda: channel.get_data("beep", 5.0, 4),
        lambda: channel.wait_for_digit(1.0),
        lambda: channel.collect_digits(["a", "b"], timeout=1.0, max_digits=3, terminator="*"),
        lambda: channel.say_number(42, "#"),
        lambda: channel.say_digits("123"),
        lambda: channel.get_variable("CHANNEL"),
        lambda: channel.set_variable("X", "y z"),
        lambda: channel.exec("Playback", "beep"),
        channel.channel_status,
        lambda: channel.verbose("fuzz", 1),
        lambda: channel.command("NOOP"),
        channel.hangup,
    ]
    for k in _PLAN:
        step = steps[k]
        try:
            result = await step()
        except (AgiCommandError, AgiCommandFailed):
            continue
        if hasattr(result, "value"):  # a Reply: its derived fields are API too
            _ = (result.value, result.endpos, result.timed_out, result.ok)


class _Capture(logging.Handler):
    """The server's ``log.exception`` (a script failed with something not an AgiError)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def agi_one(server: AgiServer, index: int, seed: int, tally: Tally,
                  capture: _Capture) -> None:  # fmt: skip
    segments, _PLAN[:], rng = agi_input(index, seed)
    data = b"".join(segments)
    await asyncio.sleep(0)  # the probe measures the session, not the making of an input
    tally.start()
    conn = _Connection(server)
    peer = _Asterisk(conn, segments, rng, tally, index, data)
    before = set(server._sessions)
    conn.connection_made(peer)
    task = next(iter(server._sessions - before))
    peer.feed_next()  # the environment
    turns = 0
    while not task.done():
        await asyncio.sleep(0)
        if not task.done() and conn._waiter is not None and not peer.feed_next():
            turns += 1
            if turns > STALL_TURNS:
                tally.escape(index, "session still waiting long after the peer hung up", data)
                task.cancel()
                break
    try:
        await task
    except asyncio.CancelledError:
        pass
    except Exception as exc:
        tally.escape(index, f"session task: {exc!r}\n{traceback.format_exc()}", data)
    if capture.records:
        for record in capture.records:
            info = "".join(traceback.format_exception(*record.exc_info)) if record.exc_info else ""
            tally.escape(index, f"server logged: {record.getMessage()}\n{info}", data)
        capture.records.clear()
    peer.lost()
    tally.end(index, data)


async def fuzz_agi(n: int, seed: int) -> Tally:
    tally = Tally()
    scripts = {"ivr": _flow, "errors": _flow, "demo": _flow}
    server = AgiServer(scripts, port=0, command_timeout=5.0, env_timeout=5.0)
    server_log = logging.getLogger("callcenter.agi")
    level, propagate = server_log.level, server_log.propagate
    capture = _Capture()
    server_log.setLevel(logging.ERROR)
    server_log.propagate = False
    server_log.addHandler(capture)
    probe = LagProbe()
    probe.start()
    try:
        for i in range(n):
            await agi_one(server, i, seed, tally, capture)
    finally:
        tally.loop_lag = await probe.stop()
        server_log.removeHandler(capture)
        server_log.setLevel(level)
        server_log.propagate = propagate
    return tally


# --- entry points -------------------------------------------------------------------------------


def _report(name: str, tally: Tally, seconds: float) -> None:
    print(f"fuzz {name}: {tally.inputs:,} inputs in {seconds:.1f} s, {tally.escapes} escapes, "
          f"longest block {tally.max_block * 1000:.2f} ms ({tally.worst}), "
          f"loop lag {tally.loop_lag * 1000:.2f} ms",
          file=sys.stderr)  # fmt: skip
    for line in tally.seen:
        print(f"  {line}", file=sys.stderr)


def _figures(name: str, tally: Tally) -> dict[str, float]:
    return {
        f"fuzz.{name}_inputs": float(tally.inputs),
        f"fuzz.{name}_escapes": float(tally.escapes),
        f"fuzz.{name}_max_block_ms": round(tally.max_block * 1000, 3),
        f"fuzz.{name}_loop_lag_ms": round(tally.loop_lag * 1000, 3),
    }


def run() -> dict[str, float]:
    started = time.perf_counter()
    figures: dict[str, float] = {}
    for name, fuzz, n in (("ami", fuzz_ami, N_AMI), ("agi", fuzz_agi, N_AGI)):
        t0 = time.perf_counter()
        tally = asyncio.run(fuzz(n, SEED))
        _report(name, tally, time.perf_counter() - t0)
        figures.update(_figures(name, tally))
    figures["fuzz.seconds"] = round(time.perf_counter() - started, 1)
    return figures


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", choices=["ami", "agi"])
    parser.add_argument("-n", type=int, default=10_000, help="inputs (default 10,000)")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--only", type=int, help="replay input ONLY alone and print it")
    args = parser.parse_args(argv)
    if args.only is not None:
        if args.target == "ami":
            data, ends, pending = ami_input(args.only, args.seed)
            print(f"bytes {data!r}\nreads end at {ends}\npending {pending}")
        else:
            segments, plan, _ = agi_input(args.only, args.seed)
            print(f"segments {segments!r}\nsteps {plan}")
        first, count = args.only, 1
    else:
        first, count = 0, args.n

    async def go() -> Tally:
        if args.target == "ami":
            tally = Tally()
            for i in range(first, first + count):
                data, ends, pending = ami_input(i, args.seed)
                tally.start()
                await ami_one(i, data, ends, pending, tally)
                tally.end(i, data)
                await asyncio.sleep(0)
            return tally
        if first == 0:
            return await fuzz_agi(count, args.seed)
        server = AgiServer({"ivr": _flow, "errors": _flow}, port=0)
        tally, capture = Tally(), _Capture()
        logging.getLogger("callcenter.agi").addHandler(capture)
        await agi_one(server, first, args.seed, tally, capture)
        return tally

    t0 = time.perf_counter()
    tally = asyncio.run(go())
    _report(args.target, tally, time.perf_counter() - t0)
    return 1 if tally.escapes else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
