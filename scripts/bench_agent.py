"""The agent's desktop: how fast a ring pops on the agent's page, and how long the caller's
history takes on a large call log (issue 14).

- ``agent.pop_p99_ms`` (goal 150): 99th percentile of the time from the agent's ring as
  Asterisk reports it (the bytes of an AMI ``AgentCalled`` frame written to the bridge's AMI
  socket) to the ``pop`` event arriving on that agent's page, with ``BENCH_AGENT_AGENTS``
  (200) agents logged in, each with its page's event stream (``/agent/events``) open. This
  process runs what ``callcenter run`` runs, in one event loop: the real bridge
  (:class:`callcenter.bridge.app.Bridge`: AMI, its state, the call log into the benchmark's
  database, the MQTT publish) and the real wallboard (its MQTT feed, the desk, the web server),
  against the benchmark's database (below, full) and the local Mosquitto under a prefix of its
  own. A second process plays Asterisk (tests/fake_ami.py's FakeAmi: Login, FullyBooted,
  QueueStatus, CoreShowChannels, Ping as Asterisk 22 answers them) and the agents' browsers (it
  logs each in over HTTP with the nonce and the session cookie, as a browser does). Each agent
  joins its queue with the recorded ``QueueMemberAdded`` (MemberName ``agentNNN``); the pages
  open once the bridge has published every agent. Each call is the recorded
  ``inbound-answered`` call (tests/fixtures/asterisk-traces: Newchannel, the IVR, the queue
  join, AgentCalled, DialBegin ... QueueMemberStatus, the answer with AgentConnect, the talk
  and the hang-up with AgentComplete and the Hangups), every frame with its field names and
  order as recorded and only its Uniqueids, channel names, agent (MemberName, interface,
  extension), queue and caller number changed: the IVR frames, 0.2-1 s later the queue join
  and the agent's channel, then the ring (AgentCalled and the nine frames Asterisk sent in
  the same 3 ms, one write; the clock starts just before it, on that process's clock), the
  answer 0.5-2 s after the pop arrived, the hang-up 1-4 s later. ``BENCH_AGENT_RINGS``
  (2,000) rings at ``BENCH_AGENT_RING_RATE`` (20) a second on average (Poisson), each to an
  agent not on a call, in the agent's own queue. Also: ``agent.pop_p50_ms``,
  ``agent.pop_max_ms``, ``agent.pop_samples``, and ``agent.pop_history_p50_ms`` /
  ``agent.pop_history_p99_ms``: the same to the ``history`` event that follows (the desk's
  query of the caller's history on this call log, in a thread).
- ``agent.pop_from_mqtt_p99_ms`` / ``agent.pop_from_mqtt_p50_ms`` / ``..._max_ms``: the part
  after the bridge, in a run of its own before the one above (a wallboard without a bridge):
  from a call message that rings an agent (what the bridge publishes on AgentCalled:
  ``<prefix>/<node>/calls/<uniqueid>`` with ``ringing: [agent]``) to the ``pop`` on that
  agent's page. The second process publishes as :mod:`callcenter.bridge.publisher` does (the
  payloads of its records, the retained agent snapshot ringing then the call event, in one
  chunk), same agents, rings and rate, the call connected and closed 1.5-6 s later; the clock
  starts just before the publish: the broker, the wallboard and the server-sent event.
- ``agent.history_query_ms`` (goal 20): the median time of
  :func:`callcenter.crm.customers.caller_history` (the screen-pop's history: the customer by
  the caller's number, their last calls from every number of theirs in every form with their
  dispositions, their open cases) for ``BENCH_HISTORY_QUERIES`` (400) random callers, half of
  them customers, on ``BENCH_HISTORY_CALLS`` (10,000,000) calls over 365 days from
  ``BENCH_HISTORY_CALLS / 10`` numbers (about ten calls each, Poisson; caller IDs as Asterisk
  gives them: national, +1 or 1 and the number), a customer for every fifth number (one in ten
  with a second number), a case for every third customer (a second for every ninth), and a
  disposition (or the "not documented" mark) for every answered call of the last 180 days.
  Each query is timed once, on a number of its own, with a session of its own as the desk
  opens one; a few queries on other numbers warm up first. Also ``agent.history_query_p99_ms``,
  ``agent.history_query_max_ms``, ``agent.history_customer_ms`` and
  ``agent.history_stranger_ms`` (the medians of the two halves), ``agent.history_calls_in_log``.

Everything runs in a database of the benchmark's own, dropped afterwards, and under its own
MQTT prefix (retained topics cleared); every wait is bounded. ``queue_visits`` stay empty: the
history does not read them (so the board's day figures, which the wallboard keeps computing
during the pops, are cheap here).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import itertools
import json
import os
import random
import re
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import aiomqtt
import orjson
import sqlalchemy as sa
from sqlalchemy.orm import Session

SCRIPT = Path(__file__).resolve()
HERE = SCRIPT.parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from callcenter import config, directory  # noqa: E402
from callcenter.bridge.publisher import (  # noqa: E402
    _publish_all,
    agent_payload,
    call_payload,
    topic_part,
)
from callcenter.campaigns.numbers import Normaliser  # noqa: E402
from callcenter.core.records import Agent as AgentRecord  # noqa: E402
from callcenter.core.records import Call as CallRecord  # noqa: E402
from callcenter.core.records import CallPhase, Membership  # noqa: E402
from callcenter.crm.customers import HISTORY_CALLS, caller_history  # noqa: E402
from callcenter.db import engine as db  # noqa: E402
from callcenter.db.models import Agent, Call  # noqa: E402
from callcenter.db.models_crm import CallDisposition  # noqa: E402
from callcenter.domain import AgentState, CallOutcome, Direction  # noqa: E402
from callcenter.wallboard import accounts  # noqa: E402
from tests.fake_ami import FakeAmi, FakeConnection  # noqa: E402

SERVER = os.environ.get("CALLCENTER_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")
CALLS = int(os.environ.get("BENCH_HISTORY_CALLS", "10000000"))
QUERIES = int(os.environ.get("BENCH_HISTORY_QUERIES", "400"))
AGENTS = int(os.environ.get("BENCH_AGENT_AGENTS", "200"))
RINGS = int(os.environ.get("BENCH_AGENT_RINGS", "2000"))
RING_RATE = float(os.environ.get("BENCH_AGENT_RING_RATE", "20"))
#: Distinct caller numbers: about ten calls each.
NUMBERS = max(1000, CALLS // 10)
#: A customer for every CUSTOMER_EVERY-th number.
CUSTOMER_EVERY = 5
CUSTOMERS = NUMBERS // CUSTOMER_EVERY
DAYS = 365
DISPOSITION_DAYS = 180
QUEUES = 8
NODE = "pbx1"
PASSWORD = "bench agent password"  # noqa: S105 - the benchmark's own throwaway accounts
TIMEOUT = 600.0
AMI_SECRET = "bench"  # noqa: S105 - the fake Asterisk's own throwaway secret

# --- the generated call log -------------------------------------------------------------------

#: Area codes of the generated numbers; with exchanges 234-243 every one is a valid US number.
AREAS = ("201", "212", "312", "415", "617", "702", "713", "818", "917", "646")


def national(k: int) -> str:
    """Caller number ``k`` (0 <= k < NUMBERS), ten digits, as :func:`national_sql` makes it."""
    return f"{AREAS[k % 10]}{234 + k // 100000}{(k // 10) % 10000:04d}"


def national_sql(k: str) -> str:
    areas = ",".join(f"'{a}'" for a in AREAS)
    return (
        f"((ARRAY[{areas}])[1 + ({k}) % 10] || (234 + ({k}) / 100000)::text"
        f" || lpad(((({k}) / 10) % 10000)::text, 4, '0'))"
    )


#: Calls over DAYS days to :end (now), newest last (ids grow with time as the bridge writes them).
#: Callers: number k drawn at random; the caller ID national (60%), +1 (25%) or 1 and the
#: number (14.5%) or anonymous. 80% answered, 8% abandoned, 7% timed out, 5% hung up in the IVR.
FILL_CALLS = f"""
INSERT INTO calls (node, uniqueid, linkedid, direction, caller_number, caller_name, did,
                   channel, ivr_path, ivr_seconds, queue, agent, agent_channel, started_at,
                   queued_at, answered_at, ended_at, wait_seconds, talk_seconds, hold_seconds,
                   wrapup_seconds, ring_attempts, original_position, outcome, hangup_cause,
                   survey_score)
