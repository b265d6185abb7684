"""callcenter.db.driver: the hot paths' own statements behave as SQLAlchemy's did towards
their callers (errors, pending objects, broken connections)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from callcenter.campaigns import scheduling
from callcenter.db import driver
from callcenter.db.models import Queue


def test_a_statement_error_is_sqlalchemys(clean_db: Engine) -> None:
    """The dialer's writer retries on SQLAlchemy's errors only: a psycopg error escaping it
    would end the writer's task (and with it the dialer)."""
    with Session(clean_db) as s, s.begin():
        with pytest.raises(sa.exc.DataError):
            # hangup_cause is a smallint
            scheduling.update_attempt(s, "dialer-x", hangup_cause=10**9)
        s.rollback()
    with Session(clean_db) as s, s.begin(), pytest.raises(sa.exc.ProgrammingError):
        driver.rows(s, "SELECT no_such_column FROM queues")


def test_pending_objects_are_written_first(clean_db: Engine) -> None:
    with Session(clean_db) as s, s.begin():
        s.add(Queue(name="sales"))
        assert driver.rows(s, "SELECT name FROM queues") == [("sales",)]
        assert driver.rows(s, "UPDATE queues SET weight = 1") == []  # no result: no rows


def test_a_connection_killed_under_it_is_invalidated(clean_db: Engine) -> None:
    with Session(clean_db) as s, s.begin():
        (pid,) = driver.rows(s, "SELECT pg_backend_pid()")[0]
        with clean_db.connect() as other:
            other.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        with pytest.raises(sa.exc.OperationalError) as raised:
            driver.rows(s, "SELECT 1")
        assert raised.value.connection_invalidated
        s.rollback()
    # The pool gives a working connection next.
    with Session(clean_db) as s:
        assert driver.rows(s, "SELECT 1") == [(1,)]
