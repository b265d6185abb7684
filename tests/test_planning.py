"""Erlang C and Erlang A against published values, the birth-death chain summed state by
state, and a simulation; the forecast, its MAPE and its backtest on a synthetic history with
a known weekly pattern and trend; the forecast of a past day against its calls and agents
(the history page's); `callcenter forecast`."""

from __future__ import annotations

import datetime as dt
import heapq
import itertools
import json
import math
import random
import time
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from callcenter.planning import erlang
from callcenter.planning.forecast import (
    SLOTS_PER_DAY,
    SLOTS_PER_WEEK,
    backtest,
    backtest_mape,
    forecast,
    forecast_day,
    mape,
    wape,
)
from callcenter.planning.store import day_forecast, half_hours, plan
from tests import forecast_history as fh
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
    # Four identical weeks: the held-out ones were forecast exactly.
    assert data["backtest"]["mape"] == pytest.approx(0)
    assert data["backtest"]["seasonal_naive_mape"] == pytest.approx(0)
    slot = next(r for r in data["slots"] if r["start"] == "2026-11-30T10:00")
    assert slot["calls"] == pytest.approx(30.0)
    expected = erlang.agents_needed(30 / 1800, 180, 20, 0.8).agents
    assert slot["agents_erlang_c"] == expected
    assert next(r for r in data["slots"] if r["start"] == "2026-11-30T11:00")["calls"] == 0
    text = run_cli.ok("forecast", "--queue", "sales", "--from", "2026-11-30", "--days", "1",
                      "--weeks", "4").output  # fmt: skip
    assert "MAPE 0.0% (seasonal naive 0.0%)" in text
    bad = run_cli("forecast", "--queue", "nope")
    assert bad.exit_code == 1
    assert run_cli("forecast", "--queue", "sales", "--from", "soon").exit_code == 2


# --- Erlang A in closed form against the chain, state by state --------------------------------


def chain_erlang_a(rate: float, aht: float, patience: float, n: int, t: float) -> tuple[float, ...]:
    """(P_wait, SL, P_abandon) of M/M/n+M summed over the states of its birth-death chain
    (truncated where they vanish), each waiting caller's answer within ``t`` by
    uniformisation of the stages ahead of them racing their own patience: the slow,
    obvious way, for checking the closed form."""
    mu, theta = 1 / aht, 1 / patience
    logs, k = [0.0], 0
    while True:
        k += 1
        out = k * mu if k <= n else n * mu + (k - n) * theta
        logs.append(logs[-1] + math.log(rate / out))
        if k > n and logs[-1] - max(logs) < -35:
            break
    top = max(logs)
    probs = [math.exp(x - top) for x in logs]
    probs = [p / sum(probs) for p in probs]
    sl = answered = sum(probs[:n])
    for k in range(n, len(probs)):
        rates = [n * mu + i * theta for i in range(k - n, -1, -1)]
        totals = [r + theta for r in rates]
        survive = math.prod(r / tot for r, tot in zip(rates, totals, strict=True))
        answered += probs[k] * survive
        # P(all stages passed by t): uniformisation of the pure-birth chain of stages.
        q = max(totals)
        dist = [1.0] + [0.0] * len(totals)
        weight, cdf = math.exp(-q * t), 0.0
        for m in range(int(q * t + 12 * math.sqrt(q * t + 1) + 30)):
            cdf += weight * dist[-1]
            nxt = [0.0] * len(dist)
            for i, tot in enumerate(totals):
                nxt[i] += dist[i] * (1 - tot / q)
                nxt[i + 1] += dist[i] * tot / q
            nxt[-1] += dist[-1]
            dist, weight = nxt, weight * q * t / (m + 1)
        sl += probs[k] * survive * (cdf if t > 0 else 0.0)
    return sum(probs[n:]), sl, 1 - answered


@pytest.mark.parametrize(
    ("calls", "aht", "patience", "agents", "target"),
    [(100, 180, 90, 12, 20), (100, 180, 90, 8, 20), (300, 300, 60, 45, 20),
     (30, 60, 300, 2, 5), (10, 400, 3000, 4, 60), (300, 300, 10, 20, 0)],
)  # fmt: skip
def test_erlang_a_closed_form_agrees_with_the_chain(
    calls: int, aht: float, patience: float, agents: int, target: float
) -> None:
    rate = calls / 1800
    got = erlang.erlang_a(rate, aht, patience, agents, target)
    p_wait, sl, p_abandon = chain_erlang_a(rate, aht, patience, agents, target)
    assert got.p_wait == pytest.approx(p_wait, abs=1e-9)
    assert got.service_level == pytest.approx(sl, abs=1e-9)
    assert got.p_abandon == pytest.approx(p_abandon, abs=1e-9)
    assert got.asa == pytest.approx(p_abandon * patience)  # abandons = theta * mean wait


