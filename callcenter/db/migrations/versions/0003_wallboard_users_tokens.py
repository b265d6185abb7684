"""Wallboard: supervisors (users) and read-only TV tokens

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "name ~ '^[A-Za-z0-9][A-Za-z0-9_.@-]*$'", name=op.f("ck_users_name_format")
        ),
        sa.CheckConstraint("role IN ('supervisor','admin')", name=op.f("ck_users_role_known")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("name", name=op.f("uq_users_name")),
    )
    op.create_table(
        "tv_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tv_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_tv_tokens_token_hash")),
    )
    op.create_index(
        "ix_tv_tokens_label_active",
        "tv_tokens",
        ["label"],
        unique=True,
        postgresql_where=sa.text("NOT revoked"),
    )


def downgrade() -> None:
    op.drop_index("ix_tv_tokens_label_active", table_name="tv_tokens")
    op.drop_table("tv_tokens")
    op.drop_table("users")
