"""The wallboard: how fast a change reaches the browsers, and how long the day's figures take.

- ``wallboard.push_p99_ms`` (goal 250): 99th percentile of the time from an AMI event reaching
  the bridge to the changed figure arriving in each of ``BENCH_WALLBOARD_CLIENTS`` (200)
  browsers' event streams. This process runs what ``callcenter run`` runs (the real bridge and
  the real wallboard, one event loop) against a fake Asterisk (tests/fake_ami.py) and the local
  Mosquitto; a second process holds the 200 server-sent-event connections on loopback, as the
  browsers would. Each measured event is a QueueMemberPause whose reason carries the time it
  was written to the bridge's socket; a stream's latency is its arrival time minus that.
  ``BENCH_WALLBOARD_EVENTS`` (100) pauses, each followed by an unpause 150-250 ms later, and
  the next pause 50-150 ms after that (so pauses meet the push cadence at every phase).
  Also: ``wallboard.push_p50_ms``, ``wallboard.push_max_ms``, ``wallboard.push_samples``.
- ``wallboard.kpi_query_ms`` (goal 50): the median time of the query the wallboard runs for the
  day's figures (:meth:`KpiRefresher.compute`: callcenter.reports' queue and agent figures,
  from midnight to now) on ``BENCH_WALLBOARD_CALLS`` (10,000,000) generated calls over
  ``BENCH_WALLBOARD_DAYS`` (365) days in 8 queues with 200 agents, and four agent-state spans
  per call over the last 30 days. Its parts: ``wallboard.kpi_queue_ms`` (queue_figures) and
  ``wallboard.kpi_agent_calls_ms`` (calls per agent, reports.AGENT_CALLS_SQL), and
  ``wallboard.report_agent_figures_ms`` (all of reports.agent_figures, which
  ``callcenter report`` runs).

Everything runs in a database of the benchmark's own, dropped afterwards, and under its own
MQTT prefix; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm import Session

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from callcenter import config, directory  # noqa: E402
from callcenter.bridge.app import Bridge  # noqa: E402
from callcenter.db import engine as db  # noqa: E402
from callcenter.db.models import Call, QueueVisit  # noqa: E402
from callcenter.wallboard import accounts  # noqa: E402
from callcenter.wallboard.app import Wallboard  # noqa: E402
from callcenter.wallboard.kpis import KpiRefresher, agent_calls  # noqa: E402

SERVER = os.environ.get("CALLCENTER_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")
CLIENTS = int(os.environ.get("BENCH_WALLBOARD_CLIENTS", "200"))
EVENTS = int(os.environ.get("BENCH_WALLBOARD_EVENTS", "100"))
CALLS = int(os.environ.get("BENCH_WALLBOARD_CALLS", "10000000"))
DAYS = int(os.environ.get("BENCH_WALLBOARD_DAYS", "365"))
TRACES = Path(os.environ.get("CALLCENTER_TRACES", ROOT / "tests" / "fixtures" / "asterisk-traces"))
#: The generated call log ends at this midnight (UTC, the site's time zone here).
END = dt.datetime(2026, 11, 22, tzinfo=dt.UTC)
TIMEOUT = 120.0

# --- 1. push latency --------------------------------------------------------------------------

CLIENT = r"""
import asyncio, json, re, sys, time
import aiohttp

URL, TOKEN = sys.argv[1], sys.argv[2]
N, EXPECT, LIMIT = int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
MARK = re.compile(rb'"reason":"b(\d+)t(\d+)"')

async def browser(session, ready, latencies):
    seen = set()
    timeout = aiohttp.ClientTimeout(total=LIMIT + 60, sock_read=LIMIT)
    auth = {"Authorization": "Bearer " + TOKEN}
    async with session.get(URL, headers=auth, timeout=timeout) as resp:
        assert resp.status == 200, resp.status
        async for line in resp.content:
            now = time.time()
            if line.startswith(b"event: snapshot"):
                ready()
            elif line.startswith(b"data: "):
                for m in MARK.finditer(line):
                    if m[1] not in seen:
                        seen.add(m[1])
                        latencies.append(now - int(m[2]) / 1e9)
                if len(seen) >= EXPECT:
                    return

