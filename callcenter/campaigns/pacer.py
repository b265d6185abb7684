"""The outbound pacer: how many calls to dial now. Pure: state and estimates in, a decision out.

Nothing here does I/O, reads a clock or keeps state between calls (beyond memoized tables
that depend on the arguments alone). The dialer service builds the inputs -- the agents from
the bridge's agent state (Asterisk queue membership: the pacer keeps no agent model of its
own), the calls it has in flight, the :class:`Estimates` it folds attempt outcomes into with
the ``observe_*`` functions, and the :class:`AbandonLedger` -- and calls :func:`decide` on
every tick, about once a second. The simulation (:mod:`callcenter.campaigns.simulation`)
does the same, so ``make bench`` measures this code.

Modes
-----
*Progressive*: at most one call in flight per free agent: ``free - in_flight`` new calls. Such
a call always finds an agent, so progressive abandons nothing, and it is what the pacer does
during warm-up (too few outcomes to estimate anything) and when the abandon budget is spent.

*Predictive*: dial for the agents expected to be free when the new calls' live answers come.

The predictive method
---------------------
Over a few seconds an agent serves at most one call (the shortest handle time, a refusal plus
its wrap-up, is far longer than the ring time), so the live answers arriving in the next
seconds can all be connected within the grace of the 2-second rule if and only if, for every
time ``h`` ahead, the live answers arriving by ``now + h`` do not outnumber the agents free
by ``now + h + slack`` (Hall's condition for matching, in time order). The pacer checks this
at a few checkpoints ``h`` spread over the answer-time distribution (``checkpoints``)::

    supply(h) = free agents
              + agents in wrap-up that ends by h + slack              (known exactly)
              + sum over talking agents of P(free by h + slack | busy for t)
    demand(h) = answered calls waiting for an agent
              + sum over ringing calls of P(live answer by h | still ringing at age r)
              + n * p * G(h)                                         (the n new calls)

and dials the largest ``n`` with ``supply(h) - demand(h) >= z * sd(h)`` at every checkpoint,
``sd`` being the standard deviation of ``supply - demand``: every term is a Bernoulli, plus
the uncertainty of the live-answer rate ``p`` (a Beta posterior), which is the same for all
calls and so does not average out. The margin ``z`` is a quantile: the larger, the rarer an
abandon and the more agents wait.

Why conditional remaining time: handle times are lognormal, not memoryless. An agent five
seconds into a call will almost surely not be free within 20 s; one ten minutes in may well
be. With the fitted handle-time CDF ``F``::

    P(free within h | busy for t) = (F(t + h) - F(t)) / (1 - F(t))

Likewise a call that has rung for 15 s is less likely to be a live answer than a new one
(most people answer within 10-12 s; the rest are no answers, machines, busy lines), so its
chance is Bayes' rule on the observed resolution times of human and other attempts.

The estimates (:class:`Estimates`, updated by the pure ``observe_*`` functions, all with
exponential decay so that they follow a list whose numbers change during the day): the
live-answer probability is a Beta posterior (its variance is the uncertainty used above); the
dial-to-resolution times of live answers and of the other attempts are histograms in
one-second bins; the handle time (talk plus wrap-up) is a lognormal fitted by the decayed mean
and variance of its logarithm.

The controller: ``z`` is tuned on the measured abandon rate against the target (2.5% by
default, below the 3% cap): after each live answer to a predictively dialled call,
``z += step * (abandoned - target)``. This stochastic approximation settles where the
abandon rate is the target whatever the bias of the model; an abandon raises ``z`` by
``step * (1 - target)``, a connected call lowers it by ``step * target``.

The hard limits: the law (16 CFR 310.4(b)(4)) caps abandoned calls at 3% of live answers
per campaign over its life and over each 30-day period. The :class:`AbandonLedger` keeps
live answers and abandons per day; the budget is the number of abandons still allowed,
``cap * live - abandoned``, over the 30-day window ending today, over the life, and over the
windows that end on coming days (their known part is a suffix of today's window; their
future days are projected at the target rate, so each adds ``(cap - target) * live per
day`` of slack). When the budget falls below ``reserve_abandons`` the pacer dials
progressively, which adds live answers and no abandons, until there is budget again.
"""

from __future__ import annotations

import math
import struct
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from functools import lru_cache
from itertools import pairwise