SELECT '{NODE}', u, u, 'inbound',
       CASE WHEN form < 0.6 THEN nat WHEN form < 0.85 THEN '+1' || nat
            WHEN form < 0.995 THEN '1' || nat ELSE 'anonymous' END,
       CASE WHEN g % 3 = 0 THEN 'CALLER ' || (g % 977) ELSE '' END, '8005550100',
       'PJSIP/trunk-' || lpad(to_hex(g), 8, '0'),
       (ARRAY['main:welcome[1]>sales', 'main:welcome[2]>support', 'main:welcome[3]>billing',
              'main:welcome[2]>support:menu[4]>returns'])[1 + g % 4],
       4 + g % 20,
       CASE WHEN fate < 95 THEN 'q' || (g % {QUEUES}) END,
       CASE WHEN fate < 80 THEN agent END,
       CASE WHEN fate < 80 THEN 'PJSIP/' || agent || '-' || lpad(to_hex(g), 8, '0') END,
       t, CASE WHEN fate < 95 THEN t + interval '10 seconds' END,
       CASE WHEN fate < 80 THEN t + make_interval(secs => 10 + g % 60) END,
       t + make_interval(secs => 70 + g % 600),
       CASE WHEN fate < 95 THEN g % 60 END,
       CASE WHEN fate < 80 THEN 60 + g % 540 END,
       CASE WHEN fate < 80 THEN g % 7 END,
       CASE WHEN fate < 80 THEN 10 END,
       CASE WHEN fate < 95 THEN 1 + g % 3 ELSE 0 END,
       CASE WHEN fate < 95 THEN 1 + g % 5 END,
       CASE WHEN fate < 80 THEN 'answered' WHEN fate < 88 THEN 'abandoned'
            WHEN fate < 95 THEN 'timed_out' ELSE 'ivr_hangup' END,
       16,
       CASE WHEN fate < 80 AND survey < 0.15 THEN 1 + (g % 5) END
  FROM (SELECT *, {national_sql("k")} AS nat
          FROM (SELECT g, '17' || lpad(g::text, 8, '0') || '.' || (g % 1000) AS u,
                       :end - make_interval(secs => (1 - g::float8 / :n) * {DAYS} * 86400) AS t,
                       floor(random() * :numbers)::int AS k, random() AS form,
                       floor(random() * 100)::int AS fate, random() AS survey,
                       'agent' || lpad(((g * 7) % :agents)::text, 3, '0') AS agent
                  FROM generate_series(1, :n) AS g
                OFFSET 0) r) s
