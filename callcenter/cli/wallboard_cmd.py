"""``callcenter wallboard`` (the supervisors' board) and ``callcenter users`` (who may log in
to it, and the read-only tokens of its screens)."""

from __future__ import annotations

import dataclasses

import click

from callcenter import service
from callcenter.cli.context import app, handle_errors, json_option, print_json, print_table
from callcenter.db.models_wallboard import ROLES
from callcenter.monitoring import store as monitoring_store
from callcenter.monitoring.rules import check_phone
from callcenter.wallboard import accounts

log_level = click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)


@click.command("wallboard")
@log_level
@click.pass_context
@handle_errors
def wallboard(ctx: click.Context, log_level: str) -> None:
    """Serve the wallboard (wallboard.host:port): live queues and agents from the bridge's
    MQTT topics, today's figures from the call log. Stops cleanly on SIGTERM / Ctrl-C."""
    from callcenter.wallboard.app import Wallboard

    settings = app(ctx).settings
    service.setup_logging(log_level)
    board = Wallboard(settings)
    service.run_until_signalled(board.run)


@click.group("users")
def users() -> None:
    """Supervisors who log in to the wallboard, and tokens for its screens."""


phone_option = click.option(
    "--phone",
    metavar="ENDPOINT",
    help="The user's own phone, a PJSIP endpoint (e.g. 2001): live monitoring (Listen, "
    "Whisper, Barge on the board) rings it.",
)


def phone_note(ctx: click.Context, phone: str | None) -> None:
    """Say so when the private Asterisk has no endpoint of that name (its pjsip.conf holds the
    agents' phones only): the Originate would fail there."""
    if not phone:
        return
    with app(ctx).session() as s:
        known = monitoring_store.endpoint_known(s, phone)
    if not known:
        click.echo(
            f"Note: no enabled agent has extension {phone}, so the private Asterisk has no "
            f"endpoint {phone}: give the phone an agent entry in no queue (callcenter agents "
            f"add NAME -e {phone} --pin PIN, then callcenter asterisk reload), or configure "
            "the endpoint on your Asterisk node",
            err=True,
        )


@users.command("add")
@click.argument("name")
@click.option("--password", help="The password (at least 10 characters); asked for if not given.")
@click.option("--role", type=click.Choice(ROLES), default="supervisor", show_default=True)
@phone_option
@json_option
@click.pass_context
@handle_errors
def add(ctx: click.Context, name: str, password: str | None, role: str, phone: str | None,
        as_json: bool) -> None:  # fmt: skip
    """Add supervisor NAME. Prefer the prompt to --password (it stays out of shell history)."""
    name = accounts.check_user_name(name)  # before asking for a password
    if phone is not None:
        phone = check_phone(phone)
    if password is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    with app(ctx).session() as s:
        view = accounts.add_user(s, name, password, role, phone)
    if as_json:
        print_json(dataclasses.asdict(view))
    else:
        click.echo(f"user {view.name} added ({role})" + (f", phone {phone}" if phone else ""))
    phone_note(ctx, phone)


@users.command("update")
@click.argument("name")
@phone_option
@click.option("--no-phone", is_flag=True, help="Take the user's phone away.")
@json_option
@click.pass_context
@handle_errors
def update(ctx: click.Context, name: str, phone: str | None, no_phone: bool, as_json: bool
           ) -> None:  # fmt: skip
    """Change supervisor NAME's phone (the board shows the monitoring buttons within seconds)."""
    if (phone is None) == (not no_phone):
        raise click.UsageError("give --phone ENDPOINT or --no-phone")
    with app(ctx).session() as s:
        view = accounts.set_user_phone(s, name, None if no_phone else phone)
    if as_json:
        print_json(dataclasses.asdict(view))
    else:
        click.echo(f"user {view.name}: " + (f"phone {view.phone}" if view.phone else "no phone"))
    phone_note(ctx, view.phone)


@users.command("list")
@json_option
@click.pass_context
@handle_errors
def list_(ctx: click.Context, as_json: bool) -> None:
    """List the supervisors."""
    with app(ctx).session() as s:
        views = accounts.list_users(s)
    if as_json:
        print_json([dataclasses.asdict(v) for v in views])
        return
    print_table(f"{len(views)} users", ["name", "role", "phone", "created"],
                [[v.name, v.role, v.phone, v.created_at] for v in views])  # fmt: skip


@users.command("remove")
@click.argument("name")
@click.pass_context
@handle_errors
def remove(ctx: click.Context, name: str) -> None:
    """Remove supervisor NAME; their sessions end within seconds."""
    with app(ctx).session() as s:
        accounts.remove_user(s, name)
    click.echo(f"user {name} removed")


@users.group("token")
def token() -> None:
    """Read-only tokens for screens: open http://HOST:PORT/tv?token=TOKEN once on the screen."""


@token.command("add")
@click.argument("label")
@json_option
@click.pass_context
@handle_errors
def token_add(ctx: click.Context, label: str, as_json: bool) -> None:
    """Create a token for screen LABEL and print it: it is shown this once, never again."""
    with app(ctx).session() as s:
        view, secret = accounts.add_token(s, label)
    if as_json:
        print_json({**dataclasses.asdict(view), "token": secret})
        return
    click.echo(secret)
    click.echo(f"token for {label!r} created: keep it now, it cannot be shown again", err=True)


@token.command("list")
@json_option
@click.pass_context
@handle_errors
def token_list(ctx: click.Context, as_json: bool) -> None:
    """List the tokens (never the tokens themselves: only their labels)."""
    with app(ctx).session() as s:
        views = accounts.list_tokens(s)
    if as_json:
        print_json([dataclasses.asdict(v) for v in views])
        return
    print_table(f"{len(views)} tokens", ["id", "label", "created", "revoked"],
                [[v.id, v.label, v.created_at, v.revoked] for v in views])  # fmt: skip


@token.command("revoke")
@click.argument("label")
@click.pass_context
@handle_errors
def token_revoke(ctx: click.Context, label: str) -> None:
    """Revoke the active token of screen LABEL; the screen's session ends within seconds."""
    with app(ctx).session() as s:
        accounts.revoke_token(s, label)
    click.echo(f"token {label!r} revoked")
