"""Migrations on a real, empty PostgreSQL database: up, idempotent, down, and in step with
the models."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Engine

from callcenter import config
from callcenter.db import engine as db
from callcenter.db.models import Base
from tests.conftest import create_database, drop_database

TABLES = {
    "agents",
    "queues",
    "queue_members",
    "agent_sessions",
    "agent_state_changes",
    "calls",
    "queue_visits",
    "agent_pauses",
    "call_events",
    "queue_log",
    "callbacks",
    "survey_answers",
    "campaign_attempts",
    "campaign_leases",
    "users",
    "tv_tokens",
    "campaigns",
    "contacts",
    "do_not_call",
    "customers",
    "customer_phones",
    "disposition_codes",
    "call_dispositions",
    "case_categories",
    "cases",
    "case_events",
    "api_tokens",
    "webhooks",
    "webhook_events",
    "webhook_outbox",
    "webhook_delivery_log",
    "recordings",
    "recording_listens",
    "monitor_sessions",
    "qa_forms",
    "qa_questions",
    "qa_evaluations",
    "qa_answers",
    "revoked_sessions",
    "sip_blocks",
}


@pytest.fixture
def empty_engine() -> Iterator[Engine]:
    url = create_database()
    engine = db.make_engine(config.DatabaseSettings(url=url))
    yield engine
    engine.dispose()
    drop_database(url)


def tables(engine: Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names()) - {"alembic_version"}


def test_up_idempotent_down_up(empty_engine: Engine) -> None:
    assert db.status(empty_engine).current is None
    assert db.status(empty_engine).pending
    db.upgrade(empty_engine)
    assert tables(empty_engine) == TABLES
    st = db.status(empty_engine)
    assert st.up_to_date
    assert not st.pending
    db.upgrade(empty_engine)  # again: nothing to do, nothing breaks
    assert db.status(empty_engine).up_to_date
    db.downgrade(empty_engine, "base")
    assert tables(empty_engine) == set()
    assert db.status(empty_engine).current is None
    db.upgrade(empty_engine)
    assert tables(empty_engine) == TABLES


def test_models_match_migrations(engine: Engine) -> None:
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_report_indexes_exist(engine: Engine) -> None:
    names = {ix["name"] for ix in sa.inspect(engine).get_indexes("queue_visits")}
    assert {"ix_queue_visits_queue_queued", "ix_queue_visits_agent_answered"} <= names
