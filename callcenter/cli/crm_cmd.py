"""``callcenter customers``, ``dispositions`` and ``cases``: the data behind the agent's
desktop (issue 14), and the CRM figures of ``callcenter report --crm``."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import click
from sqlalchemy.orm import Session

from callcenter import directory, timespec
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
from callcenter.crm import CrmError, documentation
from callcenter.crm import cases as case_store
from callcenter.crm import customers as customer_store
from callcenter.crm import dispositions as code_store
from callcenter.crm import reports as crm_reports
from callcenter.db.models_crm import CASE_STATUSES, PRIORITIES, Case

region_option = click.option(
    "--region",
    default=None,
    help="Region (ISO 3166, e.g. US, GB) of numbers without a country code; "
    "default: [site] region.",
)
actor_option = click.option(
    "--actor", default="cli", show_default=True, help="Who does it (on the case's timeline)."
)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _numbers(obj: AppContext, region: str | None = None) -> Normaliser:
    try:
        return Normaliser(region or obj.settings.site.region)
    except NumberError as exc:
        raise CrmError(str(exc)) from None


# --- customers ---------------------------------------------------------------------------


@click.group("customers")
def customers() -> None:
    """Customers: import, list, and show one with their history."""


@customers.command("import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@region_option
@json_option
@click.pass_context
@handle_errors
def customers_import(ctx: click.Context, file: Path, region: str | None, as_json: bool) -> None:
    """Import FILE (CSV with a header: name, phone, email, crm_id; more numbers in the phone
    cell separated by ';' or in columns phone2, phone3...; other columns are kept as fields).
    A row whose crm_id is a customer's updates that customer. All or nothing: a bad row, or a
    number on two rows or of another customer, stops it with its line number, column and
    reason."""
    obj = app(ctx)
    numbers = _numbers(obj, region)
    with obj.session() as s:
        report = customer_store.import_customers(s, file, numbers)
    if as_json:
        print_json(report)
        return
    click.echo(
        f"imported {report.rows} customers from {file}: {report.created} new, "
        f"{report.updated} updated, {report.phones} numbers; {report.contacts_linked} "
        "campaign contacts now point at their customer"
    )


@customers.command("add")
@click.option("--name", default="", help="The customer's name.")
@click.option("--phone", "phones", multiple=True, help="A number (repeat for more).")
@click.option("--email", default="")
@click.option("--crm-id", default=None, help="The customer's id in the company's CRM.")
@click.option("--field", "fields", multiple=True, help="KEY=VALUE (repeat for more).")
@region_option
@json_option
@click.pass_context
@handle_errors
def customers_add(
    ctx: click.Context,
    name: str,
    phones: tuple[str, ...],
    email: str,
    crm_id: str | None,
    fields: tuple[str, ...],
    region: str | None,
    as_json: bool,
) -> None:
    """Add one customer."""
    obj = app(ctx)
    numbers = _numbers(obj, region)
    values: dict[str, Any] = {}
    for item in fields:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise CrmError(f"--field {item!r} must read KEY=VALUE")
        values[key.strip()] = value
    with obj.session() as s:
        customer = customer_store.create_customer(
            s, numbers, name=name, phones=phones, email=email, crm_id=crm_id, fields=values
        )
        view = customer_store.customer_view(customer)
    if as_json:
        print_json(view)
    else:
        click.echo(f"customer {view['id']} added ({', '.join(view['phones']) or 'no number'})")


@customers.command("list")
@click.option("--search", default=None, help="A phone number, or part of a name, e-mail or CRM id.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@region_option
@json_option
@click.pass_context
@handle_errors
def customers_list(
    ctx: click.Context, search: str | None, limit: int, region: str | None, as_json: bool
) -> None:
    """List customers by name."""
    obj = app(ctx)
    numbers = _numbers(obj, region)
    with obj.session() as s:
        total = customer_store.count_customers(s)
        views = [
            customer_store.customer_view(c)
            for c in customer_store.list_customers(s, numbers, search, limit)
        ]
    if as_json:
        print_json(views)
        return
    print_table(
        f"{len(views)} of {total} customers" + (f" matching {search!r}" if search else ""),
        ["id", "name", "phones", "email", "crm id", "fields"],
        [[v["id"], v["name"], v["phones"], v["email"], v["crm_id"], v["fields"]] for v in views],
    )


@customers.command("show")
@click.argument("customer")
@click.option("--calls", "limit", type=click.IntRange(min=0), default=20, show_default=True)
@region_option
@json_option
@click.pass_context
@handle_errors
def customers_show(
    ctx: click.Context, customer: str, limit: int, region: str | None, as_json: bool
) -> None:
    """Show CUSTOMER (an id, a phone number, or crm:ID) with their history: past calls from
    any of their numbers with dispositions and notes, open cases, survey scores."""
    obj = app(ctx)
    numbers = _numbers(obj, region)
    with obj.session() as s:
        found = customer_store.resolve_customer(s, numbers, customer)
        history = customer_store.customer_history(s, found, limit=limit).as_dict()
    if as_json:
        print_json(history)
        return
    view = dict(history["customer"])
    view["survey scores"] = history["survey_scores"]
    view["survey mean"] = history["survey_mean"]
    print_record(f"customer {view['id']}", view)
    tz = obj.settings.site.tz
    print_table(
        f"last {len(history['calls'])} calls",
        ["started", "from", "queue", "agent", "outcome", "talk (s)", "survey", "disposition"],
        [
            [
                dt.datetime.fromisoformat(c["started_at"]).astimezone(tz),
                c["caller_number"],
                c["queue"],
                c["agent"],
                c["outcome"],
                c["talk_seconds"],
                c["survey_score"],
                "; ".join(_disposition_text(d) for d in c["dispositions"]) or "-",
            ]
            for c in history["calls"]
        ],
    )
    print_table(
        f"{len(history['open_cases'])} open cases",
        ["case", "category", "priority", "status", "owner", "subject", "due"],
        [
            [
                c["number"],
                c["category"],
                c["priority"],
                c["status"],
                c["owner"],
                c["subject"],
                c["due_at"],
            ]
            for c in history["open_cases"]
        ],
    )


def _disposition_text(d: dict[str, Any]) -> str:
    if d["code"] is None:
        return f"NOT DOCUMENTED ({d['agent'] or '?'})"
    text = f"{d['code']} ({d['agent']})"
    if d["case"]:
        text += f" {d['case']}"
    if d["notes"]:
        text += f": {d['notes']}"
    return text


# --- dispositions ------------------------------------------------------------------------


def _owner(queue: str | None, campaign: str | None) -> code_store.Owner:
    if (queue is None) == (campaign is None):
        raise click.UsageError("give --queue or --campaign (one of them)")
    return code_store.Owner(queue=queue, campaign=campaign)


@click.group("dispositions")
def dispositions() -> None:
    """Disposition codes per queue and campaign, and the disposition of a call."""


@dispositions.command("add")
@click.argument("code")
@click.option("--queue", default=None, help="The queue whose calls may take it.")
@click.option("--campaign", default=None, help="The campaign whose calls may take it.")
@click.option("--label", default="", help="What agents see (default: the code).")
@click.option("--resolves", "effect", flag_value="resolves", help="The contact is resolved by it.")
@click.option("--follow-up", "effect", flag_value="follow_up", help="It needs a follow-up.")
@click.option("--callback", "effect", flag_value="callback", help="It schedules a callback.")
@json_option
@click.pass_context
@handle_errors
def dispositions_add(
    ctx: click.Context,
    code: str,
    queue: str | None,
    campaign: str | None,
    label: str,
    effect: str | None,
    as_json: bool,
) -> None:
    """Add disposition CODE to --queue or --campaign; at most one of --resolves,
    --follow-up, --callback says what it does (none: nothing)."""
    owner = _owner(queue, campaign)
    with app(ctx).session() as s:
        row = code_store.add_code(s, owner, code, label=label, effect=effect or "none")
        view = code_store.CodeView(row.code, row.label, row.effect, queue, campaign).as_dict()
    if as_json:
        print_json(view)
    else:
        click.echo(f"disposition {view['code']} added to {owner.describe()} ({view['effect']})")


@dispositions.command("list")
@click.option("--queue", default=None)
@click.option("--campaign", default=None)
@json_option
@click.pass_context
@handle_errors
def dispositions_list(
    ctx: click.Context, queue: str | None, campaign: str | None, as_json: bool
) -> None:
    """List disposition codes: every one, a queue's or a campaign's (both: a campaign call's)."""
    with app(ctx).session() as s:
        views = [v.as_dict() for v in code_store.list_codes(s, queue=queue, campaign=campaign)]
    if as_json:
        print_json(views)
        return
    print_table(
        f"{len(views)} disposition codes",
        ["queue", "campaign", "code", "label", "effect"],
        [[v["queue"], v["campaign"], v["code"], v["label"], v["effect"]] for v in views],
    )


@dispositions.command("remove")
@click.argument("code")
@click.option("--queue", default=None)
@click.option("--campaign", default=None)
@click.pass_context
@handle_errors
def dispositions_remove(
    ctx: click.Context, code: str, queue: str | None, campaign: str | None
) -> None:
    """Remove CODE from --queue or --campaign (calls given it keep it)."""
    owner = _owner(queue, campaign)
    with app(ctx).session() as s:
        code_store.remove_code(s, owner, code)
    click.echo(f"disposition {code.strip().lower()} removed from {owner.describe()}")


@dispositions.command("record")
@click.argument("uniqueid")
@click.option("--agent", required=True, help="The agent who answered the call.")
@click.option("--code", required=True, help="A code of the call's queue or campaign.")
@click.option("--notes", default="")
@click.option("--case", "case_number", default=None, help="Tie the call to this case.")
@click.option("--node", default=None, help="The call's node (default: the first [nodes.*]).")
@click.option("--visit", type=click.IntRange(min=0), default=None, help="Its queue visit.")
@click.option("--queue", default=None, help="When the call log does not know it yet.")
@click.option("--campaign", default=None, help="When the call log does not know it yet.")
@click.option("--any-agent", is_flag=True, help="A supervisor documents another's call.")
@json_option
@click.pass_context
@handle_errors
def dispositions_record(
    ctx: click.Context,
    uniqueid: str,
    agent: str,
    code: str,
    notes: str,
    case_number: str | None,
    node: str | None,
    visit: int | None,
    queue: str | None,
    campaign: str | None,
    any_agent: bool,
    as_json: bool,
) -> None:
    """Save the disposition of call UNIQUEID as the agent does on their page."""
    obj = app(ctx)
    node = node or obj.settings.nodes[0].name
    with obj.session() as s:
        agent = directory.check_known_agent(s, agent)
        d = documentation.dispose(
            s,
            node=node,
            uniqueid=uniqueid,
            agent=agent,
            code=code,
            now=_now(),
            notes=notes,
            visit=visit,
            case_number=case_number,
            queue=queue,
            campaign=campaign,
            any_agent=any_agent,
        )
        case = s.get(Case, d.case_id) if d.case_id is not None else None
        view = documentation.disposition_view(d, case.number if case else None)
    if as_json:
        print_json(view)
    else:
        click.echo(
            f"call {uniqueid} visit {view['visit']}: {view['code']} ({view['effect']})"
            + (f", case {view['case']}" if view["case"] else "")
        )


@dispositions.command("mark-undocumented")
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=documentation.GRACE_SECONDS,
    show_default=True,
    help="Seconds after the wrap-up before a call counts as not documented.",
)
@click.option("--since", default=None, help="Calls answered since (default: two days ago).")
@click.pass_context
@handle_errors
def dispositions_mark(ctx: click.Context, grace: float, since: str | None) -> None:
    """Mark answered calls left without a disposition past their wrap-up as not documented
    (what the service does periodically; running it again marks nothing twice)."""
    obj = app(ctx)
    now = _now()
    start = timespec.parse_time(since, obj.settings.site.tz, now) if since else None
    with obj.session() as s:
        n = documentation.mark_undocumented(s, now, grace_seconds=grace, since=start)
    click.echo(f"{n} calls marked as not documented")


