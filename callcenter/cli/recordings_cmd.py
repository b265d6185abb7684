"""``callcenter recordings``: call recordings (list, show, legal hold, purge).

Which calls are recorded is set per queue and per campaign (``queues update Q --record all``);
the files are in ``[recording] dir`` (docs/recordings.md). A purge deletes files and keeps the
rows (state purged): who was recorded and who listened outlive the audio.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import click

from callcenter import names, timespec
from callcenter.cli.context import (
    app,
    handle_errors,
    json_option,
    print_json,
    print_record,
    print_table,
)
from callcenter.db.models_quality import RECORDING_STATES
from callcenter.recordings import paths, retention, store

P = ParamSpec("P")
R = TypeVar("R")


def _errors(fn: Callable[P, R]) -> Callable[P, R]:
    """The recordings' own errors as click's one-line ``Error:`` (exit 1)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except (store.RecordingError, retention.RetentionError) as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper


def _seconds(ms: int | None) -> str:
    if ms is None:
        return "-"
    s = ms // 1000
    return f"{s // 60}:{s % 60:02d}"


@click.group("recordings")
def recordings() -> None:
    """List and show call recordings, put them on legal hold, purge old ones."""


@recordings.command("list")
@click.option("--agent", help="Only this agent's recordings.")
@click.option("--queue", help="Only this queue's.")
@click.option("--since", help="Started at or after (today, -7d, 2026-11-22...).")
@click.option("--until", help="Started before.")
@click.option("--state", type=click.Choice(RECORDING_STATES), help="Only in this state.")
@click.option("--limit", type=click.IntRange(1, store.MAX_LIMIT), default=50, show_default=True)
@json_option
@click.pass_context
@handle_errors
@_errors
def list_(
    ctx: click.Context,
    agent: str | None,
    queue: str | None,
    since: str | None,
    until: str | None,
    state: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Recordings, newest first."""
    a = app(ctx)
    tz = a.settings.site.tz
    filters = store.Filters(
        agent=names.normalize(agent) if agent else None,
        queue=queue,
        since=timespec.parse_time(since, tz) if since else None,
        until=timespec.parse_time(until, tz) if until else None,
        state=state,
    )
    now = dt.datetime.now(dt.UTC)
    with a.session() as s:
        rows, _ = store.page(s, filters, limit=limit)
        views = [store.view(r, now) for r in rows]
    if as_json:
        print_json(views)
        return
    print_table(
        f"{len(views)} recordings",
        ["id", "started", "agent", "queue", "campaign", "length", "muted", "reason", "state",
         "hold"],
        [
            [v["id"], v["started_at"].astimezone(tz), v["agent"], v["queue"], v["campaign"],
             _seconds(v["duration_ms"]), _seconds(v["muted_ms"]) if v["mutes"] else "-",
             v["reason"], v["state"], v["legal_hold"]]
            for v in views
        ],
    )  # fmt: skip


@recordings.command("show")
@click.argument("recording_id", type=int)
@json_option
@click.pass_context
@handle_errors
@_errors
def show(ctx: click.Context, recording_id: int, as_json: bool) -> None:
    """One recording: its call, agent, file, length, muted time, hold, and who listened."""
    a = app(ctx)
    now = dt.datetime.now(dt.UTC)
    with a.session() as s:
        view = store.view(store.get(s, recording_id), now)
        heard = [store.listen_view(x) for x in store.listens(s, recording_id)]
    view["file"] = str(paths.root(a.settings) / view["path"])
    view["listens"] = heard
    if as_json:
        print_json(view)
        return
    record = {k: v for k, v in view.items() if k != "listens"}
    record["duration"] = _seconds(view["duration_ms"])
    record["listens"] = [f"{x['at']:%Y-%m-%d %H:%M} {x['user']} {x['action']}" for x in heard]
    print_record(f"recording {recording_id}", record)


@recordings.command("hold")
@click.argument("recording_id", type=int)
@click.option("--reason", default="", help="Why it is kept (the case, claim or request).")
@click.option("--release", is_flag=True, help="Take it off legal hold instead.")
@json_option
@click.pass_context
@handle_errors
@_errors
def hold(ctx: click.Context, recording_id: int, reason: str, release: bool, as_json: bool) -> None:
    """Put a recording on legal hold (no purge deletes it), or --release it."""
    with app(ctx).session() as s:
        rec = store.release(s, recording_id) if release else store.hold(s, recording_id, reason)
        view = store.view(rec)
    if as_json:
        print_json(view)
    elif release:
        click.echo(f"recording {recording_id} released from legal hold")
    else:
        click.echo(f"recording {recording_id} on legal hold: {view['hold_reason']}")


@recordings.command("purge")
@click.option(
    "--older-than",
    "older_than",
    required=True,
    help="Delete the files of recordings started longer ago than this: 90d, 2w, 12h.",
)
@click.option("--dry-run", is_flag=True, help="Only count what would be deleted.")
@json_option
@click.pass_context
@handle_errors
@_errors
def purge(ctx: click.Context, older_than: str, dry_run: bool, as_json: bool) -> None:
    """Delete old recordings' files (those on legal hold are kept); their rows stay, purged."""
    a = app(ctx)
    age = retention.parse_age(older_than)
    now = dt.datetime.now(dt.UTC)
    report = retention.purge(a.engine, paths.root(a.settings), now - age, dry_run=dry_run, now=now)
    if as_json:
        print_json(report.as_dict())
        return
    verb = "would purge" if dry_run else "purged"
    click.echo(
        f"{verb} {report.recordings} recordings started before "
        f"{report.cutoff.astimezone(a.settings.site.tz):%Y-%m-%d %H:%M}: {report.files} files, "
        f"{report.bytes / 1e6:.1f} MB ({report.absent} without a file); "
        f"{report.held} kept on legal hold"
    )
