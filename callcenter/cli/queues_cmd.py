"""``callcenter queues``: app_queue queues and their members."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from callcenter import directory
from callcenter.cli.context import (
    app,
    handle_errors,
    json_option,
    print_json,
    print_record,
    print_table,
)
from callcenter.cli.membership import remove_from_asterisk
from callcenter.db.models_quality import RECORD_POLICIES
from callcenter.domain import QueueStrategy

_INT_OPTIONS = [
    ("--service-level", "service_level_seconds", "Seconds within which an answer counts for SL."),
    ("--wrapup", "wrapup_seconds", "Seconds of after-call work before the next call."),
    ("--ring", "ring_seconds", "Seconds one agent's phone rings before the next is tried."),
    ("--retry", "retry_seconds", "Seconds to wait before ringing again."),
    ("--max-wait", "max_wait_seconds", "Seconds a caller waits before the queue times out."),
    ("--max-callers", "max_callers", "Most callers waiting at once (0: no limit)."),
    ("--weight", "weight", "Priority of this queue over others for shared agents."),
    ("--priority", "priority", "Default caller priority in this queue."),
    ("--announce-frequency", "announce_frequency_seconds", "Seconds between announcements."),
    ("--autopause-after", "autopause_after", "Missed calls before an agent is auto-paused."),
]
_FLAG_OPTIONS = [
    ("join-empty", "join_empty", "Callers may join when no agent is logged in."),
    ("leave-when-empty", "leave_when_empty", "Callers leave when the last agent logs out."),
    ("announce-position", "announce_position", "Tell callers their position."),
    ("announce-holdtime", "announce_holdtime", "Tell callers the expected wait."),
    ("autopause", "autopause", "Pause agents who miss calls."),
    (
        "disposition-required",
        "disposition_required",
        "Keep an agent paused after a call until its disposition is saved (agent's desktop).",
    ),
]


def queue_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The settings shared by ``add`` and ``update``; unset means "leave as it is"."""
    for flag, dest, help_ in reversed(_FLAG_OPTIONS):
        fn = click.option(f"--{flag}/--no-{flag}", dest, default=None, help=help_)(fn)
    for flag, dest, help_ in reversed(_INT_OPTIONS):
        fn = click.option(flag, dest, type=int, default=None, help=help_)(fn)
    fn = click.option(
        "--record-share",
        "record_share",
        type=float,
        default=None,
        help="With --record sampled: the share of calls recorded, 0-1 (0.2: one in five).",
    )(fn)
    fn = click.option(
        "--record",
        "record_policy",
        type=click.Choice(RECORD_POLICIES),
        default=None,
        help="Which calls are recorded: none, all, sampled (--record-share) or on_demand "
        "(the agent or a supervisor asks); then `callcenter asterisk reload`.",
    )(fn)
    fn = click.option("--music-class", default=None, help="Music on hold class.")(fn)
    fn = click.option("--display-name", default=None, help="Shown on the wallboard.")(fn)
    strategies = click.Choice([s.value for s in QueueStrategy])
    return click.option("--strategy", type=strategies, default=None, help="Ring strategy.")(fn)


@click.group("queues")
def queues() -> None:
    """Add, list, show, change and remove queues; put agents in them."""


@queues.command("add")
@click.argument("name")
@queue_options
@json_option
@click.pass_context
@handle_errors
def add(ctx: click.Context, /, name: str, as_json: bool, **settings: Any) -> None:
    """Add queue NAME (lower-case; the app_queue name)."""
    with app(ctx).session() as s:
        view = directory.queue_view(directory.add_queue(s, name, **settings))
    if as_json:
        print_json(view)
    else:
        click.echo(f"queue {name} added ({view['strategy']})")


@queues.command("list")
@json_option
@click.pass_context
@handle_errors
def list_(ctx: click.Context, as_json: bool) -> None:
    """List every queue."""
    with app(ctx).session() as s:
        views = [directory.queue_view(q) for q in directory.list_queues(s)]
    if as_json:
        print_json(views)
        return
    print_table(
        f"{len(views)} queues",
        ["name", "strategy", "SL (s)", "wrap-up (s)", "max wait (s)", "members"],
        [
            [
                v["name"],
                v["strategy"],
                v["service_level_seconds"],
                v["wrapup_seconds"],
                v["max_wait_seconds"],
                v["members"],
            ]
            for v in views
        ],
    )


@queues.command("show")
@click.argument("name")
@json_option
@click.pass_context
@handle_errors
def show(ctx: click.Context, name: str, as_json: bool) -> None:
    """Show one queue and its members."""
    with app(ctx).session() as s:
        view = directory.queue_view(directory.get_queue(s, name))
    if as_json:
        print_json(view)
    else:
        print_record(f"queue {name}", view)


@queues.command("update")
@click.argument("name")
@queue_options
@json_option
@click.pass_context
@handle_errors
def update(ctx: click.Context, /, name: str, as_json: bool, **settings: Any) -> None:
    """Change queue NAME; options not given stay as they are."""
    with app(ctx).session() as s:
        view = directory.queue_view(directory.update_queue(s, name, **settings))
    if as_json:
        print_json(view)
    else:
        click.echo(f"queue {name} updated")


@queues.command("remove")
@click.argument("name")
@click.pass_context
@handle_errors
def remove(ctx: click.Context, name: str) -> None:
    """Remove queue NAME and its memberships (its call history stays)."""
    with app(ctx).session() as s:
        directory.remove_queue(s, name)
    click.echo(f"queue {name} removed")


@queues.command("join")
@click.argument("queue")
@click.argument("agent")
@click.option(
    "--penalty",
    type=int,
    default=0,
    show_default=True,
    help="Skill level: agents with a lower penalty are rung first.",
)
@click.pass_context
@handle_errors
def join(ctx: click.Context, queue: str, agent: str, penalty: int) -> None:
    """Make AGENT a member of QUEUE (or change their penalty)."""
    with app(ctx).session() as s:
        directory.join_queue(s, queue, agent, penalty)
    click.echo(f"agent {agent} is in queue {queue} with penalty {penalty}")


@queues.command("leave")
@click.argument("queue")
@click.argument("agent")
@click.pass_context
@handle_errors
def leave(ctx: click.Context, queue: str, agent: str) -> None:
    """Take AGENT out of QUEUE, in the directory and in Asterisk.

    If AGENT is logged in, each Asterisk node that has them in QUEUE gets a QueueRemove over
    AMI (a reload would not remove them). A node that cannot be reached is a warning on
    stderr with the console command that removes them there; the directory change stands.
    """
    obj = app(ctx)
    with obj.session() as s:
        found = directory.get_agent(s, agent)
        name, extension = found.name, found.extension
        directory.leave_queue(s, queue, agent)
    click.echo(f"agent {name} left queue {queue}")
    remove_from_asterisk(obj.settings, name, extension, [queue])
