"""Call recordings at scale: listing and seeking with ``BENCH_RECORDINGS`` (100,000) of them.

- ``recordings.list_ms``: the median time of one page of the supervisors' list
  (:func:`callcenter.recordings.store.page`: 50 rows newest first, keyset-paged) over
  ``BENCH_RECORDINGS_QUERIES`` (400) pages, a quarter each: the newest page, a page deep in the
  list (a cursor at a random recording), an agent's page and a queue's page (each from a random
  cursor too). Also ``recordings.list_p99_ms``.
- ``recordings.list_page_ms``: the median of the same pages as the web app serves them
  (``GET /recordings?...`` with a supervisor's session: the query, the rendering, HTTP).
- ``recordings.seek_ms``: the median time of a seek as a browser's player makes it: ``GET
  /recordings/{id}/audio`` with ``Range: bytes=<middle>-<middle + 64 KiB>`` for a random
  recording, through the real web app (session check, the row, the path checked under the
  directory, a 206 with 64 KiB of the file). Also ``recordings.seek_p99_ms``. A seek logs no
  listen (checked).

The recordings are rows of a database of the benchmark's own (dropped afterwards): 200 agents,
8 queues, started over 90 days; every file is a hard link to a 60-second WAV (960 KB), in
the day folders MixMonitor would have made, in a temporary directory (a fresh copy of that
WAV every 50,000 links: file systems cap the links to one file). The web app runs in
this process on a free port, without its background tasks (no MQTT or AMI is needed).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import math
import os
import random
import secrets
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

SCRIPT = Path(__file__).resolve()
ROOT = SCRIPT.parent.parent
sys.path.insert(0, str(ROOT))

from callcenter import config  # noqa: E402
from callcenter.db import engine as db  # noqa: E402
from callcenter.db.models_quality import Recording, RecordingListen  # noqa: E402
from callcenter.recordings import store  # noqa: E402
from callcenter.wallboard import accounts  # noqa: E402
from tests.test_wallboard_support import http, login, wallboard_settings  # noqa: E402

SERVER = os.environ.get("CALLCENTER_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")
COUNT = int(os.environ.get("BENCH_RECORDINGS", "100000"))
QUERIES = int(os.environ.get("BENCH_RECORDINGS_QUERIES", "400"))
AGENTS = 200
QUEUES = 8
DAYS = 90
SECONDS = 60
SEEK_BYTES = 64 * 1024
LINKS_PER_COPY = 50_000
PASSWORD = "bench recordings password"  # noqa: S105 - the benchmark's own throwaway account

FILL = """
INSERT INTO recordings (node, uniqueid, linkedid, visit, queue, agent, channel, path, reason,
                        state, started_at, ended_at, duration_ms, size_bytes, sha256)
SELECT 'pbx1', i || '.1', i || '.1', 1, 'q' || (i % :queues), 'agent' || (i % :agents),
       'PJSIP/' || (1000 + i % :agents) || '-' || lpad(to_hex(i), 8, '0'),
       to_char(t, 'YYYY/MM/DD') || '/' || i || '.1_' || i || '.2.wav', 'policy', 'done',
       t, t + interval '60 seconds', :ms, :size, md5(i::text) || md5(i::text)
  FROM (SELECT i, :end - (i::bigint * :span / :n) * interval '1 second' AS t
          FROM generate_series(1, :n) AS i) g
"""


def wav_file(path: Path) -> int:
    """One minute of a 440 Hz tone as Asterisk's WAV writer leaves it (8 kHz, 16-bit)."""
    frames = 8000 * SECONDS
    data = struct.pack(f"<{frames}h", *(int(6000 * math.sin(2 * math.pi * 440 * i / 8000))
                                         for i in range(frames)))  # fmt: skip
    header = (
        b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE"
        + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, 8000, 16000, 2, 16)
        + b"data" + struct.pack("<I", len(data))
    )  # fmt: skip
    path.write_bytes(header + data)
    return len(header) + len(data)