#: The legal ceiling on abandoned calls as a fraction of live answers (FTC TSR, Ofcom).
MAX_CAP = 0.03

#: Busy agents' conditional probabilities are tabulated per second of elapsed time up to here
#: (calls longer than this are computed one by one).
TABLE_SECONDS = 1800

_SQRT2 = math.sqrt(2.0)


class PacerError(ValueError):
    """Settings or inputs the pacer refuses (one line)."""


class AgentState(StrEnum):
    FREE = "free"
    BUSY = "busy"  # talking (or ringing/hold): the handle time has started
    WRAPUP = "wrapup"  # after-call work; ``until`` says when it ends where it is known


class Mode(StrEnum):
    PROGRESSIVE = "progressive"
    PREDICTIVE = "predictive"


@dataclass(frozen=True, slots=True)
class AgentView:
    """One logged-in agent of the campaign's queue, as the bridge sees them.

    ``since`` is when the current call was connected (BUSY, and WRAPUP when ``until`` is
    unknown); ``until`` when the wrap-up ends (app_queue's wrapuptime makes it known).
    A paused agent takes no calls, whatever the state: the pacer never dials for them.
    """

    name: str
    state: AgentState = AgentState.FREE
    since: float = 0.0
    until: float | None = None
    paused: bool = False


@dataclass(frozen=True, slots=True)
class CallInFlight:
    """A call the dialer placed that has not reached an agent or ended.

    Ringing (including answered but not yet classified by AMD) while ``answered_at`` is None;
    answered by a live person and waiting for an agent (within the 2-second grace) otherwise.
    """

    dialled_at: float
    answered_at: float | None = None


@dataclass(frozen=True, slots=True)
class PacerSettings:
    """The campaign's pacing settings; refused when they would break the 3% rule."""

    cap: float = MAX_CAP
    target: float = 0.025
    predictive: bool = True
    window_days: int = 30
    #: Warm-up: progressive until this many attempts, live answers and handled calls.
    warmup_attempts: int = 300
    warmup_live: int = 40
    warmup_handled: int = 40
    #: Seconds ahead at which supply and demand are compared (integers, ascending), spread
    #: over the dial-to-HUMAN times (median ~11 s); the few later answers are weighed on the
    #: next ticks, as the calls age.
    checkpoints: tuple[int, ...] = (6, 9, 13, 20)
    #: How long after its AMD verdict a live answer can still be connected (the 2 s after the
    #: greeting's end, less AMD's 0.8 s).
    connect_slack: float = 1.0
    margin_initial: float = 3.0
    margin_min: float = -1.5
    margin_max: float = 4.0
    margin_step: float = 0.03
    #: Progressive when fewer abandons than this are left in any budget.
    reserve_abandons: float = 2.0
    max_lines_per_agent: float = 10.0
    #: Effective memory (observations) of the decayed estimates.
    attempt_memory: int = 3000
    handle_memory: int = 500
    #: One-second bins of the attempts' resolution times (the last bin takes the rest).
    answer_bins: int = 32

    def __post_init__(self) -> None:
        if not 0 < self.cap <= MAX_CAP:
            raise PacerError(f"cap {self.cap:.2%}: must be above 0 and at most {MAX_CAP:.0%}")
        if not 0 < self.target < self.cap:
            raise PacerError(f"target {self.target:.2%}: must be above 0 and below the cap")
        if not 1 <= self.window_days <= 30:
            raise PacerError(f"window_days {self.window_days}: must be 1 to 30")
        points = self.checkpoints
        if not points or any(b <= a for a, b in pairwise(points)):
            raise PacerError("checkpoints: at least one, strictly ascending")
        if points[0] < 1 or points[-1] >= self.answer_bins:
            raise PacerError(f"checkpoints: from 1 to {self.answer_bins - 1} seconds")
        if not self.margin_min <= self.margin_initial <= self.margin_max:
            raise PacerError("margin_initial: must lie within [margin_min, margin_max]")
        if self.margin_step < 0 or self.connect_slack < 0 or self.reserve_abandons < 0:
            raise PacerError("margin_step, connect_slack, reserve_abandons: not negative")
        if self.attempt_memory < 1 or self.handle_memory < 1 or self.max_lines_per_agent < 1:
            raise PacerError("attempt_memory, handle_memory, max_lines_per_agent: at least 1")