# --- cases -------------------------------------------------------------------------------


@click.group("cases")
def cases() -> None:
    """Cases: add, list, show, update, export; and their categories."""


def _due(obj: AppContext, text: str | None) -> tuple[dt.datetime | None, bool]:
    """(due time, clear it) from --due."""
    if text is None:
        return None, False
    due = case_store.parse_due(text, obj.settings.site.tz, _now())
    return due, due is None


@cases.command("add")
@click.option("--customer", required=True, help="An id, a phone number or crm:ID.")
@click.option("--category", required=True, help="question, request, complaint, incident...")
@click.option("--priority", type=click.Choice(PRIORITIES), default="normal", show_default=True)
@click.option("--owner", default=None, help="An agent or a wallboard user.")
@click.option("--subject", default="")
@click.option("--due", default=None, help="+4h, +2d, tomorrow, 2026-12-24T17:00...")
@click.option("--note", default="")
@actor_option
@region_option
@json_option
@click.pass_context
@handle_errors
def cases_add(
    ctx: click.Context,
    customer: str,
    category: str,
    priority: str,
    owner: str | None,
    subject: str,
    due: str | None,
    note: str,
    actor: str,
    region: str | None,
    as_json: bool,
) -> None:
    """Open a case for --customer."""
    obj = app(ctx)
    numbers = _numbers(obj, region)
    due_at, _ = _due(obj, due)
    with obj.session() as s:
        found = customer_store.resolve_customer(s, numbers, customer)
        case = case_store.create_case(
            s,
            customer_id=found.id,
            category=category,
            actor=actor,
            now=_now(),
            priority=priority,
            owner=owner,
            subject=subject,
            due_at=due_at,
            note=note,
        )
        view = case_store.case_view(case, found)
    if as_json:
        print_json(view)
    else:
        click.echo(f"case {view['number']} opened for customer {found.id}")


