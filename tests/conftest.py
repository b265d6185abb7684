"""Shared fixtures: a real PostgreSQL database of the test run's own, and the CLI against it.

Each pytest run creates a database named ``cc_test_<random>`` on the server of
``CALLCENTER_TEST_PG`` (default: the local PostgreSQL as ``postgres``), migrates it, and drops
it at the end, so runs never share state and a developer's own ``callcenter`` database is
never touched.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from sqlalchemy.engine import Engine

from callcenter import config
from callcenter.cli.main import cli
from callcenter.db import engine as db
from callcenter.db.models import Base
from tests.browser import browser  # noqa: F401 - the fixture, for every browser test

SERVER = os.environ.get("CALLCENTER_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")


def _admin() -> Engine:
    return sa.create_engine(
        f"{SERVER}/postgres", isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5}
    )


def create_database() -> str:
    name = f"cc_test_{secrets.token_hex(4)}"
    admin = _admin()
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        pytest.exit(f"tests need PostgreSQL at {SERVER}: {exc.orig}", returncode=1)
    finally:
        admin.dispose()
    return f"{SERVER}/{name}"


def drop_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    admin = _admin()
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    url = create_database()
    engine = db.make_engine(config.DatabaseSettings(url=url))
    db.upgrade(engine)
    engine.dispose()
    yield url
    drop_database(url)


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    eng = db.make_engine(config.DatabaseSettings(url=database_url))
    yield eng
    eng.dispose()


def truncate_all(engine: Engine) -> None:
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(sa.text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture
def clean_db(engine: Engine) -> Engine:
    truncate_all(engine)
    return engine


@pytest.fixture
def settings(database_url: str) -> config.Settings:
    # No settings file: a developer's callcenter.toml must not leak into the tests.
    return config.load(environ={"CALLCENTER_DATABASE__URL": database_url, "CALLCENTER_CONFIG": ""})


def count(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(sa.text(f"SELECT count(*) FROM {table}")) or 0)


class Cli:
    """Runs ``callcenter`` in-process against the test database."""

    def __init__(self, database_url: str) -> None:
        self.env = {"CALLCENTER_DATABASE__URL": database_url, "CALLCENTER_CONFIG": ""}
        self.runner = CliRunner()

    def __call__(self, *args: str, env: dict[str, str] | None = None, **kw: Any) -> Result:
        return self.runner.invoke(cli, list(args), env={**self.env, **(env or {})}, **kw)

    def ok(self, *args: str) -> Result:
        result = self(*args)
        assert result.exit_code == 0, (args, result.output, result.exception)
        return result


@pytest.fixture
def run_cli(database_url: str, clean_db: Engine) -> Cli:
    return Cli(database_url)
