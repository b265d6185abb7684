"""The day's figures and the history, against values worked out by hand on a fixture call
log, and against ``callcenter report --json`` for the same interval.

The site is in America/New_York (UTC-5 on 2026-11-20), so "the day" is 05:00 UTC to 05:00
UTC: a call at 23:50 local belongs to it, one at 23:30 local the evening before does not (it
would in a UTC day). Queue sales has SL 20 s, support 30 s; abandons under 5 s are left out.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import itertools
import json
import time
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from callcenter import config, directory
from callcenter.config import ReportingSettings
from callcenter.db.models import Call
from callcenter.wallboard import chart
from callcenter.wallboard.history import HistoryCache, day_slots, parse_day
from callcenter.wallboard.kpis import KpiRefresher, day_bounds
from tests.calllog import with_visit
from tests.conftest import Cli

TZ = ZoneInfo("America/New_York")
DAY = dt.date(2026, 11, 20)


def local(hour: int, minute: int, day: dt.date = DAY) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=TZ)


def call(
    n: int,
    queue: str,
    outcome: str | None,
    wait: float,
    queued: dt.datetime,
    agent: str | None = None,
    talk: float = 0,
    wrapup: float = 0,
) -> Call:
    answered = queued + dt.timedelta(seconds=wait) if outcome == "answered" else None
    return Call(
        node="pbx1",
        uniqueid=f"1795.{n}",
        linkedid=f"1795.{n}",
        started_at=queued,
        queued_at=queued,
        answered_at=answered,
        queue=queue,
        agent=agent,
        wait_seconds=wait if outcome else None,
        talk_seconds=talk if answered else None,
        wrapup_seconds=wrapup if answered else None,
        outcome=outcome,
    )


@pytest.fixture
def call_log(clean_db: Engine) -> Engine:
    with Session(clean_db) as s, s.begin():
        directory.add_queue(s, "sales", service_level_seconds=20)
        directory.add_queue(s, "support", service_level_seconds=30)
        s.add_all(
            with_visit(
                [
                    call(1, "sales", "answered", 10, local(9, 0), "alice", talk=100, wrapup=10),
                    call(2, "sales", "answered", 25, local(9, 5), "bob", talk=200, wrapup=20),
                    call(3, "sales", "abandoned", 3, local(9, 10)),  # short abandon: left out
                    call(4, "sales", "abandoned", 40, local(9, 20)),
                    call(5, "sales", "timed_out", 300, local(23, 50)),  # 04:50 UTC next day: ours
                    call(
                        6, "sales", "answered", 5, local(0, 30, DAY + dt.timedelta(days=1)), "bob"
                    ),
                    call(
                        7, "sales", "answered", 5, local(23, 30, DAY - dt.timedelta(days=1)), "bob"
                    ),
                    call(8, "support", "answered", 30, local(12, 0), "alice", talk=60),
                ]
            )
        )
    return clean_db


RULES = ReportingSettings(short_abandon_seconds=5, abandons_count_against_sl=True)
NOW = local(23, 59)


def refresher(engine: Engine) -> KpiRefresher:
    return KpiRefresher(engine, RULES, TZ, lambda: None)


def test_day_figures_by_hand(call_log: Engine) -> None:
    view = refresher(call_log).compute(NOW)
    assert view["day"] == "2026-11-20"
    assert view["since"] == "2026-11-20T05:00:00+00:00"  # midnight in New York
    sales, support = view["queues"]["sales"], view["queues"]["support"]
    assert sales["offered"] == 4  # calls 1, 2, 4, 5 (3 is a short abandon; 6, 7 other days)
    assert sales["answered"] == 2
    assert sales["abandoned"] == 1
    assert sales["timed_out"] == 1
    assert sales["service_level"] == pytest.approx(1 / 4)  # only call 1 within 20 s
    assert sales["asa"] == pytest.approx((10 + 25) / 2)
    assert sales["aht"] == pytest.approx((110 + 220) / 2)
    assert sales["abandon_rate"] == pytest.approx(1 / 4)
    assert sales["longest_wait"] == 300
    assert support["offered"] == 1
    assert support["answered"] == 1
    assert support["service_level"] == 1  # 30 s is within 30 s
    assert support["asa"] == 30
    assert support["aht"] == 60
    assert support["abandon_rate"] == 0
    assert {a: f["calls"] for a, f in view["agents"].items()} == {"alice": 2, "bob": 1}


def test_day_figures_agree_with_the_report_command(call_log: Engine, database_url: str) -> None:
    view = refresher(call_log).compute(NOW)
    out = Cli(database_url)(
        "report",
        "--since",
        "2026-11-20",
        "--until",
        "2026-11-20T23:59",
        "--json",
        env={"CALLCENTER_SITE__TIMEZONE": "America/New_York"},
    )
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)
    assert (report["since"], report["until"]) == (view["since"], view["until"])
    for q in report["queues"]:
        for key, value in view["queues"][q["queue"]].items():
            assert q[key] == value, (q["queue"], key)
    assert {a["agent"]: a["calls"] for a in report["agents"]} == {
        a: f["calls"] for a, f in view["agents"].items()
    }


def test_history_slots_by_hand(call_log: Engine) -> None:
    with Session(call_log) as s:
        slots = day_slots(s, DAY, TZ, RULES, now=NOW + dt.timedelta(hours=1))
    assert len(slots) == 96
    busy = {f"{x.start:%H:%M}": x for x in slots if x.offered}
    assert list(busy) == ["09:00", "09:15", "12:00", "23:45"]
    assert (busy["09:00"].offered, busy["09:00"].answered, busy["09:00"].service_level) == (
        2,
        2,
        0.5,
    )  # calls 1 and 2; call 3 is a short abandon; only call 1 within 20 s
    assert (busy["09:15"].abandoned, busy["09:15"].service_level) == (1, 0.0)
    assert (busy["12:00"].offered, busy["12:00"].service_level) == (1, 1.0)
    assert busy["23:45"].offered == 1  # call 5, 23:50 local
    assert sum(x.offered for x in slots) == 5  # the day's offered: sales 4 + support 1
    with Session(call_log) as s:
        sales = day_slots(s, DAY, TZ, RULES, queue="sales", now=NOW + dt.timedelta(hours=1))
    assert sum(x.offered for x in sales) == 4


def test_a_call_still_waiting_is_offered(call_log: Engine) -> None:
    with Session(call_log) as s, s.begin():
        s.add_all(
            with_visit([call(9, "support", None, 0, local(12, 10))])
        )  # entered the queue, still waiting
    support = refresher(call_log).compute(NOW)["queues"]["support"]
    assert support["offered"] == 2  # "offered = calls that entered a queue"
    assert support["service_level"] == pytest.approx(1 / 2)


def test_sl_without_abandons_counts_them_out(call_log: Engine) -> None:
    rules = ReportingSettings(short_abandon_seconds=5, abandons_count_against_sl=False)
    k = KpiRefresher(call_log, rules, TZ, lambda: None)
    assert k.compute(NOW)["queues"]["sales"]["service_level"] == pytest.approx(1 / 3)
    with Session(call_log) as s:
        slots = day_slots(s, DAY, TZ, rules, now=NOW + dt.timedelta(hours=1))
    assert next(x for x in slots if x.abandoned).service_level is None  # 1 offered - 1 abandoned


def test_dst_day_has_25_hours_and_100_slots() -> None:
    since, until = day_bounds(dt.date(2026, 11, 1), TZ)
    assert until - since == dt.timedelta(hours=25)
    c = chart.build([], dt.date(2026, 11, 1), TZ, 0.8)
    assert c["x_ticks"][0][1] == "00:00"
    assert len(c["x_ticks"]) == 13  # every 2 hours over 25 hours: 0..24 h
    assert c["totals"]["service_level"] is None


def test_parse_day() -> None:
    now = dt.datetime(2026, 11, 21, 3, 0, tzinfo=dt.UTC)  # still the 20th in New York
    assert parse_day(None, TZ, now) == DAY
    assert parse_day("2026-11-19", TZ, now) == dt.date(2026, 11, 19)
    for bad in ("2026-11-21", "1999-12-31", "20261120", "2026-1-5", "x"):
        with pytest.raises(ValueError, match=r"date|isoformat"):
            parse_day(bad, TZ, now)


async def test_refresher_reports_changes_and_keeps_figures_when_the_database_goes(
    call_log: Engine, settings: config.Settings
) -> None:
    changes: list[int] = []
    k = KpiRefresher(call_log, RULES, TZ, lambda: changes.append(1))
    await k.refresh()
    assert k.error is None
    assert k.refreshes == 1
    first = len(changes)
    await k.refresh()  # nothing changed: nobody is told
    assert len(changes) == first
    from callcenter.db import engine as db

    dead = db.make_engine(
        dataclasses.replace(
            settings.database, url="postgresql+psycopg://nobody@127.0.0.1:1/none", connect_timeout=1
        )
    )
    try:
        k.engine = dead
        before = k.current()
        await k.refresh()
        assert "unavailable" in str(k.error)
        assert k.current()["queues"] == before["queues"]
        assert len(changes) == first + 1  # the board shows the error
    finally:
        dead.dispose()


async def test_history_cache_shares_one_query(call_log: Engine) -> None:
    cache = HistoryCache(call_log, RULES, TZ)
    results = await asyncio.gather(*(cache.get(DAY) for _ in range(20)))
    assert cache.queries == 1
    assert all(r is results[0] for r in results)
    await cache.get(DAY)
    assert cache.queries == 1


async def test_refresher_is_poked_and_rate_limited(call_log: Engine) -> None:
    told: list[int] = []
    k = KpiRefresher(
        call_log, RULES, TZ, lambda: told.append(1), interval=0.2, max_age=10, settle=0.05
    )
    runs: list[float] = []

    def compute(now: dt.datetime | None = None) -> dict[str, object]:
        runs.append(time.monotonic())
        return {"day": str(len(runs)), "queues": {}, "agents": {}, "rules": {}}

    k.compute = compute  # type: ignore[method-assign]
    task = asyncio.create_task(k.run())
    try:
        await asyncio.sleep(0.1)
        assert len(runs) == 1  # at start
        for _ in range(10):  # a burst of call changes
            k.poke()
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.6)
        assert 2 <= len(runs) <= 3  # not one query per poke
        assert min(b - a for a, b in itertools.pairwise(runs)) >= 0.2
        assert len(told) == len(runs)  # every result differed ("day" counts): all told
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_the_boards_live_figures_count_neither_a_caller_still_in_time_nor_calls_still_talking(
    call_log: Engine,
) -> None:
    """Issue 12's board: calls answered within seconds and still talking, and a caller who
    has waited 0 s, showed SL 75% in red and AHT 0:00. The caller may still be answered in
    time (not yet missed); the calls still talking have no handle time yet."""
    talking = []
    for n, wait in ((10, 2), (11, 3), (12, 4)):
        c = call(n, "support", "answered", wait, NOW - dt.timedelta(seconds=wait + 40), "bob")
        c.talk_seconds = c.wrapup_seconds = None  # AgentConnect came; the end has not
        talking.append(c)
    waiting = call(13, "support", None, 0, NOW - dt.timedelta(seconds=0.5))  # has just joined
    with Session(call_log) as s, s.begin():
        s.add_all(with_visit([*talking, waiting]))
    view = refresher(call_log).compute(NOW)
    support = view["queues"]["support"]
    assert (support["offered"], support["answered"]) == (5, 4)  # call 8 and the three
    assert support["service_level"] == 1.0  # 4 of 4: the waiting caller is not yet missed
    assert support["asa"] == pytest.approx((30 + 2 + 3 + 4) / 4)
    assert support["aht"] == 60  # call 8's alone: the three are still talking
    total = view["total"]
    assert (total["offered"], total["answered"]) == (9, 6)  # sales 4 + support 5
    assert total["service_level"] == pytest.approx((1 + 4) / (9 - 1))
    assert "service_level_threshold" not in total  # each queue's own; none for the total
    # 25 s later the caller still waits, within support's 30 s; at 31 s they are missed.
    later = refresher(call_log).compute(NOW + dt.timedelta(seconds=25))
    assert later["queues"]["support"]["service_level"] == 1.0
    missed = refresher(call_log).compute(NOW + dt.timedelta(seconds=31))
    assert missed["queues"]["support"]["service_level"] == pytest.approx(4 / 5)
    # When to look again: the moment the caller stops being pending (queued 0.5 s before
    # NOW, support's 30 s threshold, whole seconds: 31 s after joining); none once missed.
    joined = NOW - dt.timedelta(seconds=0.5)
    assert view["next_sl_miss"] == pytest.approx((joined + dt.timedelta(seconds=31)).timestamp())
    assert later["next_sl_miss"] == view["next_sl_miss"]
    assert missed["next_sl_miss"] is None


async def test_refresher_queries_again_when_the_waiting_caller_is_missed(
    call_log: Engine,
) -> None:
    """Knowing when the pending caller passes the threshold, the refresher queries then,
    not every ``kpi_interval`` while they wait, and shows no ``next_sl_miss``."""
    k = KpiRefresher(call_log, RULES, TZ, lambda: None, interval=0.05, max_age=30, settle=0)
    runs: list[float] = []

    def compute(now: dt.datetime | None = None) -> dict[str, object]:
        runs.append(time.time())
        first = len(runs) == 1
        return {"day": "d", "queues": {}, "total": {"sl_pending": 1 if first else 0},
                "agents": {}, "rules": {},
                "next_sl_miss": time.time() + 0.6 if first else None}  # fmt: skip

    k.compute = compute  # type: ignore[method-assign]
    task = asyncio.create_task(k.run())
    try:
        await asyncio.sleep(2.0)
        assert len(runs) == 2, runs  # at 0.05 s pace it would be about 40
        assert runs[1] - runs[0] >= 0.55  # not before the caller is missed
        assert "next_sl_miss" not in k.current()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_refresher_queries_again_while_a_caller_is_still_in_time(call_log: Engine) -> None:
    """No event says when a waiting caller passes the threshold: while one waits within it,
    the figures are queried at the usual pace, not only every ``kpi_max_age``."""
    k = KpiRefresher(call_log, RULES, TZ, lambda: None, interval=0.1, max_age=30, settle=0)
    runs: list[int] = []

    def compute(now: dt.datetime | None = None) -> dict[str, object]:
        runs.append(1)
        pending = 1 if len(runs) < 4 else 0
        return {"day": "d", "queues": {}, "total": {"sl_pending": pending}, "agents": {},
                "rules": {}}  # fmt: skip

    k.compute = compute  # type: ignore[method-assign]
    task = asyncio.create_task(k.run())
    try:
        await asyncio.sleep(0.8)
        assert len(runs) == 4  # then nobody is pending: back to kpi_max_age
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