"""

#: A customer for every CUSTOMER_EVERY-th number (E.164); one in ten has the next number too.
FILL_CUSTOMERS = """
INSERT INTO customers (id, name, email, crm_id, fields, created_at, updated_at)
SELECT c, 'Customer ' || c, 'customer' || c || '@example.com', 'CRM-' || c,
       jsonb_build_object('tier', (ARRAY['gold', 'silver', 'bronze'])[1 + c % 3],
                          'account', 'A' || c),
       :end - make_interval(days => 400), :end - make_interval(days => c % 300)
  FROM generate_series(1, :customers) AS c
"""
FILL_PHONES = f"""
INSERT INTO customer_phones (phone, customer_id, position)
SELECT '+1' || {national_sql("(c - 1) * :every")}, c, 0 FROM generate_series(1, :customers) c
UNION ALL
SELECT '+1' || {national_sql("(c - 1) * :every + 1")}, c, 1
  FROM generate_series(1, :customers) c WHERE c % 10 = 0
"""
#: A case for every third customer, a second for every ninth: open, pending, resolved, closed.
FILL_CASES = """
INSERT INTO cases (id, number, customer_id, category, priority, status, owner, subject, due_at,
                   resolution, created_by, created_at, updated_at, resolved_at, closed_at)
SELECT id, 'C-' || lpad(id::text, 6, '0'), customer,
       (ARRAY['question', 'request', 'complaint', 'incident'])[1 + id % 4],
       (ARRAY['low', 'normal', 'normal', 'high', 'urgent'])[1 + id % 5], status,
       'agent' || lpad((id % :agents)::text, 3, '0'), 'Subject of case ' || id,
       CASE WHEN status IN ('open', 'pending') THEN created + interval '3 days' END,
       CASE WHEN status IN ('resolved', 'closed') THEN 'Resolved on the phone' ELSE '' END,
       'agent' || lpad((id % :agents)::text, 3, '0'), created, created + interval '1 day',
       CASE WHEN status IN ('resolved', 'closed') THEN created + interval '1 day' END,
       CASE WHEN status = 'closed' THEN created + interval '2 days' END
  FROM (SELECT row_number() OVER (ORDER BY c, k) AS id, c AS customer,
               (ARRAY['open', 'pending', 'resolved', 'resolved', 'closed', 'closed',
                      'closed'])[1 + (c + k) % 7] AS status,
               :end - make_interval(days => (c * 7 + k) % 365) AS created
          FROM generate_series(1, :customers) AS c, generate_series(0, 1) AS k
         WHERE (k = 0 AND c % 3 = 0) OR (k = 1 AND c % 9 = 0)) x
"""
FILL_CODES = """
INSERT INTO disposition_codes (queue_id, code, label, effect)
SELECT q.id, d.code, d.label, d.effect
  FROM queues q,
       (VALUES ('resolved', 'Resolved', 'resolves'), ('info', 'Information given', 'resolves'),
               ('follow-up', 'Needs a follow-up', 'follow_up'),
               ('callback', 'Callback scheduled', 'callback'),
               ('wrong-number', 'Wrong number', 'none')) AS d(code, label, effect)
"""
#: Every answered call of the last DISPOSITION_DAYS days: nine in ten documented (four of
#: those with notes, one in twenty linked to a case), the tenth marked "not documented".
FILL_DISPOSITIONS = """
INSERT INTO call_dispositions (node, uniqueid, visit, queue, agent, code, effect, notes,
                               case_id, at, undocumented_at)
SELECT node, uniqueid, 1, queue, agent,
       CASE WHEN id % 10 <> 0 THEN
            (ARRAY['resolved', 'info', 'follow-up', 'callback', 'wrong-number'])[1 + id % 5]
       END,
       CASE WHEN id % 10 <> 0 THEN
            (ARRAY['resolves', 'resolves', 'follow_up', 'callback', 'none'])[1 + id % 5]
       END,
       CASE WHEN id % 10 BETWEEN 1 AND 4 THEN
            'Caller asked about invoice ' || id || '; explained the charges and sent a copy.'
            ELSE '' END,
       CASE WHEN id % 20 = 1 AND :cases > 0 THEN 1 + (id / 20) % :cases END,
       ended_at + make_interval(secs => 5 + id % 60),
       CASE WHEN id % 10 = 0 THEN ended_at + interval '2 minutes' END
  FROM calls
 WHERE outcome = 'answered' AND started_at >= :since
