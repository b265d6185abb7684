"""Queue visits (one row per ENTERQUEUE) and per-queue agent pauses

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 02:00:00.000000

Existing calls that reached a queue become their first visit. Pauses recorded before this
revision were agent-wide state spans, not per queue; they stay in agent_state_changes and
are not copied (a per-queue pause cannot be told from them).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

KPI = ["outcome", "answered_at", "wait_seconds", "talk_seconds", "hold_seconds", "wrapup_seconds"]
OUTCOMES = (
    "outcome IS NULL OR outcome IN ('answered','abandoned','timed_out','exit_key',"
    "'exit_empty','transferred','ivr_hangup','callback','lost')"
)
COPY = ", ".join(
    [
        "node", "uniqueid", "linkedid", "direction", "caller_number", "caller_name", "queue",
        "agent", "agent_channel", "queued_at", "answered_at", "ended_at", "wait_seconds",
        "talk_seconds", "hold_seconds", "wrapup_seconds", "ring_attempts", "original_position",
        "outcome", "exit_key",
    ]
)  # fmt: skip


def upgrade() -> None:
    op.create_table(
        "queue_visits",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("node", sa.String(length=64), nullable=False),
        sa.Column("uniqueid", sa.String(length=64), nullable=False),
        sa.Column("visit", sa.SmallInteger(), nullable=False),
        sa.Column("linkedid", sa.String(length=64), nullable=False),
        sa.Column("direction", sa.String(length=16), nullable=False),
        sa.Column("caller_number", sa.String(length=64), nullable=False),
        sa.Column("caller_name", sa.String(length=200), nullable=False),
        sa.Column("queue", sa.String(length=64), nullable=False),
        sa.Column("agent", sa.String(length=64), nullable=True),
        sa.Column("agent_channel", sa.String(length=128), nullable=True),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("wait_seconds", sa.Double(), nullable=True),
        sa.Column("talk_seconds", sa.Double(), nullable=True),
        sa.Column("hold_seconds", sa.Double(), nullable=True),
        sa.Column("wrapup_seconds", sa.Double(), nullable=True),
        sa.Column("ring_attempts", sa.SmallInteger(), nullable=False),
        sa.Column("original_position", sa.SmallInteger(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("exit_key", sa.String(length=4), nullable=True),
        sa.Column("transfer_target", sa.String(length=200), nullable=True),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(OUTCOMES, name=op.f("ck_queue_visits_outcome_known")),
        sa.CheckConstraint("visit >= 1", name=op.f("ck_queue_visits_visit_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_queue_visits")),
        sa.UniqueConstraint(
            "node", "uniqueid", "visit", name=op.f("uq_queue_visits_node_uniqueid_visit")
        ),
    )  # fmt: skip
    op.create_index(
        "ix_queue_visits_queue_queued", "queue_visits", ["queue", "queued_at"],
        postgresql_include=KPI,
    )  # fmt: skip
    op.create_index(
        "ix_queue_visits_queued", "queue_visits", ["queued_at"],
        postgresql_include=["queue", *KPI],
    )  # fmt: skip
    op.create_index(
        "ix_queue_visits_agent_answered", "queue_visits", ["agent", "answered_at"],
        postgresql_include=["talk_seconds", "hold_seconds", "wrapup_seconds", "queue"],
    )  # fmt: skip
    op.create_index(
        "ix_queue_visits_answered", "queue_visits", ["answered_at"],
        postgresql_include=["agent", "talk_seconds", "hold_seconds", "wrapup_seconds"],
    )  # fmt: skip
    op.execute(
        f"INSERT INTO queue_visits (visit, {COPY}) SELECT 1, {COPY} FROM calls "
        "WHERE queue IS NOT NULL"
    )
    op.create_table(
        "agent_pauses",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("node", sa.String(length=64), nullable=False),
        sa.Column("agent", sa.String(length=64), nullable=False),
        sa.Column("queue", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "ended_at IS NULL OR ended_at >= started_at",
            name=op.f("ck_agent_pauses_span_ordered"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_pauses")),
        sa.UniqueConstraint(
            "node", "agent", "queue", "started_at",
            name=op.f("uq_agent_pauses_node_agent_queue_started_at"),
        ),
    )  # fmt: skip
    op.create_index(
        "ix_agent_pauses_open", "agent_pauses", ["node", "agent", "queue"], unique=True,
        postgresql_where=sa.text("ended_at IS NULL"),
    )  # fmt: skip
    op.create_index(
        "ix_agent_pauses_agent_started", "agent_pauses", ["agent", "started_at"],
        postgresql_include=["queue", "reason", "ended_at"],
    )  # fmt: skip
    op.create_index(
        "ix_agent_pauses_ended", "agent_pauses", ["ended_at"],
        postgresql_include=["agent", "queue", "reason", "started_at"],
    )  # fmt: skip


def downgrade() -> None:
    op.drop_table("agent_pauses")
    op.drop_table("queue_visits")
