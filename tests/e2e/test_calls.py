"""Calls through the real Asterisk with SIP phones: SIPp callers on the trunk, through our IVR
(FastAGI, digit 1 keyed as RFC 4733) into the queue, SIPp agent phones registered as the
agents' PJSIP endpoints. After each scenario the call log, the agent state spans, the MQTT
snapshots and ``callcenter report --json`` must agree with Asterisk's own queue_log for the same
calls, field by field (the wallboard API too, where callcenter.wallboard.api can be imported).
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from callcenter.core.queue_log import QueueLogEntry, parse_queue_log
from tests.e2e.conftest import DID, IVRS, Pbx, Stack, report_json, scenario, stack, wait_exit
from tests.test_bridge import (
    assert_matches,
    calls,
    closed_calls,
    eventually,
    expected_from_queue_log,
)

pytestmark = pytest.mark.asterisk

#: The wallboard is a colleague's work in progress: its figures are compared only where its
#: module can be imported (the JSON API's /api/kpis serves kpis.day_figures).
HAS_WALLBOARD_KPIS = importlib.util.find_spec("callcenter.wallboard.kpis") is not None


def wallboard_queue(st: Stack) -> dict[str, Any] | None:
    """The wallboard's figures of today for queue sales (what /api/kpis serves), or None."""
    if not HAS_WALLBOARD_KPIS:
        return None
    import datetime as dt
    from zoneinfo import ZoneInfo

    from sqlalchemy.orm import Session

    from callcenter.wallboard import kpis

    with Session(st.engine) as session:
        figures = kpis.day_figures(
            session, st.settings.reporting, ZoneInfo("UTC"), dt.datetime.now(dt.UTC)
        )
    queue: dict[str, Any] = figures["queues"]["sales"]
    return queue


def new_entries(pbx: Pbx, start: int) -> list[QueueLogEntry]:
    return list(parse_queue_log(pbx.queue_log.read_text()[start:]))


def queue_log_size(pbx: Pbx) -> int:
    return len(pbx.queue_log.read_text()) if pbx.queue_log.exists() else 0


def spans(engine: Engine) -> list[tuple[str, str]]:
    with engine.connect() as db:
        rows = db.execute(
            sa.text("SELECT agent, state FROM agent_state_changes ORDER BY started_at, id")
        ).all()
    return [(str(r[0]), str(r[1])) for r in rows]


