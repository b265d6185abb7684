"""What every command shares: the settings, the database, output, and error reporting.

Exit codes: 0 success; 1 an error, reported as one line ``Error: <reason>``; 2 wrong usage
(click's own: unknown option, missing argument, a value click itself cannot convert).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

import click
import sqlalchemy as sa
from rich.console import Console
from rich.table import Table
from rich.text import Text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from callcenter import config, service
from callcenter.db import engine as db
from callcenter.directory import DirectoryError
from callcenter.timespec import TimeSpecError

P = ParamSpec("P")
R = TypeVar("R")


class AppContext:
    """Lazily loaded settings and engine, so ``--help`` and ``config example`` need neither."""

    def __init__(self, config_path: str | None) -> None:
        self.config_path = config_path
        self._settings: config.Settings | None = None
        self._engine: Engine | None = None

    @property
    def settings(self) -> config.Settings:
        if self._settings is None:
            self._settings = config.load(self.config_path)
        return self._settings

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = db.make_engine(self.settings.database)
        return self._engine

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction; on any error it is rolled back, so nothing is written."""
        try:
            with db.session_scope(self.engine) as session:
                yield session
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
            raise click.ClickException(db.describe_error(self.settings.database, exc)) from exc

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()


def app(ctx: click.Context) -> AppContext:
    obj = ctx.find_object(AppContext)
    assert obj is not None, "the root group sets the AppContext"
    return obj


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn the project's own errors into click's one-line ``Error:`` and exit 1."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except (
            config.ConfigError,
            DirectoryError,
            TimeSpecError,
            db.DatabaseUnavailable,
            service.PartFailed,
        ) as exc:
            raise click.ClickException(str(exc)) from exc
        except sa.exc.IntegrityError as exc:
            detail = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            raise click.ClickException(f"the database refused the change: {detail}") from exc
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
            obj = click.get_current_context().find_object(AppContext)
            where = obj.settings.database if obj else config.DatabaseSettings()
            raise click.ClickException(db.describe_error(where, exc)) from exc

    return wrapper


# --- output ------------------------------------------------------------------------------

json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print JSON for scripts instead of a table."
)


def _default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return str(value)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, default=_default, indent=2, sort_keys=False))


def console() -> Console:
    # Wide enough for tables when stdout is not a terminal (pipes, click's test runner).
    return Console(width=None if sys.stdout.isatty() else 160, highlight=False)


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.1f}"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) or "-"
    if isinstance(value, dict):
        return ", ".join(f"{k}:{v}" for k, v in value.items()) or "-"
    return str(value)


# Cells are Text, not markup: "[nodes.*]" in a doctor's fix or "[bold]" in a caller's name
# would otherwise be read as rich markup and vanish from the table.


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    table = Table(title=Text(title), title_justify="left")
    for col in columns:
        table.add_column(Text(col))
    for row in rows:
        table.add_row(*(Text(fmt(v)) for v in row))
    console().print(table)


def print_record(title: str, record: dict[str, Any]) -> None:
    table = Table(title=Text(title), title_justify="left", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for key, value in record.items():
        table.add_row(Text(key), Text(fmt(value)))
    console().print(table)
