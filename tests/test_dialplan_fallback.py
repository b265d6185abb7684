"""A caller whose IVR does not finish reaches the fallback queue ([agi] fallback_queue).

The rendered [inbound] context is walked from its AGI() step with the channel variables that
each way out of the IVR leaves (a tiny interpreter of GotoIf/Set/Goto over string comparisons;
the real Asterisk runs the same paths in tests/e2e/test_faults.py). Asterisk's quirk behind the
second case: a FastAGI connection that closes mid-call (the IVR killed) is taken for the
script's normal end, AGISTATUS=SUCCESS, with none of the IVR's variables set.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from callcenter.asterisk import conffile, sample
from callcenter.asterisk.conffile import Dialplan, split_args
from callcenter.asterisk.render import RenderError, RenderOptions, render

_COMPARE = re.compile(r'^"([^"]*)" (=|!=) "([^"]*)"$')


def _plan(fallback: str) -> Dialplan:
    settings = sample.settings({"CALLCENTER_AGI__FALLBACK_QUEUE": fallback})
    options = RenderOptions(directory=Path("/srv/cc/asterisk"))
    return conffile.dialplan(render(settings, sample.AGENTS, sample.QUEUES, sample.TRUNKS, options))


def _expand(text: str, variables: dict[str, str]) -> str:
    return re.sub(r"\$\{([A-Z_]+)\}", lambda m: variables.get(m.group(1), ""), text)


def _true(condition: str) -> bool:
    """``$[a | b]`` / ``$[a & b]`` of ``"x" = "y"`` / ``"x" != "y"`` terms (expanded)."""
    body = condition.removeprefix("$[").removesuffix("]")
    joiner = any if " | " in body else all
    terms = []
    for term in re.split(r" [|&] ", body):
        m = _COMPARE.match(term.strip())
        assert m, f"not a plain comparison: {term!r}"
        terms.append((m.group(1) == m.group(3)) == (m.group(2) == "="))
    return joiner(terms)


def walk_inbound(plan: Dialplan, variables: dict[str, str]) -> tuple[str, dict[str, str]]:
    """From the step after AGI() in [inbound]: where the caller goes (``context,exten,1`` of
    the first Goto out of the context, or the app that ends the walk), and the variables."""
    steps = plan.contexts["inbound"]["s"]
    variables = {**plan.globals, **variables}
    i = next(n for n, p in enumerate(steps) if p.app == "AGI") + 1
    for _ in range(50):
        p = steps[i]
        if p.app == "NoOp":
            i += 1
        elif p.app == "Set":
            name, _, value = p.data.partition("=")
            variables[name] = _expand(value, variables)
            i += 1
        elif p.app == "GotoIf":
            condition, _, targets = p.data.partition("?")
            yes = targets.split(":")[0]
            if yes and _true(_expand(condition, variables)):
                if "," in yes:
                    return yes, variables
                i = next(n for n, q in enumerate(steps) if q.label == yes)
            else:
                i += 1
        elif p.app == "Goto":
            return ",".join(split_args(p.data)), variables
        else:
            return p.app, variables
    raise AssertionError("no way out of [inbound]")


@pytest.mark.parametrize(
    ("why", "left"),
    [
        ("server unreachable", {"AGISTATUS": "FAILURE"}),
        ("killed before it set anything", {"AGISTATUS": "SUCCESS"}),
        ("killed after IVR_NAME", {"AGISTATUS": "SUCCESS", "IVR_NAME": "main"}),
        ("killed between IVR_TARGET and QUEUE", {"AGISTATUS": "SUCCESS", "IVR_TARGET": "queue"}),
    ],
)
def test_an_unfinished_ivr_sends_the_caller_to_the_fallback_queue(
    why: str, left: dict[str, str]
) -> None:
    where, variables = walk_inbound(_plan("sales"), left)
    assert where == "inbound-queue,s,1", why
    assert variables["QUEUE"] == "sales"
    assert variables["IVR_TARGET"] == "fallback"


def test_a_finished_ivr_is_followed() -> None:
    plan = _plan("sales")
    done = {"AGISTATUS": "SUCCESS", "IVR_TARGET": "queue", "QUEUE": "support"}
    where, variables = walk_inbound(plan, done)
    assert (where, variables["QUEUE"], variables["IVR_TARGET"]) == (
        "inbound-queue,s,1", "support", "queue",
    )  # fmt: skip
    where, _ = walk_inbound(plan, {"AGISTATUS": "SUCCESS", "IVR_TARGET": "hangup"})
    assert where == "Hangup"


def test_without_a_fallback_queue_the_caller_hears_try_later() -> None:
    plan = _plan("")
    assert plan.globals["IVR_FALLBACK_QUEUE"] == ""
    where, _ = walk_inbound(plan, {"AGISTATUS": "SUCCESS"})
    assert where == "Playback"


def test_a_bad_fallback_queue_name_is_refused() -> None:
    with pytest.raises(RenderError, match=r"fallback_queue 'Sales Team' is not a valid queue"):
        _plan("Sales Team")
