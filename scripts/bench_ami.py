"""The AMI bridge end to end: events per second from the socket to committed rows and published
MQTT messages, next to the raw parse rate of panoramisk's own parser, and memory over a
million events.

The stream is the recorded ``burst`` trace (20 calls, 2 agents) repeated with its Uniqueids,
Linkedids and channel names shifted per repetition, so each repetition is 20 new calls. A
separate process plays Asterisk (it answers Login, Ping, QueueStatus and CoreShowChannels as
tests/fake_ami.py does and then streams the bytes); this process runs the real bridge into a
database of the benchmark's own and the local Mosquitto.

Keys: ami.events_per_s (end to end, over BENCH_AMI_EVENTS events, default 1,000,000),
ami.raw_parse_per_s (panoramisk's AMIProtocol on the same bytes, measured before and after
the bridge ran: the mean), ami.parse_per_s (our parser, likewise), ami.end_to_end_vs_raw_parse
(the first over the second), ami.rss_growth_mb (RSS once the last event is written and
published, less RSS at the same idle point after the first 20%, each after malloc_trim: the
peer pauses there, and that pause is not counted in the rate), ami.mqtt_dropped (call
events the publisher dropped because MQTT fell behind: 0 when it kept up).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import re
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import sqlalchemy as sa

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from callcenter import config  # noqa: E402
from callcenter.ami.protocol import AmiParser  # noqa: E402
from callcenter.bridge.app import Bridge  # noqa: E402
from callcenter.db import engine as db  # noqa: E402

SERVER = os.environ.get("CALLCENTER_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")
EVENTS = int(os.environ.get("BENCH_AMI_EVENTS", "1000000"))
TRACES = Path(
    os.environ.get("CALLCENTER_TRACES", HERE.parent / "tests" / "fixtures" / "asterisk-traces")
)

_UID = re.compile(r"\b(\d{10})\.(\d+)\b")
_CHAN = re.compile(r"-([0-9a-f]{8})(;[12])?\b")


def burst_frames() -> list[str]:
    """The events a bridge receives in ``burst`` (what tests.fake_ami.recorded_events gives)."""
    from tests.fake_ami import recorded_events

    os.environ.setdefault("CALLCENTER_TRACES", str(TRACES))
    return recorded_events("burst")


def shifted(frames: list[str], k: int) -> bytes:
    """Repetition ``k``: new Uniqueids and channel names, everything else byte for byte."""
    text = "\r\n\r\n".join(frames) + "\r\n\r\n"
    if k:
        text = _UID.sub(lambda m: f"{m[1]}.{int(m[2]) + k * 100}", text)
        text = _CHAN.sub(lambda m: f"-{int(m[1], 16) + k * 256:08x}{m[2] or ''}", text)
    return text.encode("utf-8")


def build_stream(n_events: int) -> tuple[bytes, int, int, int]:
    """The stream, its number of events, and where the first 20% of them end: the byte
    offset (a frame boundary) and the events before it."""
    # The peer sends FullyBooted itself after the Login, as Asterisk does.
    body = burst_frames()
    reps = max(1, n_events // len(body))
    blob = bytearray()
    pause_at = pause_events = 0
    for k in range(reps):
        if k == max(1, reps // 5):
            pause_at, pause_events = len(blob), k * len(body)
        blob += shifted(body, k)
    if not pause_at:
        pause_at, pause_events = len(blob), reps * len(body)
    return bytes(blob), reps * len(body), pause_at, pause_events


def raw_parse_rates(blob: bytes) -> tuple[float, float]:
    """Frames per second: panoramisk's AMIProtocol.data_received, and our AmiParser, each
    fed the same bytes in 64 KiB chunks (as a socket would deliver them)."""
    from panoramisk.ami_protocol import AMIProtocol

    class Factory:
        count = 0

        def dispatch(self, message: Any) -> None:
            Factory.count += 1

    chunks = [blob[i : i + 65536] for i in range(0, len(blob), 65536)]
    proto = AMIProtocol()
    proto.connection_made(None)
    proto.factory = Factory()
    proto.encoding = "utf-8"
    started = time.perf_counter()
    for chunk in chunks:
        proto.data_received(chunk)
    theirs = Factory.count / (time.perf_counter() - started)
    parser = AmiParser(expect_banner=False)
    started = time.perf_counter()
    n = 0
    for chunk in chunks:
        n += len(parser.feed(chunk))
    ours = n / (time.perf_counter() - started)
    return theirs, ours


PEER = r"""
import asyncio, sys
sys.path.insert(0, {root!r})
from tests.fake_ami import FakeAmi
async def send(conn, blob, start, stop):
    # Whole frames per write: the replies to Ping go out between writes, and Asterisk
    # never splices a reply into the middle of an event.
    while start < stop:
        end = blob.find(b"\r\n\r\n", start + (1 << 16), stop)
        end = stop if end < 0 else end + 4
        conn.writer.write(blob[start:end])
        await conn.writer.drain()
        start = end