@dataclass(frozen=True, slots=True)
class Estimates:
    """What the pacer has learnt from the campaign's attempts (see the ``observe_*`` updates).

    Counts decay exponentially (``attempt_memory``, ``handle_memory``) so the estimates
    follow a list that changes during the day. ``attempts``, ``live`` and ``handled`` are
    plain totals, for the warm-up.
    """

    humans: float
    others: float
    #: Decayed counts of dial-to-resolution times, per one-second bin: when AMD said HUMAN
    #: (live answers), and when the other attempts ended (busy, invalid, no answer, machine).
    human_times: tuple[float, ...]
    other_times: tuple[float, ...]
    #: Decayed weight, sum and sum of squares of log(handle seconds), handle = talk + wrap.
    handle_weight: float
    handle_log_sum: float
    handle_log_sq: float
    attempts: int
    live: int
    handled: int
    #: The controller's quantile (see the module docstring).
    margin: float

    @property
    def live_rate(self) -> float:
        """Posterior mean of the live-answer probability (Beta(1 + humans, 1 + others))."""
        return (1.0 + self.humans) / (2.0 + self.humans + self.others)

    @property
    def live_rate_var(self) -> float:
        a, b = 1.0 + self.humans, 1.0 + self.others
        return a * b / ((a + b) ** 2 * (a + b + 1.0))

    @property
    def handle_mu(self) -> float:
        if self.handle_weight < 2.0:
            return math.log(120.0)
        return self.handle_log_sum / self.handle_weight

    @property
    def handle_sigma(self) -> float:
        if self.handle_weight < 2.0:
            return 0.8
        mean = self.handle_log_sum / self.handle_weight
        var = self.handle_log_sq / self.handle_weight - mean * mean
        return max(math.sqrt(max(var, 0.0)), 0.05)


@dataclass(frozen=True, slots=True)
class DayCount:
    day: int
    live: int = 0
    abandoned: int = 0


@dataclass(frozen=True, slots=True)
class AbandonLedger:
    """Live answers and abandons per campaign day (the last ``window_days`` days kept, in
    order) and over the campaign's life."""

    days: tuple[DayCount, ...] = ()
    life_live: int = 0
    life_abandoned: int = 0

    @property
    def life_rate(self) -> float:
        return self.life_abandoned / self.life_live if self.life_live else 0.0


@dataclass(frozen=True, slots=True)
class Budget:
    """Abandons still allowed before the tightest limit (``left``) and which one it is."""

    left: float
    binding: str
    window_live: int
    window_abandoned: int


@dataclass(frozen=True, slots=True)
class Decision:
    """How many calls to dial now, in which mode, and why (:attr:`reason`)."""

    dials: int
    mode: Mode
    why: str
    #: The figures ``why`` is formatted with: formatting them on every tick would cost more
    #: than the decision's arithmetic, and the reason is read far less often.
    figures: tuple[object, ...] = ()

    @property
    def reason(self) -> str:
        """For people and logs: the mode's cause, or what bound the predictive count."""
        return self.why.format(*self.figures) if self.figures else self.why


# --- estimates -------------------------------------------------------------------------------


def initial_estimates(settings: PacerSettings) -> Estimates:
    """No data yet: the pacer stays progressive until the warm-up is done."""
    bins = (0.0,) * settings.answer_bins
    return Estimates(
        humans=0.0,
        others=0.0,
        human_times=bins,
        other_times=bins,
        handle_weight=0.0,
        handle_log_sum=0.0,
        handle_log_sq=0.0,
        attempts=0,
        live=0,
        handled=0,
        margin=settings.margin_initial,
    )


def observe_attempts(
    estimates: Estimates, outcomes: Iterable[tuple[bool, float]], settings: PacerSettings
) -> Estimates:
    """Fold attempt outcomes in, oldest first: (reached a live person, seconds from the dial
    to the AMD verdict HUMAN or to the end of the attempt)."""
    keep = 1.0 - 1.0 / settings.attempt_memory
    humans, others = estimates.humans, estimates.others
    human_times = list(estimates.human_times)
    other_times = list(estimates.other_times)
    last = len(human_times) - 1
    # Each observation is added with weight keep**-j and everything is scaled by keep**n at
    # the end: one pass instead of decaying every bin per observation.
    weight = 1.0
    n = live = 0
    for human, seconds in outcomes:
        weight /= keep
        n += 1
        b = min(max(int(seconds), 0), last)
        if human:
            live += 1
            humans += weight
            human_times[b] += weight
        else:
            others += weight
            other_times[b] += weight
    if n == 0:
        return estimates
    scale = keep**n
    return replace(
        estimates,
        humans=humans * scale,
        others=others * scale,
        human_times=tuple([x * scale for x in human_times]),
        other_times=tuple([x * scale for x in other_times]),
        attempts=estimates.attempts + n,
        live=estimates.live + live,
    )


