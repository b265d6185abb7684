"""Erlang C (M/M/n) and Erlang A (M/M/n+M) staffing. Pure.

Erlang C: callers wait for ever. With traffic ``A = lambda * AHT`` (Erlangs) and ``n > A``
agents, the probability of waiting is the Erlang C formula, computed here with the stable
Erlang B recursion (``B(0) = 1``, ``B(k) = A B(k-1) / (k + A B(k-1))``; then
``C = n B / (n - A (1 - B))``), so no factorial overflows at hundreds of agents. The service
level ``SL(t) = 1 - C e^{-(n - A) t / AHT}``, ``ASA = C AHT / (n - A)``.

Erlang A: callers give up after an exponential patience (rate ``theta`` = 1 / mean
patience). The number of calls in the system is a birth-death chain: arrivals ``lambda`` in
every state; state ``k`` ends calls at ``k mu`` for ``k <= n`` and ``n mu + (k - n) theta``
above. The stationary distribution follows from detailed balance, truncated where the terms
vanish. A caller who arrives in state ``k >= n`` waits for ``k - n + 1`` departures of the
queue (each at rate ``n mu + j theta`` for the ``j`` ahead of them) unless their own patience
runs out first; the service level is the probability that they are answered within ``t``,
counted as answered-or-not: ``P(wait <= t and not abandoned)`` over all arrivals, the way the
call log counts SL with abandons against it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: Terms of the Erlang A chain below this (relative to the largest) are dropped.
_EPS = 1e-14
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


def erlang_c(rate: float, aht: float, agents: int, target: float) -> Staffing:
    """Erlang C for ``rate`` calls per second, ``aht`` seconds, ``agents``, SL within
    ``target`` seconds. ``agents <= traffic``: the queue grows without end (SL 0)."""
    if rate < 0 or aht <= 0 or agents < 0 or target < 0:
        raise PlanningError("rate, handle time, agents and target must not be negative")
    a = rate * aht
    if a == 0:
        return Staffing(agents, 0.0, 1.0, 0.0, 0.0)
    if agents <= a:
        return Staffing(agents, 1.0, 0.0, math.inf, 1.0)
    b = erlang_b(a, agents)
    c = agents * b / (agents - a * (1 - b))
    sl = 1.0 - c * math.exp(-(agents - a) * target / aht)
    return Staffing(agents, c, sl, c * aht / (agents - a), a / agents)


def _chain(rate: float, mu: float, theta: float, agents: int) -> list[float]:
    """Stationary probabilities of the Erlang A chain (normalised)."""
    logs = [0.0]
    k = 0
    top = 0.0
    while True:
        k += 1
        out = k * mu if k <= agents else agents * mu + (k - agents) * theta
        if out <= 0:
            raise PlanningError("with no patience limit and no agents the queue never ends")
        logs.append(logs[-1] + math.log(rate) - math.log(out))
        top = max(top, logs[-1])
        if k > agents and logs[-1] - top < math.log(_EPS):
            break
        if k > agents + 100_000:
            raise PlanningError("the Erlang A chain does not settle (patience too long?)")
    probs = [math.exp(x - top) for x in logs]
    total = sum(probs)
    return [p / total for p in probs]


def _answered_within(k_ahead: int, agents: int, mu: float, theta: float, t: float) -> float:
    """P(answered within t) for a caller with ``k_ahead`` callers ahead of them in the queue
    (all servers busy): ``k_ahead + 1`` departures from the queue's head are needed, the
    j-th at rate ``n mu + (queue length) theta`` (abandons ahead of them help), while their
    own patience (rate theta) runs. Computed as a pure-birth phase-type: rates r_i =
    n mu + i theta for i = k_ahead .. 0 (i callers ahead), each step "next departure ahead or
    own turn" racing their abandonment."""
    # Stage i (i callers ahead): leaves forward at n mu + i theta, abandons at theta.
    # P(answered within t) = P(reach the end of all stages before t and before abandoning).
    rates = [agents * mu + i * theta for i in range(k_ahead, -1, -1)]
    total_rates = [r + theta for r in rates]
    # Probability of passing every stage without abandoning:
    survive = 1.0
    for r, tot in zip(rates, total_rates, strict=True):
        survive *= r / tot
    if t == 0:
        return 0.0
    # Hypoexponential CDF of the sum of Exp(tot_i) at t, computed by uniformisation.
    return survive * _hypoexp_cdf(total_rates, t)


def _hypoexp_cdf(rates: list[float], t: float) -> float:
    """P(sum of independent Exp(rates[i]) <= t), by uniformisation of the pure-birth chain."""
    q = max(rates)
    stages = len(rates)
    # Distribution over stages after m uniformised jumps; absorbed mass is the CDF.
    dist = [0.0] * (stages + 1)
    dist[0] = 1.0
    qt = q * t
    # Poisson weights, stopped when negligible.
    weight = math.exp(-qt)
    cdf = 0.0
    m = 0
    limit = int(qt + 12 * math.sqrt(qt + 1) + 30)
    while m <= limit:
        cdf += weight * dist[stages]
        nxt = [0.0] * (stages + 1)
        for i in range(stages):
            p = rates[i] / q
            nxt[i] += dist[i] * (1 - p)
            nxt[i + 1] += dist[i] * p
        nxt[stages] += dist[stages]
        dist = nxt
        m += 1
        weight *= qt / m
    return min(max(cdf, 0.0), 1.0)


def erlang_a(rate: float, aht: float, patience: float, agents: int, target: float) -> Staffing:
    """Erlang A: ``patience`` is the callers' mean patience in seconds (inf: Erlang C)."""
    if rate < 0 or aht <= 0 or agents < 0 or target < 0 or patience <= 0:
        raise PlanningError("rate, handle time, patience, agents and target must be positive")
    if math.isinf(patience):
        return erlang_c(rate, aht, agents, target)
    if rate == 0:
        return Staffing(agents, 0.0, 1.0, 0.0, 0.0)
    mu, theta = 1.0 / aht, 1.0 / patience
    probs = _chain(rate, mu, theta, agents)
    p_wait = sum(probs[agents:])
    # Arrivals see the stationary distribution (PASTA). One who finds k >= n waits.
    answered_in_time = sum(probs[:agents])
    answered = sum(probs[:agents])
    asa_num = 0.0
    for k in range(agents, len(probs)):
        ahead = k - agents
        answered_in_time += probs[k] * _answered_within(ahead, agents, mu, theta, target)
        stage_rates = [agents * mu + i * theta for i in range(ahead, -1, -1)]
        survive = 1.0
        mean_wait = 0.0
        for r in stage_rates:
            tot = r + theta
            mean_wait += survive / tot
            survive *= r / tot
        answered += probs[k] * survive
        asa_num += probs[k] * mean_wait
    p_abandon = 1.0 - answered
    busy = (rate * answered) * aht
    return Staffing(
        agents,
        p_wait,
        answered_in_time,
        asa_num,
        min(busy / agents, 1.0) if agents else 1.0,
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
    ``service_level``: Erlang C, or Erlang A with a finite ``patience``."""
    if not 0 < service_level < 1:
        raise PlanningError("the service level target must be a fraction between 0 and 1")
    start = max(int(rate * aht) if math.isinf(patience) else 0, 0)
    for n in range(max(start, 1) if rate > 0 else 0, MAX_AGENTS + 1):
        s = erlang_a(rate, aht, patience, n, target) if n else Staffing(0, 0, 1, 0, 0)
        if s.service_level >= service_level:
            return s
    raise PlanningError(f"more than {MAX_AGENTS} agents would be needed")
