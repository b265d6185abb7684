"""``callcenter simulate``: real calls through a running Asterisk of ours, with nothing but
Asterisk (Local-channel callers and agents over AMI). Needs the ``[sim-caller]`` and
``[sim-agent]`` contexts: render with simulation enabled (see callcenter/simulate/runner.py)."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import click

from callcenter import service
from callcenter.cli.context import app, handle_errors

DEFAULT_DID = "100"


def _distribution(ctx: click.Context, param: click.Parameter, value: str) -> Any:
    from callcenter.simulate.model import ModelError, parse_distribution

    try:
        return parse_distribution(value)
    except ModelError as exc:
        raise click.BadParameter(str(exc)) from None


def _mix(ctx: click.Context, param: click.Parameter, value: str) -> Any:
    from callcenter.simulate.model import ModelError, parse_mix

    try:
        return parse_mix(value)
    except ModelError as exc:
        raise click.BadParameter(str(exc)) from None


def default_did(settings: Any) -> str:
    """The first DID of the first IVR (by name) in the settings, else :data:`DEFAULT_DID`
    (``[from-trunk]`` takes any number when no trunk lists DIDs)."""
    ivrs = getattr(settings, "ivr", None) or {}
    for name in sorted(ivrs):
        dids = ivrs[name].get("dids") if isinstance(ivrs[name], dict) else None
        if dids:
            return str(dids[0])
    return DEFAULT_DID


@click.command("simulate")
@click.option(
    "--rate",
    type=click.FloatRange(0.01, 6000),
    default=6.0,
    show_default=True,
    help="Callers a minute (Poisson arrivals).",
)
@click.option(
    "--mix",
    default="1",
    show_default=True,
    callback=_mix,
    help="IVR keys and their weights, e.g. '1:60,2:30,:10' ('' keys nothing).",
)
@click.option(
    "--patience",
    default="exp:60",
    show_default=True,
    callback=_distribution,
    help="Seconds a caller waits in the queue before hanging up.",
)
@click.option(
    "--handle",
    default="lognormal:40,20",
    show_default=True,
    callback=_distribution,
    help="Seconds an agent talks.",
)
@click.option(
    "--ring",
    default="uniform:1-4",
    show_default=True,
    callback=_distribution,
    help="Seconds an agent's phone rings before the agent answers.",
)
@click.option(
    "--keys-after",
    "pre",
    default="uniform:2-4",
    show_default=True,
    callback=_distribution,
    help="Seconds after the answer before the caller keys.",
)
@click.option(
    "--no-answer",
    type=click.FloatRange(0, 1),
    default=0.05,
    show_default=True,
    help="Share of calls an agent lets ring out.",
)
@click.option(
    "--agents",
    "agent_count",
    type=click.IntRange(0, 500),
    default=4,
    show_default=True,
    help="Simulated agents (Local-channel queue members).",
)
@click.option(
    "--agent-prefix",
    default="sim",
    show_default=True,
    help="Simulated agents are <prefix>01, <prefix>02...",
)
@click.option(
    "--first-extension",
    type=click.IntRange(10, 10**9),
    default=9001,
    show_default=True,
    help="Extension of the first simulated agent.",
)
@click.option(
    "--pause-chance",
    type=click.FloatRange(0, 1),
    default=0.1,
    show_default=True,
    help="Chance an agent pauses after a call.",
)
@click.option(
    "--pause",
    "pause_time",
    default="uniform:10-30",
    show_default=True,
    callback=_distribution,
    help="Seconds a pause lasts.",
)
@click.option(
    "--pause-reasons",
    default="break,lunch,training",
    show_default=True,
    help="Pause reasons, drawn evenly.",
)
@click.option(
    "--queue",
    "queues",
    multiple=True,
    help="Queue the simulated agents join (repeat; default: every queue).",
)
@click.option("--did", default=None, help="Number dialled (default: the first IVR's first DID).")
@click.option(
    "--context",
    default="from-trunk",
    show_default=True,
    help="Context the callers enter, as from a trunk.",
)
@click.option("--node", default="local", show_default=True, help="The Asterisk node.")
@click.option("--seed", type=int, default=None, help="Random seed, for a run you can repeat.")
@click.option(
    "--calls",
    "max_calls",
    type=click.IntRange(1),
    default=None,
    help="Stop after this many callers.",
)
@click.option(
    "--duration", type=click.FloatRange(1), default=None, help="Stop after this many seconds."
)
@click.pass_context
@handle_errors
def simulate(ctx: click.Context, rate: float, mix: dict[str, float], patience: Any,
             handle: Any, ring: Any, pre: Any, no_answer: float, agent_count: int,
             agent_prefix: str, first_extension: int, pause_chance: float, pause_time: Any,
             pause_reasons: str, queues: tuple[str, ...], did: str | None, context: str,
             node: str, seed: int | None, max_calls: int | None,
             duration: float | None) -> None:  # fmt: skip
    """Drive simulated calls through our running Asterisk until Ctrl-C.

    Callers are Local channels originated over AMI into the trunk context; they key the IVR
    choice and hang up when their patience runs out. Simulated agents are Local-channel queue
    members that ring, answer, talk and go to wrap-up, and now and then pause. Needs the
    simulation contexts: set `[asterisk] simulation = true` (or
    CALLCENTER_ASTERISK__SIMULATION=true), then `callcenter asterisk reload` (`make demo`
    does all of this in a call center of its own).
    On Ctrl-C / SIGTERM it stops placing calls and logs its agents out."""
    from callcenter.db.models import Queue
    from callcenter.simulate.model import Model, ModelError, Options, sim_agents
    from callcenter.simulate.runner import Simulation, SimulationError

    a = app(ctx)
    settings = a.settings
    try:
        options = Options(
            arrivals_per_minute=rate, mix=mix, pre=pre, patience=patience, ring=ring,
            handle=handle, no_answer=no_answer, pause_chance=pause_chance, pause=pause_time,
            pause_reasons=tuple(r.strip() for r in pause_reasons.split(",") if r.strip()),
        )  # fmt: skip
        agents = sim_agents(agent_count, prefix=agent_prefix, first_extension=first_extension)
    except ModelError as exc:
        raise click.BadParameter(str(exc)) from None
    if not queues and agent_count:
        import sqlalchemy as sa

        with a.session() as s:
            queues = tuple(s.scalars(sa.select(Queue.name).order_by(Queue.name)))
        if not queues:
            raise click.ClickException(
                "no queues in the database: add one (callcenter queues add sales) or name it "
                "with --queue"
            )
    sim = Simulation(
        settings.node(node), Model(options, seed), did=did or default_did(settings),
        queues=queues, agents=agents, context=context, max_calls=max_calls,
        duration=duration, on_progress=_printer(),
    )  # fmt: skip
    click.echo(
        f"simulating {rate:g} calls/min into {context}/{did or default_did(settings)}, "
        f"{agent_count} agents in {', '.join(queues) or '(none)'}; Ctrl-C stops",
        err=True,
    )
    failure: list[str] = []

    async def main(stop: asyncio.Event) -> None:
        try:
            await sim.run(stop)
        except SimulationError as exc:
            failure.append(str(exc))

    service.run_until_signalled(main)
    click.echo("\n" + sim.progress.line(), err=True)  # the final figures, always
    if failure:
        raise click.ClickException(failure[0])


def _printer() -> Any:
    """A progress callback: one line rewritten in place on a terminal, else a line every 10 s."""
    tty = sys.stderr.isatty()
    last = [0.0]

    def show(progress: Any) -> None:
        if tty:
            sys.stderr.write("\r" + progress.line() + "\x1b[K")
            sys.stderr.flush()
        elif time.monotonic() - last[0] >= 10:
            last[0] = time.monotonic()
            sys.stderr.write(progress.line() + "\n")

    return show