async def main():
    latencies, count, all_ready = [], [0], asyncio.Event()
    def ready():
        count[0] += 1
        if count[0] == N:
            all_ready.set()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        tasks = [asyncio.create_task(browser(session, ready, latencies)) for _ in range(N)]
        await asyncio.wait_for(all_ready.wait(), 60)
        print("ready", flush=True)
        done, pending = await asyncio.wait(tasks, timeout=LIMIT)
        for task in pending:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    complete = sum(1 for t in done if not t.cancelled() and t.exception() is None)
    print(json.dumps({"latencies": latencies, "complete": complete}), flush=True)

asyncio.run(main())
"""


def pause_frame(template: str, paused: bool, reason: str) -> bytes:
    """A recorded QueueMemberPause of Alice, paused or not, with ``reason``."""
    text = template.replace("Paused: 1", f"Paused: {int(paused)}")
    text = text.replace("PausedReason: lunch", f"PausedReason: {reason}")
    return text.encode() + b"\r\n\r\n"


async def push_latency(url: str, token: str) -> dict[str, float]:
    from tests.fake_ami import FakeAmi, recorded_events

    frames = recorded_events("inbound-answered")
    member_added = next(f for f in frames if f.startswith("Event: QueueMemberAdded\r\n"))
    template = next(f for f in recorded_events("agent-lifecycle")
                    if f.startswith("Event: QueueMemberPause\r\n"))  # fmt: skip
    tag = secrets.token_hex(3)
    spool = tempfile.mkdtemp(prefix="ccbench")
    async with FakeAmi(secret="bench") as fake:  # noqa: S106 - the fake's own test secret
        node = config.NodeSettings(name="bench", port=fake.port, secret=config.Secret("bench"),
                                   ping_interval=30, connect_timeout=10)  # fmt: skip
        settings = dataclasses.replace(
            config.load(environ={"CALLCENTER_CONFIG": ""}),
            nodes=(node,),
            database=config.DatabaseSettings(url=url),
            mqtt=config.MqttSettings(topic_prefix=f"ccbench-{tag}", client_id=f"ccbench-{tag}"),
            bridge=config.BridgeSettings(spool_dir=spool, flush_interval=0.2),
            wallboard=config.WallboardSettings(port=0, secret_key=config.Secret(tag)),
        )
        stop = asyncio.Event()
        bridge = Bridge(settings)
        wallboard = Wallboard(settings, links={})  # supervisors' actions are not measured
        running = [asyncio.create_task(bridge.run(stop)), asyncio.create_task(wallboard.run(stop))]
        client: asyncio.subprocess.Process | None = None
        try:
            async with asyncio.timeout(30):
                conn = await fake.accept()
                await wallboard.started.wait()
                conn.writer.write(member_added.encode() + b"\r\n\r\n")
                while not wallboard.parts.state.agents or not wallboard.parts.auth.cache.loaded:
                    await asyncio.sleep(0.05)
            client = await asyncio.create_subprocess_exec(
                sys.executable, "-c", CLIENT, f"http://127.0.0.1:{wallboard.port}/events",
                token, str(CLIENTS), str(EVENTS), str(TIMEOUT),
                stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            assert client.stdout is not None
            async with asyncio.timeout(90):
                assert (await client.stdout.readline()).strip() == b"ready"
            rng = random.Random(6)
            for seq in range(EVENTS):
                conn.writer.write(pause_frame(template, True, f"b{seq}t{time.time_ns()}"))
                await conn.writer.drain()
                # Pushes of changes closer than push_interval (0.1 s) are merged, and a pause
                # undone before its push would never show: unpause only after it went out.
                await asyncio.sleep(rng.uniform(0.15, 0.25))
                conn.writer.write(pause_frame(template, False, ""))
                await conn.writer.drain()
                await asyncio.sleep(rng.uniform(0.05, 0.15))
            async with asyncio.timeout(TIMEOUT + 30):
                result = json.loads(await client.stdout.read())  # to the end: one long line
                await client.wait()
        finally:
            if client is not None and client.returncode is None:
                client.kill()
                await client.wait()
            stop.set()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(30):
                    await asyncio.gather(*running, return_exceptions=True)
            await clear_retained(settings.mqtt.topic_prefix)
    latencies = sorted(x * 1000 for x in result["latencies"])
    expected = CLIENTS * EVENTS
    if len(latencies) < expected:
        raise RuntimeError(f"only {len(latencies)} of {expected} pushes arrived")
    return {
        "wallboard.push_p99_ms": latencies[int(0.99 * (len(latencies) - 1))],
        "wallboard.push_p50_ms": statistics.median(latencies),
        "wallboard.push_max_ms": latencies[-1],
        "wallboard.push_samples": float(len(latencies)),
        "wallboard.push_clients": float(CLIENTS),
    }


async def clear_retained(prefix: str) -> None:
    """Leave the broker as we found it."""
    import aiomqtt

    held: list[str] = []
    async with aiomqtt.Client("127.0.0.1", 1883, identifier=f"{prefix}-cleanup") as client:
        await client.subscribe(f"{prefix}/#", qos=1)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.5):
                async for msg in client.messages:
                    if msg.retain and msg.payload:
                        held.append(str(msg.topic))
        for topic in held:
            await client.publish(topic, b"", qos=1, retain=True)


# --- 2. the day's figures on a large call log -------------------------------------------------

FILL_CALLS = """
INSERT INTO calls (node, uniqueid, linkedid, direction, caller_number, caller_name, did,
                   channel, ivr_path, queue, agent, started_at, queued_at, answered_at,
                   ended_at, wait_seconds, talk_seconds, hold_seconds, wrapup_seconds,
                   ring_attempts, outcome)
