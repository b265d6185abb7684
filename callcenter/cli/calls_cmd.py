"""``callcenter calls``: the call log."""

from __future__ import annotations

from typing import Any

import click
import sqlalchemy as sa

from callcenter import directory, timespec
from callcenter.cli.context import app, handle_errors, json_option, print_json, print_table
from callcenter.db.models import Call, QueueVisit
from callcenter.domain import CallOutcome

CALL_COLUMNS = (
    "node",
    "uniqueid",
    "linkedid",
    "direction",
    "caller_number",
    "caller_name",
    "did",
    "ivr_path",
    "queue",
    "agent",
    "started_at",
    "queued_at",
    "answered_at",
    "ended_at",
    "wait_seconds",
    "talk_seconds",
    "wrapup_seconds",
    "ring_attempts",
    "outcome",
    "exit_key",
    "hangup_cause",
    "survey_score",
)


@click.group("calls")
def calls() -> None:
    """Look through the call log."""


@calls.command("list")
@click.option("--since", help="Start (default: today). today, -2h, 2026-11-22, 2026-11-22T08:00")
@click.option("--until", help="End (default: now).")
@click.option("--queue")
@click.option("--agent")
@click.option("--outcome", type=click.Choice([o.value for o in CallOutcome]))
@click.option("--caller", help="Caller number, or the start of it followed by *.")
@click.option("--limit", type=click.IntRange(1, 100000), default=100, show_default=True)
@json_option
@click.pass_context
@handle_errors
def list_(
    ctx: click.Context,
    since: str | None,
    until: str | None,
    queue: str | None,
    agent: str | None,
    outcome: str | None,
    caller: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Calls that started in an interval, newest first."""
    a = app(ctx)
    start, end = timespec.interval(since, until, a.settings.site.tz)
    query = sa.select(Call).where(Call.started_at >= start, Call.started_at < end)
    if outcome:
        query = query.where(Call.outcome == outcome)
    if caller:
        if caller.endswith("*"):
            prefix = caller[:-1].replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_")
            query = query.where(Call.caller_number.like(prefix + "%", escape="\\"))
        else:
            query = query.where(Call.caller_number == caller)
    query = query.order_by(Call.started_at.desc(), Call.id.desc()).limit(limit)
    with a.session() as s:
        # A name nobody knows is a typo, not "no calls": say so, as `queues show` does.
        if queue:
            query = query.where(Call.queue == directory.check_known_queue(s, queue))
        if agent:
            query = query.where(Call.agent == directory.check_known_agent(s, agent))
        rows: list[dict[str, Any]] = [
            {col: getattr(c, col) for col in CALL_COLUMNS} for c in s.scalars(query)
        ]
    if as_json:
        print_json(rows)
        return
    tz = a.settings.site.tz
    print_table(
        f"{len(rows)} calls",
        ["started", "caller", "queue", "agent", "wait", "talk", "outcome", "ivr"],
        [
            [
                r["started_at"].astimezone(tz),
                f"{r['caller_number']} {r['caller_name']}".strip(),
                r["queue"],
                r["agent"],
                r["wait_seconds"],
                r["talk_seconds"],
                r["outcome"],
                r["ivr_path"],
            ]
            for r in rows
        ],
    )


VISIT_COLUMNS = (
    "visit",
    "queue",
    "queued_at",
    "agent",
    "answered_at",
    "ended_at",
    "wait_seconds",
    "talk_seconds",
    "ring_attempts",
    "original_position",
    "outcome",
    "exit_key",
    "transfer_target",
)


@calls.command("show")
@click.argument("uniqueid")
@click.option("--node", help="The Asterisk node (needed only when two have the uniqueid).")
@json_option
@click.pass_context
@handle_errors
def show(ctx: click.Context, uniqueid: str, node: str | None, as_json: bool) -> None:
    """One call and each of its queue visits (a transferred call has one per queue)."""
    a = app(ctx)
    query = sa.select(Call).where(Call.uniqueid == uniqueid)
    if node:
        query = query.where(Call.node == node)
    with a.session() as s:
        found = list(s.scalars(query.limit(2)))
        if not found:
            where = f" on node {node}" if node else ""
            raise click.ClickException(f"no call with uniqueid {uniqueid}{where}")
        if len(found) > 1:
            nodes = ", ".join(sorted(c.node for c in found))
            raise click.ClickException(f"uniqueid {uniqueid} is on nodes {nodes}: add --node")
        (call,) = found
        visits = s.scalars(
            sa.select(QueueVisit)
            .where(QueueVisit.node == call.node, QueueVisit.uniqueid == call.uniqueid)
            .order_by(QueueVisit.visit)
        ).all()
        row: dict[str, Any] = {col: getattr(call, col) for col in CALL_COLUMNS}
        row["visits"] = [{col: getattr(v, col) for col in VISIT_COLUMNS} for v in visits]
    if as_json:
        print_json(row)
        return
    tz = a.settings.site.tz
    print_table(
        f"call {call.uniqueid} on {call.node}",
        ["field", "value"],
        [[col, row[col]] for col in CALL_COLUMNS if row[col] not in (None, "")],
    )
    print_table(
        f"{len(row['visits'])} queue visits",
        ["#", "queue", "entered", "agent", "wait", "talk", "outcome", "to"],
        [
            [
                v["visit"],
                v["queue"],
                v["queued_at"].astimezone(tz) if v["queued_at"] else None,
                v["agent"],
                v["wait_seconds"],
                v["talk_seconds"],
                v["outcome"],
                v["transfer_target"],
            ]
            for v in row["visits"]
        ],
    )
