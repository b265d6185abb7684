"""Walking a caller through an :class:`~callcenter.agi.ivr.Ivr` on a channel.

:func:`walk` plays prompts, reads digits with retries, switches the channel's language, and
ends at a target. It records the way taken, which becomes ``IVR_PATH`` (and the call log's
``ivr_path``)::

    main:welcome[7!][t][2]>support-menu[1]>support

``<ivr>:`` then each node visited, joined by ``>``; after a menu, what was keyed in brackets:
digits (``!`` when not a choice), ``t`` when nothing was keyed in time. A caller who hangs up
ends the path where they were; :class:`~callcenter.agi.channel.CallerHungUp` is caught here and
reported in the result, so the caller of :func:`walk` can still record it.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from callcenter.agi.channel import CallerHungUp, Channel
from callcenter.agi.ivr import Ivr, Node, Target, TargetKind

#: Node visits before a walk gives up (hangs up): only a caller pressing on for ever between
#: menus can get there, as load_ivrs refuses loops without input.
MAX_STEPS = 200
HANGUP = Target(TargetKind.HANGUP)


@dataclass
class WalkResult:
    ivr: str
    target: Target = HANGUP
    node: str = ""
    steps: list[str] = field(default_factory=list)
    digits: str = ""
    language: str = ""
    seconds: float = 0.0
    hung_up: bool = False
    closed: bool = False

    @property
    def path(self) -> str:
        return f"{self.ivr}:" + ">".join(self.steps)


async def walk(
    ivr: Ivr,
    channel: Channel,
    *,
    now: dt.datetime,
    clock: Callable[[], float] = time.monotonic,
) -> WalkResult:
    """Run ``ivr`` from its start (or its closed branch outside business hours at ``now``)."""
    started = clock()
    result = WalkResult(ivr=ivr.name, language=ivr.language)
    name: str | None = ivr.start
    if ivr.hours is not None and ivr.closed is not None and not ivr.hours.is_open(now):
        name = ivr.closed
        result.closed = True
    try:
        for _ in range(MAX_STEPS):
            if name is None:
                break
            node = ivr.nodes[name]
            result.node = name
            result.steps.append(name)
            if node.language:
                await channel.set_variable("CHANNEL(language)", node.language)
                result.language = node.language
            if node.target is not None:
                await channel.play(node.prompts)
                result.target = node.target
                break
            if node.is_menu:
                name = await _menu(node, channel, result)
            else:
                await channel.play(node.prompts)
                name = node.next
    except CallerHungUp:
        result.hung_up = True
        result.target = HANGUP
    result.seconds = clock() - started
    return result


async def _menu(node: Node, channel: Channel, result: WalkResult) -> str | None:
    """Ask until a choice is keyed or the retries run out; the next node (None: hang up)."""
    for attempt in range(1, node.retries + 1):
        keyed = await channel.collect_digits(
            node.prompts,
            timeout=node.timeout,
            max_digits=node.max_digits,
            terminator=node.terminator,
        )
        result.digits += keyed.digits
        if keyed.digits in node.choices:
            result.steps[-1] += f"[{keyed.digits}]"
            return node.choices[keyed.digits]
        if keyed.digits:
            result.steps[-1] += f"[{keyed.digits}!]"
            retry_prompts = node.invalid_prompts
        else:
            result.steps[-1] += "[t]"
            retry_prompts = node.timeout_prompts
        if attempt < node.retries:
            await channel.play(retry_prompts)
    return node.on_failure
