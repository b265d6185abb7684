"""Load the recorded Asterisk 22 traces for tests.

The folder is ``tests/fixtures/asterisk-traces`` in the repository (the shared recordings
copied in, plus the ones this project recorded itself), unless ``CALLCENTER_TRACES`` names
another one: a clone tests on its own. Tests call :func:`traces_dir` (or a helper that does),
which skips the test with a clear reason only when that folder has been removed.

Per scenario: ``ami.txt`` (and ``ami-2.txt``/``ami-3.txt`` for ``restart``) are the bytes
received on each AMI connection; ``ami-timeline.jsonl`` has the same bytes as chunks with their
receive time ``t``, connection ``conn`` (conn1, conn2...) and direction (in/out/eof);
``queue_log`` is Asterisk's own record; ``config/asterisk`` holds the configuration used.
"""

from __future__ import annotations

import configparser
import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from callcenter.ami.events import Event, parse_event
from callcenter.ami.protocol import AmiParser, Frame, MalformedMessage, Message
from callcenter.core import CoreConfig, QueueConfig, QueueLogEntry, parse_queue_log

ENV = "CALLCENTER_TRACES"
NODE = "pbx-test"


def _default_dir() -> Path:
    return Path(__file__).resolve().parent / "fixtures" / "asterisk-traces"


def traces_dir() -> Path:
    """The traces folder; skips the calling test when it does not exist."""
    path = Path(os.environ[ENV]) if os.environ.get(ENV) else _default_dir()
    if not (path / "README.md").is_file():
        pytest.skip(f"recorded Asterisk traces not found at {path} (set {ENV})")
    return path


def have_traces() -> bool:
    path = Path(os.environ[ENV]) if os.environ.get(ENV) else _default_dir()
    return (path / "README.md").is_file()


def scenarios() -> list[str]:
    """Names of the scenarios that have AMI traffic (empty when the traces are absent, so
    parametrized tests collect nothing and the non-parametrized ones skip)."""
    if not have_traces():
        return []
    root = traces_dir()
    return sorted(p.parent.name for p in root.glob("*/ami.txt"))


def ami_files(scenario: str) -> list[Path]:
    """``ami.txt``, ``ami-2.txt``... in connection order."""
    folder = traces_dir() / scenario
    extra = sorted(folder.glob("ami-[0-9]*.txt"), key=lambda p: int(p.stem.split("-")[1]))
    return [folder / "ami.txt", *(p for p in extra if not p.stem.endswith("sent"))]


@cache
def ami_bytes(scenario: str) -> tuple[bytes, ...]:
    return tuple(p.read_bytes() for p in ami_files(scenario))


@dataclass(frozen=True, slots=True)
class Chunk:
    t: float
    conn: str
    dir: str
    data: bytes


@cache
def timeline(scenario: str) -> tuple[Chunk, ...]:
    path = traces_dir() / scenario / "ami-timeline.jsonl"
    chunks = []
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        chunks.append(
            Chunk(record["t"], record["conn"], record["dir"], record["data"].encode("utf-8"))
        )
    return tuple(chunks)


@dataclass(frozen=True, slots=True)
class TimedFrame:
    """A frame and the receive time of the chunk that completed it."""

    conn: str
    t: float
    frame: Frame


@cache
def timed_frames(scenario: str) -> tuple[TimedFrame, ...]:
    """Every frame received, in order, each with its receive time; one parser per connection,
    fed the ``in`` chunks exactly as they were read from the socket."""
    parsers: dict[str, AmiParser] = {}
    out: list[TimedFrame] = []
    for chunk in timeline(scenario):
        if chunk.dir != "in":
            continue
        parser = parsers.setdefault(chunk.conn, AmiParser())
        out.extend(TimedFrame(chunk.conn, chunk.t, f) for f in parser.feed(chunk.data))
    return tuple(out)


@cache
def sequential_connections(scenario: str) -> tuple[str, ...]:
    """The connections one bridge could have had in turn: the first, and each later one
    that began after every one before it had ended (``restart``'s reconnections). A
    connection opened beside a live one (``bridge-midstream``'s late second client) is a
    different bridge's view: ask for it by name."""
    kept: list[str] = []
    open_: set[str] = set()
    for chunk in timeline(scenario):
        if chunk.conn not in kept and chunk.conn not in open_:
            if open_ & set(kept):
                open_.add(chunk.conn)  # parallel: not ours
                continue
            kept.append(chunk.conn)
            open_.add(chunk.conn)
        if chunk.dir == "eof":
            open_.discard(chunk.conn)
    return tuple(kept)


@cache
def events(scenario: str, node: str = NODE, conn: str | None = None) -> tuple[Event, ...]:
    """The scenario's events (frames with an ``Event`` header), typed, in receive order, as
    one bridge received them: the :func:`sequential_connections`, or only ``conn``."""
    wanted = {conn} if conn is not None else set(sequential_connections(scenario))
    result: list[Event] = []
    for timed in timed_frames(scenario):
        if timed.conn not in wanted:
            continue
        frame = timed.frame
        if isinstance(frame, Message) and frame.event is None:
            continue  # an action response: the shell routes those to its actions
        if isinstance(frame, (Message, MalformedMessage)):
            result.append(parse_event(frame, timed.t, node))
    return tuple(result)


@cache
def queue_log(scenario: str) -> tuple[QueueLogEntry, ...]:
    path = traces_dir() / scenario / "queue_log"
    return tuple(parse_queue_log(path.read_text(encoding="utf-8")))


def queue_log_calls(scenario: str) -> dict[str, list[QueueLogEntry]]:
    """queue_log lines of real calls (callid is a Uniqueid), grouped by callid."""
    calls: dict[str, list[QueueLogEntry]] = {}
    for entry in queue_log(scenario):
        if entry.callid.replace(".", "", 1).isdigit():
            calls.setdefault(entry.callid, []).append(entry)
    return calls


@cache
def core_config() -> CoreConfig:
    """The core configuration matching the recorded Asterisk: each queue's ``wrapuptime``
    from ``config/asterisk/queues.conf`` (the Queue() timeouts come from the dialplan's
    QTIMEOUT VarSet, so ``max_wait_seconds`` stays unset)."""
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.read(traces_dir() / "config" / "asterisk" / "queues.conf", encoding="utf-8")
    queues = {
        name: QueueConfig(wrapup_seconds=float(parser[name].get("wrapuptime", "0")))
        for name in parser.sections()
        if name != "general"
    }
    return CoreConfig(queues=queues)
