"""``callcenter tokens`` (API tokens for the CRM and scripts) and ``callcenter webhooks``
(receivers of events, their deliveries, and the worker that delivers them)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import click

from callcenter import service, tokens
from callcenter.cli.context import app, handle_errors, json_option, print_json, print_table
from callcenter.db.models_webhooks import EVENT_TYPES, OUTBOX_STATUSES, TOKEN_SCOPES
from callcenter.webhooks import manage

log_level = click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)


def _token_row(v: tokens.ApiTokenView, now: dt.datetime) -> dict[str, object]:
    return {**dataclasses.asdict(v), "status": v.status(now)}


# --- tokens ------------------------------------------------------------------------------


@click.group("tokens")
def tokens_group() -> None:
    """API tokens for the CRM and scripts: send "Authorization: Bearer <token>". Only a
    hash of each token is kept: a token is shown once, when it is added."""


@tokens_group.command("add")
@click.argument("name")
@click.option(
    "--scope",
    type=click.Choice(TOKEN_SCOPES),
    default="read",
    show_default=True,
    help="read: GET only; write: also changes.",
)
@click.option("--expires", help="When it stops working: 90d, 12h, 2w, or a date (2027-06-30).")
@json_option
@click.pass_context
@handle_errors
def tokens_add(
    ctx: click.Context, name: str, scope: str, expires: str | None, as_json: bool
) -> None:
    """Create API token NAME and print it: it is shown this once, never again."""
    obj = app(ctx)
    now = dt.datetime.now(dt.UTC)
    when = tokens.parse_expiry(expires, obj.settings.site.tz, now) if expires else None
    with obj.session() as s:
        view, raw = tokens.add_token(s, name, scope, expires_at=when)
    if as_json:
        print_json({**_token_row(view, now), "token": raw})
        return
    click.echo(raw)
    until = f", until {when:%Y-%m-%d %H:%M} UTC" if when else ""
    click.echo(
        f"API token {name!r} ({scope}{until}) created: keep it now, it cannot be shown again",
        err=True,
    )


@tokens_group.command("list")
@json_option
@click.pass_context
@handle_errors
def tokens_list(ctx: click.Context, as_json: bool) -> None:
    """List the API tokens: name, the first characters, scope, state (never a token)."""
    now = dt.datetime.now(dt.UTC)
    with app(ctx).session() as s:
        views = tokens.list_tokens(s)
    if as_json:
        print_json([_token_row(v, now) for v in views])
        return
    print_table(
        f"{len(views)} API tokens",
        ["id", "name", "token", "scope", "status", "created", "expires", "last used"],
        [
            [
                v.id,
                v.name,
                v.prefix + "...",
                v.scope,
                v.status(now),
                v.created_at,
                v.expires_at,
                v.last_used_at,
            ]
            for v in views
        ],
    )


@tokens_group.command("revoke")
@click.argument("name")
@click.pass_context
@handle_errors
def tokens_revoke(ctx: click.Context, name: str) -> None:
    """Revoke the active API token NAME (or the one whose listed first characters are
    NAME). Requests with it are refused at once; the wallboard's within seconds."""
    with app(ctx).session() as s:
        view = tokens.revoke_token(s, name)
    click.echo(f"API token {view.name!r} ({view.prefix}...) revoked")


# --- webhooks ----------------------------------------------------------------------------


@click.group("webhooks")
def webhooks_group() -> None:
    """Receivers of events (HTTP POST, HMAC-SHA256 signed, at least once): call.ended,
    call.dispositioned, case.created, case.changed, campaign.attempt."""


@webhooks_group.command("add")
@click.argument("url")
@click.option(
    "--events",
    "events",
    multiple=True,
    required=True,
    help=f"all, or some of {', '.join(EVENT_TYPES)} (comma-separated or repeated).",
)
@click.option("--description", default="", help="What the receiver is.")
@json_option
@click.pass_context
@handle_errors
def webhooks_add(
    ctx: click.Context, url: str, events: tuple[str, ...], description: str, as_json: bool
) -> None:
    """Post the events to URL (http or https; no user or password in it). Prints the
    signing secret: it is shown this once."""
    with app(ctx).session() as s:
        view, secret = manage.add_webhook(s, url, list(events), description=description)
    if as_json:
        print_json({**dataclasses.asdict(view), "secret": secret})
        return
    click.echo(secret)
    click.echo(
        f"webhook {view.id} added: {', '.join(view.events)} to {view.url}; the signing "
        "secret above is shown this once",
        err=True,
    )


