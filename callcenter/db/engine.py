"""Engines, sessions and the database's own life cycle (create, migrate, status).

Every connection gets a connect timeout, so an unreachable database fails in seconds with
:class:`DatabaseUnavailable` instead of hanging a CLI command or a test.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from callcenter.config import DatabaseSettings, mask_url, sqlalchemy_url


class DatabaseUnavailable(RuntimeError):
    """The database cannot be reached or used; the message says where and why."""


def make_engine(db: DatabaseSettings, **kwargs: object) -> Engine:
    url = sqlalchemy_url(db.url)
    return sa.create_engine(
        url,
        connect_args={"connect_timeout": max(1, round(db.connect_timeout))},
        pool_pre_ping=True,
        **kwargs,
    )


def describe_error(db: DatabaseSettings, exc: BaseException) -> str:
    """One line that says which database could not be used and why."""
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    first = reason[0] if reason else type(exc).__name__
    return f"cannot use the database {mask_url(db.url)}: {first}"


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A transaction: committed when the block ends, rolled back (nothing written) on error."""
    factory = sessionmaker(engine, expire_on_commit=False)
    with factory() as session, session.begin():
        yield session


def ensure_database(db: DatabaseSettings) -> bool:
    """Create the database named in the URL if it does not exist. True when it was created.

    Connects to the server's ``postgres`` database for that; needs CREATEDB rights.
    """
    url = make_url(sqlalchemy_url(db.url))
    name = url.database
    if not name:
        raise DatabaseUnavailable(f"the database URL {mask_url(db.url)} names no database")
    admin = sa.create_engine(
        url.set(database="postgres"),
        isolation_level="AUTOCOMMIT",
        connect_args={"connect_timeout": max(1, round(db.connect_timeout))},
    )
    try:
        with admin.connect() as conn:
            exists = conn.scalar(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
            )
            if exists:
                return False
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))  # name comes from our own config
            return True
    except sa.exc.SQLAlchemyError as exc:
        raise DatabaseUnavailable(describe_error(db, exc)) from exc
    finally:
        admin.dispose()


def _alembic_config(engine: Engine) -> AlembicConfig:
    cfg = AlembicConfig()
    location = resources.files("callcenter.db") / "migrations"
    cfg.set_main_option("script_location", str(Path(str(location))))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate to ``revision``; running it again at head changes nothing."""
    command.upgrade(_alembic_config(engine), revision)


def downgrade(engine: Engine, revision: str) -> None:
    command.downgrade(_alembic_config(engine), revision)


@dataclass(frozen=True, slots=True)
class SchemaStatus:
    current: str | None
    head: str
    pending: tuple[str, ...]

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


def status(engine: Engine) -> SchemaStatus:
    script = ScriptDirectory.from_config(_alembic_config(engine))
    head = script.get_current_head()
    assert head is not None
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    pending = tuple(
        rev.revision
        for rev in reversed(list(script.iterate_revisions(head, current or "base")))
        if rev.revision != current
    )
    return SchemaStatus(current=current, head=head, pending=pending)
