"""The dialer: campaign state and settings, contact scheduling, attempt records, leases

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 05:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add = op.add_column
    add("campaigns", sa.Column("state", sa.String(16), server_default="stopped", nullable=False))
    add(
        "campaigns",
        sa.Column("ring_seconds", sa.SmallInteger(), server_default="25", nullable=False),
    )
    add(
        "campaigns",
        sa.Column("channel_limit", sa.SmallInteger(), server_default="30", nullable=False),
    )
    add(
        "campaigns",
        sa.Column("agentless_action", sa.String(16), server_default="message", nullable=False),
    )
    add(
        "campaigns",
        sa.Column("agentless_message", sa.String(200), server_default="", nullable=False),
    )
    add("campaigns", sa.Column("survey_ivr", sa.String(64), server_default="", nullable=False))
    add(
        "campaigns", sa.Column("abandon_message", sa.String(200), server_default="", nullable=False)
    )
    add("campaigns", sa.Column("started_at", sa.DateTime(timezone=True), nullable=True))
    op.create_check_constraint(
        op.f("ck_campaigns_state_known"), "campaigns", "state IN ('stopped','running','paused')"
    )
    op.create_check_constraint(
        op.f("ck_campaigns_ring_seconds_range"), "campaigns", "ring_seconds BETWEEN 15 AND 120"
    )
    op.create_check_constraint(
        op.f("ck_campaigns_channel_limit_range"), "campaigns", "channel_limit BETWEEN 1 AND 1000"
    )
    op.create_check_constraint(
        op.f("ck_campaigns_agentless_action_known"),
        "campaigns",
        "agentless_action IN ('message','survey')",
    )
    add("contacts", sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True))
    add("contacts", sa.Column("last_outcome", sa.String(16), server_default="", nullable=False))
    op.create_index(
        "ix_contacts_due", "contacts", ["campaign_id", "status", "next_attempt_at"], unique=False
    )
    op.create_index(
        "ix_contacts_next",
        "contacts",
        ["campaign_id", sa.text("priority DESC"), sa.text("next_attempt_at NULLS FIRST"), "id"],
        postgresql_where=sa.text("status IN ('new','retry')"),
    )
    op.create_table(
        "campaign_attempts",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.BigInteger(), nullable=True),
        sa.Column("phone", sa.String(20), nullable=False),
        sa.Column("attempt_no", sa.SmallInteger(), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("paced", sa.String(16), server_default="", nullable=False),
        sa.Column("dialer", sa.String(128), server_default="", nullable=False),
        sa.Column("node", sa.String(64), server_default="", nullable=False),
        sa.Column("channel_id", sa.String(64), nullable=True),
        sa.Column("caller_id", sa.String(32), server_default="", nullable=False),
        sa.Column("phase", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("originated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("amd_status", sa.String(16), server_default="", nullable=False),
        sa.Column("amd_cause", sa.String(64), server_default="", nullable=False),
        sa.Column("human_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("agent", sa.String(80), nullable=True),
        sa.Column("agent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("message", sa.String(200), server_default="", nullable=False),
        sa.Column("message_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("message_ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("hangup_cause", sa.SmallInteger(), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=True),
        sa.Column("reason", sa.String(200), server_default="", nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("period", sa.SmallInteger(), server_default="1", nullable=False),
        sa.CheckConstraint(
            "outcome IS NULL OR outcome IN ('connected','abandoned','hung_up','delivered',"
            "'machine','machine_message','busy','no_answer','failed','skipped','lost')",
            name=op.f("ck_campaign_attempts_outcome_known"),
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_attempts_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_campaign_attempts_contact_id_contacts"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign_attempts")),
        sa.UniqueConstraint("channel_id", name=op.f("uq_campaign_attempts_channel_id")),
    )
    op.create_index(
        "ix_campaign_attempts_campaign_day", "campaign_attempts", ["campaign_id", "day"]
    )
    op.create_index(
        "ix_campaign_attempts_open",
        "campaign_attempts",
        ["campaign_id"],
        postgresql_where=sa.text("outcome IS NULL"),
    )
    op.create_table(
        "campaign_leases",
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("holder", sa.String(128), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_leases_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("campaign_id", name=op.f("pk_campaign_leases")),
    )


def downgrade() -> None:
    op.drop_table("campaign_leases")
    op.drop_index("ix_campaign_attempts_open", table_name="campaign_attempts")
    op.drop_index("ix_campaign_attempts_campaign_day", table_name="campaign_attempts")
    op.drop_table("campaign_attempts")
    op.drop_index("ix_contacts_next", table_name="contacts")
    op.drop_index("ix_contacts_due", table_name="contacts")
    op.drop_column("contacts", "last_outcome")
    op.drop_column("contacts", "next_attempt_at")
    for name in (
        "state_known",
        "ring_seconds_range",
        "channel_limit_range",
        "agentless_action_known",
    ):
        op.drop_constraint(op.f(f"ck_campaigns_{name}"), "campaigns", type_="check")
    for col in (
        "started_at",
        "abandon_message",
        "survey_ivr",
        "agentless_message",
        "agentless_action",
        "channel_limit",
        "ring_seconds",
        "state",
    ):
        op.drop_column("campaigns", col)
