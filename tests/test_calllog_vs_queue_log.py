"""The call log and the report against Asterisk's own queue_log, figure by figure.

Each recorded scenario's AMI stream goes through the whole bridge (fake Asterisk peer, real
PostgreSQL, real Mosquitto); then the ``queue_visits`` rows, the per-queue pauses and
``callcenter.reports.build_report`` are compared with figures computed here, straight from
the scenario's queue_log and independently of the core:

- per queue: offered, answered, abandoned, timed out, SL, ASA, talk, abandon rate, longest
  wait;
- per agent: answered calls, pause seconds per reason and per queue;
- per visit (one per ENTERQUEUE): outcome, queue, agent, wait, talk.

Times within 1 s (queue_log has whole seconds). Each frame is sent with the ``Timestamp``
header our rendered manager.conf asks for (``timestampevents = yes``), set to when the
recorder received it, so event times are Asterisk's and not the replay's.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from callcenter import config, reports
from callcenter.ami.protocol import Message
from callcenter.core.queue_log import QueueLogEntry
from tests import traces
from tests.fake_ami import FakeAmi, recorded_events
from tests.test_bridge import bridge_running, bridge_settings, eventually

SL_SECONDS = 20  # servicelevel of both recorded queues (config/asterisk/queues.conf)
EXITS = {
    "ABANDON": "abandoned",
    "EXITWITHTIMEOUT": "timed_out",
    "EXITEMPTY": "exit_empty",
    "EXITWITHKEY": "exit_key",
}
COMPLETES = ("COMPLETECALLER", "COMPLETEAGENT", "BLINDTRANSFER", "ATTENDEDTRANSFER")


STATUS_ITEMS = ("QueueParams", "QueueMember", "QueueEntry")


def recorded_lists(scenario: str, conn: str) -> tuple[list[str], list[str]]:
    """What Asterisk answered to QueueStatus and CoreShowChannels on ``conn`` (the recorder
    asked right after logging in), as list items the fake can give the bridge's own
    resync: without the recorder's ActionID."""
    status: list[str] = []
    channels: list[str] = []
    for timed in traces.timed_frames(scenario):
        f = timed.frame
        if timed.conn != conn or not isinstance(f, Message) or "Privilege" in f.fields:
            continue
        if f.event not in (*STATUS_ITEMS, "CoreShowChannel"):
            continue
        text = "\r\n".join(
            line for line in f.text.split("\r\n") if not line.startswith("ActionID:")
        )
        (status if f.event in STATUS_ITEMS else channels).append(text)
    return status, channels


@dataclasses.dataclass
class Visit:
    """One queue visit as queue_log tells it."""

    callid: str
    queue: str
    entered: float
    agent: str | None = None
    outcome: str | None = None
    wait: float | None = None
    talk: float | None = None


def visits_of(entries: Iterable[QueueLogEntry]) -> list[Visit]:
    """ENTERQUEUE opens a visit; CONNECT and the end lines go to the newest open visit of
    the same call and queue (the one that agent answered, for a COMPLETE*)."""
    visits: list[Visit] = []
    for e in entries:
        if not e.callid.replace(".", "", 1).isdigit():
            continue
        if e.event == "ENTERQUEUE":
            visits.append(Visit(e.callid, e.queue, e.time))
            continue
        mine = [v for v in visits if v.callid == e.callid and v.queue == e.queue and not v.outcome]
        if e.event in COMPLETES:
            mine = [v for v in mine if v.agent == e.agent] or mine
        if not mine:
            continue
        v = mine[-1]
        if e.event == "CONNECT":
            v.agent, v.wait = e.agent, float(e.datum(1))
        elif e.event in ("COMPLETECALLER", "COMPLETEAGENT"):
            v.outcome, v.wait, v.talk = "answered", float(e.datum(1)), float(e.datum(2))
        elif e.event in ("BLINDTRANSFER", "ATTENDEDTRANSFER"):
            # exten|context or BRIDGE|id (app_queue.c log_attended_transfer), then
            # holdtime|calltime|position: read from the end.
            v.outcome, v.wait, v.talk = "transferred", float(e.data[-3]), float(e.data[-2])
        elif e.event in EXITS:
            v.outcome = EXITS[e.event]
            v.wait = float(e.datum(4) if e.event == "EXITWITHKEY" else e.datum(3))
    return visits


def pauses_of(
    entries: Iterable[QueueLogEntry], until: float
) -> dict[str, dict[str, dict[str, float]]]:
    """Seconds from PAUSE to UNPAUSE per agent, queue and reason (open ones to ``until``)."""
    open_: dict[tuple[str, str], tuple[str, float]] = {}
    out: dict[str, dict[str, dict[str, float]]] = {}

    def close(key: tuple[str, str], at: float) -> None:
        reason, start = open_.pop(key)
        by_reason = out.setdefault(key[0], {}).setdefault(key[1], {})
        by_reason[reason or "(none)"] = by_reason.get(reason or "(none)", 0.0) + at - start

    for e in entries:
        key = (e.agent, e.queue)
        if e.event == "PAUSE":
            if key in open_:
                close(key, e.time)
            open_[key] = (e.datum(1), e.time)
        elif e.event == "UNPAUSE" and key in open_:
            close(key, e.time)
    for key in list(open_):
        close(key, until)
    return out


