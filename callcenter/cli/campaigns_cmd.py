"""``callcenter campaigns``, ``contacts`` and ``dnc``: outbound campaigns, their contact
lists and the do-not-call list (issue 13; the dialer that calls them comes later)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from callcenter.campaigns import contacts as contact_lists
from callcenter.campaigns import store
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
from callcenter.db.models_campaigns import MACHINE_ACTIONS, MODES

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