def test_erlang_a_staffing_is_fast_and_the_fewest_agents_at_hundreds_of_agents() -> None:
    """The bisection finds what counting up finds; 1,500 calls in half an hour (about 250
    agents) takes milliseconds, not the chain's tens of seconds."""
    for calls, aht, patience, goal in [(1500, 300, 60, 0.8), (800, 300, 120, 0.9),
                                       (40, 180, 30, 0.5), (5, 600, 1e6, 0.95)]:  # fmt: skip
        rate = calls / 1800
        started = time.perf_counter()
        found = erlang.agents_needed(rate, aht, 20, goal, patience=patience)
        assert time.perf_counter() - started < 0.05
        counted = next(
            n for n in range(1, 2000)
            if erlang.erlang_a(rate, aht, patience, n, 20).service_level >= goal
        )  # fmt: skip
        assert found.agents == counted
    c = erlang.agents_needed(1500 / 1800, 300, 20, 0.8)
    assert erlang.agents_needed(1500 / 1800, 300, 20, 0.8, patience=60).agents < c.agents


# --- MAPE and the backtest ---------------------------------------------------------------------


def test_mape_counts_the_half_hours_with_calls_only() -> None:
    assert mape([10, 0, 20, 5], [12, 3, 15, 5]) == pytest.approx((0.2 + 0.25 + 0) / 3)
    assert mape([0, 0], [1, 2]) is None


def linear_weeks(count: int, growth: float) -> list[list[float]]:
    """A weekday pattern (5 to 15 calls per half hour from 08:00 to 18:00, none at night or
    at weekends) growing by ``growth`` of the first week's calls every week."""
    pattern = [5 + 10 * math.sin(math.pi * (s % 48 - 16) / 20) ** 2
               if s // 48 < 5 and 16 <= s % 48 < 36 else 0.0
               for s in range(SLOTS_PER_WEEK)]  # fmt: skip
    return [[p * (1 + growth * w) for p in pattern] for w in range(count)]


def test_a_past_day_is_forecast_exactly_on_a_straight_trend() -> None:
    """On a pattern growing in a straight line, the mean and the fitted trend give each day
    of the next week exactly; seasonal naive is one week's growth behind."""
    weeks = linear_weeks(13, 0.04)
    wednesday = forecast_day(weeks[4:12], 2)
    assert len(wednesday) == SLOTS_PER_DAY
    truth = weeks[12][2 * SLOTS_PER_DAY : 3 * SLOTS_PER_DAY]
    assert mape(truth, wednesday) == pytest.approx(0, abs=1e-9)
    checked = backtest_mape([weeks[:12]], held_out=4, history=8)
    assert checked.weeks == 4
    assert checked.mape == pytest.approx(0, abs=1e-9)
    # Week k against week k - 1: 0.04 / (1 + 0.04 k), k = 8..11.
    expected = sum(0.04 / (1 + 0.04 * k) for k in range(8, 12)) / 4
    assert checked.naive_mape == pytest.approx(expected, rel=1e-9)


def test_the_backtest_beats_seasonal_naive_on_noisy_weeks_and_adds_queues_up() -> None:
    rng = random.Random(11)
    base = linear_weeks(12, 0.02)

    def calls(mean: float) -> float:  # whole calls, about Poisson
        return float(max(0, round(rng.gauss(mean, math.sqrt(mean))))) if mean else 0.0

    sales = [[calls(c) for c in w] for w in base]
    support = [[calls(c / 2) for c in w] for w in base]
    one = backtest_mape([sales])
    both = backtest_mape([sales, support])
    assert one.mape is not None
    assert one.naive_mape is not None
    assert one.mape < one.naive_mape
    summed = [[a + b for a, b in zip(x, y, strict=True)] for x, y in zip(sales, support,
                                                                         strict=True)]  # fmt: skip
    # The sum of the queues' forecasts against the sum of their calls (not a forecast of the
    # sum: each queue has its own trend).
    k_actual = [c for w in summed[8:] for c in w]
    k_pred = [
        sum(x)
        for k in range(8, 12)
        for x in zip(
            forecast(sales[k - 8 : k]).calls, forecast(support[k - 8 : k]).calls, strict=True
        )
    ]
    assert both.mape == pytest.approx(mape(k_actual, k_pred))


def test_weeks_before_a_queue_opened_are_not_history() -> None:
    """A queue three weeks old is forecast from those weeks, not diluted by five empty ones;
    no calls at all: nothing to forecast from, and nothing to check."""
    weeks = [[0.0] * SLOTS_PER_WEEK] * 5 + linear_weeks(3, 0.0)
    assert forecast(weeks).calls == pytest.approx(forecast(weeks[5:]).calls)
    assert max(forecast(weeks).calls) == pytest.approx(15, rel=1e-3)
    assert not any(forecast([[0.0] * SLOTS_PER_WEEK] * 4).calls)
    assert backtest_mape([[[0.0] * SLOTS_PER_WEEK] * 12]).mape is None


