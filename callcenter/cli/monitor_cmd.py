"""``callcenter monitor``: the log of live monitoring (who listened to, whispered to or barged
into whose call, and the attempts that were refused or failed)."""

from __future__ import annotations

import dataclasses

import click

from callcenter import names, timespec
from callcenter.cli.context import app, handle_errors, json_option, print_json, print_table
from callcenter.db.models_quality import MONITOR_MODES
from callcenter.monitoring import store


@click.group("monitor")
def monitor() -> None:
    """Live monitoring of agents' calls (the board's Listen, Whisper and Barge)."""


@monitor.command("list")
@click.option(
    "--since", help="Start (default: today). today, -2h, -7d, 2026-11-22, 2026-11-22T08:00"
)
@click.option("--until", help="End (default: now).")
@click.option("--user", help="Only this supervisor's attempts.")
@click.option("--agent", help="Only attempts on this agent's calls.")
@click.option("--result", type=click.Choice(["originated", "refused", "failed"]))
@click.option("--limit", type=click.IntRange(1, 100000), default=1000, show_default=True)
@json_option
@click.pass_context
@handle_errors
def list_(
    ctx: click.Context,
    since: str | None,
    until: str | None,
    user: str | None,
    agent: str | None,
    result: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Every monitoring attempt in an interval, newest first: when, who, which mode, which
    agent (and their channel), the phone rung, and the result (originated: Asterisk queued
    the call to the supervisor's phone; refused, failed: with the reason)."""
    a = app(ctx)
    start, end = timespec.interval(since, until, a.settings.site.tz)
    with a.session() as s:
        views = store.list_sessions(
            s, start, end, user=names.normalize(user) if user else None,
            agent=names.normalize(agent) if agent else None, result=result, limit=limit,
        )  # fmt: skip
    if as_json:
        print_json([dataclasses.asdict(v) for v in views])
        return
    tz = a.settings.site.tz
    print_table(
        f"{len(views)} monitoring attempts ({', '.join(MONITOR_MODES)})",
        ["at", "user", "mode", "agent", "node", "channel", "phone", "result", "reason"],
        [[v.at.astimezone(tz), v.user_name, v.mode, v.agent, v.node, v.agent_channel or None,
          v.phone or None, v.result, v.error or None] for v in views],
    )  # fmt: skip