async def agree(st: Stack, start: int, outcomes: list[str] | None) -> dict[str, Any]:
    """Wait for the calls to close, then compare every record with queue_log's lines.
    ``outcomes``: what queue_log must say of the calls; ``None``: whatever it says."""

    def ended() -> int:
        entries = new_entries(st.pbx, start)
        joined = {e.callid for e in entries if e.event == "ENTERQUEUE"}
        if len(expected_from_queue_log(entries)) < len(joined):
            return -1  # a caller is still in the queue
        return len(joined)

    if outcomes is None:
        await eventually(lambda: ended() >= 0 and closed_calls(st.engine) >= ended(), 60)
    else:
        wanted = len(outcomes)
        await eventually(lambda: closed_calls(st.engine) >= wanted, timeout=40)
    await asyncio.sleep(1.5)  # queue_log's last lines, the bridge's last flush
    entries = new_entries(st.pbx, start)
    expected = expected_from_queue_log(entries)
    text = "\n".join(f"{e.event} {e.callid} {e.agent} {e.data}" for e in entries)
    if outcomes is None:
        outcomes = [e.outcome for e in expected.values()]
    assert sorted(e.outcome for e in expected.values()) == sorted(outcomes), text
    rows = calls(st.engine)
    assert len(rows) == len(outcomes), rows
    assert_matches(rows, expected)
    for uid, row in rows.items():
        assert row["ivr_path"] == "main:welcome[1]>sales", (uid, row["ivr_path"])
    # Agent state spans: every agent queue_log says was connected was on a call; every
    # ring-no-answer was a ringing span.
    states = spans(st.engine)
    for e in entries:
        if e.event == "CONNECT":
            assert (e.agent, "on_call") in states, (e.agent, states)
        if e.event == "RINGNOANSWER":
            assert (e.agent, "ringing") in states, (e.agent, states)

    # MQTT: each call's last event is closed with queue_log's outcome; the queue is empty.
    def closed_on_mqtt(topic: str) -> bool:
        return st.mqtt.last.get(topic, {}).get("closed") is True

    for uid, exp in expected.items():
        topic = f"{st.prefix}/calls/{uid}"
        await eventually(functools.partial(closed_on_mqtt, topic), 10)
        assert st.mqtt.last[topic].get("outcome", exp.outcome) == exp.outcome
    queue_topic = f"{st.prefix}/queues/sales"
    await eventually(lambda: queue_topic in st.mqtt.last, 10)
    assert st.mqtt.last[queue_topic]["waiting"] == 0
    # The report: per-queue counts and waits from queue_log.
    report = report_json(st.settings)
    by_outcome = Counter(e.outcome for e in expected.values())
    # The report leaves short abandons (hung up within short_abandon_seconds) out of offered
    # and abandoned, and counts them apart (reports.py).
    short = st.settings.reporting.short_abandon_seconds
    shorts = sum(e.outcome == "abandoned" and e.wait < short for e in expected.values())
    queue = next(q for q in report["queues"] if q["queue"] == "sales")
    assert queue["offered"] == len(expected) - shorts, queue
    assert queue["short_abandoned"] == shorts, queue
    assert queue["answered"] == by_outcome["answered"], queue
    assert queue["abandoned"] == by_outcome["abandoned"] - shorts, queue
    assert queue["timed_out"] == by_outcome["timed_out"], queue
    waits = [e.wait for e in expected.values()]
    assert queue["longest_wait"] == max(waits), (queue, waits)
    board = wallboard_queue(st)
    if board is not None:
        for key in ("offered", "answered", "abandoned", "timed_out", "short_abandoned"):
            if key in board:
                assert board[key] == queue[key], (key, board, queue)
    agents = Counter(e.agent for e in expected.values() if e.outcome == "answered")
    for row in report.get("agents", []):
        if row["agent"] in agents:
            assert row["calls"] == agents[row["agent"]], row
    return report


async def test_answered_caller_hangs_up_first(pbx: Pbx, engine: Engine, tmp_path: Path) -> None:
    async with stack(pbx, engine, tmp_path) as st:
        start = queue_log_size(pbx)
        await st.phones.phone("alice", "1001", "answer", ring_ms=1000, talk_ms=60000)
        await st.login("alice")
        caller = st.phones.callers(1, patience_ms=7000)
        assert await wait_exit(caller) == 0, caller.text()[-2000:]
        await agree(st, start, ["answered"])
        assert any(e.event == "COMPLETECALLER" for e in new_entries(pbx, start))


async def test_answered_agent_hangs_up_first(pbx: Pbx, engine: Engine, tmp_path: Path) -> None:
    async with stack(pbx, engine, tmp_path) as st:
        start = queue_log_size(pbx)
        await st.phones.phone("bob", "1002", "answer", ring_ms=500, talk_ms=2500)
        await st.login("bob")
        caller = st.phones.callers(1, patience_ms=20000)
        assert await wait_exit(caller) == 0, caller.text()[-2000:]
        await agree(st, start, ["answered"])
        assert any(e.event == "COMPLETEAGENT" for e in new_entries(pbx, start))


async def test_abandoned_after_ring_no_answer(pbx: Pbx, engine: Engine, tmp_path: Path) -> None:
    async with stack(pbx, engine, tmp_path) as st:
        start = queue_log_size(pbx)
        await st.phones.phone("alice", "1001", "noanswer")
        await st.login("alice")
        # The queue rings 4 s, retries after 1 s; the caller gives up after ~6 s of waiting.
        caller = st.phones.callers(1, patience_ms=6000)
        await wait_exit(caller)  # the caller's BYE ends it: SIPp counts the call as failed
        await agree(st, start, ["abandoned"])
        events = [e.event for e in new_entries(pbx, start)]
        assert "RINGNOANSWER" in events, events