def fill(engine: sa.Engine, root: Path, end: dt.datetime) -> int:
    source = root / "source.wav"
    size = wav_file(source)
    with engine.begin() as conn:
        conn.execute(sa.text(FILL), {"queues": QUEUES, "agents": AGENTS, "end": end,
                                     "span": DAYS * 86400, "n": COUNT, "ms": SECONDS * 1000,
                                     "size": size})  # fmt: skip
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE recordings"))
        paths = [r[0] for r in conn.execute(sa.text("SELECT path FROM recordings"))]
    made: set[Path] = set()
    for n, rel in enumerate(paths):
        if n and n % LINKS_PER_COPY == 0:
            # File systems cap the links to one file (ext4: 65,000): a fresh copy now and then.
            source = root / f"source-{n}.wav"
            wav_file(source)
        target = root / rel
        if target.parent not in made:
            target.parent.mkdir(parents=True, exist_ok=True)
            made.add(target.parent)
        os.link(source, target)
    with Session(engine) as s, s.begin():
        accounts.add_user(s, "bench", PASSWORD, "supervisor")
    return size


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def page_requests(engine: sa.Engine, rng: random.Random) -> list[dict[str, str]]:
    """The pages to ask for: newest, deep, an agent's, a queue's (cursors at random rows)."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(Recording.id, Recording.started_at)).all()
    out: list[dict[str, str]] = []
    for n in range(QUERIES):
        kind = n % 4
        rid, at = rows[rng.randrange(len(rows))]
        cursor = store.Cursor(at, rid).token()
        if kind == 0:
            out.append({})
        elif kind == 1:
            out.append({"before": cursor})
        elif kind == 2:
            out.append({"agent": f"agent{rng.randrange(AGENTS)}", "before": cursor})
        else:
            out.append({"queue": f"q{rng.randrange(QUEUES)}", "before": cursor})
    return out


def list_times(engine: sa.Engine, pages: list[dict[str, str]]) -> list[float]:
    times = []
    for query in pages:
        filters = store.Filters(agent=query.get("agent"), queue=query.get("queue"))
        before = store.Cursor.parse(query["before"]) if "before" in query else None
        with Session(engine) as s:
            started = time.perf_counter()
            rows, _ = store.page(s, filters, limit=50, before=before)
            times.append((time.perf_counter() - started) * 1000)
        assert rows or query, "the newest page is never empty"
    return times


async def web_times(
    settings: config.Settings, engine: sa.Engine, pages: list[dict[str, str]], size: int,
    rng: random.Random,
) -> tuple[list[float], list[float]]:  # fmt: skip
    from urllib.parse import urlencode

    async with http(settings, engine) as (_, client):
        await login(client, "bench", PASSWORD)
        listed = []
        for query in pages:
            started = time.perf_counter()
            resp = await client.get(f"/recordings?{urlencode(query)}")
            await resp.read()
            listed.append((time.perf_counter() - started) * 1000)
            if resp.status != 200:
                raise AssertionError(f"the list answered {resp.status}")
        seeks = []
        for _ in range(QUERIES):
            rid = rng.randrange(1, COUNT + 1)
            mid = rng.randrange(44, size - SEEK_BYTES)
            started = time.perf_counter()
            seek = {"Range": f"bytes={mid}-{mid + SEEK_BYTES - 1}"}
            resp = await client.get(f"/recordings/{rid}/audio", headers=seek)
            body = await resp.read()
            seeks.append((time.perf_counter() - started) * 1000)
            if resp.status != 206 or len(body) != SEEK_BYTES:
                raise AssertionError(f"a seek answered {resp.status} with {len(body)} bytes")
    return listed, seeks


def run() -> dict[str, float]:
    name = f"cc_bench_{secrets.token_hex(4)}"
    admin = sa.create_engine(f"{SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = f"{SERVER}/{name}"
    engine = db.make_engine(config.DatabaseSettings(url=url))
    try:
        with tempfile.TemporaryDirectory(prefix="cc-bench-rec-") as tmp:
            root = Path(tmp) / "recordings"
            root.mkdir()
            db.upgrade(engine)
            started = time.perf_counter()
            size = fill(engine, root, dt.datetime.now(dt.UTC))
            print(f"bench_recordings: {COUNT:,} recordings and files in "
                  f"{time.perf_counter() - started:.0f} s", file=sys.stderr)  # fmt: skip
            rng = random.Random(15)
            pages = page_requests(engine, rng)
            list_times(engine, pages[:20])  # warm the cache
            listed = list_times(engine, pages)
            settings = dataclasses.replace(
                wallboard_settings(config.load(environ={"CALLCENTER_DATABASE__URL": url,
                                                        "CALLCENTER_CONFIG": ""})),
                recording=config.RecordingSettings(dir=str(root)),
            )  # fmt: skip
            page_ms, seeks = asyncio.run(web_times(settings, engine, pages, size, rng))
            with engine.connect() as conn:
                logged = conn.scalar(sa.select(sa.func.count()).select_from(RecordingListen))
            if logged:
                raise AssertionError(f"{logged} listens logged by seeks")
        figures: dict[str, Any] = {
            "recordings.list_ms": statistics.median(listed),
            "recordings.list_p99_ms": pct(listed, 0.99),
            "recordings.list_page_ms": statistics.median(page_ms),
            "recordings.seek_ms": statistics.median(seeks),
            "recordings.seek_p99_ms": pct(seeks, 0.99),
            "recordings.count": float(COUNT),
        }
        return {k: round(float(v), 3) for k, v in figures.items()}
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    for key, value in run().items():
        print(f"{key:36} {value:14,.3f}")
