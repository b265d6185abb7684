#!/usr/bin/env python3
"""Throughput of the AMI bridge's pure parts on the recorded ``burst`` trace.

Replays the bytes Asterisk sent on the burst connection (20 callers, 2 agents, ~1,560 frames)
``--reps`` times back to back, each repetition with its Uniqueids rewritten (same length, so
the recorded socket reads keep their boundaries) and its times shifted, so calls never collide
and wrap-ups expire as they did. Feeds the recorded socket reads as they were read and reports:

- ``parse``: AmiParser frames per second;
- ``parse+events+apply``: frames per second through AmiParser, parse_event and apply --
  what one bridge process does per node before any I/O;
- ``apply``: events per second through apply alone (events parsed beforehand).

Prints one ``name: N msg/s`` line per measure (``--json`` for one JSON object instead).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

from callcenter.ami.events import Event, parse_event
from callcenter.ami.protocol import AmiParser, Message
from callcenter.core import CoreConfig, QueueConfig, apply, initial_state

# A Uniqueid/Linkedid is "<epoch>.<counter>": rewrite the epoch's first 3 digits per repetition.
UNIQUEID = re.compile(rb"(?<![\d.])179(\d{7}\.\d+)")
Chunks = list[tuple[float, bytes]]


def traces_dir() -> Path:
    env = os.environ.get("CALLCENTER_TRACES")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "asterisk-traces"


def load_chunks(scenario: str) -> Chunks:
    """The ``in`` socket reads of the first connection, banner line dropped."""
    path = traces_dir() / scenario / "ami-timeline.jsonl"
    chunks = []
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record["conn"] == "conn1" and record["dir"] == "in":
            chunks.append((record["t"], record["data"].encode("utf-8")))
    first = chunks[0][1]
    assert first.startswith(b"Asterisk Call Manager/"), first[:40]
    return chunks[1:]


def repeat(chunks: Chunks, reps: int) -> Chunks:
    span = chunks[-1][0] - chunks[0][0] + 10.0
    whole = b"".join(data for _, data in chunks)
    bounds = []
    pos = 0
    for _, data in chunks:
        bounds.append((pos, pos + len(data)))
        pos += len(data)
    out: Chunks = []
    for rep in range(reps):
        prefix = b"%03d" % (100 + rep)
        rewritten = UNIQUEID.sub(prefix + rb"\1", whole)
        assert len(rewritten) == len(whole)
        shift = rep * span
        out.extend(
            (t + shift, rewritten[a:b]) for (t, _), (a, b) in zip(chunks, bounds, strict=True)
        )
    return out


def config() -> CoreConfig:
    # queues.conf of the recording: wrapuptime = 2 for both queues
    return CoreConfig(queues={q: QueueConfig(wrapup_seconds=2.0) for q in ("sales", "support")})


def bench_parse(stream: Chunks) -> tuple[int, float]:
    parser = AmiParser(expect_banner=False)
    count = 0
    start = time.perf_counter()
    for _, data in stream:
        count += len(parser.feed(data))
    return count, time.perf_counter() - start


def bench_pipeline(stream: Chunks) -> tuple[int, float]:
    parser = AmiParser(expect_banner=False)
    state = initial_state("bench", config())
    count = 0
    start = time.perf_counter()
    for t, data in stream:
        for frame in parser.feed(data):
            count += 1
            if isinstance(frame, Message) and frame.event is not None:
                state, _ = apply(state, parse_event(frame, t, "bench"))
    return count, time.perf_counter() - start


def bench_apply(stream: Chunks) -> tuple[int, float]:
    parser = AmiParser(expect_banner=False)
    events: list[Event] = []
    for t, data in stream:
        for frame in parser.feed(data):
            if isinstance(frame, Message) and frame.event is not None:
                events.append(parse_event(frame, t, "bench"))
    state = initial_state("bench", config())
    start = time.perf_counter()
    for event in events:
        state, _ = apply(state, event)
    elapsed = time.perf_counter() - start
    assert not state.calls, "every call of the burst ends"
    return len(events), elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=20, help="repetitions of the burst trace")
    parser.add_argument("--rounds", type=int, default=3, help="best of this many rounds")
    parser.add_argument("--scenario", default="burst")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if not 1 <= args.reps <= 900:
        parser.error("--reps must be 1..900")
    if not (traces_dir() / args.scenario / "ami-timeline.jsonl").is_file():
        print(f"traces not found under {traces_dir()} (set CALLCENTER_TRACES)", file=sys.stderr)
        return 2
    stream = repeat(load_chunks(args.scenario), args.reps)
    results = {}
    for name, bench in (
        ("parse", bench_parse),
        ("parse+events+apply", bench_pipeline),
        ("apply", bench_apply),
    ):
        best = max(n / elapsed for n, elapsed in (bench(stream) for _ in range(args.rounds)))
        results[name] = round(best)
    if args.json:
        print(json.dumps({"scenario": args.scenario, "reps": args.reps, "msg_per_s": results}))
    else:
        for name, rate in results.items():
            print(f"{name}: {rate} msg/s")
    return 0


def run() -> dict[str, float]:
    """For ``make bench`` (scripts/bench.py): the pure core's rates, best of three rounds over
    the burst trace repeated 20 times."""
    stream = repeat(load_chunks("burst"), 20)
    figures = {}
    for key, bench in (
        ("ami_core.parse_per_s", bench_parse),
        ("ami_core.pipeline_per_s", bench_pipeline),
        ("ami_core.apply_per_s", bench_apply),
    ):
        figures[key] = max(n / elapsed for n, elapsed in (bench(stream) for _ in range(3)))
    return figures


if __name__ == "__main__":
    raise SystemExit(main())