async def test_queue_timeout(pbx: Pbx, engine: Engine, tmp_path: Path) -> None:
    async with stack(pbx, engine, tmp_path) as st:
        start = queue_log_size(pbx)
        await st.phones.phone("alice", "1001", "busy")
        await st.login("alice")
        # Alice's phone rejects every call (486): nobody answers within the queue's 10 s.
        caller = st.phones.callers(1, patience_ms=30000)
        assert await wait_exit(caller) == 0, caller.text()[-2000:]
        await agree(st, start, ["timed_out"])


def pause_spans(engine: Engine) -> list[tuple[str, str, str | None]]:
    with engine.connect() as db:
        rows = db.execute(sa.text(
            "SELECT agent, state, reason FROM agent_state_changes ORDER BY started_at, id"
        )).all()  # fmt: skip
    return [(str(r[0]), str(r[1]), r[2]) for r in rows]


async def test_paused_with_reason_then_unpaused_by_feature_code(
    pbx: Pbx, engine: Engine, tmp_path: Path
) -> None:
    """*132 from Alice's phone pauses her in every queue with reason 2 (queue_log PAUSEALL +
    PAUSE); a caller meanwhile is not offered to her; *14 unpauses and the caller is answered."""
    async with stack(pbx, engine, tmp_path) as st:
        start = queue_log_size(pbx)
        await st.phones.phone("alice", "1001", "answer", ring_ms=500, talk_ms=2000)
        await st.login("alice")
        await st.phones.feature_code("alice", "1001", "*132")
        await eventually(lambda: ("alice", "paused", "2") in pause_spans(engine), timeout=10)
        caller = st.phones.callers(1, patience_ms=30000)
        await asyncio.sleep(5)  # in the queue with alice paused: nobody is rung
        assert not any(e.event == "CONNECT" for e in new_entries(pbx, start))
        await st.phones.feature_code("alice", "1001", "*14")
        assert await wait_exit(caller) == 0, caller.text()[-2000:]
        await agree(st, start, ["answered"])
        events = [(e.event, e.agent, e.data) for e in new_entries(pbx, start)]
        assert ("PAUSE", "alice", ("2",)) in events, events
        assert any(e == "UNPAUSE" and a == "alice" for e, a, _ in events), events
        states = [(a, s) for a, s, _ in pause_spans(engine)]
        paused_at = states.index(("alice", "paused"))
        assert ("alice", "available") in states[paused_at:], states


SURVEY_IVRS: dict[str, Any] = {
    "main": {
        **IVRS["main"],
        "survey": {"questions": [{"name": "agent", "prompt": "beep"}], "timeout": 8.0},
    }
}


async def test_post_call_survey(pbx: Pbx, engine: Engine, tmp_path: Path) -> None:
    """The agent hangs up (Queue option c continues the dialplan), the survey asks, the caller
    keys 4: the score is on the call, and the call still agrees with queue_log."""
    async with stack(pbx, engine, tmp_path, ivrs=SURVEY_IVRS) as st:
        start = queue_log_size(pbx)
        await st.phones.phone("alice", "1001", "answer", ring_ms=500, talk_ms=2500)
        await st.login("alice")
        # Keys 1 at 2.5 s; the IVR, 0.5 s of ringing and 2.5 s of talk are over by ~8 s.
        caller = st.phones.callers(1, patience_ms=30000, later=(6500, "4"))
        assert await wait_exit(caller) == 0, caller.text()[-2000:]
        await agree(st, start, ["answered"])
        (row,) = calls(engine).values()
        await eventually(lambda: calls(engine)[row["uniqueid"]]["survey_score"] is not None, 10)
        assert calls(engine)[row["uniqueid"]]["survey_score"] == 4


