"""The outbound pacer (callcenter.campaigns.pacer) on its own, and a short campaign simulation."""

from __future__ import annotations

import math
from dataclasses import replace
from statistics import NormalDist

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter.campaigns.pacer import (
    TABLE_SECONDS,
    AbandonLedger,
    AgentState,
    AgentView,
    CallInFlight,
    DayCount,
    Estimates,
    Mode,
    PacerError,
    PacerSettings,
    abandon_budget,
    decide,
    initial_estimates,
    observe_attempts,
    observe_handled,
    observe_live_answer,
    p_free_within,
    record_live_answer,
)
from callcenter.campaigns.simulation import (
    CampaignModel,
    OutcomeMix,
    erlang_b,
    erlang_b_floor,
    simulate,
)

NOW = 100_000.0
SETTINGS = PacerSettings()


def warm(
    margin: float = 1.0, median: float = 120.0, sigma: float = 0.5, live_rate: float = 0.2
) -> Estimates:
    """Estimates past the warm-up: live answers at 8-13 s, other outcomes at 3 s and 25 s,
    handle times lognormal with the given median and sigma."""
    bins = SETTINGS.answer_bins
    humans = 1000 * live_rate
    human_times = [0.0] * bins
    for b in range(8, 14):
        human_times[b] = humans / 6
    other_times = [0.0] * bins
    other_times[3] = other_times[25] = (1000 - humans) / 2
    mu = math.log(median)
    return replace(
        initial_estimates(SETTINGS),
        humans=humans,
        others=1000 - humans,
        human_times=tuple(human_times),
        other_times=tuple(other_times),
        handle_weight=500.0,
        handle_log_sum=500.0 * mu,
        handle_log_sq=500.0 * (mu * mu + sigma * sigma),
        attempts=5000,
        live=1000,
        handled=1000,
        margin=margin,
    )


def roomy_ledger(today: int = 5) -> AbandonLedger:
    """Plenty of budget: 10,000 live answers a day at 1% abandons."""
    days = tuple(DayCount(d, 10_000, 100) for d in range(today + 1))
    return AbandonLedger(days, 10_000 * len(days), 100 * len(days))


def agents(n: int, **kw: object) -> list[AgentView]:
    return [AgentView(f"a{i}", **kw) for i in range(n)]  # type: ignore[arg-type]


def run(
    views: list[AgentView],
    calls: list[CallInFlight] | None = None,
    estimates: Estimates | None = None,
    ledger: AbandonLedger | None = None,
    settings: PacerSettings = SETTINGS,
) -> tuple[int, Mode, str]:
    decision = decide(
        views,
        calls or [],
        warm() if estimates is None else estimates,
        roomy_ledger() if ledger is None else ledger,
        settings,
        now=NOW,
        today=5,
    )
    assert decision.dials >= 0
    return decision.dials, decision.mode, decision.reason


# --- settings --------------------------------------------------------------------------------


def test_settings_refuse_a_cap_above_three_percent() -> None:
    with pytest.raises(PacerError, match="cap"):
        PacerSettings(cap=0.031)
    with pytest.raises(PacerError, match="cap"):
        PacerSettings(cap=0.05, target=0.025)
    assert PacerSettings(cap=0.02, target=0.015).cap == 0.02


def test_settings_refuse_a_target_at_or_above_the_cap() -> None:
    with pytest.raises(PacerError, match="target"):
        PacerSettings(target=0.03)
    with pytest.raises(PacerError, match="target"):
        PacerSettings(cap=0.02, target=0.025)
    with pytest.raises(PacerError, match="window_days"):
        PacerSettings(window_days=31)
    with pytest.raises(PacerError, match="checkpoints"):
        PacerSettings(checkpoints=(9, 6))


# --- modes -----------------------------------------------------------------------------------


def test_warm_up_dials_progressively() -> None:
    views = agents(4) + agents(2, state=AgentState.BUSY, since=NOW - 60)
    calls = [CallInFlight(NOW - 3)]
    dials, mode, reason = run(views, calls, estimates=initial_estimates(SETTINGS))
    assert (dials, mode) == (3, Mode.PROGRESSIVE)  # one call per free agent, less in flight
    assert reason.startswith("warm-up: 0/300 attempts")
    few = replace(warm(), live=SETTINGS.warmup_live - 1)
    assert run(views, calls, estimates=few)[1] is Mode.PROGRESSIVE