def observe_handled(estimates: Estimates, seconds: float, settings: PacerSettings) -> Estimates:
    """Fold in one call's handle time (talk + wrap-up, seconds) for the lognormal fit."""
    keep = 1.0 - 1.0 / settings.handle_memory
    x = math.log(max(seconds, 1.0))
    e = estimates
    # The constructor, not dataclasses.replace: this runs once per call and replace is slow.
    return Estimates(
        e.humans,
        e.others,
        e.human_times,
        e.other_times,
        e.handle_weight * keep + 1.0,
        e.handle_log_sum * keep + x,
        e.handle_log_sq * keep + x * x,
        e.attempts,
        e.live,
        e.handled + 1,
        e.margin,
    )


def observe_live_answer(
    estimates: Estimates, abandoned: bool, settings: PacerSettings
) -> Estimates:
    """The controller's step, for a live answer to a call dialled in predictive mode (calls
    dialled progressively say nothing about the margin and would wind it up)."""
    step = settings.margin_step * ((1.0 if abandoned else 0.0) - settings.target)
    margin = min(max(estimates.margin + step, settings.margin_min), settings.margin_max)
    e = estimates
    return Estimates(
        e.humans,
        e.others,
        e.human_times,
        e.other_times,
        e.handle_weight,
        e.handle_log_sum,
        e.handle_log_sq,
        e.attempts,
        e.live,
        e.handled,
        margin,
    )


# --- the abandon ledger ----------------------------------------------------------------------


def record_live_answer(
    ledger: AbandonLedger, day: int, abandoned: bool, window_days: int = 30
) -> AbandonLedger:
    """Count one live answer (abandoned or connected) on campaign day ``day``."""
    add = 1 if abandoned else 0
    days = ledger.days
    if days and days[-1].day == day:  # the usual case: one more answer today
        last = days[-1]
        kept = (*days[:-1], DayCount(day, last.live + 1, last.abandoned + add))
    else:
        listed = list(days)
        if not listed or listed[-1].day < day:
            listed.append(DayCount(day, 1, add))
        else:  # a late record for an earlier day
            for i, d in enumerate(listed):
                if d.day == day:
                    listed[i] = DayCount(day, d.live + 1, d.abandoned + add)
                    break
                if d.day > day:
                    listed.insert(i, DayCount(day, 1, add))
                    break
        newest = listed[-1].day
        kept = tuple(d for d in listed if d.day > newest - window_days)
    return AbandonLedger(kept, ledger.life_live + 1, ledger.life_abandoned + add)


def abandon_budget(ledger: AbandonLedger, settings: PacerSettings, today: int) -> Budget:
    """Abandons still allowed: the least over the life, the window ending today and the
    windows ending on the coming days (see the module docstring)."""
    cap, span = settings.cap, settings.window_days
    first = today - span + 1
    days = []
    live = abandoned = complete = complete_live = 0
    for d in ledger.days:
        if first <= d.day <= today:
            days.append(d)
            live += d.live
            abandoned += d.abandoned
            if d.day < today:
                complete += 1
                complete_live += d.live
    window_live, window_abandoned = live, abandoned
    left = cap * live - abandoned
    binding = 0  # 0: the window ending today, -1: the life, j > 0: the window ending today + j
    life_left = cap * ledger.life_live - ledger.life_abandoned
    if life_left < left:
        left, binding = life_left, -1
    slack = (cap - settings.target) * complete_live / complete if complete else 0.0
    # The window ending on today + j keeps the days after today + j - span and adds j days
    # to come. Between two dropped days the least budget is at the smallest such j, the day
    # after the drop: one check per day dropped.
    for d in days:
        j = d.day - first + 1
        if j >= span:
            break
        live -= d.live
        abandoned -= d.abandoned
        ahead = cap * live - abandoned + slack * j
        if ahead < left:
            left, binding = ahead, j
    if binding == 0:
        text = f"{span}-day window {window_abandoned}/{window_live}"
    elif binding < 0:
        text = f"life {ledger.life_abandoned}/{ledger.life_live}"
    else:
        text = f"window ending in {binding} day(s)"
    return Budget(left, text, window_live, window_abandoned)


