"""Forecast and staffing on a large call log (issue 15).

- ``forecast.seconds`` (goal 2): what ``callcenter forecast --queue Q --days 7`` does
  (:func:`callcenter.planning.store.plan`, its defaults: 8 weeks of history, SL 80% within 20
  s) for a queue with ``BENCH_FORECAST_CALLS`` (10,000,000) calls over
  ``BENCH_FORECAST_DAYS`` (730) days, from opening a session to the 336 half hours with their
  agents by Erlang C and Erlang A: the median of ``RUNS`` runs, each with a session of its
  own, after one run not timed (``forecast.first_seconds``: the first, its pages not yet
  cached).
- ``forecast.seconds_104_weeks``: the same learning from all two years (``--weeks 104``,
  every call of the queue read).
- ``forecast.page_seconds``: the history page's forecast of yesterday
  (:func:`callcenter.planning.store.day_forecast`: the twelve weeks before its week, the day
  itself, the agents logged in), as the page's cache computes it (statement time-out, no
  parallel workers); ``forecast.page_day_seconds``: the part the page's cache recomputes
  for today every minute (the day's calls and agents, against what it learned of the weeks
  before, which it keeps an hour).

The calls (queue visits, as the bridge writes them) grow over the two years (the calls per
day in proportion to the days elapsed to the power 1/4, from nothing to about 1.25 times the
mean), come between 07:00 and 21:00 (busiest at 14:00) in the site's time zone (New York,
for its clock changes), 88% answered after 0-60 s (talk 60-600 s, wrap-up 10 s), 8% abandoned,
4% timed out. ``AGENTS`` agents, members of the queue, log in for eight hours each day. All of
it in a database of the benchmark's own, dropped afterwards; bulk loaded with the indexes
dropped, then indexed and vacuumed (the visibility map lets the scans stay index-only, as
autovacuum keeps it on a live call log). The plan of the forecast's statement is printed.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import statistics
import sys
import time
import zoneinfo
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from callcenter import config, directory  # noqa: E402
from callcenter.db import engine as db  # noqa: E402
from callcenter.db.models import QueueVisit  # noqa: E402
from callcenter.planning import store  # noqa: E402
from callcenter.wallboard.kpis import bounded  # noqa: E402

SERVER = os.environ.get("CALLCENTER_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")
CALLS = int(os.environ.get("BENCH_FORECAST_CALLS", "10000000"))
DAYS = int(os.environ.get("BENCH_FORECAST_DAYS", "730"))
RUNS = int(os.environ.get("BENCH_FORECAST_RUNS", "5"))
AGENTS = 300
QUEUE = "q0"
TZ = zoneinfo.ZoneInfo("America/New_York")

#: Call g of n: day (growing: u^0.8 spreads them as days^0.25), time of day (the mean of two
#: uniforms: a triangle from 07:00 to 21:00), fate, wait and talk.
FILL_VISITS = """
INSERT INTO queue_visits (node, uniqueid, visit, linkedid, direction, caller_number,
                          caller_name, queue, agent, queued_at, answered_at, ended_at,
                          wait_seconds, talk_seconds, wrapup_seconds, ring_attempts, outcome)
SELECT 'pbx1', u, 1, u, 'inbound', '', '', :queue,
       CASE WHEN fate < 88 THEN 'agent' || lpad((g % :agents)::text, 3, '0') END,
       t, CASE WHEN fate < 88 THEN t + make_interval(secs => wait) END,
       t + make_interval(secs => wait + CASE WHEN fate < 88 THEN talk + 10 ELSE 0 END),
       wait, CASE WHEN fate < 88 THEN talk END, CASE WHEN fate < 88 THEN 10 END, 1,
       CASE WHEN fate < 88 THEN 'answered' WHEN fate < 96 THEN 'abandoned'
            ELSE 'timed_out' END
  FROM (SELECT g, '16' || lpad(g::text, 9, '0') AS u,
               ((CAST(:first AS date) + floor(:days * power(g::float8 / :n, 0.8))::int)
                    + make_interval(secs => 25200 + 50400 * (random() + random()) / 2))
                   AT TIME ZONE :tz AS t,
               floor(random() * 100)::int AS fate, floor(random() * 60)::int AS wait,
               60 + floor(random() * 540)::int AS talk
          FROM generate_series(1, :n) AS g
        OFFSET 0) r
"""
FILL_AGENTS = """
INSERT INTO agents (name, full_name, extension, pin_hash, sip_secret, skills, enabled,
                    created_at, updated_at)
SELECT 'agent' || lpad(i::text, 3, '0'), '', (3000 + i)::text, 'x', 'x', '{}', true, now(),
       now()
  FROM generate_series(0, :agents - 1) AS i
"""
FILL_MEMBERS = """
INSERT INTO queue_members (queue_id, agent_id, penalty)
SELECT q.id, a.id, 0 FROM queues q, agents a WHERE q.name = :queue
"""
#: Each agent, each day, eight hours from a start between 07:00 and 13:00.
FILL_SESSIONS = """
INSERT INTO agent_sessions (node, agent, interface, login_at, logout_at, logout_reason)
SELECT 'pbx1', 'agent' || lpad(i::text, 3, '0'), 'PJSIP/' || (3000 + i),
       (CAST(:first AS date) + d + make_interval(mins => 420 + (i * 37) % 360)) AT TIME ZONE :tz,
       (CAST(:first AS date) + d + make_interval(mins => 900 + (i * 37) % 360)) AT TIME ZONE :tz,
       'logoff'
  FROM generate_series(0, :days - 1) AS d, generate_series(0, :agents - 1) AS i