def test_progressive_settings_never_predict() -> None:
    views = agents(5) + agents(20, state=AgentState.WRAPUP, until=NOW + 5)
    dials, mode, _ = run(views, settings=PacerSettings(predictive=False))
    assert (dials, mode) == (5, Mode.PROGRESSIVE)
    assert run(views)[0] > 5  # predictive dials for the wrap-ups ending too


def test_spent_budget_falls_back_to_progressive() -> None:
    views = agents(10)
    at_cap = AbandonLedger((DayCount(5, 1000, 30),), 1000, 30)  # 3.0% today
    dials, mode, reason = run(views, ledger=at_cap)
    assert (dials, mode) == (10, Mode.PROGRESSIVE)
    assert "budget spent" in reason
    # The same campaign with budget left predicts (and dials more than one per free agent).
    dials, mode, _ = run(views, ledger=AbandonLedger((DayCount(5, 1000, 10),), 1000, 10))
    assert mode is Mode.PREDICTIVE
    assert dials > 10


def test_life_budget_counts_too() -> None:
    # The last 30 days are fine, but the campaign's life is at the cap.
    ledger = AbandonLedger((DayCount(5, 1000, 5),), 5000, 150)
    _, mode, reason = run(agents(10), ledger=ledger)
    assert mode is Mode.PROGRESSIVE
    assert "life" in reason


def test_budget_looks_at_the_windows_of_the_coming_days() -> None:
    # Day 0 had no abandons; days 1-29 ran at 2.9%. Today's window is under the cap with 59
    # abandons to spare, but tomorrow's loses day 0: 870 allowed for 841 spent, plus one day
    # at the target's margin (0.5% of 1,000 live answers).
    days = (DayCount(0, 1000, 0), *(DayCount(d, 1000, 29) for d in range(1, 30)))
    ledger = AbandonLedger(days, 30_000, 841)
    budget = abandon_budget(ledger, SETTINGS, today=29)
    assert budget.binding == "window ending in 1 day(s)"
    assert budget.left == pytest.approx(870 - 841 + 5)
    assert (budget.window_live, budget.window_abandoned) == (30_000, 841)


def test_never_dials_for_paused_agents() -> None:
    paused = agents(8, paused=True) + agents(4, state=AgentState.WRAPUP, until=NOW + 2, paused=True)
    assert run(paused)[0] == 0
    assert run(paused, settings=PacerSettings(predictive=False))[0] == 0
    assert run(paused, estimates=initial_estimates(SETTINGS))[0] == 0
    # Paused agents add nothing: the same dials as without them.
    views = agents(3)
    assert run(views + paused)[0] == run(views)[0] > 0


def test_calls_in_flight_reduce_the_dials() -> None:
    views = agents(10)
    alone = run(views)[0]
    ringing = run(views, [CallInFlight(NOW - 4) for _ in range(10)])[0]
    answered = run(views, [CallInFlight(NOW - 12, NOW - 0.5) for _ in range(5)])[0]
    assert alone > ringing
    assert alone > answered
    # A call that rang 24 s will rarely be a live answer: it counts for less than a new one.
    late = run(views, [CallInFlight(NOW - 24) for _ in range(10)])[0]
    assert late > ringing


def test_agents_about_to_finish_bring_more_dials() -> None:
    soon = agents(10, state=AgentState.WRAPUP, until=NOW + 3)
    late = agents(10, state=AgentState.WRAPUP, until=NOW + 300)
    assert run(late)[0] == 0
    assert run(soon)[0] > 10
    # More of them, more dials.
    assert run(soon + soon)[0] > run(soon)[0]