"""


def agent_name(i: int) -> str:
    return f"agent{i:03d}"


def setup_directory(engine: sa.Engine) -> None:
    """Queues, the agents (members of every queue) and their desk passwords."""
    with Session(engine) as s, s.begin():
        for q in range(QUEUES):
            directory.add_queue(s, f"q{q}", service_level_seconds=20)
        for i in range(AGENTS):
            directory.add_agent(s, name=agent_name(i), extension=str(2000 + i), pin="2468")
            directory.join_queue(s, f"q{i % QUEUES}", agent_name(i))
        accounts.set_agent_password(s, agent_name(0), PASSWORD)
        s.flush()
        # One argon2 hash (0.2 s here) for every agent: logging in verifies each all the same.
        hashed = s.scalar(sa.select(Agent.password_hash).where(Agent.name == agent_name(0)))
        s.execute(sa.update(Agent).values(password_hash=hashed))


def fill(engine: sa.Engine, end: dt.datetime) -> None:
    calls = Call.__table__
    dispositions = CallDisposition.__table__
    assert isinstance(calls, sa.Table)
    assert isinstance(dispositions, sa.Table)
    cases = CUSTOMERS // 3 + CUSTOMERS // 9
    # Bulk load first, indexes after: far faster than keeping the btrees up to date per row.
    with engine.begin() as conn:
        for index in [*calls.indexes, *dispositions.indexes]:
            index.drop(conn)
        conn.execute(sa.text("SET LOCAL maintenance_work_mem = '512MB'"))
        conn.execute(sa.text("SELECT setseed(0.14)"))
        params = {"n": CALLS, "end": end, "numbers": NUMBERS, "agents": AGENTS}
        conn.execute(sa.text(FILL_CALLS), params)
        conn.execute(sa.text(FILL_CUSTOMERS), {"customers": CUSTOMERS, "end": end})
        conn.execute(sa.text(FILL_PHONES), {"customers": CUSTOMERS, "every": CUSTOMER_EVERY})
        conn.execute(sa.text(FILL_CASES), {"customers": CUSTOMERS, "end": end, "agents": AGENTS})
        for table in ("customers", "cases"):
            conn.execute(sa.text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                 f"(SELECT max(id) FROM {table}))"))  # fmt: skip
        conn.execute(sa.text(FILL_CODES))
        since = end - dt.timedelta(days=DISPOSITION_DAYS)
        conn.execute(sa.text(FILL_DISPOSITIONS), {"since": since, "cases": cases})
        for index in [*calls.indexes, *dispositions.indexes]:
            index.create(conn)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in ("calls", "call_dispositions", "customers", "customer_phones", "cases"):
            conn.execute(sa.text(f"VACUUM ANALYZE {table}"))


# --- 1. the history query ---------------------------------------------------------------------


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[int(q * (len(ordered) - 1))]


def history_times(engine: sa.Engine) -> dict[str, float]:
    """Each caller once, as the desk asks: a session of its own, the call ringing now left out
    (a uniqueid the log does not have), the number as Asterisk gives it."""
    rng = random.Random(14)
    numbers = Normaliser("US")
    # Customers' first numbers are k = (c - 1) * CUSTOMER_EVERY, second ones the next k.
    picked = rng.sample(range(NUMBERS), k=min(NUMBERS, 4 * QUERIES))
    customers = [k for k in picked if k % CUSTOMER_EVERY == 0]
    strangers = [k for k in picked if k % CUSTOMER_EVERY not in (0, 1)]
    half = QUERIES // 2
    # A few callers first, not timed (connections, compiled statements, number metadata).
    warm: list[tuple[int, bool | None]] = [(k, None) for k in strangers[half : half + 10]]
    callers: list[tuple[int, bool | None]] = [(k, True) for k in customers[:half]]
    callers += [(k, False) for k in strangers[:half]]
    rng.shuffle(callers)
    times: dict[bool, list[float]] = {True: [], False: []}
    found_calls = 0
    for n, (k, is_customer) in enumerate(warm + callers):
        caller = national(k) if n % 4 else "+1" + national(k)
        started = time.perf_counter()
        with Session(engine) as session:
            history = caller_history(session, numbers, caller, limit=HISTORY_CALLS,
                                     exclude_uniqueid=f"1900000000.{n}")  # fmt: skip
        took = (time.perf_counter() - started) * 1000
        if is_customer is None:
            continue
        if is_customer != (history.customer is not None):
            raise RuntimeError(f"caller {caller}: customer {history.customer} unexpected")
        times[is_customer].append(took)
        found_calls += len(history.calls)
    every = times[True] + times[False]
    print(
        f"bench_agent: history of {len(every)} callers on {CALLS:,} calls: "
        f"{found_calls / len(every):.1f} past calls each (limit {HISTORY_CALLS}), "
        f"median {statistics.median(every):.2f} ms, p99 {percentile(every, 0.99):.2f} ms",
        file=sys.stderr,
    )
    return {
        "agent.history_query_ms": statistics.median(every),
        "agent.history_query_p99_ms": percentile(every, 0.99),
        "agent.history_query_max_ms": max(every),
        "agent.history_customer_ms": statistics.median(times[True]),
        "agent.history_stranger_ms": statistics.median(times[False]),
        "agent.history_calls_in_log": float(CALLS),
    }


# --- 2. the screen-pop: the browsers and the bridge (a process of their own) --------------------

NONCE = re.compile(r'name="csrf" value="([^"]+)"')


async def browser_login(session: aiohttp.ClientSession, base: str, name: str) -> None:
    """As tests/test_desk.py logs in: the form's nonce, the post, then the page."""
    async with session.get(f"{base}/agent/login") as resp:
        found = NONCE.search(await resp.text())
    if found is None:
        raise RuntimeError("no nonce on /agent/login")
    form = {"name": name, "password": PASSWORD, "csrf": found.group(1)}
    async with session.post(f"{base}/agent/login", data=form, allow_redirects=False) as resp:
        if resp.status != 303:
            raise RuntimeError(f"{name}: the login answered {resp.status}")
    async with session.get(f"{base}/agent") as resp:
        if resp.status != 200:
            raise RuntimeError(f"{name}: /agent answered {resp.status}")
        await resp.read()