def _customer_id(s: Session, obj: AppContext, text: str | None) -> int | None:
    if text is None:
        return None
    return customer_store.resolve_customer(s, _numbers(obj), text).id


@cases.command("list")
@click.option("--status", multiple=True, type=click.Choice(CASE_STATUSES), help="Repeatable.")
@click.option("--owner", default=None)
@click.option("--customer", default=None, help="An id, a phone number or crm:ID.")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@json_option
@click.pass_context
@handle_errors
def cases_list(
    ctx: click.Context,
    status: tuple[str, ...],
    owner: str | None,
    customer: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List cases, newest first."""
    obj = app(ctx)
    with obj.session() as s:
        rows = case_store.list_cases(
            s,
            status=status,
            owner=owner,
            customer_id=_customer_id(s, obj, customer),
            limit=limit,
        )
        calls = case_store.calls_of(s, [c.id for c, _ in rows])
        views = [case_store.case_view(c, k, calls.get(c.id, 0)) for c, k in rows]
    if as_json:
        print_json(views)
        return
    print_table(
        f"{len(views)} cases",
        ["case", "customer", "category", "priority", "status", "owner", "due", "calls", "subject"],
        [
            [
                v["number"],
                f"{v['customer_id']} {v['customer']}".strip(),
                v["category"],
                v["priority"],
                v["status"],
                v["owner"],
                v["due_at"],
                v["calls"],
                v["subject"],
            ]
            for v in views
        ],
    )


@cases.command("show")
@click.argument("number")
@json_option
@click.pass_context
@handle_errors
def cases_show(ctx: click.Context, number: str, as_json: bool) -> None:
    """Show case NUMBER (C-000123) with its timeline."""
    obj = app(ctx)
    with obj.session() as s:
        case = case_store.get_case(s, number)
        customer = customer_store.get_customer(s, case.customer_id)
        view = case_store.case_view(
            case, customer, case_store.calls_of(s, [case.id]).get(case.id, 0)
        )
        view["timeline"] = case_store.timeline(s, case)
    if as_json:
        print_json(view)
        return
    events = view.pop("timeline")
    print_record(f"case {view['number']}", view)
    tz = obj.settings.site.tz
    print_table(
        "timeline",
        ["at", "what", "who", "details"],
        [
            [
                e["at"].astimezone(tz),
                e["kind"],
                e["actor"],
                {**({"call": e["uniqueid"]} if e["uniqueid"] else {}), **e["data"]},
            ]
            for e in events
        ],
    )


@cases.command("update")
@click.argument("number")
@click.option("--status", type=click.Choice(CASE_STATUSES), default=None)
@click.option("--owner", default=None, help="An agent or a wallboard user; '' for nobody.")
@click.option("--priority", type=click.Choice(PRIORITIES), default=None)
@click.option("--due", default=None, help="+4h, +2d, tomorrow, 2026-12-24T17:00; none clears.")
@click.option("--category", default=None)
@click.option("--subject", default=None)
@click.option("--note", default=None, help="A note on the timeline.")
@click.option("--resolution", default=None, help="What resolved it (needed to resolve).")
@actor_option
@json_option
@click.pass_context
@handle_errors
def cases_update(
    ctx: click.Context,
    number: str,
    status: str | None,
    owner: str | None,
    priority: str | None,
    due: str | None,
    category: str | None,
    subject: str | None,
    note: str | None,
    resolution: str | None,
    actor: str,
    as_json: bool,
) -> None:
    """Change case NUMBER. Status goes open <-> pending, to resolved (with --resolution),
    resolved to closed or back to open."""
    obj = app(ctx)
    given = (status, owner, priority, due, category, subject, note, resolution)
    if all(v is None for v in given):
        raise click.UsageError(
            "nothing to change: give --status, --owner, --priority, --due, --category, "
            "--subject, --note or --resolution"
        )
    due_at, clear_due = _due(obj, due)
    with obj.session() as s:
        case = case_store.update_case(
            s,
            number,
            actor=actor,
            now=_now(),
            status=status,
            owner=owner,
            priority=priority,
            due_at=due_at,
            clear_due=clear_due,
            category=category,
            subject=subject,
            note=note,
            resolution=resolution,
        )
        view = case_store.case_view(case)
    if as_json:
        print_json(view)
    else:
        click.echo(f"case {view['number']} updated ({view['status']})")


@cases.command("export")
@click.option(
    "--csv",
    "csv_file",
    default="-",
    show_default=True,
    help="Write the cases as CSV to this file ('-': standard output).",
)
@click.option("--status", multiple=True, type=click.Choice(CASE_STATUSES), help="Repeatable.")
@click.option("--owner", default=None)
@click.option("--customer", default=None, help="An id, a phone number or crm:ID.")
@click.pass_context
@handle_errors
def cases_export(
    ctx: click.Context,
    csv_file: str,
    status: tuple[str, ...],
    owner: str | None,
    customer: str | None,
) -> None:
    """Export cases as CSV (oldest first), with their customer and how many calls."""
    obj = app(ctx)
    with obj.session() as s:
        filters: dict[str, Any] = {
            "status": status,
            "owner": owner,
            "customer_id": _customer_id(s, obj, customer),
        }
        if csv_file == "-":
            case_store.export_csv(s, sys.stdout, **filters)
            return
        path = Path(csv_file)
        # Into a temporary file renamed at the end: a failed export leaves no partial file.
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or Path())
        except OSError as exc:
            raise CrmError(f"cannot write {csv_file}: {exc.strerror or exc}") from None
        try:
            with os.fdopen(fd, "w", newline="", encoding="utf-8") as handle:
                n = case_store.export_csv(s, handle, **filters)
            Path(tmp).replace(path)
        except BaseException:
            with contextlib.suppress(OSError):
                Path(tmp).unlink()
            raise
    click.echo(f"{n} cases written to {csv_file}")


@cases.group("categories")
def categories() -> None:
    """Case categories: the built-in ones and the site's own."""


@categories.command("add")
@click.argument("name")
@click.option("--label", default="")
@click.pass_context
@handle_errors
def categories_add(ctx: click.Context, name: str, label: str) -> None:
    """Add category NAME."""
    with app(ctx).session() as s:
        row = case_store.add_category(s, name, label)
    click.echo(f"category {row.name} added")


@categories.command("list")
@json_option
@click.pass_context
@handle_errors
def categories_list(ctx: click.Context, as_json: bool) -> None:
    """List the categories."""
    with app(ctx).session() as s:
        rows = case_store.categories(s)
    views = [{"name": n, "label": label, "builtin": b} for n, label, b in rows]
    if as_json:
        print_json(views)
        return
    print_table(
        f"{len(views)} case categories",
        ["name", "label", "built in"],
        [[v["name"], v["label"], v["builtin"]] for v in views],
    )


@categories.command("remove")
@click.argument("name")
@click.pass_context
@handle_errors
def categories_remove(ctx: click.Context, name: str) -> None:
    """Remove category NAME (not while a case has it)."""
    with app(ctx).session() as s:
        case_store.remove_category(s, name)
    click.echo(f"category {name.strip().lower()} removed")


# --- report --crm ------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    if seconds < 86400 * 2:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def report_crm(
    obj: AppContext,
    since: dt.datetime,
    until: dt.datetime,
    *,
    queue: str | None,
    agent: str | None,
    repeat_days: int,
    as_json: bool,
) -> None:
    """``callcenter report --crm``: the figures of :mod:`callcenter.crm.reports`."""
    with obj.session() as s:
        if queue:
            queue = directory.check_known_queue(s, queue)
        if agent:
            agent = directory.check_known_agent(s, agent)
        rep = crm_reports.build_crm_report(
            s, since, until, now=_now(), repeat_days=repeat_days, queue=queue, agent=agent
        )
    if as_json:
        print_json(rep.as_dict())
        return
    tz = obj.settings.site.tz
    click.echo(
        f"{since.astimezone(tz):%Y-%m-%d %H:%M} - {until.astimezone(tz):%Y-%m-%d %H:%M} "
        f"({obj.settings.site.timezone}); repeat callers within {repeat_days} days"
    )
    f = rep.first_contact
    r = rep.resolution
    u = rep.undocumented
    print_record(
        "cases and documentation",
        {
            "first-contact resolution": f"{_pct(f.rate)} ({f.first_contact} of {f.with_calls} "
            f"resolved cases with calls; {f.resolved} resolved)",
            "time to resolution": f"median {_duration(r.median_seconds)}, "
            f"p90 {_duration(r.p90_seconds)} ({r.resolved} resolved)",
            "undocumented calls": f"{u.undocumented} (and {u.documented_late} documented late)",
            "undocumented by agent": u.by_agent,
            "undocumented by queue": u.by_queue,
            "open cases": f"{rep.open_cases.total} ({rep.open_cases.overdue} overdue)",
            **{
                f"open cases {label}": f"{n['open']} open, {n['pending']} pending"
                for label, n in rep.open_cases.by_age.items()
            },
        },
    )
    print_table(
        f"repeat callers within {repeat_days} days",
        ["queue", "calls", "callers", "repeat calls", "repeat callers", "repeat rate"],
        [
            [q.queue, q.calls, q.callers, q.repeat_calls, q.repeat_callers, _pct(q.repeat_rate)]
            for q in rep.repeat_callers
        ],
    )
    for title, rows in (
        ("queue", rep.dispositions_by_queue),
        ("agent", rep.dispositions_by_agent),
        ("campaign", rep.dispositions_by_campaign),
    ):
        print_table(
            f"dispositions per {title}",
            [title, "code", "effect", "calls"],
            [[c.by, c.code, c.effect, c.count] for c in rows],
        )