def test_remaining_handle_time_is_conditional_on_time_spent() -> None:
    mu, sigma = math.log(120.0), 0.5
    # P(free within h | busy for t) = (F(t + h) - F(t)) / (1 - F(t)), F lognormal.
    normal = NormalDist(mu, sigma)
    for t, h in ((5.0, 20.0), (120.0, 20.0), (600.0, 21.0)):
        f_t, f_th = normal.cdf(math.log(t)), normal.cdf(math.log(t + h))
        assert p_free_within(h, t, mu, sigma) == pytest.approx((f_th - f_t) / (1 - f_t))
    early = p_free_within(21.0, 5.0, mu, sigma)
    late = p_free_within(21.0, 600.0, mu, sigma)
    assert early < 0.01 < 0.1 < late
    # The pacer uses it: thirty agents ten minutes into their calls bring dials, thirty five
    # seconds into theirs bring none.
    ten_minutes = agents(30, state=AgentState.BUSY, since=NOW - 600)
    five_seconds = agents(30, state=AgentState.BUSY, since=NOW - 5)
    assert run(five_seconds)[0] == 0
    assert run(ten_minutes)[0] > 0
    # Past its table (30 min) the pacer computes each agent's chance directly, to the same
    # effect.
    inside = agents(40, state=AgentState.BUSY, since=NOW - TABLE_SECONDS + 1.5)
    outside = agents(40, state=AgentState.BUSY, since=NOW - TABLE_SECONDS - 0.5)
    assert run(inside)[0] == run(outside)[0] > 0


def test_the_margin_trades_dials_for_safety() -> None:
    views = agents(5) + agents(20, state=AgentState.WRAPUP, until=NOW + 8)
    bold, careful = run(views, estimates=warm(margin=-1.0))[0], run(views, estimates=warm(3.0))
    assert bold > careful[0]
    assert "z +3.00" in careful[2]


_views = st.builds(
    AgentView,
    name=st.just("a"),
    state=st.sampled_from(list(AgentState)),
    since=st.floats(NOW - 7200, NOW + 1),
    until=st.none() | st.floats(NOW - 5, NOW + 120),
    paused=st.booleans(),
)
_calls = st.builds(
    CallInFlight,
    dialled_at=st.floats(NOW - 60, NOW + 1),
    answered_at=st.none() | st.floats(NOW - 3, NOW),
)


@settings(max_examples=150, deadline=None)
@given(
    views=st.lists(_views, max_size=40),
    calls=st.lists(_calls, max_size=40),
    margin=st.floats(-1.5, 4.0),
)
def test_decisions_stay_within_bounds(
    views: list[AgentView], calls: list[CallInFlight], margin: float
) -> None:
    estimates = warm(margin=margin)
    dials, mode, reason = run(views, calls, estimates=estimates)
    progressive, _, _ = run(views, calls, settings=PacerSettings(predictive=False))
    present = sum(1 for v in views if not v.paused)
    assert mode is Mode.PREDICTIVE
    assert progressive <= dials <= max(int(SETTINGS.max_lines_per_agent * present) - len(calls), 0)
    assert reason
    if present == 0:
        assert dials == 0


def test_line_limit() -> None:
    views = agents(2)
    calls = [CallInFlight(NOW - 1) for _ in range(20)]
    dials, mode, reason = run(views, calls)
    assert (dials, mode) == (0, Mode.PREDICTIVE)
    assert reason.startswith("line limit")


# --- estimates -------------------------------------------------------------------------------


def test_observe_attempts_estimates_the_live_rate_and_answer_times() -> None:
    est = initial_estimates(SETTINGS)
    outcomes = [(i % 5 == 0, 10.5 if i % 5 == 0 else 25.0) for i in range(1000)]
    est = observe_attempts(est, outcomes, SETTINGS)
    assert (est.attempts, est.live) == (1000, 200)
    assert est.live_rate == pytest.approx(0.2, abs=0.01)
    assert est.human_times[10] == pytest.approx(est.humans)
    assert est.other_times[25] == pytest.approx(est.others)
    # More data, less uncertainty.
    more = observe_attempts(est, outcomes, SETTINGS)
    assert more.live_rate_var < est.live_rate_var
    # One pass over a batch equals one observation at a time.
    single = initial_estimates(SETTINGS)
    for outcome in outcomes[:50]:
        single = observe_attempts(single, [outcome], SETTINGS)
    batch = observe_attempts(initial_estimates(SETTINGS), outcomes[:50], SETTINGS)
    assert single.humans == pytest.approx(batch.humans)
    assert single.human_times == pytest.approx(batch.human_times)
    assert observe_attempts(est, [], SETTINGS) is est