class Seen:
    """What the pages received: per event kind, uniqueid -> arrival (perf_counter); the
    pops awaited; pops on another agent's page. (Not a dataclass: bench.py loads this file
    without registering it as a module, which dataclasses need.)"""

    def __init__(self) -> None:
        self.arrivals: dict[str, dict[str, float]] = {"pop": {}, "history": {}}
        self.waiters: dict[str, asyncio.Future[None]] = {}
        self.wrong = 0


async def browser_page(
    session: aiohttp.ClientSession, base: str, name: str, ready: Callable[[], None], seen: Seen
) -> None:
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
    async with session.get(f"{base}/agent/events", timeout=timeout) as resp:
        if resp.status != 200:
            raise RuntimeError(f"{name}: /agent/events answered {resp.status}")
        event = ""
        async for line in resp.content:
            now = time.perf_counter()
            if line.startswith(b"retry:"):
                ready()
            elif line.startswith(b"event: "):
                event = line[7:].strip().decode()
            elif line.startswith(b"data: ") and event in seen.arrivals:
                data = json.loads(line[6:])
                uniqueid = str(data.get("uniqueid"))
                if event == "pop" and data.get("agent") != name:
                    seen.wrong += 1
                seen.arrivals[event].setdefault(uniqueid, now)
                waiter = seen.waiters.get(uniqueid)
                if event == "pop" and waiter is not None and not waiter.done():
                    waiter.set_result(None)


def agent_record(
    name: str, state: AgentState, now: float, call: str | None, queue: str
) -> AgentRecord:
    ringing, on_call = state == AgentState.RINGING, state == AgentState.ON_CALL
    member = Membership(
        queue=queue, interface=f"PJSIP/{name}", state_interface=f"PJSIP/{name}",
        membership="static", penalty=0, paused=False, paused_reason="",
        status=6 if ringing else 2 if on_call else 1, in_call=on_call, calls_taken=0,
        last_call=0, last_pause=0, login_time=int(now) - 3600, wrapuptime=10, ringinuse=False,
    )  # fmt: skip
    return AgentRecord(
        node=NODE, name=name, interface=f"PJSIP/{name}", state=state, reason=None, since=now,
        logged_in_at=now - 3600, memberships={queue: member},
        call=call if on_call else None, call_queue=queue if on_call else None,
    )  # fmt: skip


# --- 2b. the screen-pop from the AMI bytes: the peer plays Asterisk to the real bridge ---------

#: What the recorded call (inbound-answered: Carol calls, Alice answers) says that is per call.
REC_CALLER_UID, REC_AGENT_UID = "1795342827.0", "1795342830.1"
REC_AGENT, REC_IFACE, REC_EXTEN, REC_QUEUE = "Alice", "agent1001", "1001", "sales"
REC_CALLER_NUMBER = "5551230001"
REC_EXTEN_WORD = re.compile(r"\b1001\b")


def recorded_call() -> tuple[str, list[list[str]]]:
    """The recorded QueueMemberAdded of Alice, and the call's frames in five groups as
    Asterisk sent them: the IVR (0.8-2.7 s after the start), the queue join and the agent's
    channel (3.418 s), the ring (AgentCalled and what came in the same 3 ms), the answer
    (5.43 s), the talk and the hang-up (6.3-8.8 s). Verbatim, as tests.fake_ami gives them."""
    from tests.fake_ami import recorded_events

    os.environ.setdefault("CALLCENTER_TRACES", str(ROOT / "tests/fixtures/asterisk-traces"))
    timed: list[tuple[float, str]] = []
    for text in recorded_events("inbound-answered", stamp=True):
        head, _, rest = text.partition("\r\n")
        stamp, _, rest = rest.partition("\r\n")
        timed.append((float(stamp.removeprefix("Timestamp: ")), f"{head}\r\n{rest}"))
    member = next(t for _, t in timed if t.startswith("Event: QueueMemberAdded\r\n"))
    called = next(i for i, (_, t) in enumerate(timed) if t.startswith("Event: AgentCalled\r\n"))
    join = next(i for i, (_, t) in enumerate(timed) if t.startswith("Event: QueueCallerJoin\r\n"))
    start = next(i for i, (_, t) in enumerate(timed) if t.startswith("Event: Newchannel\r\n"))
    ring_at = timed[called][0]
    # The frames of the queue join's moment: everything within 10 ms before the ring.
    joined = next(i for i in range(start, join + 1) if timed[i][0] >= ring_at - 0.01)
    answered = next(i for i in range(called, len(timed)) if timed[i][0] >= ring_at + 1.0)
    talking = next(i for i in range(answered, len(timed)) if timed[i][0] >= timed[answered][0]
                   + 0.5)  # fmt: skip
    cut = [start, joined, called, answered, talking, len(timed)]
    groups = [[t for _, t in timed[a:b]] for a, b in itertools.pairwise(cut)]
    return member, groups