SELECT 'pbx1', g::text, g::text, 'inbound', (5550000000 + g % 100000)::text, '', '', '', '',
       'q' || (g % 8), CASE WHEN g % 10 < 8 THEN 'agent' || (g % 200) END,
       t, t, CASE WHEN g % 10 < 8 THEN t + make_interval(secs => g % 60) END,
       t + make_interval(secs => 60 + g % 600), g % 60,
       CASE WHEN g % 10 < 8 THEN 60 + g % 540 END, CASE WHEN g % 10 < 8 THEN g % 7 END,
       CASE WHEN g % 10 < 8 THEN 10 END, 1,
       CASE WHEN g % 10 < 8 THEN 'answered' WHEN g % 10 = 8 THEN 'abandoned'
            ELSE 'timed_out' END
  FROM generate_series(1, :n) AS g,
       LATERAL (SELECT :end - make_interval(secs => (g::float8 / :n) * :days * 86400) AS t) x
"""
#: Each call's one queue visit, as the bridge writes it (the report reads the visits).
FILL_VISITS = """
INSERT INTO queue_visits (visit, node, uniqueid, linkedid, direction, caller_number,
                          caller_name, queue, agent, agent_channel, queued_at, answered_at,
                          ended_at, wait_seconds, talk_seconds, hold_seconds, wrapup_seconds,
                          ring_attempts, original_position, outcome, exit_key)
SELECT 1, node, uniqueid, linkedid, direction, caller_number, caller_name, queue, agent,
       agent_channel, queued_at, answered_at, ended_at, wait_seconds, talk_seconds,
       hold_seconds, wrapup_seconds, ring_attempts, original_position, outcome, exit_key
  FROM calls WHERE queue IS NOT NULL
