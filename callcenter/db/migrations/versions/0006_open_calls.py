"""Open calls by node: what the bridge closes when it starts

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-14 02:00:00.000000

The bridge reads the calls of its node that the call log still holds open (a stop of the
services cut them) on its first connection, to close them at the resync. A partial index:
only the handful of open calls are in it, however large the call log.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_calls_open", "calls", ["node"], postgresql_where=sa.text("outcome IS NULL"))


def downgrade() -> None:
    op.drop_index("ix_calls_open", table_name="calls")