def for_call(text: str, n: int, agent: str, queue: str, caller: str, base: int) -> str:
    """A recorded frame for call ``n`` to ``agent``: its own Uniqueids, channels, agent
    (MemberName, interface, extension), queue and caller number; every field name and every
    other value as recorded."""
    # The extension first: "1001" as a word, before Uniqueids and numbers that may hold it.
    text = REC_EXTEN_WORD.sub(str(2000 + int(agent.removeprefix("agent"))), text)
    text = text.replace(REC_CALLER_UID, f"{base}.{2 * n}")
    text = text.replace(REC_AGENT_UID, f"{base}.{2 * n + 1}")
    text = text.replace("trunk-00000000", f"trunk-{n:08x}")
    text = text.replace(f"{REC_IFACE}-00000001", f"{agent}-{n:08x}")
    text = text.replace(REC_IFACE, agent).replace(REC_AGENT, agent)
    text = text.replace(REC_CALLER_NUMBER, caller)
    return text.replace(REC_QUEUE, queue)


def wire(frames: list[str]) -> bytes:
    return "".join(f"{f}\r\n\r\n" for f in frames).encode()


async def bridge_snapshots(mqtt: aiomqtt.Client, node_topic: str, count: int) -> None:
    """Until the bridge has published (retained) a snapshot of every agent."""
    agents: set[str] = set()
    await mqtt.subscribe(f"{node_topic}/agents/+", qos=1)
    async with asyncio.timeout(60):
        async for msg in mqtt.messages:
            if msg.payload:
                agents.add(str(msg.topic))
                if len(agents) >= count:
                    break
    await mqtt.unsubscribe(f"{node_topic}/agents/+")


