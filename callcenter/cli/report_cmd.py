"""``callcenter report``: the measures of a call center over an interval."""

from __future__ import annotations

from typing import cast

import click

from callcenter import directory, reports, timespec
from callcenter.cli.context import app, handle_errors, json_option, print_json, print_table
from callcenter.cli.crm_cmd import report_crm
from callcenter.cli.satisfaction_cmd import report_satisfaction
from callcenter.satisfaction.measures import DIMENSIONS, Dimension, fmt_csat, fmt_nps


def _pct(value: float | None) -> str | None:
    return None if value is None else f"{value * 100:.1f}%"


@click.command("report")
@click.option("--since", help="Start (default: today in the site's time zone).")
@click.option("--until", help="End (default: now).")
@click.option("--queue", help="Only this queue.")
@click.option("--agent", help="Only this agent.")
@click.option(
    "--crm",
    is_flag=True,
    help="The CRM figures instead: first-contact resolution, repeat callers, dispositions, "
    "undocumented calls, open cases by age, time to resolution.",
)
@click.option(
    "--repeat-days",
    type=click.IntRange(1, 365),
    default=7,
    show_default=True,
    help="With --crm: a call is a repeat when its number called the queue within these days.",
)
@click.option(
    "--satisfaction",
    is_flag=True,
    help="The survey answers instead: CSAT (share of 1-5 answers that are 4 or 5) and NPS "
    "(% 9-10 minus % 0-6 of 0-10 answers), each with its number of answers.",
)
@click.option(
    "--by",
    type=click.Choice(DIMENSIONS),
    default="queue",
    show_default=True,
    help="With --satisfaction: one row per queue, agent, campaign or ISO week (site time zone).",
)
@click.option("--campaign", help="With --satisfaction: only this outbound campaign's answers.")
@json_option
@click.pass_context
@handle_errors
def report(
    ctx: click.Context,
    since: str | None,
    until: str | None,
    queue: str | None,
    agent: str | None,
    crm: bool,
    repeat_days: int,
    satisfaction: bool,
    by: str,
    campaign: str | None,
    as_json: bool,
) -> None:
    """Per queue: offered, answered, abandoned, timed out, SL, ASA, AHT, abandon rate,
    longest wait. Per agent: calls, talk, pause time by reason, occupancy. With --crm: the
    figures of the agents' documentation and the cases. With --satisfaction: CSAT and NPS
    of the survey answers (inbound and outbound) --by queue, agent, campaign or week."""
    a = app(ctx)
    start, end = timespec.interval(since, until, a.settings.site.tz)
    if crm and satisfaction:
        raise click.UsageError("--crm and --satisfaction are two reports: give one")
    explicit_by = ctx.get_parameter_source("by") is not click.core.ParameterSource.DEFAULT
    if (campaign or explicit_by) and not satisfaction:
        raise click.UsageError("--by and --campaign go with --satisfaction")
    if satisfaction:
        report_satisfaction(
            a, start, end, by=cast(Dimension, by), queue=queue, agent=agent, campaign=campaign,
            as_json=as_json,
        )  # fmt: skip
        return
    if crm:
        report_crm(
            a, start, end, queue=queue, agent=agent, repeat_days=repeat_days, as_json=as_json
        )
        return
    with a.session() as s:
        # A name nobody knows is a typo, not an empty report: say so, as `queues show` does.
        if queue:
            queue = directory.check_known_queue(s, queue)
        if agent:
            agent = directory.check_known_agent(s, agent)
        rep = reports.build_report(s, start, end, a.settings.reporting, queue=queue, agent=agent)
    if as_json:
        print_json(rep.as_dict())
        return
    tz = a.settings.site.tz
    rules = a.settings.reporting
    click.echo(
        f"{start.astimezone(tz):%Y-%m-%d %H:%M} - {end.astimezone(tz):%Y-%m-%d %H:%M} "
        f"({a.settings.site.timezone}); abandons under {rules.short_abandon_seconds}s left out; "
        f"abandons {'count' if rules.abandons_count_against_sl else 'do not count'} against SL"
    )
    if agent is None:
        print_table(
            "queues",
            [
                "queue",
                "offered",
                "answered",
                "abandoned",
                "timed out",
                "exited",
                "SL",
                "ASA (s)",
                "AHT (s)",
                "abandon rate",
                "longest wait (s)",
                "CSAT (n)",
                "NPS (n)",
            ],
            [
                [
                    q.queue,
                    q.offered,
                    q.answered,
                    q.abandoned,
                    q.timed_out,
                    q.exited,
                    f"{_pct(q.service_level) or '-'} @{q.service_level_threshold}s",
                    q.asa,
                    q.aht,
                    _pct(q.abandon_rate),
                    q.longest_wait,
                    f"{fmt_csat(q.csat)} ({q.csat_n})",
                    f"{fmt_nps(q.nps)} ({q.nps_n})",
                ]
                for q in rep.queues
            ],
        )
    if queue is None:
        print_table(
            "agents",
            [
                "agent",
                "calls",
                "talk (s)",
                "AHT (s)",
                "paused (s) by reason",
                "paused (s) by queue",
                "occupancy",
            ],
            [
                [
                    g.agent,
                    g.calls,
                    g.talk,
                    g.aht,
                    {k: round(v) for k, v in g.pause_by_reason.items()},
                    {q: {k: round(v) for k, v in r.items()} for q, r in g.pause_by_queue.items()},
                    _pct(g.occupancy),
                ]
                for g in rep.agents
            ],
        )
