"""``callcenter agi``, ``agi-stdio``, ``ivr check`` and ``callbacks``: the IVR service."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from pathlib import Path

import click

from callcenter import service
from callcenter.cli.context import app, handle_errors, json_option, print_json, print_table

log_level = click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)


@click.command("agi")
@log_level
@click.pass_context
@handle_errors
def agi(ctx: click.Context, log_level: str) -> None:
    """Run the IVR service: the FastAGI server that dialplans reach with
    AGI(agi://host:port/<script>), plus queue callbacks and screen-pops. Stops cleanly on
    SIGTERM / Ctrl-C."""
    from callcenter.agi.app import AgiService

    settings = app(ctx).settings
    service.setup_logging(log_level)
    agi_service = AgiService(settings)
    service.run_until_signalled(agi_service.run)


@click.command(
    "agi-stdio", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False}
)
@click.argument("script")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="warning",
    show_default=True,
)
@click.pass_context
@handle_errors
def agi_stdio(ctx: click.Context, script: str, args: tuple[str, ...], log_level: str) -> None:
    """Run one AGI SCRIPT over stdin/stdout, for Asterisk's process-per-call AGI:
    AGI(/path/to/callcenter,agi-stdio,<script>,<args>). Logs go to stderr."""
    from callcenter.agi.app import run_stdio
    from callcenter.agi.stdio import stdio_streams

    settings = app(ctx).settings
    service.setup_logging(log_level)
    stdin, stdout = stdio_streams()
    code = asyncio.run(run_stdio(settings, script, list(args), stdin, stdout))
    ctx.exit(code)


@click.group("ivr")
def ivr_group() -> None:
    """The IVR definitions of the settings ([ivr.<name>] tables)."""


@ivr_group.command("check")
@click.option(
    "--sounds-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where Asterisk's sounds are (default: [agi] sounds_dir, else Asterisk's own).",
)
@click.option("--no-sounds", is_flag=True, help="Do not look for the prompts' sound files.")
@json_option
@click.pass_context
@handle_errors
def ivr_check(ctx: click.Context, sounds_dir: Path | None, no_sounds: bool, as_json: bool) -> None:
    """Check every IVR: nodes, loops, targets, hours and prompt files. Exits 1, naming the IVR
    and node, on the first problem."""
    from callcenter.agi.app import raw_ivrs
    from callcenter.agi.ivr import load_ivrs
    from callcenter.agi.options import AgiOptions
    from callcenter.agi.options import sounds_dir as default_sounds

    settings = app(ctx).settings
    where = (
        None
        if no_sounds
        else (sounds_dir or default_sounds(settings, AgiOptions.from_settings(settings)))
    )
    ivrs = load_ivrs(raw_ivrs(settings), settings.site.tz, sounds_dir=where)
    now = dt.datetime.now(dt.UTC)
    rows = []
    for ivr in ivrs.values():
        rows.append(
            {
                "ivr": ivr.name,
                "nodes": len(ivr.nodes),
                "languages": ivr.languages,
                "dids": list(ivr.dids),
                "open_now": ivr.hours.is_open(now) if ivr.hours else True,
                "survey": [q.name for q in ivr.survey.questions] if ivr.survey else [],
                "unreachable": ivr.unreachable(),
            }
        )
    if as_json:
        print_json({"sounds_dir": str(where) if where else None, "ivrs": rows})
        return
    if not rows:
        click.echo("no IVR is configured (add [ivr.<name>] tables to the settings)")
        return
    print_table(
        f"IVRs (prompts checked in {where})" if where else "IVRs (prompts not checked)",
        ["ivr", "nodes", "languages", "dids", "open now", "survey", "unreachable nodes"],
        [list(r.values()) for r in rows],
    )


@click.group("callbacks")
def callbacks_group() -> None:
    """Queue callbacks: callers waiting to be called back."""


@callbacks_group.command("list")
@click.option("--all", "show_all", is_flag=True, help="Also connected, failed and cancelled.")
@json_option
@click.pass_context
@handle_errors
def callbacks_list(ctx: click.Context, show_all: bool, as_json: bool) -> None:
    """List open callbacks (pending, dialing), oldest first."""
    from callcenter.agi import callback_store
    from callcenter.db.models_ivr import CALLBACK_OPEN, CALLBACK_STATUSES

    statuses = CALLBACK_STATUSES if show_all else CALLBACK_OPEN
    rows = callback_store.listing(app(ctx).engine, statuses)
    if as_json:
        print_json(rows)
        return
    columns = ["id", "queue", "number", "status", "attempts", "requested_at", "agent", "error"]
    print_table("callbacks", columns, [[r[c] for c in columns] for r in rows])


@callbacks_group.command("cancel")
@click.argument("callback_id", type=int)
@click.pass_context
@handle_errors
def callbacks_cancel(ctx: click.Context, callback_id: int) -> None:
    """Cancel an open callback; the IVR service hangs its placeholder up (within seconds)."""
    from callcenter.agi import callback_store

    done = callback_store.update(
        app(ctx).engine,
        callback_id,
        status="cancelled",
        completed_at=dt.datetime.now(dt.UTC),
        error="cancelled by an operator",
    )
    if not done:
        raise click.ClickException(f"no open callback with id {callback_id}")
    click.echo(f"callback {callback_id} cancelled")


logging.getLogger("asterisk").setLevel(logging.WARNING)