async def bridge_and_browsers(cfg: dict[str, Any]) -> dict[str, Any]:
    """Log the agents in, open their pages, ring them: over MQTT as the bridge publishes
    (``mode`` "mqtt"), or as Asterisk over AMI to the real bridge (``mode`` "ami": this process
    serves the fake AMI peer and prints its port first); the latencies (ms)."""
    base, prefix = cfg["url"], cfg["prefix"]
    names = [agent_name(i) for i in range(cfg["agents"])]
    rng = random.Random(cfg["seed"])
    node_topic = f"{prefix}/{topic_part(NODE)}"
    seen = Seen()
    sent: dict[str, float] = {}

    def agent_message(name: str, state: AgentState, call: str | None = None,
                      queue: str = "q0") -> tuple[str, bytes, int, bool]:  # fmt: skip
        payload = agent_payload(agent_record(name, state, time.time(), call, queue))
        data = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
        return f"{node_topic}/agents/{topic_part(name)}", data, 1, True

    def call_message(call: CallRecord) -> tuple[str, bytes, int, bool]:
        topic = f"{node_topic}/calls/{topic_part(call.uniqueid)}"
        return topic, orjson.dumps(call_payload(call)), 0, False

    mqtt = aiomqtt.Client(cfg["mqtt_host"], cfg["mqtt_port"], identifier=f"{prefix}-bridge")
    via_ami = cfg["mode"] == "ami"
    stack = contextlib.AsyncExitStack()
    conn: FakeConnection | None = None
    member, groups = recorded_call()
    uid_base = int(time.time())
    sessions = [
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))  # 127.0.0.1's cookies
        for _ in names
    ]
    pages: list[asyncio.Task[None]] = []
    try:
        if via_ami:
            # Asterisk, to the real bridge in the other process: it connects once we say where.
            fake = await stack.enter_async_context(FakeAmi(secret=AMI_SECRET))
            print(f"port {fake.port}", flush=True)
            conn = await fake.accept(timeout=60)
            # Each agent logged in to their queue, as Asterisk reports it (the recorded frame).
            members = [for_call(member, 0, n, f"q{i % QUEUES}", "", uid_base)
                       for i, n in enumerate(names)]  # fmt: skip
            conn.writer.write(wire(members))
            await conn.writer.drain()
        async with mqtt:
            if via_ami:
                await bridge_snapshots(mqtt, node_topic, len(names))
            else:
                # The bridge's retained snapshots: every agent logged in and available.
                await _publish_all(mqtt, [agent_message(n, AgentState.AVAILABLE) for n in names])
            started = time.perf_counter()
            async with asyncio.timeout(TIMEOUT):
                await asyncio.gather(
                    *(browser_login(s, base, n) for s, n in zip(sessions, names, strict=True))
                )
            logins = time.perf_counter() - started
            all_ready, count = asyncio.Event(), [0]

            def ready() -> None:
                count[0] += 1
                if count[0] == len(names):
                    all_ready.set()

            pages = [asyncio.create_task(browser_page(s, base, n, ready, seen))
                     for s, n in zip(sessions, names, strict=True)]  # fmt: skip
            async with asyncio.timeout(60):
                await all_ready.wait()

            free = set(names)
            freed = asyncio.Event()

            async def answer_and_hang_up(call: CallRecord, agent: str) -> None:
                try:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(30):
                            await seen.waiters[call.uniqueid]
                    await asyncio.sleep(rng.uniform(0.5, 2.0))
                    now = time.time()
                    assert call.queued_at is not None
                    call = dataclasses.replace(
                        call, phase=CallPhase.CONNECTED, ringing=(), agent=agent,
                        agent_channel=f"PJSIP/{agent}-{call.uniqueid}", answered_at=now,
                        wait_seconds=float(int(now - call.queued_at)),
                        outcome=CallOutcome.ANSWERED,
                    )  # fmt: skip
                    await _publish_all(mqtt, [
                        agent_message(agent, AgentState.ON_CALL, call.uniqueid, call.queue or ""),
                        call_message(call),
                    ])  # fmt: skip
                    await asyncio.sleep(rng.uniform(1.0, 4.0))
                    now = time.time()
                    talk = float(int(now - (call.answered_at or now)))
                    call = dataclasses.replace(
                        call, phase=CallPhase.ENDED, closed=True, ended_at=now,
                        visit_ended_at=now, talk_seconds=talk,
                    )  # fmt: skip
                    await _publish_all(mqtt, [agent_message(agent, AgentState.AVAILABLE),
                                              call_message(call)])  # fmt: skip
                finally:
                    free.add(agent)
                    freed.set()

            async def ami_call(n: int, agent: str, queue: str, caller: str) -> None:
                """Call ``n`` as Asterisk tells it: the IVR, the join and the agent's channel,
                then the ring (the clock starts as its bytes go to the socket), the answer
                once the page popped, the hang-up."""
                assert conn is not None
                uniqueid = f"{uid_base}.{2 * n}"
                try:
                    seen.waiters[uniqueid] = loop.create_future()
                    ivr, join, ring, answer, talk = (
                        wire([for_call(f, n, agent, queue, caller, uid_base) for f in g])
                        for g in groups
                    )
                    conn.writer.write(ivr)
                    await asyncio.sleep(rng.uniform(0.2, 1.0))
                    conn.writer.write(join)
                    await conn.writer.drain()
                    sent[uniqueid] = time.perf_counter()
                    conn.writer.write(ring)  # AgentCalled first
                    await conn.writer.drain()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(30):
                            await seen.waiters[uniqueid]
                    await asyncio.sleep(rng.uniform(0.5, 2.0))
                    conn.writer.write(answer)
                    await asyncio.sleep(rng.uniform(1.0, 4.0))
                    conn.writer.write(talk)
                    await conn.writer.drain()
                finally:
                    free.add(agent)
                    freed.set()

            calls: list[asyncio.Task[None]] = []
            loop = asyncio.get_running_loop()
            next_at = loop.time()
            for i in range(cfg["rings"]):
                next_at += rng.expovariate(cfg["rate"])
                await asyncio.sleep(max(0.0, next_at - loop.time()))
                while not free:
                    freed.clear()
                    async with asyncio.timeout(30):
                        await freed.wait()
                agent = rng.choice(sorted(free))
                free.discard(agent)
                if via_ami:
                    queue = f"q{names.index(agent) % QUEUES}"
                    caller = national(rng.randrange(cfg["numbers"]))
                    calls.append(asyncio.create_task(ami_call(i, agent, queue, caller)))
                    continue
                now = time.time()
                uniqueid = f"{int(now)}.{i}"
                queue = f"q{rng.randrange(QUEUES)}"
                call = CallRecord(
                    node=NODE, uniqueid=uniqueid, linkedid=uniqueid, direction=Direction.INBOUND,
                    channel=f"PJSIP/trunk-{i:08x}", caller_number=national(
                        rng.randrange(cfg["numbers"])),
                    caller_name="", did="8005550100", started_at=now - 20,
                    phase=CallPhase.RINGING, ivr_path="main:welcome[1]>sales", ivr_seconds=8.0,
                    queue=queue, queued_at=now - rng.uniform(0, 30), original_position=1,
                    ringing=(agent,), ring_attempts=1, visit=1,
                )  # fmt: skip
                seen.waiters[uniqueid] = loop.create_future()
                chunk = [agent_message(agent, AgentState.RINGING, queue=queue), call_message(call)]
                sent[uniqueid] = time.perf_counter()
                await _publish_all(mqtt, chunk)
                calls.append(asyncio.create_task(answer_and_hang_up(call, agent)))
            async with asyncio.timeout(120):
                await asyncio.gather(*calls)
            # The last histories: a moment for the desk's queries to come back.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(10):
                    while len(seen.arrivals["history"]) < len(sent):
                        await asyncio.sleep(0.1)
    finally:
        for task in pages:
            task.cancel()
        await asyncio.gather(*pages, return_exceptions=True)
        for session in sessions:
            await session.close()
        if conn is not None:  # end the bridge's connection before the fake stops serving it
            conn.writer.close()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await conn.closed.wait()
        await stack.aclose()

    def latencies(kind: str) -> list[float]:
        arrived = seen.arrivals[kind]
        return [(arrived[u] - t) * 1000 for u, t in sent.items() if u in arrived]

    return {"pop": latencies("pop"), "history": latencies("history"), "sent": len(sent),
            "wrong": seen.wrong, "login_s": logins}  # fmt: skip