def scenarios_with_queue_calls() -> list[str]:
    return [s for s in traces.scenarios() if visits_of(traces.queue_log(s))] or []


async def replay_into_bridge(
    scenario: str, settings: config.Settings, engine: Engine, tmp: Path
) -> None:
    ended = [v for v in visits_of(traces.queue_log(scenario)) if v.outcome]
    async with FakeAmi() as fake:
        s = bridge_settings(settings, fake.port, tmp)
        async with bridge_running(s):
            # One connection after the other, as the bridge had them (``restart``: Asterisk
            # restarted and the bridge reconnected).
            conn = None
            for name in traces.sequential_connections(scenario):
                if conn is not None:
                    # The bridge resyncs on every reconnection: let the fake answer as
                    # Asterisk did then (after a restart: the persistent members, still
                    # paused). The first connection starts on an empty Asterisk.
                    fake.defaults["queue_status"], fake.defaults["channels"] = recorded_lists(
                        scenario, name
                    )
                    conn.drop()
                conn = await fake.accept()
                await conn.send_frames(recorded_events(scenario, name, stamp=True))

            def done() -> bool:
                with engine.connect() as db:
                    n = db.scalar(
                        sa.text("SELECT count(*) FROM queue_visits WHERE outcome IS NOT NULL")
                    )
                return (n or 0) >= len(ended)

            await eventually(done, timeout=30, what=scenario)
        # Leaving the block stops the bridge, which flushes what it still holds.


def near(a: float | None, b: float | None, slack: float = 1.0) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) <= slack


@pytest.mark.parametrize("scenario", scenarios_with_queue_calls())
async def test_every_figure_equals_queue_log(
    scenario: str, settings: config.Settings, clean_db: Engine, tmp_path: Path
) -> None:
    log = traces.queue_log(scenario)
    await replay_into_bridge(scenario, settings, clean_db, tmp_path)
    expected = visits_of(log)
    start, end = log[0].time - 3600, log[-1].time + 3600
    since, until = (dt.datetime.fromtimestamp(t, dt.UTC) for t in (start, end))

    # Per visit: outcome, queue, agent, wait, talk.
    with clean_db.connect() as db:
        found = db.execute(sa.text("SELECT * FROM queue_visits ORDER BY queued_at")).mappings()
        got: dict[str, list[dict[str, Any]]] = {}
        for found_row in found:
            got.setdefault(found_row["uniqueid"], []).append(dict(found_row))
    for v in expected:
        mine = [r for r in got.get(v.callid, []) if r["queue"] == v.queue]
        row = min(mine, key=lambda r: abs(r["queued_at"].timestamp() - v.entered))
        assert near(row["queued_at"].timestamp(), v.entered), (scenario, v)
        assert row["outcome"] == v.outcome, (scenario, v, row["outcome"])
        assert row["agent"] == v.agent, (scenario, v)
        assert near(row["wait_seconds"], v.wait, 0.0), (scenario, v, row["wait_seconds"])
        assert near(row["talk_seconds"], v.talk, 0.0), (scenario, v, row["talk_seconds"])
    assert sum(len(r) for r in got.values()) == len(expected), scenario

    rules = config.ReportingSettings(short_abandon_seconds=0)
    with Session(clean_db) as s:
        rep = reports.build_report(s, since, until, rules, now=until)

    # Per queue.
    figures = {q.queue: q for q in rep.queues}
    assert set(figures) == {v.queue for v in expected}
    for queue, q in figures.items():
        vs = [v for v in expected if v.queue == queue]
        answered = [v for v in vs if v.agent is not None]
        abandoned = [v for v in vs if v.outcome == "abandoned"]
        waits = [v.wait for v in vs if v.wait is not None]
        assert q.offered == len(vs), queue
        assert q.answered == len(answered), queue
        assert q.abandoned == len(abandoned), queue
        assert q.timed_out == len([v for v in vs if v.outcome == "timed_out"]), queue
        in_sl = [v for v in answered if v.wait is not None and v.wait <= SL_SECONDS]
        assert q.service_level == pytest.approx(len(in_sl) / len(vs)), queue
        if answered:
            asa = sum(v.wait or 0 for v in answered) / len(answered)
            assert q.asa == pytest.approx(asa), queue
        assert q.talk == pytest.approx(sum(v.talk or 0 for v in answered)), queue
        assert q.abandon_rate == pytest.approx(len(abandoned) / len(vs)), queue
        assert q.longest_wait == (max(waits) if waits else None), queue

    # Per agent: answered calls, pause seconds per reason and queue.
    agents = {a.agent: a for a in rep.agents}
    for name in {v.agent for v in expected if v.agent}:
        answered_by = [v for v in expected if v.agent == name]
        assert agents[name].calls == len(answered_by), name
    for name, by_queue in pauses_of(log, end).items():
        paused = agents[name].pause_by_queue
        assert set(paused) == set(by_queue), (name, paused, by_queue)
        for queue, by_reason in by_queue.items():
            assert set(paused[queue]) == set(by_reason), (name, queue)
            for reason, seconds in by_reason.items():
                assert near(paused[queue][reason], seconds), (name, queue, reason)
