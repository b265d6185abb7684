"""What the simulated callers and agents do: every random draw, and nothing else.

Pure and deterministic for a seed: :class:`Model` holds a :class:`random.Random` of its own, so
the same options and seed give the same sequence of callers, agent calls and pauses (the AMI
side, :mod:`callcenter.simulate.runner`, only turns them into actions).

Distributions are written as text on the command line (:func:`parse_distribution`):

==================  =====================================================================
``30``              always 30 seconds (``fixed:30`` too)
``uniform:5-20``    uniform between 5 and 20
``exp:45``          exponential with mean 45 (memoryless: patience, arrivals)
``lognormal:180,60``  log-normal with mean 180 and standard deviation 60 (handle times are
                    skewed right: most calls are short, a few are long)
``normal:10,3``     normal with mean 10 and standard deviation 3, cut at 0
==================  =====================================================================

Every draw is clipped to ``[0, cap]`` seconds (:data:`MAX_SECONDS`): Asterisk's Wait() takes
any non-negative number, and an hour-long draw would only make a demo look stuck.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

#: No single draw is longer than this (seconds).
MAX_SECONDS = 3600.0

_KINDS = ("fixed", "uniform", "exp", "lognormal", "normal")
_NUMBER = r"[0-9]+(?:\.[0-9]+)?"


class ModelError(ValueError):
    """An option that does not describe a distribution, a mix or a rate (one line)."""


@dataclass(frozen=True, slots=True)
class Distribution:
    """A non-negative random duration in seconds; see the module docstring for the kinds."""

    kind: str
    a: float
    b: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ModelError(f"unknown distribution {self.kind!r} (one of {', '.join(_KINDS)})")
        if self.a < 0 or self.b < 0:
            raise ModelError(f"{self}: parameters must not be negative")
        if self.kind == "uniform" and self.b < self.a:
            raise ModelError(f"uniform:{self.a}-{self.b}: the upper bound is below the lower")
        if self.kind in ("exp", "lognormal") and self.a <= 0:
            raise ModelError(f"{self.kind}: the mean must be above 0")

    @property
    def mean(self) -> float:
        """The mean of the distribution before clipping (for progress lines and sizing)."""
        if self.kind == "uniform":
            return (self.a + self.b) / 2
        return self.a

    def draw(self, rng: random.Random) -> float:
        """One value in ``[0, MAX_SECONDS]``, rounded to 0.1 s (Wait() takes decimals)."""
        if self.kind == "fixed":
            value = self.a
        elif self.kind == "uniform":
            value = rng.uniform(self.a, self.b)
        elif self.kind == "exp":
            value = rng.expovariate(1.0 / self.a)
        elif self.kind == "normal":
            value = rng.gauss(self.a, self.b)
        else:  # lognormal from the mean and standard deviation of the values themselves
            sigma2 = math.log(1.0 + (self.b / self.a) ** 2)
            mu = math.log(self.a) - sigma2 / 2.0
            value = rng.lognormvariate(mu, math.sqrt(sigma2))
        return round(min(max(value, 0.0), MAX_SECONDS), 1)

    def __str__(self) -> str:
        if self.kind == "fixed":
            return f"{self.a:g}"
        if self.kind == "uniform":
            return f"uniform:{self.a:g}-{self.b:g}"
        if self.kind in ("lognormal", "normal"):
            return f"{self.kind}:{self.a:g},{self.b:g}"
        return f"{self.kind}:{self.a:g}"


def parse_distribution(text: str) -> Distribution:
    """``"30"``, ``"fixed:30"``, ``"uniform:5-20"``, ``"exp:45"``, ``"lognormal:180,60"``,
    ``"normal:10,3"``; :class:`ModelError` otherwise."""
    t = text.strip().lower()
    if re.fullmatch(_NUMBER, t):
        return Distribution("fixed", float(t))
    kind, sep, args = t.partition(":")
    if not sep:
        raise ModelError(f"{text!r} is not a number or kind:parameters (e.g. exp:45)")
    patterns = {
        "fixed": rf"({_NUMBER})",
        "exp": rf"({_NUMBER})",
        "uniform": rf"({_NUMBER})-({_NUMBER})",
        "lognormal": rf"({_NUMBER}),({_NUMBER})",
        "normal": rf"({_NUMBER}),({_NUMBER})",
    }
    if kind not in patterns:
        raise ModelError(f"{text!r}: unknown distribution {kind!r} (one of {', '.join(_KINDS)})")
    m = re.fullmatch(patterns[kind], args.replace(" ", ""))
    if m is None:
        raise ModelError(f"{text!r}: {kind} takes {patterns[kind].replace(_NUMBER, 'N')}")
    values = [float(g) for g in m.groups()]
    return Distribution(kind, values[0], values[1] if len(values) > 1 else 0.0)


def parse_mix(text: str) -> dict[str, float]:
    """The IVR choice mix ``"1:60,2:30,*:10"``: digits keyed -> relative weight. An entry
    without a weight counts 1; an empty string (``""``) is a caller who keys nothing."""
    mix: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        digits, sep, weight = part.rpartition(":")
        if not sep:
            digits, weight = part, "1"
        if not re.fullmatch(r"[0-9*#]{0,20}", digits):
            raise ModelError(f"IVR mix entry {part!r}: keys may be 0-9, * and #")
        try:
            w = float(weight)
        except ValueError:
            raise ModelError(f"IVR mix entry {part!r}: the weight is not a number") from None
        if w < 0 or not math.isfinite(w):
            raise ModelError(f"IVR mix entry {part!r}: the weight must be 0 or more")
        mix[digits] = mix.get(digits, 0.0) + w
    if not mix or sum(mix.values()) <= 0:
        raise ModelError(f"IVR mix {text!r} has no choice with a weight above 0")
    return mix


@dataclass(frozen=True, slots=True)
class Caller:
    """One simulated caller: the number it calls from, the keys it presses ``pre`` seconds
    after the answer, and how long it waits in the queue before giving up."""

    seq: int
    number: str
    digits: str
    pre: float
    patience: float


@dataclass(frozen=True, slots=True)
class AgentCall:
    """How a simulated agent takes its next call: ``ring`` seconds before answering (a ring
    longer than the queue's ring time is a ring-no-answer), then ``talk`` seconds."""

    ring: float
    talk: float


@dataclass(frozen=True, slots=True)
class Pause:
    reason: str
    seconds: float


@dataclass(frozen=True, slots=True)
class Options:
    """The knobs of a simulation (the CLI's options), checked on creation.

    ``arrivals_per_minute``: Poisson arrivals (exponential gaps). ``no_answer``: the share of
    calls an agent lets ring out (ring drawn as :data:`NO_ANSWER_RING` seconds). ``pause_chance``:
    the chance an agent pauses after a call, for ``pause`` seconds with one of ``pause_reasons``.
    """

    arrivals_per_minute: float = 6.0
    mix: Mapping[str, float] = field(default_factory=lambda: {"1": 1.0})
    pre: Distribution = Distribution("uniform", 2.0, 4.0)
    patience: Distribution = Distribution("exp", 60.0)
    ring: Distribution = Distribution("uniform", 1.0, 4.0)
    handle: Distribution = Distribution("lognormal", 40.0, 20.0)
    no_answer: float = 0.05
    pause_chance: float = 0.1
    pause: Distribution = Distribution("uniform", 10.0, 30.0)
    pause_reasons: Sequence[str] = ("break", "lunch", "training")
    number_prefix: str = "5559"

    def __post_init__(self) -> None:
        if not 0 < self.arrivals_per_minute <= 6000:
            raise ModelError("the arrival rate must be above 0 and at most 6000 a minute")
        for name in ("no_answer", "pause_chance"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ModelError(f"{name.replace('_', ' ')} must be between 0 and 1")
        if not self.pause_reasons or not all(
            re.fullmatch(r"[A-Za-z0-9_-]{1,40}", r) for r in self.pause_reasons
        ):
            raise ModelError("pause reasons must be plain words (letters, digits, _ and -)")
        if not re.fullmatch(r"[0-9]{1,12}", self.number_prefix):
            raise ModelError("the caller number prefix must be digits")
        parse_mix(",".join(f"{k}:{v}" for k, v in self.mix.items()))


#: A ring-no-answer rings this long (the queue's ring time cuts it short).
NO_ANSWER_RING = 600.0


class Model:
    """The draws of one simulation, in order, from one seeded generator."""

    def __init__(self, options: Options, seed: int | None = None) -> None:
        self.options = options
        self.rng = random.Random(seed)  # noqa: S311 - a simulation, not cryptography
        self._seq = 0
        self._choices = list(options.mix)
        self._weights = [options.mix[k] for k in self._choices]

    def next_gap(self) -> float:
        """Seconds until the next caller (Poisson arrivals at the configured rate)."""
        return self.rng.expovariate(self.options.arrivals_per_minute / 60.0)

    def caller(self) -> Caller:
        self._seq += 1
        digits = self.rng.choices(self._choices, self._weights)[0]
        number = f"{self.options.number_prefix}{self._seq % 10**6:06d}"
        return Caller(
            self._seq,
            number,
            digits,
            self.options.pre.draw(self.rng),
            self.options.patience.draw(self.rng),
        )

    def agent_call(self) -> AgentCall:
        if self.rng.random() < self.options.no_answer:
            return AgentCall(NO_ANSWER_RING, self.options.handle.draw(self.rng))
        return AgentCall(self.options.ring.draw(self.rng), self.options.handle.draw(self.rng))

    def pause_after_call(self) -> Pause | None:
        if self.rng.random() >= self.options.pause_chance:
            return None
        reason = self.rng.choice(list(self.options.pause_reasons))
        return Pause(reason, self.options.pause.draw(self.rng))


@dataclass(frozen=True, slots=True)
class SimAgent:
    """A simulated agent: queue member ``Local/<extension>@sim-agent/n`` named ``name``."""

    name: str
    extension: str

    @property
    def interface(self) -> str:
        return f"Local/{self.extension}@sim-agent/n"


def sim_agents(count: int, *, prefix: str = "sim", first_extension: int = 9001) -> list[SimAgent]:
    """``count`` agents ``sim01``, ``sim02``... on extensions 9001, 9002... (the demo creates
    the same ones in the directory, so the wallboard knows their names)."""
    if not 0 <= count <= 500:
        raise ModelError("the agent count must be between 0 and 500")
    width = max(2, len(str(count)))
    return [
        SimAgent(f"{prefix}{i:0{width}d}", str(first_extension + i - 1))
        for i in range(1, count + 1)
    ]