async def pop_latency(url: str, mode: str) -> dict[str, Any]:
    """One run of the pops: ``mode`` "mqtt" (the browsers' process publishes the bridge's
    messages) or "ami" (it plays Asterisk to the real bridge, which runs here by the
    wallboard, one event loop, as ``callcenter run`` runs them)."""
    from callcenter.bridge.app import Bridge
    from callcenter.wallboard.app import Wallboard
    from tests.test_wallboard_support import clear_retained

    tag = secrets.token_hex(3)
    prefix = f"ccbench-{tag}"
    settings = dataclasses.replace(
        config.load(environ={"CALLCENTER_CONFIG": ""}),
        nodes=(config.NodeSettings(name=NODE),),
        database=config.DatabaseSettings(url=url),
        mqtt=config.MqttSettings(topic_prefix=prefix, client_id=prefix),
        wallboard=config.WallboardSettings(port=0, secret_key=config.Secret(tag)),
    )
    stop = asyncio.Event()
    wallboard = Wallboard(settings, links={})  # no AMI: the agents' actions are not measured
    running = [asyncio.create_task(wallboard.run(stop))]
    client: asyncio.subprocess.Process | None = None
    spool = tempfile.TemporaryDirectory(prefix="ccbench")
    try:
        async with asyncio.timeout(30):
            p = wallboard.parts
            while not (wallboard.started.is_set() and p.state.feed_connected and
                       p.auth.cache.loaded):  # fmt: skip
                if running[0].done():
                    running[0].result()  # its error
                await asyncio.sleep(0.05)
        cfg = {
            "url": f"http://127.0.0.1:{wallboard.port}", "prefix": prefix, "mode": mode,
            "mqtt_host": settings.mqtt.host, "mqtt_port": settings.mqtt.port,
            "agents": AGENTS, "rings": RINGS, "rate": RING_RATE, "numbers": NUMBERS, "seed": 6,
        }  # fmt: skip
        client = await asyncio.create_subprocess_exec(
            sys.executable, str(SCRIPT), "browsers", json.dumps(cfg),
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert client.stdout is not None
        if mode == "ami":
            async with asyncio.timeout(60):
                line = (await client.stdout.readline()).decode()
            if not line.startswith("port "):
                raise RuntimeError(f"the fake Asterisk did not start: {line!r}")
            node = config.NodeSettings(
                name=NODE, port=int(line.split()[1]), secret=config.Secret(AMI_SECRET)
            )
            bridge_settings = dataclasses.replace(
                settings, nodes=(node,),
                bridge=dataclasses.replace(settings.bridge, spool_dir=spool.name),
            )  # fmt: skip
            running.append(asyncio.create_task(Bridge(bridge_settings).run(stop)))
        async with asyncio.timeout(TIMEOUT + RINGS / RING_RATE + 300):
            out = await client.stdout.read()
            await client.wait()
        if client.returncode != 0:
            raise RuntimeError(f"the browsers' process failed ({client.returncode})")
        result: dict[str, Any] = json.loads(out)
    finally:
        if client is not None and client.returncode is None:
            client.kill()
            await client.wait()
        stop.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(30):
                await asyncio.gather(*running, return_exceptions=True)
        await clear_retained(prefix)
        spool.cleanup()
    pops, histories = result["pop"], result["history"]
    if len(pops) < result["sent"] or result["wrong"]:
        raise RuntimeError(f"{mode}: {len(pops)} of {result['sent']} pops arrived, "
                           f"{result['wrong']} on the wrong page")  # fmt: skip
    start = {
        "ami": "the AgentCalled frame written to the bridge's AMI socket",
        "mqtt": "the call message published to MQTT (the bridge's own step left out)",
    }
    print(
        f"bench_agent [{mode}]: {AGENTS} agents logged in in {result['login_s']:.1f} s; "
        f"{len(pops)} rings at {RING_RATE:g}/s, from {start[mode]} to the pop on the page: "
        f"p50 {statistics.median(pops):.1f} ms, p99 {percentile(pops, 0.99):.1f} ms, "
        f"max {max(pops):.1f} ms; history p99 {percentile(histories, 0.99):.1f} ms "
        f"({len(histories)} arrived).",
        file=sys.stderr,
    )
    return result


def pop_figures(ami: dict[str, Any], mqtt: dict[str, Any]) -> dict[str, float]:
    pops, histories, from_mqtt = ami["pop"], ami["history"], mqtt["pop"]
    return {
        "agent.pop_p99_ms": percentile(pops, 0.99),
        "agent.pop_p50_ms": statistics.median(pops),
        "agent.pop_max_ms": max(pops),
        "agent.pop_samples": float(len(pops)),
        "agent.pop_agents": float(AGENTS),
        "agent.pop_history_p50_ms": statistics.median(histories),
        "agent.pop_history_p99_ms": percentile(histories, 0.99),
        "agent.pop_from_mqtt_p99_ms": percentile(from_mqtt, 0.99),
        "agent.pop_from_mqtt_p50_ms": statistics.median(from_mqtt),
        "agent.pop_from_mqtt_max_ms": max(from_mqtt),
    }


def run() -> dict[str, float]:
    name = f"cc_bench_{secrets.token_hex(4)}"
    admin = sa.create_engine(f"{SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = f"{SERVER}/{name}"
    engine = db.make_engine(config.DatabaseSettings(url=url))
    try:
        db.upgrade(engine)
        setup_directory(engine)
        started = time.perf_counter()
        fill(engine, dt.datetime.now(dt.UTC))
        print(f"bench_agent: {CALLS:,} calls generated in {time.perf_counter() - started:.0f} s",
              file=sys.stderr)  # fmt: skip
        figures = history_times(engine)
        from_mqtt = asyncio.run(pop_latency(url, "mqtt"))
        figures.update(pop_figures(asyncio.run(pop_latency(url, "ami")), from_mqtt))
        return figures
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    if sys.argv[1:2] == ["browsers"]:
        print(json.dumps(asyncio.run(bridge_and_browsers(json.loads(sys.argv[2])))), flush=True)
    else:
        for key, value in run().items():
            print(f"{key:36} {value:14,.1f}")