async def main():
    blob = open({blob!r}, "rb").read()
    async with FakeAmi(secret="bench") as fake:
        print(fake.port, flush=True)
        conn = await fake.accept(timeout=60)
        await send(conn, blob, 0, {pause_at})
        # Pause (the bench reads memory while the bridge is idle), then the rest.
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        await send(conn, blob, {pause_at}, len(blob))
        await asyncio.sleep(3600)
asyncio.run(main())
"""


def idle_rss_mb() -> float:
    """RSS once freed memory is handed back: glibc keeps what a peak (a batch grown while the
    database lagged) freed, so without ``malloc_trim`` RSS shows the high-water mark, not
    what is alive. Growth of this between two idle points is what a leak would show."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    return rss_mb()


def rss_mb() -> float:
    with Path("/proc/self/status").open() as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def run_bridge(
    url: str,
    port: int,
    total: int,
    prefix: str,
    pause_at_events: int,
    resume: Callable[[], None],
) -> dict[str, float]:
    node = config.NodeSettings(name="bench", port=port, secret=config.Secret("bench"),
                               ping_interval=30, connect_timeout=10)  # fmt: skip
    spool = tempfile.mkdtemp(prefix="ccbench")
    settings = replace(
        config.load(environ={"CALLCENTER_CONFIG": ""}),
        nodes=(node,),
        database=config.DatabaseSettings(url=url),
        mqtt=config.MqttSettings(topic_prefix=prefix, client_id=prefix),
        bridge=config.BridgeSettings(spool_dir=spool),
    )
    bridge = Bridge(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(bridge.run(stop))
    n = bridge.nodes[0]

    async def idle_after(count: int) -> float:
        """Seconds until ``count`` events are in and every row and message is out."""
        started = time.perf_counter()
        while n.counters.events < count:
            await asyncio.sleep(0.01)
            if time.perf_counter() - started > 600:
                raise RuntimeError(f"only {n.counters.events} of {count} events in 600 s")
        # The writer flushes once a second, or sooner when a batch is full: the wait for
        # that timer is latency, not work, so flush what is left now and time the writing.
        bridge.writer.flush_soon()
        while not bridge.writer.idle or not bridge.publisher.idle:
            await asyncio.sleep(0.01)
        return time.perf_counter() - started

    while n.counters.events == 0:
        await asyncio.sleep(0.001)
    # Memory is read where the bridge is idle (all written and published) after the first
    # 20% of the events and after the last: mid-stream, one reading lands anywhere on the
    # saw-tooth of the open batch, which fills and empties every flush.
    elapsed = await idle_after(pause_at_events)
    early_rss = idle_rss_mb()
    resume()
    elapsed += await idle_after(total)
    late_rss = idle_rss_mb()
    stop.set()
    await asyncio.wait_for(task, 30)
    return {
        "ami.events_per_s": n.counters.events / elapsed,
        "ami.rss_growth_mb": late_rss - early_rss,
        "ami.events": float(n.counters.events),
        "ami.rows_written": float(bridge.writer.rows_written),
        "ami.mqtt_published": float(bridge.publisher.published),
        # Call events the publisher had to drop (queue over max_events): 0 when MQTT kept up.
        "ami.mqtt_dropped": float(bridge.publisher.dropped_events),
    }


def run() -> dict[str, float]:
    blob, total, pause_at, pause_events = build_stream(EVENTS)
    theirs, ours = raw_parse_rates(blob)
    name = f"cc_bench_{secrets.token_hex(4)}"
    admin = sa.create_engine(f"{SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = f"{SERVER}/{name}"
    engine = db.make_engine(config.DatabaseSettings(url=url))
    db.upgrade(engine)
    engine.dispose()
    with tempfile.NamedTemporaryFile(suffix=".ami", delete=False) as f:
        f.write(blob)
        blob_path = f.name
    peer = subprocess.Popen(
        [sys.executable, "-c", PEER.format(root=str(HERE.parent), blob=blob_path,
                                           pause_at=pause_at)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "CALLCENTER_TRACES": str(TRACES)},
    )  # fmt: skip

    def resume() -> None:
        assert peer.stdin is not None
        peer.stdin.write("go\n")
        peer.stdin.flush()

    try:
        assert peer.stdout is not None
        port = int(peer.stdout.readline())
        prefix = f"ccbench-{secrets.token_hex(3)}"
        figures = asyncio.run(run_bridge(url, port, total, prefix, pause_events, resume))
    finally:
        peer.kill()
        peer.wait()
        Path(blob_path).unlink()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    # The machine's speed drifts (a shared VM): measure the parsers again after the bridge
    # ran and take the mean, so the ratio compares the two under the same conditions.
    theirs_after, ours_after = raw_parse_rates(blob)
    figures["ami.raw_parse_per_s"] = (theirs + theirs_after) / 2
    figures["ami.parse_per_s"] = (ours + ours_after) / 2
    figures["ami.end_to_end_vs_raw_parse"] = (
        figures["ami.events_per_s"] / figures["ami.raw_parse_per_s"]
    )
    return figures


if __name__ == "__main__":
    for key, value in run().items():
        print(f"{key:32} {value:14,.3f}")