"""


def fill(engine: sa.Engine, first: dt.date) -> None:
    visits = QueueVisit.__table__
    assert isinstance(visits, sa.Table)
    params = {"n": CALLS, "days": DAYS, "first": first, "tz": str(TZ), "queue": QUEUE,
              "agents": AGENTS}  # fmt: skip
    with Session(engine) as s, s.begin():
        directory.add_queue(s, QUEUE, service_level_seconds=20)
    # Bulk load first, indexes after: far faster than keeping the btrees up to date per row.
    with engine.begin() as conn:
        for index in visits.indexes:
            index.drop(conn)
        conn.execute(sa.text("SET LOCAL maintenance_work_mem = '512MB'"))
        conn.execute(sa.text("SELECT setseed(0.15)"))
        conn.execute(sa.text(FILL_AGENTS), params)
        conn.execute(sa.text(FILL_MEMBERS), params)
        conn.execute(sa.text(FILL_VISITS), params)
        conn.execute(sa.text(FILL_SESSIONS), params)
        for index in visits.indexes:
            index.create(conn)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in ("queue_visits", "agent_sessions", "agents", "queues", "queue_members"):
            conn.execute(sa.text(f"VACUUM ANALYZE {table}"))


def timed(engine: sa.Engine, what: str, run: Callable[[Session], None]) -> list[float]:
    """``run`` RUNS + 1 times, each with a session of its own: the times (the first is
    reported apart: its pages may not be in memory yet)."""
    times = []
    for _ in range(RUNS + 1):
        started = time.perf_counter()
        with Session(engine) as session:
            run(session)
        times.append(time.perf_counter() - started)
    print(f"bench_forecast: {what}: first {times[0]:.3f} s, then median "
          f"{statistics.median(times[1:]):.3f} s, max {max(times[1:]):.3f} s",
          file=sys.stderr)  # fmt: skip
    return times


def explain(engine: sa.Engine, start: dt.date, weeks: int) -> None:
    """The plan of the forecast's statement, as ``plan`` runs it (to stderr)."""
    monday = store.monday_of(start)
    origin = monday - dt.timedelta(weeks=weeks)
    since = origin.replace(tzinfo=TZ).astimezone(dt.UTC)
    until = monday.replace(tzinfo=TZ).astimezone(dt.UTC)
    sql = "EXPLAIN (ANALYZE, BUFFERS) " + store.SLOTS_SQL.format(queue="AND queue = :queue")
    with Session(engine) as session:
        rows = session.execute(sa.text(sql), {"queue": QUEUE, "since": since, "until": until,
                                              "tz": str(TZ), "origin": origin})  # fmt: skip
        print(f"bench_forecast: the plan of {weeks} weeks:", file=sys.stderr)
        for (line,) in rows:
            print("   ", line, file=sys.stderr)


def run() -> dict[str, float]:
    name = f"cc_bench_{secrets.token_hex(4)}"
    admin = sa.create_engine(f"{SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine = db.make_engine(config.DatabaseSettings(url=f"{SERVER}/{name}"))
    try:
        db.upgrade(engine)
        today = dt.datetime.now(TZ).date()
        started = time.perf_counter()
        fill(engine, today - dt.timedelta(days=DAYS))
        print(f"bench_forecast: {CALLS:,} calls over {DAYS} days generated, indexed and "
              f"vacuumed in {time.perf_counter() - started:.0f} s", file=sys.stderr)  # fmt: skip
        tomorrow = today + dt.timedelta(days=1)
        yesterday = today - dt.timedelta(days=1)
        explain(engine, tomorrow, 8)
        peak = [0, 0]

        def forecast(weeks: int) -> Callable[[Session], None]:
            def go(session: Session) -> None:
                result = store.plan(session, QUEUE, tomorrow, 7, tz=TZ, weeks=weeks,
                                    target_seconds=20, service_level=0.8)  # fmt: skip
                if len(result.slots) != 7 * 48:
                    raise RuntimeError(f"{len(result.slots)} half hours, not {7 * 48}")
                peak[:] = [max(r["agents_erlang_c"] for r in result.slots),
                           max(r["calls"] for r in result.slots)]  # fmt: skip

            return go

        def page(session: Session) -> None:
            with session.begin():
                got = store.day_forecast(bounded(session), QUEUE, yesterday, tz=TZ,
                                         now=dt.datetime.now(dt.UTC))  # fmt: skip
            if not got.has_history:
                raise RuntimeError("the history page found no history")

        def refresh(session: Session) -> None:
            with session.begin():
                store.against(bounded(session), model, yesterday, tz=TZ,
                              now=dt.datetime.now(dt.UTC))  # fmt: skip

        week8 = timed(engine, "forecast --days 7 (8 weeks of history)", forecast(8))
        print(f"bench_forecast: peak {peak[1]:.0f} calls per half hour, {peak[0]} agents "
              "(Erlang C)", file=sys.stderr)  # fmt: skip
        week104 = timed(engine, "forecast --days 7 --weeks 104", forecast(104))
        day = timed(engine, "the history page's forecast of yesterday", page)
        with Session(engine) as session:
            model = store.learn(session, QUEUE, yesterday, tz=TZ)
        again = timed(engine, "the same with what it learned of the weeks before kept", refresh)
        return {
            "forecast.seconds": statistics.median(week8[1:]),
            "forecast.first_seconds": week8[0],
            "forecast.seconds_104_weeks": statistics.median(week104[1:]),
            "forecast.page_seconds": statistics.median(day[1:]),
            "forecast.page_day_seconds": statistics.median(again[1:]),
            "forecast.calls_in_log": float(CALLS),
        }
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    for key, value in run().items():
        print(f"{key:36} {value:14,.3f}")
