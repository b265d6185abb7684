"""Agents' desktop passwords, queues whose calls need a disposition; the dial verdicts of
campaign attempts

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 06:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("agents", sa.Column("password_hash", sa.String(200), nullable=True))
    op.add_column(
        "queues",
        sa.Column(
            "disposition_required", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
    )
    op.add_column(
        "campaign_attempts",
        sa.Column("dial_status", sa.String(16), server_default="", nullable=False),
    )
    op.add_column(
        "campaign_attempts", sa.Column("originate_reason", sa.SmallInteger(), nullable=True)
    )
    op.create_index("ix_campaign_attempts_phone", "campaign_attempts", ["phone", "id"])


def downgrade() -> None:
    op.drop_index("ix_campaign_attempts_phone", table_name="campaign_attempts")
    op.drop_column("campaign_attempts", "originate_reason")
    op.drop_column("campaign_attempts", "dial_status")
    op.drop_column("queues", "disposition_required")
    op.drop_column("agents", "password_hash")
