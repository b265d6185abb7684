"""SIP attack detection: addresses that failed too many logins, and blocks

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 16:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sip_blocks",
        sa.Column("address", sa.String(64), nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("blocked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("unblocked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("node", sa.String(64), nullable=False),
        sa.CheckConstraint("failures >= 0", name=op.f("ck_sip_blocks_failures_not_negative")),
        sa.CheckConstraint(
            "unblocked_at IS NULL OR blocked_at IS NOT NULL",
            name=op.f("ck_sip_blocks_unblock_after_block"),
        ),
        sa.PrimaryKeyConstraint("address", name=op.f("pk_sip_blocks")),
    )
    op.create_index(
        "ix_sip_blocks_active",
        "sip_blocks",
        ["address"],
        postgresql_where=sa.text("blocked_at IS NOT NULL AND unblocked_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_table("sip_blocks")
