"""``callcenter doctor``: what is wrong, and how to fix it."""

from __future__ import annotations

import asyncio
import dataclasses

import click

from callcenter import doctor as checks
from callcenter.cli.context import app, handle_errors, json_option, print_json, print_table


@click.command("doctor")
@json_option
@click.pass_context
@handle_errors
def doctor(ctx: click.Context, as_json: bool) -> None:
    """Check the database, the broker, each AMI node, the FastAGI port and the rendered
    Asterisk configuration. Exits 1 when any check fails."""
    results = asyncio.run(checks.run_checks(app(ctx).settings))
    if as_json:
        print_json([dataclasses.asdict(r) for r in results])
    else:
        print_table(
            "callcenter doctor",
            ["check", "status", "detail", "fix"],
            [[r.name, r.status.value, r.detail, r.fix] for r in results],
        )
    failed = [r.name for r in results if r.status is checks.Status.FAIL]
    if failed:
        raise click.ClickException(f"{len(failed)} check(s) failed: {', '.join(failed)}")