def test_observe_attempts_forgets_old_outcomes() -> None:
    est = observe_attempts(initial_estimates(SETTINGS), [(True, 9.0)] * 5000, SETTINGS)
    assert est.live_rate > 0.99
    est = observe_attempts(est, [(False, 25.0)] * 3000, SETTINGS)
    # An undecayed count would still say 5000 / 8000 = 62%.
    assert est.live_rate < 0.45
    assert est.live == 5000


def test_observe_handled_fits_a_lognormal() -> None:
    mu, sigma = math.log(100.0), 0.7
    quantiles = NormalDist().inv_cdf
    est = initial_estimates(SETTINGS)
    assert est.handle_mu == pytest.approx(math.log(120.0))  # a default before any data
    for i in range(2000):
        z = quantiles((i * 0.618034) % 1.0 * 0.998 + 0.001)
        est = observe_handled(est, math.exp(mu + sigma * z), SETTINGS)
    assert est.handled == 2000
    assert est.handle_mu == pytest.approx(mu, abs=0.05)
    assert est.handle_sigma == pytest.approx(sigma, abs=0.05)


def test_observe_live_answer_steers_the_margin() -> None:
    est = warm(margin=1.0)
    step, target = SETTINGS.margin_step, SETTINGS.target
    assert observe_live_answer(est, True, SETTINGS).margin == pytest.approx(
        1.0 + step * (1 - target)
    )
    assert observe_live_answer(est, False, SETTINGS).margin == pytest.approx(1.0 - step * target)
    # Stays within its bounds.
    for _ in range(1000):
        est = observe_live_answer(est, True, SETTINGS)
    assert est.margin == SETTINGS.margin_max
    # At the target rate it stays put on average.
    est = warm(margin=1.0)
    for i in range(4000):
        est = observe_live_answer(est, i % 40 == 0, SETTINGS)
    assert est.margin == pytest.approx(1.0, abs=1e-9)


# --- the ledger ------------------------------------------------------------------------------


def test_ledger_counts_per_day_and_over_the_life() -> None:
    ledger = AbandonLedger()
    for day in range(40):
        for i in range(100):
            ledger = record_live_answer(ledger, day, abandoned=i < 2)
    assert [d.day for d in ledger.days] == list(range(10, 40))
    assert ledger.days[-1] == DayCount(39, 100, 2)
    assert (ledger.life_live, ledger.life_abandoned) == (4000, 80)
    assert ledger.life_rate == pytest.approx(0.02)
    late = record_live_answer(ledger, 38, abandoned=True)
    assert late.days[-2] == DayCount(38, 101, 3)
    gap = record_live_answer(record_live_answer(AbandonLedger(), 1, False), 3, False)
    filled = record_live_answer(gap, 2, True)
    assert [d.day for d in filled.days] == [1, 2, 3]


# --- the simulation --------------------------------------------------------------------------


def test_erlang_b_against_published_values() -> None:
    assert erlang_b(10.0, 10) == pytest.approx(0.2146, abs=1e-4)
    assert erlang_b(2.0, 4) == pytest.approx(0.0952, abs=1e-4)
    # dialer.md's row: occupancy of blind dialing at 3% abandons.
    row = {5: 0.36, 10: 0.54, 20: 0.68, 30: 0.75, 50: 0.81, 100: 0.88, 200: 0.93}
    for agents_, occupancy in row.items():
        assert erlang_b_floor(agents_, 0.03) == pytest.approx(occupancy, abs=0.006)


def test_outcome_mix() -> None:
    assert OutcomeMix().machine == pytest.approx(0.405)
    with pytest.raises(ValueError, match="shares"):
        OutcomeMix(human=0.5, no_answer=0.6)


def test_short_campaign_keeps_the_cap_and_beats_progressive() -> None:
    model = CampaignModel(agents=10, days=2, shift_hours=3.0, seed=7)
    predictive = simulate(model, SETTINGS)
    progressive = simulate(model, PacerSettings(predictive=False))
    assert predictive.live > 500
    assert predictive.max_window_abandon_pct <= 3.0
    assert predictive.abandon_pct <= 3.0
    assert progressive.abandoned == 0
    assert predictive.occupancy > progressive.occupancy + 0.1
    assert predictive.talk_seconds > 1.2 * progressive.talk_seconds
    assert predictive.predictive_share > 0.5
    # Deterministic for a seed.
    assert simulate(model, PacerSettings(predictive=False)) == progressive
