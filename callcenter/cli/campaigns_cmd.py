"""``callcenter campaigns``, ``contacts`` and ``dnc``: outbound campaigns (settings, start,
pause, stop, the report and the regulator's CSV, an agent's preview), their contact lists
and the do-not-call list (issue 13; the dialer service works the running campaigns)."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from sqlalchemy import select
from sqlalchemy.orm import Session

from callcenter.campaigns import contacts as contact_lists
from callcenter.campaigns import report as campaign_reports
from callcenter.campaigns import scheduling, store
from callcenter.campaigns.numbers import Normaliser, NumberError
from callcenter.cli.context import (
    AppContext,
    app,
    handle_errors,
    json_option,
    print_json,
    print_record,
    print_table,
)
from callcenter.db.models import Agent
from callcenter.db.models_campaigns import AGENTLESS_ACTIONS, MACHINE_ACTIONS, MODES, Campaign
from callcenter.db.models_quality import RECORD_POLICIES

_RETRY_OPTIONS = [
    ("--retry-busy", "retry_busy", "Seconds before a busy number is tried again."),
    ("--retry-no-answer", "retry_no_answer", "Seconds before a number that did not answer."),
    ("--retry-machine", "retry_machine", "Seconds before a number that reached a machine."),
    ("--retry-abandoned", "retry_abandoned", "Seconds before an abandoned contact."),
    ("--retry-failed", "retry_failed", "Seconds before a call that failed (congestion...)."),
]


def campaign_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The settings shared by ``add`` and ``update``; unset means "leave as it is"."""
    options = [
        click.option("--mode", type=click.Choice(MODES), default=None, help="How it dials."),
        click.option("--queue", default=None, help="The queue of its agents ('' for none)."),
        click.option("--trunk", default=None, help="The [trunks.*] it calls through."),
        click.option("--caller-id", default=None, help="The number sent as caller ID."),
        click.option(
            "--hours", default=None, help="Calling hours in the contact's time, e.g. 09:00-20:00."
        ),
        click.option("--days", default=None, help="Calling days, e.g. mon-fri,sat or all."),
        click.option("--holidays", default=None, help="Dates not to call, e.g. 2026-12-25,..."),
        click.option("--max-attempts", type=int, default=None, help="Attempts per contact."),
        *(
            click.option(flag, dest, type=int, default=None, help=help_)
            for flag, dest, help_ in _RETRY_OPTIONS
        ),
        click.option("--amd/--no-amd", "amd", default=None, help="Answering-machine detection."),
        click.option(
            "--machine",
            "machine_action",
            type=click.Choice(MACHINE_ACTIONS),
            default=None,
            help="What to do with a machine: hang up or leave a message.",
        ),
        click.option("--machine-message", default=None, help="The sound left on a machine."),
        click.option("--seller-name", default=None, help="Said by the abandon message."),
        click.option("--seller-number", default=None, help="Said by the abandon message."),
        click.option(
            "--abandon-cap",
            type=float,
            default=None,
            help="Abandon-rate cap in percent (default and most 3).",
        ),
        click.option(
            "--abandon-target",
            type=float,
            default=None,
            help="Abandon rate the pacer aims at, in percent, at most the cap (default 2.5).",
        ),
        click.option(
            "--ring-seconds", type=int, default=None, help="How long a number rings (15-120, 25)."
        ),
        click.option(
            "--channel-limit",
            type=int,
            default=None,
            help="Most calls in flight at once (1-1000, default 30).",
        ),
        click.option(
            "--agentless-action",
            type=click.Choice(AGENTLESS_ACTIONS),
            default=None,
            help="Agentless: play a message or run a survey to the person who answers.",
        ),
        click.option("--agentless-message", default=None, help="Agentless: the sound played."),
        click.option("--survey-ivr", default=None, help="Agentless survey: the [ivr.*] to run."),
        click.option(
            "--record",
            "record_policy",
            type=click.Choice(RECORD_POLICIES),
            default=None,
            help="Which of its calls are recorded: none, all, sampled (--record-share) or "
            "on_demand; its calls follow this, not their queue's. Then `asterisk reload`.",
        ),
        click.option(
            "--record-share",
            "record_share",
            type=float,
            default=None,
            help="With --record sampled: the share of calls recorded, 0-1.",
        ),
        click.option(
            "--abandon-message",
            default=None,
            help="The information message's sound (names the seller); empty: the default.",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _numbers(obj: AppContext, region: str | None) -> Normaliser:
    try:
        return Normaliser(region or obj.settings.site.region)
    except NumberError as exc:
        raise store.CampaignError(str(exc)) from None


def _context(obj: AppContext) -> dict[str, Any]:
    return {"trunks": [t.name for t in obj.settings.trunks], "region": obj.settings.site.region}


region_option = click.option(
    "--region",
    default=None,
    help="Region (ISO 3166, e.g. US, GB) of numbers without a country code; "
    "default: [site] region.",
)


@click.group("campaigns")
def campaigns() -> None:
    """Add, list, show and change outbound campaigns."""


@campaigns.command("add")
@click.argument("name")
@campaign_options
@json_option
@click.pass_context
@handle_errors
def add(ctx: click.Context, /, name: str, as_json: bool, **settings: Any) -> None:
    """Add campaign NAME (lower-case). Modes but agentless need --queue."""
    obj = app(ctx)
    with obj.session() as s:
        view = store.campaign_view(store.add_campaign(s, name, **_context(obj), **settings))
    if as_json:
        print_json(view)
    else:
        click.echo(f"campaign {name} added ({view['mode']})")


@campaigns.command("list")
@json_option
@click.pass_context
@handle_errors
def list_(ctx: click.Context, as_json: bool) -> None:
    """List every campaign."""
    with app(ctx).session() as s:
        counts = store.contact_counts(s)
        views = [store.campaign_view(c, counts.get(c.id, 0)) for c in store.list_campaigns(s)]
    if as_json:
        print_json(views)
        return
    print_table(
        f"{len(views)} campaigns",
        ["name", "mode", "queue", "hours", "days", "cap %", "target %", "contacts"],
        [
            [
                v["name"],
                v["mode"],
                v["queue"],
                v["hours"],
                v["days"],
                v["abandon_cap_percent"],
                v["abandon_target_percent"],
                v["contacts"],
            ]
            for v in views
        ],
    )


@campaigns.command("show")
@click.argument("name")
@json_option
@click.pass_context
@handle_errors
def show(ctx: click.Context, name: str, as_json: bool) -> None:
    """Show one campaign."""
    with app(ctx).session() as s:
        campaign = store.get_campaign(s, name)
        count = store.contact_counts(s, campaign.id).get(campaign.id, 0)
        view = store.campaign_view(campaign, count)
    if as_json:
        print_json(view)
    else:
        print_record(f"campaign {name}", view)


@campaigns.command("update")
@click.argument("name")
@campaign_options
@json_option
@click.pass_context
@handle_errors
def update(ctx: click.Context, /, name: str, as_json: bool, **settings: Any) -> None:
    """Change campaign NAME; options not given stay as they are."""
    obj = app(ctx)
    with obj.session() as s:
        view = store.campaign_view(store.update_campaign(s, name, **_context(obj), **settings))
    if as_json:
        print_json(view)
    else:
        click.echo(f"campaign {name} updated")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _state_command(verb: str, change: Callable[..., Campaign], help_: str) -> None:
    @campaigns.command(verb, help=help_)
    @click.argument("name")
    @json_option
    @click.pass_context
    @handle_errors
    def command(ctx: click.Context, name: str, as_json: bool) -> None:
        obj = app(ctx)
        extra: dict[str, Any] = {}
        if verb == "start":
            extra = {
                "trunks": [t.name for t in obj.settings.trunks if t.outbound],
                "customer_channel": obj.settings.dialer.customer_channel,
            }
        with obj.session() as s:
            view = store.campaign_view(change(s, name, _now(), **extra))
        if as_json:
            print_json(view)
        else:
            click.echo(f"campaign {name} is {view['state']}")


_state_command(
    "start",
    store.start_campaign,
    "Start campaign NAME: the dialer works it. Refused when it cannot dial (no queue for "
    "its agents, no trunk, no contacts).",
)
_state_command(
    "pause",
    store.pause_campaign,
    "Pause campaign NAME: no new calls; calls in flight go on to their end.",
)
_state_command(
    "stop",
    store.stop_campaign,
    "Stop campaign NAME: no new calls, calls in flight end normally, and the dialer lets it go.",
)


def _report_lines(view: dict[str, Any]) -> dict[str, Any]:
    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value * 100:.2f}%"

    out: dict[str, Any] = {
        "mode / state": f"{view['mode']} / {view['state']}",
        "started": view["started_at"],
        "abandon cap / target": f"{pct(view['abandon_cap'])} / {pct(view['abandon_target'])}",
        "contacts left": view["contacts_left"],
    }
    for key, label in (("last_30_days", "30 days"), ("life", "life")):
        f = view[key]
        a2a = f["answer_to_agent"]
        out[f"{label}: since"] = f["since"]
        out[f"{label}: attempts / dialled"] = f"{f['attempts']} / {f['dialled']}"
        out[f"{label}: live answers"] = (
            f"{f['live_answers']} (contact rate {pct(f['contact_rate'])})"
        )
        out[f"{label}: connected / abandoned"] = f"{f['connected']} / {f['abandoned']}"
        out[f"{label}: abandon rate"] = (
            f"{pct(f['abandon_rate'])} (budget {f['abandon_budget']:g} abandons)"
        )
        out[f"{label}: answer to agent"] = (
            "-"
            if not a2a["count"]
            else f"p50 {a2a['p50']:.2f} s, p95 {a2a['p95']:.2f} s, max {a2a['max']:.2f} s, "
            f"{a2a['over_2s']} of {a2a['count']} over 2 s"
        )
        out[f"{label}: talk min / agent hour"] = f["talk_minutes_per_agent_hour"]
        out[f"{label}: outcomes"] = f["outcomes"]
    worst = view["worst_30_days"]
    out["worst 30 days"] = (
        "-"
        if worst is None
        else f"{pct(worst['abandon_rate'])} ({worst['abandoned']} of {worst['live_answers']}, "
        f"{worst['since']} to {worst['until']})"
    )
    return out


@campaigns.command("report")
@click.argument("name")
@click.option(
    "--csv",
    "csv_file",
    default=None,
    help="Write every attempt record as CSV to this file ('-': standard output) instead.",
)
@json_option
@click.pass_context
@handle_errors
def report(ctx: click.Context, name: str, csv_file: str | None, as_json: bool) -> None:
    """Attempts, contact rate, live answers, abandons and the abandon rate over the last 30
    days and the campaign's life, the worst 30 days, answer-to-agent times and talk minutes
    per agent hour; or (--csv) the attempt records for a regulator."""
    obj = app(ctx)
    site = obj.settings.site
    with obj.session() as s:
        campaign = store.get_campaign(s, name)
        if csv_file is not None:
            n = _export(s, campaign, csv_file)
            if csv_file != "-":
                click.echo(f"{n} attempt records of campaign {name} written to {csv_file}")
            return
        view = campaign_reports.campaign_report(
            s, campaign, today=_now().astimezone(site.tz).date(), site_tz=site.timezone
        )
    if as_json:
        print_json(view)
    else:
        print_record(f"campaign {name} on {view['today']}", _report_lines(view))


def _export(session: Session, campaign: Campaign, target: str) -> int:
    if target == "-":
        return campaign_reports.export_csv(session, campaign, sys.stdout)
    path = Path(target)
    # Into a temporary file renamed at the end: a failed export leaves no partial file.
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or Path())
    except OSError as exc:
        raise store.CampaignError(f"cannot write {target}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as handle:
            n = campaign_reports.export_csv(session, campaign, handle)
        Path(tmp).replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            Path(tmp).unlink()
        raise
    return n


@campaigns.command("preview")
@click.argument("name")
@click.option("--agent", required=True, help="The agent who previews.")
@click.option("--dial", is_flag=True, help="Dial the contact on the agent's screen.")
@click.option("--skip", "skip_reason", default=None, help="Pass over it, saying why.")
@json_option
@click.pass_context
@handle_errors
def preview(
    ctx: click.Context, name: str, agent: str, dial: bool, skip_reason: str | None, as_json: bool
) -> None:
    """Preview campaign NAME as --agent: show the contact on the agent's screen (taking the
    next one when there is none); --dial calls it (the agent's phone first, then the
    customer); --skip REASON passes it over."""
    obj = app(ctx)
    if dial and skip_reason is not None:
        raise click.UsageError("--dial and --skip exclude each other")
    with obj.session() as s:
        campaign = store.get_campaign(s, name)
        if s.scalar(select(Agent.id).where(Agent.name == agent)) is None:
            raise store.CampaignError(f"no agent named {agent!r}")
        if dial or skip_reason is not None:
            attempt = (
                scheduling.preview_dial(s, campaign, agent, now=_now())
                if dial
                else scheduling.preview_skip(s, campaign, agent, skip_reason or "", now=_now())
            )
            view: dict[str, Any] | None = {
                "channel_id": attempt.channel_id,
                "phone": attempt.phone,
                "agent": agent,
                "phase": attempt.phase,
                "outcome": attempt.outcome,
                "reason": attempt.reason,
            }
        else:
            claimed = scheduling.preview_take(
                s,
                campaign,
                agent,
                now=_now(),
                dialer="cli",
                site_tz=obj.settings.site.timezone,
            )
            view = dataclasses.asdict(claimed) if claimed else None
    if as_json:
        print_json(view)
    elif view is None:
        click.echo(f"no contact of campaign {name} is due now")
    elif "phase" not in view:
        print_record(f"contact for {agent} in campaign {name}", view)
    elif view["outcome"] == "skipped" and skip_reason is None:
        click.echo(f"{view['phone']} was not dialled: {view['reason']}")
    elif view["outcome"] == "skipped":
        click.echo(f"{view['phone']} skipped ({view['reason']})")
    else:
        click.echo(f"dialling {view['phone']} for {agent}: the agent's phone rings first")


# --- contacts ----------------------------------------------------------------------------


@click.group("contacts")
def contacts() -> None:
    """Import and list a campaign's contacts."""


@contacts.command("import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--campaign", required=True, help="The campaign the contacts are for.")
@region_option
@json_option
@click.pass_context
@handle_errors
def import_(
    ctx: click.Context, file: Path, campaign: str, region: str | None, as_json: bool
) -> None:
    """Import FILE (CSV with a header: phone, and optionally name, timezone, priority; other
    columns are kept for the agent). All or nothing: a bad row stops it with its line number,
    column and reason. Duplicates and numbers on the do-not-call list are left out and
    counted."""
    obj = app(ctx)
    numbers = _numbers(obj, region)
    with obj.session() as s:
        report = contact_lists.import_contacts(
            s, campaign, file, numbers, obj.settings.site.timezone
        )
    if as_json:
        print_json(report)
        return
    click.echo(
        f"imported {report.imported} contacts into campaign {campaign} from {report.rows} rows: "
        f"{report.duplicates_in_file} duplicates in the file, {report.duplicates_existing} "
        f"already in the campaign, {report.on_dnc} on the do-not-call list left out"
    )
    if report.site_timezone:
        click.echo(
            f"{report.site_timezone} contacts got the site's time zone "
            f"({obj.settings.site.timezone}): their numbers span several and the file named none"
        )
    for example in report.examples:
        click.echo(f"  duplicate: {example}")


@contacts.command("list")
@click.option("--campaign", required=True, help="Whose contacts.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@json_option
@click.pass_context
@handle_errors
def contacts_list(ctx: click.Context, campaign: str, limit: int, as_json: bool) -> None:
    """List a campaign's contacts, highest priority first."""
    with app(ctx).session() as s:
        total = contact_lists.count_contacts(s, campaign)
        views = [
            contact_lists.contact_view(c) for c in contact_lists.list_contacts(s, campaign, limit)
        ]
    if as_json:
        print_json(views)
        return
    print_table(
        f"{len(views)} of {total} contacts of campaign {campaign}",
        ["phone", "name", "time zone", "priority", "status", "attempts", "fields"],
        [
            [
                v["phone"],
                v["name"],
                v["timezone"],
                v["priority"],
                v["status"],
                v["attempts"],
                v["fields"],
            ]
            for v in views
        ],
    )


def _day(text: str, option: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise store.CampaignError(f"{option} {text!r} is not a date (YYYY-MM-DD)") from None


@contacts.command("from-calls")
@click.option("--campaign", required=True, help="The campaign the contacts are for.")
@click.option("--queue", required=True, help="Whose callers.")
@click.option("--since", default=None, help="First day (YYYY-MM-DD, site time); default yesterday.")
@click.option("--until", default=None, help="Last day, included; default the --since day.")
@click.option(
    "--outcome",
    type=click.Choice(store.CALL_OUTCOMES),
    default=None,
    help="Only calls that ended so, e.g. answered.",
)
@region_option
@json_option
@click.pass_context
@handle_errors
def from_calls(
    ctx: click.Context,
    campaign: str,
    queue: str,
    since: str | None,
    until: str | None,
    outcome: str | None,
    region: str | None,
    as_json: bool,
) -> None:
    """Contacts from the call log: the callers of --queue whose calls entered it on the days
    --since to --until (e.g. yesterday's answered callers, for a satisfaction survey). Each
    contact keeps its call's uniqueid, node, queue and agent as fields; numbers that cannot be
    called (anonymous, extensions) are skipped and counted."""
    obj = app(ctx)
    numbers = _numbers(obj, region)
    site = obj.settings.site
    first = (
        _day(since, "--since")
        if since
        else _now().astimezone(site.tz).date() - dt.timedelta(days=1)
    )
    last = _day(until, "--until") if until else first
    if last < first:
        raise store.CampaignError(f"--until {last} is before --since {first}")
    start = dt.datetime.combine(first, dt.time(0), tzinfo=site.tz)
    end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(0), tzinfo=site.tz)
    with obj.session() as s:
        found = store.contacts_from_calls(
            s, campaign, queue, start, end, numbers, site.timezone, outcome
        )
    if as_json:
        print_json(found)
        return
    click.echo(
        f"imported {found.imported} contacts into campaign {campaign} from {found.calls} calls "
        f"of queue {queue} ({first} to {last}): {found.duplicates_in_calls} repeat calls, "
        f"{found.duplicates_existing} already in the campaign, {found.on_dnc} on the "
        f"do-not-call list, {found.invalid} numbers that cannot be called"
    )
    for example in found.examples:
        click.echo(f"  skipped: {example}")


# --- do-not-call -------------------------------------------------------------------------


@click.group("dnc")
def dnc() -> None:
    """The do-not-call list, checked at import and at dial time."""


@dnc.command("add")
@click.argument("numbers", nargs=-1, required=True)
@click.option("--source", default="cli", show_default=True, help="Where the request came from.")
@region_option
@click.pass_context
@handle_errors
def dnc_add(ctx: click.Context, numbers: tuple[str, ...], source: str, region: str | None) -> None:
    """Put NUMBERS on the do-not-call list (all valid, or none is added)."""
    obj = app(ctx)
    normaliser = _numbers(obj, region)
    with obj.session() as s:
        total, added = store.dnc_add(s, normaliser, numbers, source)
    click.echo(f"{added} numbers added to the do-not-call list ({total - added} there already)")


@dnc.command("remove")
@click.argument("number")
@region_option
@click.pass_context
@handle_errors
def dnc_remove(ctx: click.Context, number: str, region: str | None) -> None:
    """Take NUMBER off the do-not-call list."""
    obj = app(ctx)
    normaliser = _numbers(obj, region)
    with obj.session() as s:
        phone = store.dnc_remove(s, normaliser, number)
    click.echo(f"{phone} removed from the do-not-call list")


@dnc.command("check")
@click.argument("number")
@region_option
@json_option
@click.pass_context
@handle_errors
def dnc_check(ctx: click.Context, number: str, region: str | None, as_json: bool) -> None:
    """Say whether NUMBER is on the do-not-call list."""
    obj = app(ctx)
    normaliser = _numbers(obj, region)
    with obj.session() as s:
        phone, entry = store.dnc_check(s, normaliser, number)
        view = {
            "phone": phone,
            "do_not_call": entry is not None,
            "source": entry.source if entry else None,
            "added_at": entry.added_at if entry else None,
        }
    if as_json:
        print_json(view)
    elif entry is not None:
        click.echo(
            f"{phone} is on the do-not-call list (since {entry.added_at:%Y-%m-%d}, {entry.source})"
        )
    else:
        click.echo(f"{phone} is not on the do-not-call list")


@dnc.command("import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@region_option
@click.pass_context
@handle_errors
def dnc_import(ctx: click.Context, file: Path, region: str | None) -> None:
    """Add FILE's numbers (one a line, or a CSV with a phone column), all or nothing."""
    obj = app(ctx)
    normaliser = _numbers(obj, region)
    with obj.session() as s:
        total, added = contact_lists.import_dnc(s, file, normaliser)
    click.echo(f"{added} numbers added to the do-not-call list ({total - added} there already)")


@dnc.command("list")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@json_option
@click.pass_context
@handle_errors
def dnc_list(ctx: click.Context, limit: int, as_json: bool) -> None:
    """List the do-not-call list (the first --limit numbers)."""
    with app(ctx).session() as s:
        total = store.dnc_count(s)
        views = [
            {"phone": e.phone, "source": e.source, "added_at": e.added_at}
            for e in store.dnc_list(s, limit)
        ]
    if as_json:
        print_json(views)
        return
    print_table(
        f"{len(views)} of {total} numbers on the do-not-call list",
        ["phone", "source", "added"],
        [[v["phone"], v["source"], v["added_at"]] for v in views],
    )