# --- the forecast of a past day, from the call log -----------------------------------------------


def test_a_past_day_against_its_forecast_calls_and_agents(clean_db: Engine) -> None:
    fh.fill(clean_db)
    weeks = fh.weeks()
    now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    with Session(clean_db) as s:
        got = day_forecast(s, "sales", fh.DAY, tz=ZoneInfo("UTC"), now=now)
        cli = plan(s, "sales", fh.DAY, 1, tz=ZoneInfo("UTC"), target_seconds=20)
    assert got.has_history
    assert got.queues == ("sales",)
    expected = forecast_day(weeks[4:12], fh.DAY.weekday())
    assert [x.forecast for x in got.slots] == pytest.approx(expected)
    # What `callcenter forecast --from DAY` says of it.
    assert [x.forecast for x in got.slots] == pytest.approx([r["calls"] for r in cli.slots],
                                                            abs=0.005)  # fmt: skip
    day = slice(fh.DAY.weekday() * SLOTS_PER_DAY, (fh.DAY.weekday() + 1) * SLOTS_PER_DAY)
    assert [x.offered for x in got.slots] == [int(c) for c in weeks[12][day]]
    assert got.day_mape == pytest.approx(mape(weeks[12][day], expected))
    assert got.day_mape is not None
    assert got.day_mape > 0.01  # the 10:00 spike
    assert got.backtest == backtest_mape([weeks[:12]], held_out=4, history=8)
    assert got.backtest.weeks == 4
    assert got.backtest.mape is not None
    assert got.backtest.naive_mape is not None
    assert got.backtest.mape < got.backtest.naive_mape  # the trend: 5% a week
    aht, patience = fh.aht_and_patience()
    peak = got.slots[20]
    assert peak.label == "10:00"
    assert peak.agents_c == erlang.agents_needed(peak.forecast / 1800, aht, 20, 0.8).agents
    assert peak.agents_a == erlang.agents_needed(peak.forecast / 1800, aht, 20, 0.8,
                                                 patience=patience).agents  # fmt: skip
    assert peak.agents_a <= peak.agents_c
    assert [r["agents_erlang_a"] for r in cli.slots] == [x.agents_a for x in got.slots]
    present = {x.label: x.logged_in for x in got.slots}
    for label, mean in fh.SALES_LOGGED_IN.items():
        assert present[label] == pytest.approx(mean), label
    assert present["08:00"] == 0  # Bob is not a member of sales


def test_today_so_far_all_queues_and_no_history(clean_db: Engine) -> None:
    fh.fill(clean_db)
    now = dt.datetime.combine(fh.DAY, dt.time(10, 45), tzinfo=dt.UTC)
    with Session(clean_db) as s:
        today = day_forecast(s, None, fh.DAY, tz=ZoneInfo("UTC"), now=now)
        support = day_forecast(s, "support", fh.DAY, tz=ZoneInfo("UTC"), now=now)
    # All queues: support has no history, so the forecast is sales'; its 5 calls are offered.
    assert today.queues == ("sales",)
    assert today.slots[18].offered == fh.weeks()[12][2 * SLOTS_PER_DAY + 18] + 5
    assert today.slots[20].offered is not None
    assert today.slots[21].offered is None  # 10:30-11:00 is not over
    assert today.slots[21].logged_in == pytest.approx(3)  # Alice, Carl and Bob so far
    assert today.slots[22].logged_in is None
    assert not support.has_history
    assert support.slots == ()
    with Session(clean_db) as s:
        nothing = day_forecast(s, "sales", fh.MONDAY - dt.timedelta(weeks=12),
                               tz=ZoneInfo("UTC"), now=now)  # fmt: skip
    assert not nothing.has_history


def test_half_hours_of_days_when_the_clock_changes() -> None:
    """48 half hours of wall clock: where it jumps forward (New York, 2026-03-08, 02:00 to
    03:00) the skipped half hours are empty; where it goes back (2026-11-01, 02:00 to 01:00)
    01:30 lasts until the clock shows 02:00 again, an hour and a half."""
    tz = ZoneInfo("America/New_York")
    spring = half_hours(dt.date(2026, 3, 8), tz)
    lengths = [(b - a).total_seconds() / 60 for a, b in itertools.pairwise(spring)]
    assert lengths[4:6] == [0, 0]
    assert sum(lengths) == 23 * 60
    fall = half_hours(dt.date(2026, 11, 1), tz)
    lengths = [(b - a).total_seconds() / 60 for a, b in itertools.pairwise(fall)]
    assert lengths[3] == 90
    assert sum(lengths) == 25 * 60
