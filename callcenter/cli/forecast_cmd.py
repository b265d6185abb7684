"""``callcenter forecast``: the calls to expect per half hour and the agents needed."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math

import click

from callcenter import directory
from callcenter.cli.context import app, handle_errors, json_option, print_json, print_table
from callcenter.planning import erlang
from callcenter.planning.store import plan


@click.command("forecast")
@click.option("--queue", required=True, help="The queue.")
@click.option("--from", "start", default=None, help="First day, YYYY-MM-DD (default tomorrow).")
@click.option("--days", type=click.IntRange(1, 28), default=7, show_default=True)
@click.option("--weeks", type=click.IntRange(2, 104), default=8, show_default=True,
              help="Weeks of history it learns from.")  # fmt: skip
@click.option("--service-level", type=click.FloatRange(0.01, 0.99), default=0.8,
              show_default=True, help="The share of calls to answer within the queue's "
              "service-level threshold.")  # fmt: skip
@json_option
@click.pass_context
@handle_errors
def forecast(ctx: click.Context, queue: str, start: str | None, days: int, weeks: int,
             service_level: float, as_json: bool) -> None:  # fmt: skip
    """Forecast QUEUE's calls per half hour (the same half hours of the last WEEKS weeks,
    with their trend) and the agents needed for its service level, by Erlang C and by
    Erlang A (callers' patience from the call log's abandons)."""
    obj = app(ctx)
    tz = obj.settings.site.tz
    try:
        first = (dt.date.fromisoformat(start) if start
                 else dt.datetime.now(tz).date() + dt.timedelta(days=1))  # fmt: skip
    except ValueError:
        raise click.BadParameter(
            f"{start!r} is not a date (YYYY-MM-DD)", param_hint="--from"
        ) from None
    with obj.session() as s:
        q = directory.get_queue(s, queue)
        try:
            result = plan(s, queue, first, days, tz=tz, weeks=weeks,
                          target_seconds=q.service_level_seconds,
                          service_level=service_level)  # fmt: skip
        except erlang.PlanningError as exc:
            raise directory.DirectoryError(str(exc)) from None
    view = dataclasses.asdict(result)
    view["start"] = result.start.isoformat()
    view["patience"] = None if math.isinf(result.patience) else round(result.patience, 1)
    if as_json:
        print_json(view)
        return
    click.echo(
        f"queue {queue}: AHT {result.aht:.0f} s, patience "
        f"{'none observed' if view['patience'] is None else str(view['patience']) + ' s'}, "
        f"growth {result.growth_per_week:+.1%}/week; backtest WAPE "
        f"{_pct(result.backtest.get('wape'))} (seasonal naive "
        f"{_pct(result.backtest.get('seasonal_naive_wape'))}), MAPE "
        f"{_pct(result.backtest.get('mape'))} (seasonal naive "
        f"{_pct(result.backtest.get('seasonal_naive_mape'))})"
    )
    rows = [[r["start"], f"{r['calls']:.1f}", str(r["agents_erlang_c"]), str(r["agents_erlang_a"])]
            for r in result.slots if r["calls"] > 0]  # fmt: skip
    print_table(
        f"{queue} from {result.start.isoformat()}",
        ["half hour", "calls", "agents (Erlang C)", "agents (Erlang A)"],
        rows,
    )


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"
