"""``callcenter db``: create and migrate the call log database."""

from __future__ import annotations

import click

from callcenter.cli.context import app, handle_errors, json_option, print_json
from callcenter.db import engine as db


@click.group("db")
def db_group() -> None:
    """Create, migrate and inspect the call log database."""


@db_group.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@click.pass_context
@handle_errors
def upgrade(ctx: click.Context, revision: str) -> None:
    """Create the database if missing and migrate it; running it again changes nothing."""
    a = app(ctx)
    created = db.ensure_database(a.settings.database)
    try:
        db.upgrade(a.engine, revision)
        st = db.status(a.engine)
    except Exception as exc:
        if isinstance(exc, click.ClickException):
            raise
        raise db.DatabaseUnavailable(db.describe_error(a.settings.database, exc)) from exc
    verb = "created and migrated" if created else "migrated"
    click.echo(f"database {a.settings.database.display_url()} {verb}: at revision {st.current}")


@db_group.command("downgrade")
@click.argument("revision")
@click.pass_context
@handle_errors
def downgrade(ctx: click.Context, revision: str) -> None:
    """Migrate down to REVISION ('base' drops every table)."""
    a = app(ctx)
    db.downgrade(a.engine, revision)
    click.echo(f"database at revision {db.status(a.engine).current or 'base'}")


@db_group.command("status")
@json_option
@click.pass_context
@handle_errors
def status(ctx: click.Context, as_json: bool) -> None:
    """Say which migration the database is at and what is pending."""
    a = app(ctx)
    st = db.status(a.engine)
    if as_json:
        print_json(
            {
                "database": a.settings.database.display_url(),
                "current": st.current,
                "head": st.head,
                "pending": list(st.pending),
                "up_to_date": st.up_to_date,
            }
        )
        return
    click.echo(f"database: {a.settings.database.display_url()}")
    click.echo(f"revision: {st.current or 'none (empty database)'} (head {st.head})")
    if st.pending:
        click.echo(f"pending:  {', '.join(st.pending)}: run `callcenter db upgrade`")
    else:
        click.echo("up to date")
