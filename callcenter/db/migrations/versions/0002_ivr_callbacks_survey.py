"""IVR: queue callbacks and post-call survey answers

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "callbacks",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("node", sa.String(length=64), nullable=False),
        sa.Column("queue", sa.String(length=64), nullable=False),
        sa.Column("number", sa.String(length=64), nullable=False),
        sa.Column("caller_uniqueid", sa.String(length=64), nullable=False),
        sa.Column("caller_number", sa.String(length=64), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("priority", sa.SmallInteger(), nullable=False),
        sa.Column("position", sa.SmallInteger(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.SmallInteger(), nullable=False),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("dial", sa.String(length=200), nullable=False),
        sa.Column("placeholder", sa.String(length=128), nullable=True),
        sa.Column("placed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("agent", sa.String(length=64), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_callbacks_attempts_positive")),
        sa.CheckConstraint(
            "status IN ('pending','dialing','connected','failed','cancelled')",
            name=op.f("ck_callbacks_status_known"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_callbacks")),
        sa.UniqueConstraint(
            "node", "caller_uniqueid", name=op.f("uq_callbacks_node_caller_uniqueid")
        ),
    )
    op.create_index(
        "ix_callbacks_status_requested", "callbacks", ["status", "requested_at"], unique=False
    )
    op.create_table(
        "survey_answers",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("node", sa.String(length=64), nullable=False),
        sa.Column("uniqueid", sa.String(length=64), nullable=False),
        sa.Column("question", sa.String(length=64), nullable=False),
        sa.Column("score", sa.SmallInteger(), nullable=False),
        sa.Column("agent", sa.String(length=64), nullable=True),
        sa.Column("queue", sa.String(length=64), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("score BETWEEN 1 AND 5", name=op.f("ck_survey_answers_score_range")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_survey_answers")),
        sa.UniqueConstraint(
            "node",
            "uniqueid",
            "question",
            name=op.f("uq_survey_answers_node_uniqueid_question"),
        ),
    )
    op.create_index(
        "ix_survey_answers_agent_answered",
        "survey_answers",
        ["agent", "answered_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_survey_answers_agent_answered", table_name="survey_answers")
    op.drop_table("survey_answers")
    op.drop_index("ix_callbacks_status_requested", table_name="callbacks")
    op.drop_table("callbacks")
