"""A seeded discrete-event simulation of an outbound campaign, to measure a pacer.

The campaign is the one of dialer.md ("A simulation to test pacing"): per attempt an outcome
drawn from :class:`OutcomeMix` (busy, no answer at the ring timeout, invalid number, answering
machine, live person); a person answers after a lognormal ring time (median ~9 s), cut at the
timeout (later ones are no answers); machines pick up later (18-25 s) and AMD needs a few more
seconds to call them; busy and invalid numbers fail within seconds. A live person's greeting
lasts 0.5-1.5 s and AMD says HUMAN 0.8 s after it; the call must reach a free agent within 2 s
of the greeting's end, or it is **abandoned** (the caller hears the information message).
A connected call is a short refusal (6-30 s) or a lognormal conversation (mean
``conversation_mean``), then 10-60 s of wrap-up. Agents work ``shift_hours`` a day (no calls
overnight) and take occasional pauses (a pause asked for during a call starts after its
wrap-up, as app_queue's paused members do).

The simulation calls the pacer every ``tick`` seconds during the shift through the same
:class:`Pacer` interface as the dialer service (:func:`callcenter.campaigns.pacer.decide`),
with agent views built from its own agent states (a wrap-up's end is shown, as app_queue's
wrapuptime makes it known), the calls in flight, the estimates (attempt outcomes folded in
every ``refresh`` seconds, handle times and the controller's steps as they come) and the
abandon ledger. Progressive dialing is the same function with
``PacerSettings(predictive=False)``. AMD is taken as exact: no person is hung up on as a
machine (the UK counts those as abandoned calls too).

Measures, per campaign day and overall:

- **occupancy** = handling / (handling + available), where handling is talk plus wrap-up
  and available is the time agents are logged in, not paused and not handling (waiting for
  a call) -- the call-center definition;
- **abandon rate** = abandoned / live answers, per rolling 30-day window (every complete
  window of the run) and over the whole run (the campaign's life);
- **talk time**: seconds agents spent connected to called persons.

:func:`erlang_b_floor` is the analytical floor: the occupancy blind dialing reaches at the
cap, its live answers arriving as a Poisson stream that is lost when no agent is free.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, cast

from callcenter.campaigns.pacer import (
    AbandonLedger,
    AgentState,
    AgentView,
    CallInFlight,
    Decision,
    Estimates,
    Mode,
    PacerSettings,
    decide,
    initial_estimates,
    observe_attempts,
    observe_handled,
    observe_live_answer,
    record_live_answer,
)

DAY = 86400.0
SHIFT_START = 9 * 3600.0  # 09:00, inside the legal calling hours


class Pacer(Protocol):
    """What the dialer service (and this simulation) calls: :func:`decide`'s signature."""

    def __call__(
        self,
        agents: Sequence[AgentView],
        calls: Sequence[CallInFlight],
        estimates: Estimates,
        ledger: AbandonLedger,
        settings: PacerSettings,
        *,
        now: float,
        today: int,
    ) -> Decision: ...


@dataclass(frozen=True, slots=True)
class OutcomeMix:
    """Shares of attempt outcomes; machines take the rest (dialer.md's ranges by default:
    busy 3-6%, no answer 25-35%, invalid up to 10%, human 5-35%)."""

    human: float = 0.20
    busy: float = 0.045
    no_answer: float = 0.30
    invalid: float = 0.05

    def __post_init__(self) -> None:
        shares = (self.human, self.busy, self.no_answer, self.invalid)
        if any(s < 0 for s in shares) or sum(shares) > 1.0 + 1e-9:
            raise ValueError(f"{self}: shares must be non-negative and sum to at most 1")

    @property
    def machine(self) -> float:
        return max(1.0 - self.human - self.busy - self.no_answer - self.invalid, 0.0)


