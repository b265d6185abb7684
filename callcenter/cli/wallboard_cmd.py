"""``callcenter wallboard`` (the supervisors' board) and ``callcenter users`` (who may log in
to it, and the read-only tokens of its screens)."""

from __future__ import annotations

import dataclasses

import click

from callcenter import service
from callcenter.cli.context import app, handle_errors, json_option, print_json, print_table
from callcenter.db.models_wallboard import ROLES
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


@users.command("add")
@click.argument("name")
@click.option("--password", help="The password (at least 10 characters); asked for if not given.")
@click.option("--role", type=click.Choice(ROLES), default="supervisor", show_default=True)
@json_option
@click.pass_context
@handle_errors
def add(ctx: click.Context, name: str, password: str | None, role: str, as_json: bool) -> None:
    """Add supervisor NAME. Prefer the prompt to --password (it stays out of shell history)."""
    name = accounts.check_user_name(name)  # before asking for a password
    if password is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    with app(ctx).session() as s:
        view = accounts.add_user(s, name, password, role)
    if as_json:
        print_json(dataclasses.asdict(view))
    else:
        click.echo(f"user {view.name} added ({role})")


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
    print_table(f"{len(views)} users", ["name", "role", "created"],
                [[v.name, v.role, v.created_at] for v in views])  # fmt: skip


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