_PREDICTIVE_WHY = (
    "predictive: {} calls; at +{}s expected free agents exceed expected live answers by "
    "{:.1f} before these calls (z {:+.2f}, p {:.1%}); {:.0f} abandons left ({})"
)

# --- the decision ----------------------------------------------------------------------------


def lognormal_sf(x: float, mu: float, sigma: float) -> float:
    """P(X > x) for log X ~ N(mu, sigma^2)."""
    if x <= 0.0:
        return 1.0
    return 0.5 * math.erfc((math.log(x) - mu) / (sigma * _SQRT2))


def p_free_within(h: float, elapsed: float, mu: float, sigma: float) -> float:
    """P(S <= t + h | S > t) for a lognormal handle time S: the chance that an agent busy for
    ``elapsed`` seconds is free within ``h`` more."""
    alive = lognormal_sf(elapsed, mu, sigma)
    if alive <= 1e-300:
        return 1.0
    return (alive - lognormal_sf(elapsed + h, mu, sigma)) / alive


# Per-agent and per-call probabilities are summed for every checkpoint, and each sum is over
# every busy agent or ringing call, on every tick. To make that one C-level pass instead of a
# Python loop per checkpoint, a table entry packs all of them as fixed-point "lanes" of one
# integer: lane j holds round(x_j * 2**16) at bit 32*j, so adding entries adds every lane at
# once (2**16 entries of at most 1.0 cannot carry into the next lane), and struct reads the
# lanes back in one call. The rounding (1.5e-5 a term) is far below what the figures mean.
_LANE_SCALE = float(1 << 16)
_MAX_SUMMED = 1 << 16


def _pack(columns: Sequence[Sequence[float]]) -> tuple[int, ...]:
    """Rows of packed lanes from one column of values per lane."""
    shifted = [
        [int(x * _LANE_SCALE + 0.5) << (32 * j) for x in column] for j, column in enumerate(columns)
    ]
    return tuple(map(sum, zip(*shifted, strict=True)))


def _unpack(packed: int, lanes: int) -> list[float]:
    raw = struct.unpack(f"<{lanes}I", packed.to_bytes(4 * lanes, "little"))
    return [x / _LANE_SCALE for x in raw]


