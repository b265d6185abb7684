"""The driver's own statements on a SQLAlchemy connection, for the hot paths.

Building, keying and compiling a SQLAlchemy statement costs several times its execution
(the soak's profiles of the dialer, the webhooks worker and the IVR): where a statement runs
once per call or per attempt, we give psycopg the SQL text (``%s`` placeholders), built once,
on the connection of the caller's session or connection, in its transaction. psycopg
prepares it once it repeats.

Contracts of both functions: what a session has pending is written first (as its autoflush
would before a query); objects it holds are not refreshed (callers that hold one refresh it);
psycopg's errors are raised as SQLAlchemy raises them (:class:`sqlalchemy.exc.DBAPIError`
subclasses: the services' retry loops catch ``SQLAlchemyError``), and a connection found
broken is invalidated, not given back to the pool.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session


@contextmanager
def cursor(bind: Session | Connection) -> Iterator[psycopg.Cursor[Any]]:
    """A cursor of the driver's connection of ``bind``'s transaction, closed after use."""
    if isinstance(bind, Session):
        if bind.new or bind.dirty or bind.deleted:
            bind.flush()
        bind = bind.connection()
    dbapi = bind.connection.dbapi_connection
    assert dbapi is not None
    cur = cast(psycopg.Cursor[Any], dbapi.cursor())
    try:
        yield cur
    except psycopg.Error as exc:
        broken = bind.dialect.is_disconnect(cast(Any, exc), dbapi, cast(Any, cur))
        if broken:
            bind.invalidate(exc)
        raise sa.exc.DBAPIError.instance(
            None, None, exc, psycopg.Error, connection_invalidated=broken, dialect=bind.dialect
        ) from exc
    finally:
        cur.close()


def rows(bind: Session | Connection, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Run ``sql`` with ``params``; the rows it returns (none for a statement without a
    result)."""
    with cursor(bind) as cur:
        cur.execute(sql, params)
        return list(cur.fetchall()) if cur.description is not None else []
