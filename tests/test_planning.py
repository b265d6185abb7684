"""Erlang C and Erlang A against published values and a simulation; the forecast on a
synthetic history with a known weekly pattern and trend; `callcenter forecast`."""

from __future__ import annotations

import datetime as dt
import heapq
import json
import math
import random

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from callcenter.planning import erlang
from callcenter.planning.forecast import SLOTS_PER_WEEK, backtest, forecast, wape
from tests.conftest import Cli

RATE = 100 / 1800  # 100 calls in 30 minutes
AHT = 180.0


def test_erlang_c_published_check_values() -> None:
    """planning.md: A = 10 Erlangs, N = 14, 20 s: P_wait 0.1741, SL 0.8884, ASA 7.84 s."""
    s = erlang.erlang_c(RATE, AHT, 14, 20)
    assert s.p_wait == pytest.approx(0.1741, abs=5e-5)
    assert s.service_level == pytest.approx(0.8884, abs=5e-5)
    assert s.asa == pytest.approx(7.84, abs=5e-3)
    assert s.occupancy == pytest.approx(0.714, abs=5e-4)
    # 13 agents answer 79.6% within 20 s (below 80%), 14 agents 88.8%.
    assert erlang.erlang_c(RATE, AHT, 13, 20).service_level < 0.8
    assert erlang.agents_needed(RATE, AHT, 20, 0.8).agents == 14
    assert erlang.erlang_c(RATE, AHT, 10, 20).service_level == 0.0  # n <= A: no end
    # Hundreds of agents: no overflow (A^N/N! is never formed).
    big = erlang.agents_needed(300 / 60, 200, 20, 0.9)
    assert 1000 < big.agents < 1100


def test_erlang_a_tends_to_erlang_c_and_needs_fewer_agents_with_patience() -> None:
    c = erlang.erlang_c(RATE, AHT, 14, 20)
    a = erlang.erlang_a(RATE, AHT, 1e9, 14, 20)
    assert a.p_wait == pytest.approx(c.p_wait, rel=1e-6)
    assert a.service_level == pytest.approx(c.service_level, rel=1e-6)
    impatient = erlang.erlang_a(RATE, AHT, 60, 14, 20)
    assert impatient.p_abandon > 0.01
    assert impatient.service_level > c.service_level
    assert (
        erlang.agents_needed(RATE, AHT, 20, 0.8, patience=60).agents
        < erlang.agents_needed(RATE, AHT, 20, 0.8).agents
    )


def simulate(
    rate: float, aht: float, patience: float, agents: int, target: float, calls: int, seed: int
) -> tuple[float, float]:
    """An M/M/n+M queue, first come first served: (SL within target over all arrivals,
    share abandoned)."""
    rng = random.Random(seed)
    t = 0.0
    free_at = [0.0] * agents
    heapq.heapify(free_at)
    in_time = abandoned = 0
    for _ in range(calls):
        t += rng.expovariate(rate)
        give_up = rng.expovariate(1 / patience) if math.isfinite(patience) else math.inf
        start = max(t, free_at[0])
        wait = start - t
        if wait > give_up:
            abandoned += 1
            continue
        heapq.heapreplace(free_at, start + rng.expovariate(1 / aht))
        in_time += wait <= target
    return in_time / calls, abandoned / calls


def test_erlang_a_agrees_with_a_simulation_of_the_same_queue() -> None:
    model = erlang.erlang_a(RATE, AHT, 90, 12, 20)
    sl, ab = simulate(RATE, AHT, 90, 12, 20, 200_000, seed=7)
    assert model.service_level == pytest.approx(sl, abs=0.01)
    assert model.p_abandon == pytest.approx(ab, abs=0.01)


def test_the_forecast_recovers_a_weekly_pattern_and_its_trend() -> None:
    rng = random.Random(3)
    pattern = [
        10 * math.sin(math.pi * (s % 48) / 48) ** 2 * (0.4 if s // 48 >= 5 else 1)
        for s in range(SLOTS_PER_WEEK)
    ]
    weeks = [
        [rng.gauss(p * (1 + 0.03 * w), math.sqrt(p * (1 + 0.03 * w)) + 1e-9) for p in pattern]
        for w in range(12)
    ]
    got = forecast(weeks)
    truth = [p * (1 + 0.03 * 12) for p in pattern]
    assert wape(truth, got.calls) is not None
    assert wape(truth, got.calls) < 0.12  # type: ignore[operator]
    assert got.growth_per_week == pytest.approx(0.03 / (1 + 0.03 * 5.5), abs=0.01)
    checked = backtest(weeks)
    assert checked["wape"] is not None
    assert checked["seasonal_naive_wape"] is not None
    assert checked["wape"] < checked["seasonal_naive_wape"]


def test_forecast_cli(run_cli: Cli, clean_db: Engine) -> None:
    run_cli.ok("queues", "add", "sales", "--service-level", "20")
    # Four weeks of Mondays at 10:00-10:30 UTC: 30, 30, 30, 30 calls; 180 s handle time.
    monday = dt.date(2026, 11, 2)
    rows = []
    for w in range(4):
        day = monday + dt.timedelta(weeks=w)
        for i in range(30):
            at = dt.datetime.combine(day, dt.time(10, i), tzinfo=dt.UTC)
            rows.append({"u": f"{w}.{i}", "t": at, "a": at + dt.timedelta(seconds=5)})
    with clean_db.begin() as c:
        c.execute(
            sa.text(
                "INSERT INTO queue_visits (node, uniqueid, visit, linkedid, direction,"
                " caller_number, caller_name, queue, queued_at, answered_at, ended_at,"
                " wait_seconds, talk_seconds, wrapup_seconds, ring_attempts, outcome)"
                " VALUES ('n', :u, 1, :u, 'inbound', '', '', 'sales', :t, :a, :a, 5, 170, 10, 1,"
                " 'answered')"
            ),
            rows,
        )
    out = run_cli.ok(
        "forecast",
        "--queue",
        "sales",
        "--from",
        "2026-11-30",
        "--days",
        "1",
        "--weeks",
        "4",
        "--json",
    ).output
    data = json.loads(out)
    assert data["aht"] == 180.0
    assert data["patience"] is None  # nobody abandoned
    slot = next(r for r in data["slots"] if r["start"] == "2026-11-30T10:00")
    assert slot["calls"] == pytest.approx(30.0)
    expected = erlang.agents_needed(30 / 1800, 180, 20, 0.8).agents
    assert slot["agents_erlang_c"] == expected
    assert next(r for r in data["slots"] if r["start"] == "2026-11-30T11:00")["calls"] == 0
    bad = run_cli("forecast", "--queue", "nope")
    assert bad.exit_code == 1
    assert run_cli("forecast", "--queue", "sales", "--from", "soon").exit_code == 2