@dataclass(frozen=True, slots=True)
class CampaignModel:
    """Everything random about the simulated campaign (seconds unless said otherwise)."""

    agents: int = 50
    days: int = 30
    shift_hours: float = 8.0
    mix: OutcomeMix = field(default_factory=OutcomeMix)
    ring_timeout: float = 25.0
    human_ring_median: float = 9.0
    human_ring_sigma: float = 0.45
    machine_ring: tuple[float, float] = (18.0, 25.0)
    amd_machine: tuple[float, float] = (2.0, 5.0)
    busy_seconds: tuple[float, float] = (2.0, 6.0)
    invalid_seconds: tuple[float, float] = (1.0, 3.0)
    greeting: tuple[float, float] = (0.5, 1.5)
    amd_human_delay: float = 0.8
    grace: float = 2.0
    refusal_share: float = 0.3
    refusal_seconds: tuple[float, float] = (6.0, 30.0)
    conversation_mean: float = 120.0
    conversation_cv: float = 0.8
    wrapup_seconds: tuple[float, float] = (10.0, 60.0)
    pauses_per_shift: float = 2.0
    pause_seconds: tuple[float, float] = (300.0, 900.0)
    tick: float = 1.0
    #: Outcomes are folded into the estimates this often (seconds), as the service would.
    refresh: float = 60.0
    window_days: int = 30
    seed: int = 1

    def __post_init__(self) -> None:
        if self.agents < 1 or self.days < 1 or self.shift_hours <= 0 or self.tick <= 0:
            raise ValueError("agents, days, shift_hours and tick must be positive")
        if self.amd_human_delay > self.grace:
            raise ValueError("AMD's verdict must come within the grace")


@dataclass(frozen=True, slots=True)
class DayStats:
    day: int
    dials: int
    live: int
    abandoned: int
    talk: float
    handling: float
    available: float
    predictive_ticks: int
    ticks: int


@dataclass(frozen=True, slots=True)
class CampaignResult:
    model: CampaignModel
    days: tuple[DayStats, ...]

    @property
    def live(self) -> int:
        return sum(d.live for d in self.days)

    @property
    def abandoned(self) -> int:
        return sum(d.abandoned for d in self.days)

    @property
    def dials(self) -> int:
        return sum(d.dials for d in self.days)

    @property
    def talk_seconds(self) -> float:
        return sum(d.talk for d in self.days)

    @property
    def occupancy(self) -> float:
        handling = sum(d.handling for d in self.days)
        total = handling + sum(d.available for d in self.days)
        return handling / total if total > 0 else 0.0

    @property
    def abandon_pct(self) -> float:
        """Over the whole run (the campaign's life), in percent."""
        return 100.0 * self.abandoned / self.live if self.live else 0.0

    @property
    def predictive_share(self) -> float:
        ticks = sum(d.ticks for d in self.days)
        return sum(d.predictive_ticks for d in self.days) / ticks if ticks else 0.0

    def window_abandon_pcts(self) -> list[float]:
        """Abandon percent of every complete rolling window (the whole run if shorter)."""
        span = min(self.model.window_days, len(self.days))
        out = []
        for start in range(len(self.days) - span + 1):
            part = self.days[start : start + span]
            live = sum(d.live for d in part)
            out.append(100.0 * sum(d.abandoned for d in part) / live if live else 0.0)
        return out

    @property
    def max_window_abandon_pct(self) -> float:
        return max(self.window_abandon_pcts())


def erlang_b(traffic: float, lines: int) -> float:
    """Erlang B blocking probability, by the stable recursion B(k) = A·B / (k + A·B)."""
    b = 1.0
    for k in range(1, lines + 1):
        b = traffic * b / (k + traffic * b)
    return b


def erlang_b_floor(agents: int, cap: float = 0.03) -> float:
    """Occupancy of blind dialing at the abandon cap: the traffic A with B(A, agents) = cap,
    carried A·(1 - B) over the agents."""
    lo, hi = 0.0, 2.0 * agents + 10.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if erlang_b(mid, agents) < cap:
            lo = mid
        else:
            hi = mid
    return lo * (1.0 - erlang_b(lo, agents)) / agents


# Event kinds (ints: the heap compares tuples; the handlers are one if-chain).
_TICK, _END, _HUMAN, _DEADLINE, _TALK_END, _WRAP_END = 0, 1, 2, 3, 4, 5
_PAUSE, _PAUSE_END, _SHIFT_START, _SHIFT_END, _CLOSE = 6, 7, 8, 9, 10
# Agent states.
_OUT, _FREE, _BUSY, _WRAP, _PAUSED = 0, 1, 2, 3, 4