async def test_returning_caller_rings_the_last_agent_first(
    pbx: Pbx, engine: Engine, tmp_path: Path
) -> None:
    """Bob answered 5551230001 once; when the number calls again, the IVR names Bob
    (PREFERRED_AGENT) and the dialplan rings him before Queue(), though Alice is free too.
    Such a call bypasses Queue(): queue_log has only the first; Asterisk's CDR says who
    answered the second."""
    async with stack(pbx, engine, tmp_path, agi={"preferred_agent_days": 30}) as st:
        start = queue_log_size(pbx)
        await st.phones.phone("bob", "1002", "answer", ring_ms=500, talk_ms=2000)
        await st.login("bob")
        first = st.phones.callers(1, patience_ms=30000)
        assert await wait_exit(first) == 0, first.text()[-2000:]
        await agree(st, start, ["answered"])
        await st.phones.phone("alice", "1001", "answer", ring_ms=500, talk_ms=2000)
        await st.login("alice")
        cdr = pbx.directory / "log" / "cdr-csv" / "Master.csv"
        before = cdr.read_text() if cdr.exists() else ""
        second = st.phones.callers(1, patience_ms=30000)
        assert await wait_exit(second) == 0, second.text()[-2000:]
        await asyncio.sleep(1.5)
        rows = [
            line for line in cdr.read_text()[len(before) :].splitlines() if "5551230001" in line
        ]
        answered_by = [r for r in rows if '"ANSWERED"' in r and "PJSIP/100" in r]
        assert answered_by, rows
        assert all("PJSIP/1002-" in r for r in answered_by), answered_by
        joins = [e for e in new_entries(pbx, start) if e.event == "ENTERQUEUE"]
        assert len(joins) == 1, joins  # the second call never entered the queue


CALLBACK_IVRS: dict[str, Any] = {
    "main": {
        "start": "welcome",
        "dids": [DID],
        "nodes": {
            "welcome": {"prompt": "beep", "choices": {"2": "cb"}},
            "cb": {"target": "callback", "queue": "sales"},
        },
    }
}


async def test_queue_callback(pbx: Pbx, engine: Engine, tmp_path: Path) -> None:
    """The caller keys 2 (callback) and confirms their number with 1, then hangs up; the
    placeholder waits in the queue, Alice answers it, Asterisk dials the caller back through
    the trunk (a SIPp phone on the trunk's port answers) and bridges them. queue_log's
    placeholder call (callid ``cb-<id>-<epoch>-q``) and our call log must agree."""
    async with stack(pbx, engine, tmp_path, ivrs=CALLBACK_IVRS) as st:
        start = queue_log_size(pbx)
        caller = st.phones.callers(1, patience_ms=30000, first_digit="2", later=(3000, "1"))
        assert await wait_exit(caller) == 0, caller.text()[-2000:]
        # The customer's phone, on the trunk's address and port, for the call back.
        customer = st.phones._start(
            ["-sf", str(scenario(tmp_path, "agent-answer", ring_ms=500, talk_ms=2500)),
             "-p", str(pbx.caller_port), "-aa", "-m", "10", f"127.0.0.1:{pbx.sip_port}"],
            "customer",
        )  # fmt: skip
        await asyncio.sleep(0.5)  # SIPp listening before the qualify
        await pbx.qualify_trunk()
        await asyncio.sleep(0.5)
        await st.phones.phone("alice", "1001", "answer", ring_ms=500, talk_ms=30000)
        await st.login("alice")
        # -m 10, not 1: SIPp counts each auto-answered qualify OPTIONS as a call.

        def completed() -> list[QueueLogEntry]:
            return [e for e in new_entries(pbx, start) if e.event.startswith("COMPLETE")]

        try:
            await eventually(lambda: bool(completed()), 40)
        except TimeoutError:
            raise AssertionError(f"no call back completed:\n{customer.text()[-2000:]}") from None
        (done,) = completed()
        assert done.callid.startswith("cb-"), done
        await eventually(lambda: done.callid in calls(engine), 10)
        await eventually(lambda: calls(engine)[done.callid]["outcome"] is not None, 10)
        row = calls(engine)[done.callid]
        connect = next(e for e in new_entries(pbx, start) if e.event == "CONNECT")
        assert row["outcome"] == "answered"
        assert row["agent"] == connect.agent == "alice"
        assert row["wait_seconds"] == float(done.datum(1))
        assert row["talk_seconds"] == float(done.datum(2))
        with engine.connect() as db:
            status = db.execute(sa.text("SELECT status FROM callbacks")).scalars().all()
        assert status == ["connected"], status
