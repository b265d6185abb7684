"""The calls to expect per half hour, from the weeks before. Pure.

For each (weekday, half hour) the forecast is the mean of the same half hour over the last
``weeks`` weeks, times a trend: the growth per week fitted by least squares on the weekly
totals (so a queue growing 5% a week is forecast 5% above its recent mean per week ahead).
The baseline every forecast must beat is seasonal naive (the same half hour a week earlier);
:func:`backtest` measures both with the weighted absolute percentage error (WAPE: the sum of
absolute errors over the sum of actual calls, which stays defined when half hours are
empty) on held-out past weeks.
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


def forecast(weeks: Weeks, ahead: int = 1) -> Forecast:
    """The week ``ahead`` weeks after the last one of ``weeks``."""
    if not weeks:
        return Forecast(tuple([0.0] * SLOTS_PER_WEEK), 0.0)
    for w in weeks:
        if len(w) != SLOTS_PER_WEEK:
            raise ValueError(f"a week has {SLOTS_PER_WEEK} half hours, not {len(w)}")
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