"""
#: Four state spans per call (ringing, on call, wrap-up, then available or a pause) over the
#: last 30 days, as the bridge writes them; each span ends where the next begins.
FILL_SPANS = """
INSERT INTO agent_state_changes (node, agent, state, reason, started_at, ended_at)
SELECT 'pbx1', 'agent' || (g % 200),
       (ARRAY['ringing','on_call','wrap_up','available','paused'])[1 + g % 5],
       CASE WHEN g % 5 = 4 THEN (ARRAY['lunch','break','training'])[1 + g % 3] END,
       t, t + make_interval(secs => 5 + g % 300)
  FROM generate_series(1, :n) AS g,
       LATERAL (SELECT :end - make_interval(secs => (g::float8 / :n) * 30 * 86400) AS t) x
"""


def median_ms(fn: Any, repeat: int = 7) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def fill(engine: sa.Engine) -> None:
    calls = Call.__table__
    visits = QueueVisit.__table__
    assert isinstance(calls, sa.Table)
    assert isinstance(visits, sa.Table)
    with Session(engine) as s, s.begin():
        for i in range(8):
            directory.add_queue(s, f"q{i}", service_level_seconds=20)
    # Bulk load first, indexes after: far faster than keeping six btrees up to date per row.
    with engine.begin() as conn:
        for index in [*calls.indexes, *visits.indexes]:
            index.drop(conn)
        conn.execute(sa.text("SET LOCAL maintenance_work_mem = '512MB'"))
        conn.execute(sa.text(FILL_CALLS), {"n": CALLS, "end": END, "days": DAYS})
        conn.execute(sa.text(FILL_VISITS))
        spans = 4 * CALLS * 30 // DAYS
        conn.execute(sa.text(FILL_SPANS), {"n": spans, "end": END})
        for index in [*calls.indexes, *visits.indexes]:
            index.create(conn)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE calls"))
        conn.execute(sa.text("VACUUM ANALYZE queue_visits"))
        conn.execute(sa.text("VACUUM ANALYZE agent_state_changes"))


def kpi_times(engine: sa.Engine) -> dict[str, float]:
    from callcenter import reports

    rules = config.ReportingSettings()
    refresher = KpiRefresher(engine, rules, ZoneInfo("UTC"), lambda: None)
    now = END - dt.timedelta(seconds=1)  # the last generated day, to its end
    since = END - dt.timedelta(days=1)
    total = median_ms(lambda: refresher.compute(now))
    with Session(engine) as s:
        queue = median_ms(lambda: reports.queue_figures(s, since, now, rules))
        calls = median_ms(lambda: agent_calls(s, since, now))
        report_agents = median_ms(lambda: reports.agent_figures(s, since, now, now), repeat=3)
        day_calls = s.scalar(sa.text("SELECT count(*) FROM queue_visits WHERE queued_at >= :s"),
                             {"s": since})  # fmt: skip
    return {"wallboard.kpi_query_ms": total, "wallboard.kpi_queue_ms": queue,
            "wallboard.kpi_agent_calls_ms": calls,
            "wallboard.report_agent_figures_ms": report_agents,
            "wallboard.kpi_calls_in_day": float(day_calls or 0),
            "wallboard.kpi_calls_in_log": float(CALLS)}  # fmt: skip


def run() -> dict[str, float]:
    name = f"cc_bench_{secrets.token_hex(4)}"
    admin = sa.create_engine(f"{SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = f"{SERVER}/{name}"
    engine = db.make_engine(config.DatabaseSettings(url=url))
    os.environ.setdefault("CALLCENTER_TRACES", str(TRACES))
    try:
        db.upgrade(engine)
        with Session(engine) as s, s.begin():
            _, token = accounts.add_token(s, "bench")
        figures = asyncio.run(push_latency(url, token))
        fill(engine)
        figures.update(kpi_times(engine))
        return figures
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    for key, value in run().items():
        print(f"{key:36} {value:14,.1f}")