@lru_cache(maxsize=64)
def _busy_table(
    mu: float, sigma: float, points: tuple[int, ...], slack: float
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The offsets (checkpoint plus slack, whole seconds so that one grid of the survival
    function serves them all) and, per second of elapsed time i < TABLE_SECONDS, packed: for
    each offset, P(free within offset | busy for i + 0.5 s) and its Bernoulli variance.
    Cached on rounded parameters: the fit drifts slowly and the rounding (2% of the time
    scale) is far below its noise."""
    offsets = tuple(round(h + slack) for h in points)
    scale = sigma * _SQRT2
    alive = [
        0.5 * math.erfc((math.log(i + 0.5) - mu) / scale)
        for i in range(TABLE_SECONDS + max(offsets))
    ]
    columns: list[list[float]] = []
    for off in offsets:
        probs = [
            (a - alive[i + off]) / a if a > 1e-300 else 1.0
            for i, a in enumerate(alive[:TABLE_SECONDS])
        ]
        columns += (probs, [q - q * q for q in probs])
    return offsets, _pack(columns)


def _survival(counts: tuple[float, ...], pad: int) -> list[float]:
    """Share of resolutions later than i + 0.5 s, per bin i, padded with zeros."""
    total = sum(counts)
    out = [0.0] * (len(counts) + pad)
    if total <= 0.0:
        return out
    later = 0.0
    for i in range(len(counts) - 1, -1, -1):
        out[i] = (later + 0.5 * counts[i]) / total
        later += counts[i]
    return out


@lru_cache(maxsize=8)
def _ringing_table(
    human_times: tuple[float, ...],
    other_times: tuple[float, ...],
    p: float,
    points: tuple[int, ...],
) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Per age bin of a ringing call, packed: for each checkpoint h, P(live answer within h |
    unresolved at that age) and its Bernoulli variance; and per checkpoint a new call's
    P(live answer within h). Cached: the estimates change when outcomes are folded in, not on
    every tick."""
    human_sf = _survival(human_times, points[-1] + 1)
    other_sf = _survival(other_times, points[-1] + 1)
    bins = range(len(human_times))
    unresolved = [p * human_sf[i] + (1.0 - p) * other_sf[i] for i in bins]
    columns: list[list[float]] = []
    for h in points:
        # Bayes' rule: of the calls still unresolved at age i, the share that a live person
        # answers within the next h seconds.
        arrive = [
            p * (human_sf[i] - human_sf[i + h]) / u if u > 1e-12 else 0.0
            for i, u in zip(bins, unresolved, strict=True)
        ]
        columns += (arrive, [d - d * d for d in arrive])
    new_call = tuple(p * (1.0 - human_sf[h]) if human_sf[0] > 0.0 else 0.0 for h in points)
    return _pack(columns), new_call


def _bound(m: float, a: float, v0: float, b: float, c: float, z: float, room: int) -> float:
    """The largest real n in [0, room] with m - n·a >= z·sqrt(v0 + n·b + n²·c); -1 when not
    even 0 fits (the calls in flight already use the margin up).

    Squaring gives a quadratic in n whose smaller root (z > 0) or larger root (z < 0) is the
    bound (the quadratic is negative at n = m/a, so m/a lies between its roots)."""
    if m - z * math.sqrt(max(v0, 0.0)) < 0.0:
        return -1.0
    if a <= 1e-12:
        return float(room)
    if z == 0.0:
        return min(m / a, float(room))
    qa = a * a - z * z * c
    if qa <= 1e-15:  # the rate's uncertainty outweighs a call's mean: search instead
        terms = [(m, a, v0, b, c)]
        if _fits(room, terms, z):
            return float(room)
        lo, hi = 0, room
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if _fits(mid, terms, z) else (lo, mid)
        return float(lo)
    qb = -(2.0 * m * a + z * z * b)
    qc = m * m - z * z * v0
    root = math.sqrt(max(qb * qb - 4.0 * qa * qc, 0.0))
    x = (-qb - root) / (2.0 * qa) if z > 0.0 else (-qb + root) / (2.0 * qa)
    return min(max(x, 0.0), float(room))


def _fits(n: int, terms: list[tuple[float, float, float, float, float]], z: float) -> bool:
    for m, a, v0, b, c in terms:
        if m - n * a < z * math.sqrt(max(v0 + n * b + n * n * c, 0.0)):
            return False
    return True


def _progressive(agents: Sequence[AgentView], calls: Sequence[CallInFlight]) -> tuple[int, int]:
    free = 0
    for a in agents:
        if a.state is AgentState.FREE and not a.paused:
            free += 1
    return max(free - len(calls), 0), free


def decide(
    agents: Sequence[AgentView],
    calls: Sequence[CallInFlight],
    estimates: Estimates,
    ledger: AbandonLedger,
    settings: PacerSettings,
    *,
    now: float,
    today: int,
) -> Decision:
    """How many new calls to dial now, in which mode and why (see the module docstring).

    ``now`` is on the clock of the views' times; ``today`` is the campaign day of the
    ledger."""
    in_flight = len(calls)
    if not settings.predictive:
        dials, free = _progressive(agents, calls)
        return Decision(
            dials, Mode.PROGRESSIVE, f"progressive: {free} free agents, {in_flight} in flight"
        )
    if (
        estimates.attempts < settings.warmup_attempts
        or estimates.live < settings.warmup_live
        or estimates.handled < settings.warmup_handled
    ):
        dials, _ = _progressive(agents, calls)
        return Decision(
            dials,
            Mode.PROGRESSIVE,
            f"warm-up: {estimates.attempts}/{settings.warmup_attempts} attempts, "
            f"{estimates.live}/{settings.warmup_live} live answers, "
            f"{estimates.handled}/{settings.warmup_handled} handled calls",
        )
    budget = abandon_budget(ledger, settings, today)
    if budget.left < settings.reserve_abandons:
        dials, _ = _progressive(agents, calls)
        return Decision(
            dials,
            Mode.PROGRESSIVE,
            f"abandon budget spent: {budget.left:.1f} left ({budget.binding}, "
            f"cap {settings.cap:.1%})",
        )

    # A plain loop, and math.floor mapped over a list: this runs on every tick for every agent
    # and call, and int() on a float costs three times as much.
    free = active = 0
    since: list[float] = []
    wrap_left: list[float] = []
    free_state, wrap_state = AgentState.FREE, AgentState.WRAPUP
    for ag in agents:
        if ag.paused:
            continue
        active += 1
        state = ag.state
        if state is free_state:
            free += 1
        elif state is wrap_state and ag.until is not None:
            wrap_left.append(ag.until - now)
        else:
            since.append(ag.since)
    busy_idx = list(map(math.floor, [now - t for t in since]))
    busy_long: list[float] = []
    if busy_idx and (min(busy_idx) < 0 or max(busy_idx) >= TABLE_SECONDS):
        busy_long = [now - t for t in since if now - t >= TABLE_SECONDS]
        busy_idx = [max(i, 0) for i in busy_idx if i < TABLE_SECONDS]
    progressive = max(free - in_flight, 0)
    room = int(settings.max_lines_per_agent * active) - in_flight
    if room <= 0:
        return Decision(0, Mode.PREDICTIVE, f"line limit: {in_flight} calls in flight")

    # Calls in flight: ages in one-second bins; answered ones wait for an agent now.
    ages = list(map(math.floor, [now - c.dialled_at for c in calls if c.answered_at is None]))
    waiting = in_flight - len(ages)
    last_bin = len(estimates.human_times) - 1
    if ages and (min(ages) < 0 or max(ages) > last_bin):
        ages = [min(max(i, 0), last_bin) for i in ages]
    if len(ages) >= _MAX_SUMMED or len(busy_idx) >= _MAX_SUMMED:
        raise PacerError("too many agents or calls in flight for one campaign")

    p = estimates.live_rate
    var_p = estimates.live_rate_var
    points = settings.checkpoints
    lanes = 2 * len(points)
    ring_rows, new_call = _ringing_table(estimates.human_times, estimates.other_times, p, points)
    flying = _unpack(sum(map(ring_rows.__getitem__, ages)), lanes)
    mu, sigma = estimates.handle_mu, estimates.handle_sigma
    offsets, table = _busy_table(
        round(mu / 0.02) * 0.02, round(sigma / 0.02) * 0.02, points, settings.connect_slack
    )
    freeing = _unpack(sum(map(table.__getitem__, busy_idx)), lanes)
    for elapsed in busy_long:
        for k, off in enumerate(offsets):
            q = p_free_within(off, elapsed, mu, sigma)
            freeing[2 * k] += q
            freeing[2 * k + 1] += q * (1.0 - q)
    z = estimates.margin
    wrap_left.sort()
    terms: list[tuple[float, float, float, float, float]] = []
    most, tight = float(room), 0
    for k, off in enumerate(offsets):
        mean, var = freeing[2 * k] - flying[2 * k], freeing[2 * k + 1] + flying[2 * k + 1]
        a = new_call[k]
        # The live-answer rate's uncertainty is common to all calls, in flight and new
        # alike: its variance grows with the square of their number instead of averaging out.
        share, mass = a / p, flying[2 * k] / p
        m = free + bisect_right(wrap_left, off) - waiting + mean
        v0 = var + var_p * mass * mass
        b = a * (1.0 - a) + 2.0 * var_p * share * mass
        c = var_p * share * share
        terms.append((m, a, v0, b, c))
        bound = _bound(m, a, v0, b, c, z, room)
        if bound < most:
            most, tight = bound, k
    n = 0
    if most >= 0.0:
        n = math.floor(most)
        # The root is exact up to rounding: settle an integer it may have crossed.
        if most - n < 1e-9 and n > 0 and not _fits(n, terms, z):
            n -= 1
        elif n + 1 - most < 1e-9 and n < room and _fits(n + 1, terms, z):
            n += 1
    n = min(max(n, progressive), room)
    return Decision(
        n,
        Mode.PREDICTIVE,
        _PREDICTIVE_WHY,
        (n, points[tight], terms[tight][0], z, p, budget.left, budget.binding),
    )
