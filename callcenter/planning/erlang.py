"""Erlang C (M/M/n) and Erlang A (M/M/n+M) staffing. Pure.

Erlang C: callers wait for ever. With traffic ``A = lambda * AHT`` (Erlangs) and ``n > A``
agents, the probability of waiting is the Erlang C formula, computed here with the stable
Erlang B recursion (``B(0) = 1``, ``B(k) = A B(k-1) / (k + A B(k-1))``; then
``C = n B / (n - A (1 - B))``), so no factorial overflows at hundreds of agents. The service
level ``SL(t) = 1 - C e^{-(n - A) t / AHT}``, ``ASA = C AHT / (n - A)``.

Erlang A: callers give up after an exponential patience (rate ``theta`` = 1 / mean
patience). The number of calls in the system is a birth-death chain: arrivals ``lambda`` in
every state; state ``k`` ends calls at ``k mu`` for ``k <= n`` and ``n mu + (k - n) theta``
above, so by detailed balance ``pi(n + i) = pi(n) prod_{j=1..i} lambda / (n mu + j theta)``.
A caller who arrives in state ``n + i`` (PASTA) waits for ``i + 1`` departures of the queue
(each at rate ``n mu + j theta`` with ``j`` callers ahead) unless their own patience runs out
first; the service level is the probability that they are answered within ``t``, counted as
answered-or-not: ``P(wait <= t and not abandoned)`` over all arrivals, the way the call log
counts SL with abandons against it. Mixed over the states a caller can find, that wait has
the density ``pi(n) n mu e^{-n mu s} exp(y (1 - e^{-theta s}))`` (``y = lambda / theta``;
its Laplace transform is the sum over the states of the stages' products), so every figure
is an incomplete gamma function (Mandelbaum and Zeltyn's closed forms of the Palm/Erlang-A
queue): a few dozen operations however many agents and callers, where the chain summed state
by state costs the square of its length (seconds per half hour at 150 agents). The tests
check it against that chain and against a simulation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: At most this many agents are tried when looking for the number needed.
MAX_AGENTS = 5000


class PlanningError(ValueError):
    """Inputs that have no answer (one line)."""


@dataclass(frozen=True, slots=True)
class Staffing:
    agents: int
    p_wait: float
    service_level: float
    asa: float
    occupancy: float
    p_abandon: float = 0.0


def erlang_b(traffic: float, agents: int) -> float:
    b = 1.0
    for k in range(1, agents + 1):
        b = traffic * b / (k + traffic * b)
    return b


class _ErlangB:
    """Erlang B of one traffic for any number of agents, each step of the recursion done
    once: the search for the agents needed asks for many counts."""

    def __init__(self, traffic: float) -> None:
        self.traffic = traffic
        self.values = [1.0]

    def __call__(self, agents: int) -> float:
        values, a = self.values, self.traffic
        while len(values) <= agents:
            values.append(a * values[-1] / (len(values) + a * values[-1]))
        return values[agents]


def erlang_c(
    rate: float, aht: float, agents: int, target: float, *, b: _ErlangB | None = None
) -> Staffing:
    """Erlang C for ``rate`` calls per second, ``aht`` seconds, ``agents``, SL within
    ``target`` seconds. ``agents <= traffic``: the queue grows without end (SL 0). ``b``:
    the Erlang B of this traffic, when a search shares it."""
    if rate < 0 or aht <= 0 or agents < 0 or target < 0:
        raise PlanningError("rate, handle time, agents and target must not be negative")
    a = rate * aht
    if a == 0:
        return Staffing(agents, 0.0, 1.0, 0.0, 0.0)
    if agents <= a:
        return Staffing(agents, 1.0, 0.0, math.inf, 1.0)
    b_n = b(agents) if b is not None else erlang_b(a, agents)
    c = agents * b_n / (agents - a * (1 - b_n))
    sl = 1.0 - c * math.exp(-(agents - a) * target / aht)
    return Staffing(agents, c, sl, c * aht / (agents - a), a / agents)


def _log_add(a: float, b: float) -> float:
    """log(e^a + e^b)."""
    if a < b:
        a, b = b, a
    return a if b == -math.inf else a + math.log1p(math.exp(b - a))


def _log_sub(a: float, b: float) -> float:
    """log(e^a - e^b) for a >= b (-inf when they are equal)."""
    return -math.inf if b >= a else a + math.log1p(-math.exp(b - a))


def _log_series(x: float, y: float) -> float:
    """``log R(x, y)``, ``R(x, y) = sum_k y^k / (x (x+1) ... (x+k)) = e^y y^-x gamma(x, y)``
    (``gamma`` the lower incomplete gamma function), for ``x > 0``, ``y >= 0``: the series
    where it converges fast (``y < x + 1``), else the continued fraction of the upper
    incomplete gamma (Numerical Recipes' ``gcf``, modified Lentz), so the work is
    ``O(sqrt(x + y))`` terms whatever the load."""
    if y < x + 1:
        term = total = 1.0 / x
        k = 0
        while term > total * 1e-17:
            k += 1
            term *= y / (x + k)
            total += term
        return math.log(total)
    # Q(x, y) = Gamma(x, y) / Gamma(x) by the continued fraction; R = e^y y^-x Gamma(x) (1 - Q).
    tiny = 1e-300
    b = y + 1 - x
    c = 1 / tiny
    d = 1 / b
    h = d
    for i in range(1, 100_000):
        an = -i * (i - x)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-16:
            break
    log_q = -y + x * math.log(y) - math.lgamma(x) + math.log(h)
    return y - x * math.log(y) + math.lgamma(x) + math.log1p(-math.exp(log_q))


def erlang_a(
    rate: float,
    aht: float,
    patience: float,
    agents: int,
    target: float,
    *,
    b: _ErlangB | None = None,
) -> Staffing:
    """Erlang A: ``patience`` is the callers' mean patience in seconds (inf: Erlang C);
    ``b`` as for :func:`erlang_c`.

    Closed form (see the module docstring): with ``x = n mu / theta``, ``y = lambda /
    theta``, ``E = 1/B - 1`` (``B`` Erlang B of the ``n`` agents: the weight of the states
    with a free agent, relative to ``pi_n``), the waiting states weigh ``S = x R(x, y)``,
    those who will be answered ``x R(x + 1, y)``, those answered within ``t``
    ``x (R(x + 1, y) - e^{y - y_t - theta t (x + 1)} R(x + 1, y_t))``, ``y_t = y
    e^{-theta t}``; each over ``E + S``. ASA is the mean wait of all arrivals (abandons
    included): ``P_abandon / theta``."""
    if rate < 0 or aht <= 0 or agents < 0 or target < 0 or patience <= 0:
        raise PlanningError("rate, handle time, patience, agents and target must be positive")
    if math.isinf(patience):
        return erlang_c(rate, aht, agents, target, b=b)
    if rate == 0:
        return Staffing(agents, 0.0, 1.0, 0.0, 0.0)
    if agents == 0:  # everybody waits until they give up
        return Staffing(0, 1.0, 0.0, patience, 1.0, 1.0)
    b_n = b(agents) if b is not None else erlang_b(rate * aht, agents)
    if b_n == 0.0:  # so many agents that nobody ever waits (B underflowed)
        return Staffing(agents, 0.0, 1.0, 0.0, rate * aht / agents)
    theta = 1.0 / patience
    x = agents * patience / aht
    y = rate * patience
    log_e = math.log1p(-b_n) - math.log(b_n) if b_n < 1 else -math.inf
    log_x = math.log(x)
    log_s = log_x + _log_series(x, y)
    log_answered = log_x + _log_series(x + 1, y)
    y_t = y * math.exp(-theta * target)
    log_late = log_x + y - y_t - theta * target * (x + 1) + _log_series(x + 1, y_t)
    log_z = _log_add(log_e, log_s)
    p_wait = math.exp(log_s - log_z)
    answered = math.exp(_log_add(log_e, log_answered) - log_z)
    in_time = math.exp(_log_add(log_e, _log_sub(log_answered, log_late)) - log_z)
    # The abandons, from the waiting states (not 1 - answered: no cancellation when rare).
    p_abandon = math.exp(_log_sub(log_s, log_answered) - log_z)
    return Staffing(
        agents,
        p_wait,
        min(in_time, 1.0),
        p_abandon * patience,
        min(rate * answered * aht / agents, 1.0),
        p_abandon,
    )


def agents_needed(
    rate: float,
    aht: float,
    target: float,
    service_level: float,
    *,
    patience: float = math.inf,
) -> Staffing:
    """The fewest agents whose service level (within ``target`` s) is at least
    ``service_level``: Erlang C, or Erlang A with a finite ``patience``.

    The service level grows with the agents, so Erlang A's count is found by bisection
    (about ten evaluations at hundreds of agents); Erlang C's by counting up from the
    traffic, where it is cheap."""
    if not 0 < service_level < 1:
        raise PlanningError("the service level target must be a fraction between 0 and 1")
    if rate < 0 or aht <= 0 or target < 0 or patience <= 0:
        raise PlanningError("rate, handle time, patience and target must be positive")
    if rate == 0:
        return Staffing(0, 0.0, 1.0, 0.0, 0.0)
    b = _ErlangB(rate * aht)
    if math.isinf(patience):
        for n in range(max(int(rate * aht), 1), MAX_AGENTS + 1):
            s = erlang_c(rate, aht, n, target, b=b)
            if s.service_level >= service_level:
                return s
        raise PlanningError(f"more than {MAX_AGENTS} agents would be needed")
    # lo: a count known to fall short (none answer nobody); hi: one known to suffice.
    lo, hi = 0, min(int(rate * aht) + 1, MAX_AGENTS)
    best = erlang_a(rate, aht, patience, hi, target, b=b)
    while best.service_level < service_level:
        if hi >= MAX_AGENTS:
            raise PlanningError(f"more than {MAX_AGENTS} agents would be needed")
        lo, hi = hi, min(2 * hi, MAX_AGENTS)
        best = erlang_a(rate, aht, patience, hi, target, b=b)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        s = erlang_a(rate, aht, patience, mid, target, b=b)
        if s.service_level >= service_level:
            hi, best = mid, s
        else:
            lo = mid
    return best