def simulate(
    model: CampaignModel, settings: PacerSettings, pacer: Pacer = decide
) -> CampaignResult:
    """Run the campaign for ``model.days`` days and measure it (deterministic per seed)."""
    return _Campaign(model, settings, pacer).run()


class _Campaign:
    def __init__(self, model: CampaignModel, settings: PacerSettings, pacer: Pacer) -> None:
        self.m = model
        self.settings = settings
        self.pacer = pacer
        self.rng = random.Random(model.seed)  # noqa: S311 - a simulation, not cryptography
        self.events: list[tuple[float, int, int, object]] = []
        self.seq = 0
        n = model.agents
        self.names = [f"agent{i + 1}" for i in range(n)]
        self.state = [_OUT] * n
        self.views: list[AgentView | None] = [None] * n
        self.logged_in = 0
        self.idle_since = [0.0] * n
        self.connected_at = [0.0] * n
        self.talk_len = [0.0] * n
        self.wrap_len = [0.0] * n
        self.pause_pending = [0.0] * n
        self.free: deque[int] = deque()
        self.calls: dict[int, CallInFlight] = {}
        self.predictive_call: dict[int, bool] = {}
        self.waiting: deque[int] = deque()
        self.next_call = 0
        self.observed: list[tuple[bool, float]] = []
        # Progressive settings never read the estimates: not folding outcomes in saves time.
        self.learn = settings.predictive
        self.same_again = pacer is decide and not settings.predictive
        self.changed = True
        self.next_refresh = 0.0
        self.estimates = initial_estimates(settings)
        self.ledger = AbandonLedger()
        self.day = 0
        self.dialling = False
        self.closed = True
        self.stats: list[list[float]] = []
        conv = math.log(1.0 + model.conversation_cv**2)
        self.conv_sigma = math.sqrt(conv)
        self.conv_mu = math.log(model.conversation_mean) - conv / 2.0
        self.ring_mu = math.log(model.human_ring_median)

    # -- plumbing --

    def push(self, when: float, kind: int, ref: object) -> None:
        self.seq += 1
        heapq.heappush(self.events, (when, self.seq, kind, ref))

    def run(self) -> CampaignResult:
        m = self.m
        for day in range(m.days):
            self.push(day * DAY + SHIFT_START, _SHIFT_START, day)
        events = self.events
        pop = heapq.heappop
        while events:
            now, _, kind, ref = pop(events)
            if kind == _TICK:
                self.tick(now)
                continue
            self.changed = True
            if kind == _END:
                self.end_attempt(now, ref)  # type: ignore[arg-type]
            elif kind == _HUMAN:
                self.human(now, ref)  # type: ignore[arg-type]
            elif kind == _DEADLINE:
                self.deadline(ref)  # type: ignore[arg-type]
            elif kind == _TALK_END:
                self.talk_end(now, ref)  # type: ignore[arg-type]
            elif kind == _WRAP_END:
                self.wrap_end(now, ref)  # type: ignore[arg-type]
            elif kind == _PAUSE:
                self.pause(now, ref)  # type: ignore[arg-type]
            elif kind == _PAUSE_END:
                self.pause_end(now, ref)  # type: ignore[arg-type]
            elif kind == _SHIFT_START:
                self.shift_start(now, ref)  # type: ignore[arg-type]
            elif kind == _SHIFT_END:
                self.dialling = False
            elif kind == _CLOSE:
                self.close(now)
        days = tuple(
            DayStats(
                day=i,
                dials=int(s[0]),
                live=int(s[1]),
                abandoned=int(s[2]),
                talk=s[3],
                handling=s[4],
                available=s[5],
                predictive_ticks=int(s[6]),
                ticks=int(s[7]),
            )
            for i, s in enumerate(self.stats)
        )
        return CampaignResult(m, days)

    # -- the shift --

    def shift_start(self, now: float, day: int) -> None:
        m, rng = self.m, self.rng
        self.day = day
        self.stats.append([0.0] * 8)
        self.dialling = True
        self.closed = False
        end = now + m.shift_hours * 3600.0
        for i in range(m.agents):
            self.state[i] = _FREE
            self.views[i] = AgentView(self.names[i])
            self.logged_in += 1
            self.idle_since[i] = now
            self.pause_pending[i] = 0.0
            self.free.append(i)
            # Poisson number of pauses, asked for at uniform times of the shift.
            count, t = 0, rng.expovariate(1.0)
            while t < m.pauses_per_shift:
                count += 1
                t += rng.expovariate(1.0)
            for _ in range(count):
                at = rng.uniform(now + 600.0, end - 1800.0)
                self.push(at, _PAUSE, (i, rng.uniform(*m.pause_seconds)))
        self.push(now, _TICK, None)
        self.push(end, _SHIFT_END, None)
        self.push(end + m.ring_timeout + 10.0, _CLOSE, None)

    def close(self, now: float) -> None:
        """Everyone not handling a call logs out (the last calls resolved by now)."""
        self.closed = True
        for i in range(self.m.agents):
            if self.state[i] == _FREE:
                self.stats[self.day][5] += now - self.idle_since[i]
                self.logout(i)
            elif self.state[i] == _PAUSED:
                self.logout(i)
        self.free.clear()

    def logout(self, i: int) -> None:
        self.state[i] = _OUT
        self.views[i] = None
        self.logged_in -= 1

    # -- the pacer --

    def tick(self, now: float) -> None:
        if not self.dialling:
            return
        settings = self.settings
        stats = self.stats[self.day]
        stats[7] += 1
        if self.same_again and not self.changed:
            # Progressive decisions depend on the agents and calls alone: with no event since
            # the last one (which dialled nothing, or calls would have changed) it is the same.
            self.push(now + self.m.tick, _TICK, None)
            return
        self.changed = False
        if self.learn and self.observed and now >= self.next_refresh:
            self.estimates = observe_attempts(self.estimates, self.observed, settings)
            self.observed = []
            self.next_refresh = now + self.m.refresh
        views = self.views
        # Everyone is logged in while the campaign dials (the usual case: no copy needed).
        agents = (
            cast(list[AgentView], views)
            if self.logged_in == len(views)
            else [v for v in views if v is not None]
        )
        decision = self.pacer(
            agents,
            list(self.calls.values()),
            self.estimates,
            self.ledger,
            settings,
            now=now,
            today=self.day,
        )
        predictive = decision.mode is Mode.PREDICTIVE
        if predictive:
            stats[6] += 1
        for _ in range(decision.dials):
            self.dial(now, predictive)
        if decision.dials:
            self.changed = True
            stats[0] += decision.dials
        self.push(now + self.m.tick, _TICK, None)

    def dial(self, now: float, predictive: bool) -> None:
        m, rng = self.m, self.rng
        call = self.next_call
        self.next_call += 1
        self.calls[call] = CallInFlight(now)
        self.predictive_call[call] = predictive
        mix = m.mix
        u = rng.random()
        if u < mix.human:
            ring = rng.lognormvariate(self.ring_mu, m.human_ring_sigma)
            if ring <= m.ring_timeout:
                greeting = rng.uniform(*m.greeting)
                self.push(
                    now + ring + greeting + m.amd_human_delay,
                    _HUMAN,
                    (call, now + ring + greeting + m.grace),
                )
                return
            seconds = m.ring_timeout
        elif (u := u - mix.human) < mix.busy:
            seconds = rng.uniform(*m.busy_seconds)
        elif (u := u - mix.busy) < mix.invalid:
            seconds = rng.uniform(*m.invalid_seconds)
        elif u - mix.invalid < mix.no_answer:
            seconds = m.ring_timeout
        else:
            seconds = rng.uniform(*m.machine_ring) + rng.uniform(*m.amd_machine)
        self.push(now + seconds, _END, call)

    # -- calls --

    def end_attempt(self, now: float, call: int) -> None:
        view = self.calls.pop(call)
        del self.predictive_call[call]
        if self.learn:
            self.observed.append((False, now - view.dialled_at))

    def human(self, now: float, ref: tuple[int, float]) -> None:
        call, deadline = ref
        view = self.calls[call]
        if self.learn:
            self.observed.append((True, now - view.dialled_at))
        if self.free:
            self.connect(now, self.free.popleft(), call)
        else:
            self.calls[call] = CallInFlight(view.dialled_at, now)
            self.waiting.append(call)
            self.push(deadline, _DEADLINE, call)

    def deadline(self, call: int) -> None:
        if call not in self.calls:
            return  # connected in time
        del self.calls[call]
        self.waiting.remove(call)
        self.live_answer(call, abandoned=True)

    def live_answer(self, call: int, abandoned: bool) -> None:
        stats = self.stats[self.day]
        stats[1] += 1
        if abandoned:
            stats[2] += 1
        self.ledger = record_live_answer(self.ledger, self.day, abandoned, self.m.window_days)
        if self.predictive_call.pop(call) and self.learn:
            self.estimates = observe_live_answer(self.estimates, abandoned, self.settings)

    def connect(self, now: float, agent: int, call: int) -> None:
        m, rng = self.m, self.rng
        del self.calls[call]
        self.live_answer(call, abandoned=False)
        stats = self.stats[self.day]
        stats[5] += now - self.idle_since[agent]
        if rng.random() < m.refusal_share:
            talk = rng.uniform(*m.refusal_seconds)
        else:
            talk = rng.lognormvariate(self.conv_mu, self.conv_sigma)
        stats[3] += talk
        self.state[agent] = _BUSY
        self.connected_at[agent] = now
        self.talk_len[agent] = talk
        self.views[agent] = AgentView(
            self.names[agent], AgentState.BUSY, since=now, paused=self.pause_pending[agent] > 0
        )
        self.push(now + talk, _TALK_END, agent)

    # -- agents --

    def talk_end(self, now: float, agent: int) -> None:
        wrap = self.rng.uniform(*self.m.wrapup_seconds)
        self.state[agent] = _WRAP
        self.wrap_len[agent] = wrap
        self.views[agent] = AgentView(
            self.names[agent],
            AgentState.WRAPUP,
            since=self.connected_at[agent],
            until=now + wrap,
            paused=self.pause_pending[agent] > 0,
        )
        self.push(now + wrap, _WRAP_END, agent)

    def wrap_end(self, now: float, agent: int) -> None:
        handle = self.talk_len[agent] + self.wrap_len[agent]
        self.stats[self.day][4] += handle
        if self.learn:
            self.estimates = observe_handled(self.estimates, handle, self.settings)
        if self.pause_pending[agent] > 0:
            self.start_pause(now, agent, self.pause_pending[agent])
        elif self.closed:
            self.logout(agent)
        else:
            self.become_free(now, agent)

    def become_free(self, now: float, agent: int) -> None:
        if self.waiting:
            self.idle_since[agent] = now
            self.connect(now, agent, self.waiting.popleft())
            return
        self.state[agent] = _FREE
        self.views[agent] = AgentView(self.names[agent])
        self.idle_since[agent] = now
        self.free.append(agent)

    def pause(self, now: float, ref: tuple[int, float]) -> None:
        agent, seconds = ref
        state = self.state[agent]
        if state == _FREE:
            self.free.remove(agent)
            self.stats[self.day][5] += now - self.idle_since[agent]
            self.start_pause(now, agent, seconds)
        elif state in (_BUSY, _WRAP) and self.pause_pending[agent] == 0:
            self.pause_pending[agent] = seconds
            view = self.views[agent]
            assert view is not None
            self.views[agent] = AgentView(
                view.name, view.state, view.since, view.until, paused=True
            )

    def start_pause(self, now: float, agent: int, seconds: float) -> None:
        self.pause_pending[agent] = 0.0
        self.state[agent] = _PAUSED
        self.views[agent] = AgentView(self.names[agent], paused=True)
        self.push(now + seconds, _PAUSE_END, agent)

    def pause_end(self, now: float, agent: int) -> None:
        if self.state[agent] != _PAUSED:
            return  # logged out meanwhile
        if self.closed:
            self.logout(agent)
        else:
            self.become_free(now, agent)
