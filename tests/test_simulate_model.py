"""The simulation's draws: parsing, ranges, and the same sequence for the same seed."""

from __future__ import annotations

import statistics

import pytest

from callcenter.simulate.model import (
    MAX_SECONDS,
    NO_ANSWER_RING,
    Distribution,
    Model,
    ModelError,
    Options,
    parse_distribution,
    parse_mix,
    sim_agents,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30", Distribution("fixed", 30)),
        ("fixed:2.5", Distribution("fixed", 2.5)),
        ("uniform:5-20", Distribution("uniform", 5, 20)),
        ("exp:45", Distribution("exp", 45)),
        ("lognormal:180,60", Distribution("lognormal", 180, 60)),
        ("Normal: 10, 3", Distribution("normal", 10, 3)),
    ],
)
def test_distributions_parse_and_print_back(text: str, expected: Distribution) -> None:
    d = parse_distribution(text)
    assert d == expected
    assert parse_distribution(str(d)) == d


@pytest.mark.parametrize(
    "text", ["", "x", "exp", "exp:0", "uniform:20-5", "gamma:1", "lognormal:5", "-3", "exp:-1"]
)
def test_bad_distributions_say_why(text: str) -> None:
    with pytest.raises(ModelError):
        parse_distribution(text)


def test_draws_stay_in_range_and_near_the_mean() -> None:
    import random

    rng = random.Random(7)
    for text, mean in (("exp:45", 45), ("lognormal:180,60", 180), ("uniform:5-20", 12.5)):
        d = parse_distribution(text)
        values = [d.draw(rng) for _ in range(4000)]
        assert all(0 <= v <= MAX_SECONDS for v in values)
        assert statistics.fmean(values) == pytest.approx(mean, rel=0.08), text
    assert all(parse_distribution("normal:1,5").draw(rng) >= 0 for _ in range(500))
    assert parse_distribution("lognormal:180,60").mean == 180


def test_mix() -> None:
    assert parse_mix("1:60,2:30,:10") == {"1": 60.0, "2": 30.0, "": 10.0}
    assert parse_mix("1,1,2") == {"1": 2.0, "2": 1.0}
    for bad in ("", "1:0", "a:1", "1:x", "1:-1"):
        with pytest.raises(ModelError):
            parse_mix(bad)


def test_same_seed_same_simulation() -> None:
    options = Options(arrivals_per_minute=30, mix={"1": 3, "2": 1})

    def run(seed: int) -> list[object]:
        m = Model(options, seed)
        return [(m.next_gap(), m.caller(), m.agent_call(), m.pause_after_call()) for _ in range(50)]

    assert run(1) == run(1)
    assert run(1) != run(2)


def test_callers_follow_the_mix_and_get_unique_numbers() -> None:
    m = Model(Options(mix={"1": 3, "2": 1}, number_prefix="555"), seed=3)
    callers = [m.caller() for _ in range(2000)]
    assert len({c.number for c in callers}) == 2000
    assert callers[0].number == "555000001"
    share = sum(c.digits == "1" for c in callers) / len(callers)
    assert share == pytest.approx(0.75, abs=0.04)
    gaps = [m.next_gap() for _ in range(4000)]
    assert statistics.fmean(gaps) == pytest.approx(10.0, rel=0.08)  # 6 a minute


def test_no_answer_and_pauses() -> None:
    m = Model(Options(no_answer=1.0, pause_chance=1.0, pause_reasons=("lunch",)), seed=1)
    assert m.agent_call().ring == NO_ANSWER_RING
    pause = m.pause_after_call()
    assert pause is not None
    assert pause.reason == "lunch"
    assert 10 <= pause.seconds <= 30
    quiet = Model(Options(no_answer=0.0, pause_chance=0.0), seed=1)
    assert quiet.pause_after_call() is None
    assert quiet.agent_call().ring <= 4


@pytest.mark.parametrize(
    "kwargs",
    [
        {"arrivals_per_minute": 0},
        {"no_answer": 1.5},
        {"pause_chance": -0.1},
        {"pause_reasons": ()},
        {"pause_reasons": ("bad reason",)},
        {"number_prefix": "x"},
        {"mix": {"1": 0}},
    ],
)
def test_bad_options(kwargs: dict[str, object]) -> None:
    with pytest.raises(ModelError):
        Options(**kwargs)  # type: ignore[arg-type]


def test_sim_agents() -> None:
    agents = sim_agents(3)
    assert [(a.name, a.extension) for a in agents] == [
        ("sim01", "9001"), ("sim02", "9002"), ("sim03", "9003"),
    ]  # fmt: skip
    assert agents[0].interface == "Local/9001@sim-agent/n"
    assert sim_agents(0) == []
    with pytest.raises(ModelError):
        sim_agents(501)
