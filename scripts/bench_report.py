"""The day's report on a large call log: how long `callcenter report` takes for one day and
one queue, with BENCH_CALLS (default 2,000,000) generated calls over 60 days in 8 queues.

The rows are generated in SQL into a database of the benchmark's own, which is dropped
afterwards. Keys: report.day_query_ms (all queues, one day), report.queue_day_query_ms (one
queue, one day), report.agent_day_query_ms (one agent's calls and states, one day).
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import statistics
import time

import sqlalchemy as sa
from sqlalchemy.orm import Session

from callcenter import reports
from callcenter.config import DatabaseSettings, ReportingSettings
from callcenter.db import engine as db

SERVER = os.environ.get("CALLCENTER_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")
CALLS = int(os.environ.get("BENCH_CALLS", "2000000"))
DAYS = 60
END = dt.datetime(2026, 11, 22, tzinfo=dt.UTC)

FILL = """
INSERT INTO calls (node, uniqueid, linkedid, direction, caller_number, caller_name, did,
                   channel, ivr_path, queue, agent, started_at, queued_at, answered_at,
                   ended_at, wait_seconds, talk_seconds, wrapup_seconds, ring_attempts, outcome)
SELECT 'pbx1', g::text, g::text, 'inbound', (5550000000 + g % 100000)::text, '', '', '', '',
       'q' || (g % 8), CASE WHEN g % 10 < 8 THEN 'agent' || (g % 200) END,
       t, t, CASE WHEN g % 10 < 8 THEN t + make_interval(secs => g % 60) END,
       t + make_interval(secs => 60 + g % 600), g % 60,
       CASE WHEN g % 10 < 8 THEN 60 + g % 540 END, CASE WHEN g % 10 < 8 THEN 10 END, 0,
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


def _time(fn: object, repeat: int = 7) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()  # type: ignore[operator]
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def run() -> dict[str, float]:
    name = f"cc_bench_{secrets.token_hex(4)}"
    admin = sa.create_engine(f"{SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine = db.make_engine(DatabaseSettings(url=f"{SERVER}/{name}"))
    try:
        db.upgrade(engine)
        with engine.begin() as conn:
            conn.execute(sa.text(FILL), {"n": CALLS, "end": END, "days": DAYS})
            conn.execute(sa.text(FILL_VISITS))
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE calls"))
            conn.execute(sa.text("VACUUM ANALYZE queue_visits"))
        since = END - dt.timedelta(days=1)
        rules = ReportingSettings()
        with Session(engine) as s:
            day = _time(lambda: reports.queue_figures(s, since, END, rules))
            one = _time(lambda: reports.queue_figures(s, since, END, rules, "q3"))
            agent = _time(lambda: reports.agent_figures(s, since, END, END, "agent7"))
        return {
            "report.day_query_ms": day,
            "report.queue_day_query_ms": one,
            "report.agent_day_query_ms": agent,
            "report.calls_in_log": float(CALLS),
        }
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
