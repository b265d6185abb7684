"""The calls to expect per half hour, from the weeks before. Pure.

For each (weekday, half hour) the forecast is the mean of the same half hour over the last
``weeks`` weeks, times a trend: the growth per week fitted by least squares on the weekly
totals (so a queue growing 5% a week is forecast 5% above its recent mean per week ahead).
The baseline every forecast must beat is seasonal naive (the same half hour a week earlier);
:func:`backtest` measures both with the weighted absolute percentage error (WAPE: the sum of
absolute errors over the sum of actual calls, which stays defined when half hours are
empty) on held-out past weeks. The history page asks how wrong it was: :func:`mape` (the mean
absolute percentage error over the half hours that had calls) of the forecast for one day,
and :func:`backtest_mape` over the weeks before it.

Weeks before a queue's first calls are not history: a queue opened three weeks ago is
forecast from those three weeks, not from eight with five empty ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

SLOTS_PER_DAY = 48
SLOTS_PER_WEEK = 7 * SLOTS_PER_DAY

#: weekly history: weeks[i][slot] = calls offered in that half hour (oldest week first)
Weeks = Sequence[Sequence[float]]


@dataclass(frozen=True, slots=True)
class Forecast:
    #: calls per half-hour slot of the week (0 = Monday 00:00)
    calls: tuple[float, ...]
    growth_per_week: float


def _trend(weeks: Weeks) -> float:
    """Least-squares growth of the weekly totals, as a fraction of their mean per week."""
    totals = [sum(w) for w in weeks]
    n = len(totals)
    if n < 2:
        return 0.0
    mean_x = (n - 1) / 2
    mean_y = sum(totals) / n
    if mean_y <= 0:
        return 0.0
    sxx = sum((i - mean_x) ** 2 for i in range(n))
    sxy = sum((i - mean_x) * (y - mean_y) for i, y in enumerate(totals))
    return (sxy / sxx) / mean_y


def since_first_calls(weeks: Weeks) -> Weeks:
    """``weeks`` from the first one that had calls."""
    for i, week in enumerate(weeks):
        if any(week):
            return weeks[i:]
    return []


def forecast(weeks: Weeks, ahead: int = 1) -> Forecast:
    """The week ``ahead`` weeks after the last one of ``weeks`` (from its first week with
    calls: see the module docstring)."""
    for w in weeks:
        if len(w) != SLOTS_PER_WEEK:
            raise ValueError(f"a week has {SLOTS_PER_WEEK} half hours, not {len(w)}")
    weeks = since_first_calls(weeks)
    if not weeks:
        return Forecast(tuple([0.0] * SLOTS_PER_WEEK), 0.0)
    growth = _trend(weeks)
    n = len(weeks)
    # The mean sits at the middle of the history: project from there.
    factor = max(1.0 + growth * ((n - 1) / 2 + ahead), 0.0)
    calls = tuple(max(sum(w[s] for w in weeks) / n * factor, 0.0) for s in range(SLOTS_PER_WEEK))
    return Forecast(calls, growth)


def wape(actual: Sequence[float], predicted: Sequence[float]) -> float | None:
    total = sum(actual)
    if total <= 0:
        return None
    return sum(abs(a - p) for a, p in zip(actual, predicted, strict=True)) / total


def forecast_day(weeks: Weeks, weekday: int) -> tuple[float, ...]:
    """The half hours of ``weekday`` (0 = Monday) in the week after ``weeks``: what the
    forecast said of that day when its week began."""
    return forecast(weeks).calls[weekday * SLOTS_PER_DAY : (weekday + 1) * SLOTS_PER_DAY]


def mape(actual: Sequence[float], predicted: Sequence[float]) -> float | None:
    """The mean of ``|actual - predicted| / actual`` over the half hours with calls (None:
    none had any)."""
    errors = [abs(a - p) / a for a, p in zip(actual, predicted, strict=True) if a > 0]
    return sum(errors) / len(errors) if errors else None


@dataclass(frozen=True, slots=True)
class Accuracy:
    """How wrong the forecast was on held-out weeks, and seasonal naive on the same ones."""

    mape: float | None
    naive_mape: float | None
    #: the held-out weeks counted (those with calls and with history before them)
    weeks: int


def backtest_mape(queues: Sequence[Weeks], held_out: int = 4, history: int = 8) -> Accuracy:
    """The MAPE of the last ``held_out`` weeks, each forecast from the ``history`` weeks
    before it, over all their half hours with calls together; and of seasonal naive (the
    same half hour a week earlier) on the same half hours. ``queues`` holds each queue's
    weeks (the same weeks for all, oldest first): the forecast of several queues is the sum
    of their forecasts, checked against the sum of their calls."""
    length = min((len(q) for q in queues), default=0)
    actual: list[float] = []
    ours: list[float] = []
    naive: list[float] = []
    weeks = 0
    for k in range(max(1, length - held_out), length):
        past = [q[max(0, k - history) : k] for q in queues]
        if not any(any(w) for q in past for w in q):
            continue  # nothing to forecast from yet
        week = [sum(q[k][s] for q in queues) for s in range(SLOTS_PER_WEEK)]
        if not any(week):
            continue
        predicted = [sum(x) for x in zip(*(forecast(p).calls for p in past), strict=True)]
        before = [sum(q[k - 1][s] for q in queues) for s in range(SLOTS_PER_WEEK)]
        actual += week
        ours += predicted
        naive += before
        weeks += 1
    return Accuracy(mape(actual, ours), mape(actual, naive), weeks)


def backtest(weeks: Weeks, held_out: int = 2, history: int = 8) -> Mapping[str, float | None]:
    """WAPE of the forecast and of seasonal naive on each of the last ``held_out`` weeks,
    each forecast from the ``history`` weeks before it (averaged)."""
    ours: list[float] = []
    naive: list[float] = []
    for k in range(len(weeks) - held_out, len(weeks)):
        if k < 2:
            continue
        past = weeks[max(0, k - history) : k]
        got = wape(weeks[k], forecast(past).calls)
        base = wape(weeks[k], weeks[k - 1])
        if got is not None and base is not None:
            ours.append(got)
            naive.append(base)
    if not ours:
        return {"wape": None, "seasonal_naive_wape": None}
    return {"wape": sum(ours) / len(ours), "seasonal_naive_wape": sum(naive) / len(naive)}
