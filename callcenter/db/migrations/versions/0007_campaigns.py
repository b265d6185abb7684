"""Outbound campaigns: campaigns, contacts, do-not-call

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 03:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "campaigns",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("queue", sa.String(length=64), nullable=True),
        sa.Column("trunk", sa.String(length=64), nullable=True),
        sa.Column("caller_id", sa.String(length=32), nullable=False),
        sa.Column("hours_start", sa.Time(), nullable=False),
        sa.Column("hours_end", sa.Time(), nullable=False),
        sa.Column("days", postgresql.ARRAY(sa.SmallInteger()), nullable=False),
        sa.Column("holidays", postgresql.ARRAY(sa.Date()), nullable=False),
        sa.Column("max_attempts", sa.SmallInteger(), nullable=False),
        sa.Column("retry_busy_seconds", sa.Integer(), nullable=False),
        sa.Column("retry_no_answer_seconds", sa.Integer(), nullable=False),
        sa.Column("retry_machine_seconds", sa.Integer(), nullable=False),
        sa.Column("retry_abandoned_seconds", sa.Integer(), nullable=False),
        sa.Column("retry_failed_seconds", sa.Integer(), nullable=False),
        sa.Column("amd", sa.Boolean(), nullable=False),
        sa.Column("machine_action", sa.String(length=16), nullable=False),
        sa.Column("machine_message", sa.String(length=200), nullable=False),
        sa.Column("seller_name", sa.String(length=200), nullable=False),
        sa.Column("seller_number", sa.String(length=32), nullable=False),
        sa.Column("abandon_cap", sa.Double(), nullable=False),
        sa.Column("abandon_target", sa.Double(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "mode IN ('preview','progressive','predictive','agentless')",
            name=op.f("ck_campaigns_mode_known"),
        ),
        sa.CheckConstraint(
            "mode = 'agentless' OR queue IS NOT NULL", name=op.f("ck_campaigns_queue_for_agents")
        ),
        sa.CheckConstraint(
            "machine_action IN ('hangup','message')", name=op.f("ck_campaigns_machine_action_known")
        ),
        sa.CheckConstraint(
            "abandon_cap > 0 AND abandon_cap <= 0.03", name=op.f("ck_campaigns_abandon_cap_legal")
        ),
        sa.CheckConstraint(
            "abandon_target > 0 AND abandon_target <= abandon_cap",
            name=op.f("ck_campaigns_abandon_target_below"),
        ),
        sa.CheckConstraint("hours_start < hours_end", name=op.f("ck_campaigns_hours_ordered")),
        sa.CheckConstraint(
            "max_attempts BETWEEN 1 AND 100", name=op.f("ck_campaigns_max_attempts_range")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaigns")),
        sa.UniqueConstraint("name", name=op.f("uq_campaigns_name")),
    )
    op.create_table(
        "contacts",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("priority", sa.SmallInteger(), nullable=False),
        sa.Column("fields", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.SmallInteger(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_contacts_attempts_positive")),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_contacts_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contacts")),
        sa.UniqueConstraint("campaign_id", "phone", name=op.f("uq_contacts_campaign_id_phone")),
    )
    op.create_table(
        "do_not_call",
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column(
            "added_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("phone", name=op.f("pk_do_not_call")),
    )


def downgrade() -> None:
    op.drop_table("do_not_call")
    op.drop_table("contacts")
    op.drop_table("campaigns")