@webhooks_group.command("list")
@json_option
@click.pass_context
@handle_errors
def webhooks_list(ctx: click.Context, as_json: bool) -> None:
    """List the webhooks and their deliveries pending, delivered and given up."""
    with app(ctx).session() as s:
        views = manage.list_webhooks(s)
    if as_json:
        print_json([dataclasses.asdict(v) for v in views])
        return
    print_table(
        f"{len(views)} webhooks",
        ["id", "url", "events", "pending", "delivered", "dead", "created"],
        [[v.id, v.url, v.events, v.pending, v.delivered, v.dead, v.created_at] for v in views],
    )


@webhooks_group.command("remove")
@click.argument("webhook_id", metavar="ID", type=int)
@click.pass_context
@handle_errors
def webhooks_remove(ctx: click.Context, webhook_id: int) -> None:
    """Remove webhook ID, with what it had still to deliver and its delivery log."""
    with app(ctx).session() as s:
        view = manage.remove_webhook(s, webhook_id)
    click.echo(f"webhook {view.id} ({view.url}) removed")


@webhooks_group.command("deliveries")
@click.option("--webhook", "webhook_id", type=int, help="Only this webhook's.")
@click.option("--status", type=click.Choice(OUTBOX_STATUSES))
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@json_option
@click.pass_context
@handle_errors
def webhooks_deliveries(
    ctx: click.Context, webhook_id: int | None, status: str | None, limit: int, as_json: bool
) -> None:
    """The latest deliveries, newest first: event, state, tries, next try, last error.
    `callcenter webhooks log ID` shows every try of one."""
    with app(ctx).session() as s:
        views = manage.list_deliveries(s, webhook_id=webhook_id, status=status, limit=limit)
    if as_json:
        print_json([dataclasses.asdict(v) for v in views])
        return
    print_table(
        f"{len(views)} deliveries",
        [
            "id",
            "webhook",
            "event",
            "type",
            "status",
            "tries",
            "queued",
            "next try",
            "delivered",
            "last error",
        ],
        [
            [
                v.id,
                v.webhook_id,
                v.event_id,
                v.type,
                v.status,
                v.attempts,
                v.created_at,
                v.next_attempt_at,
                v.delivered_at,
                v.last_error or None,
            ]
            for v in views
        ],
    )


@webhooks_group.command("log")
@click.argument("delivery_id", metavar="DELIVERY", type=int)
@json_option
@click.pass_context
@handle_errors
def webhooks_log(ctx: click.Context, delivery_id: int, as_json: bool) -> None:
    """Every try of one delivery: when, the answer or the error, how long it took."""
    with app(ctx).session() as s:
        views = manage.delivery_log(s, delivery_id)
    if as_json:
        print_json([dataclasses.asdict(v) for v in views])
        return
    print_table(
        f"delivery {delivery_id}: {len(views)} tries",
        ["try", "at", "ok", "HTTP", "error", "ms"],
        [[v.attempt, v.at, v.ok, v.status_code, v.error or None, v.duration_ms] for v in views],
    )


@webhooks_group.command("retry")
@click.argument("webhook_id", metavar="ID", type=int)
@click.pass_context
@handle_errors
def webhooks_retry(ctx: click.Context, webhook_id: int) -> None:
    """Try webhook ID's given-up (dead) deliveries again, from now."""
    with app(ctx).session() as s:
        n = manage.retry_dead(s, webhook_id)
    click.echo(f"{n} deliveries of webhook {webhook_id} queued again")


@webhooks_group.command("run")
@log_level
@click.pass_context
@handle_errors
def webhooks_run(ctx: click.Context, log_level: str) -> None:
    """Deliver the outbox until SIGTERM or Ctrl-C (`callcenter run` does it too; several
    workers may run at once). Settings: [webhooks]."""
    from callcenter.webhooks.delivery import DeliveryWorker

    settings = app(ctx).settings
    service.setup_logging(log_level)
    service.run_until_signalled(DeliveryWorker(settings).run)
