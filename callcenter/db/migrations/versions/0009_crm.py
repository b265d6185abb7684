"""The agent's desktop and the CRM: customers and their numbers, disposition codes, call
dispositions, case categories, cases and their timeline; campaign contacts point at customers

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-14 04:00:00.000000

A customer's past calls are read by ``calls``' ``ix_calls_caller_started`` (caller_number,
started_at) of 0001, scanned backwards for "newest first": no new index on ``calls``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
EFFECTS = "'resolves','follow_up','callback','none'"


def _now() -> sa.TextClause:
    return sa.text("now()")


def upgrade() -> None:
    op.create_table(
        "customers",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("crm_id", sa.String(100), nullable=True),
        sa.Column("fields", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", TS, server_default=_now(), nullable=False),
        sa.Column("updated_at", TS, server_default=_now(), nullable=False),
        sa.CheckConstraint("crm_id IS NULL OR crm_id <> ''", name=op.f("ck_customers_crm_id_set")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customers")),
        sa.UniqueConstraint("crm_id", name=op.f("uq_customers_crm_id")),
    )
    op.create_table(
        "customer_phones",
        sa.Column("phone", sa.String(20), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("position", sa.SmallInteger(), nullable=False),
        sa.CheckConstraint("phone ~ '^\\+[1-9][0-9]{1,14}$'", name=op.f("ck_customer_phones_e164")),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_customer_phones_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("phone", name=op.f("pk_customer_phones")),
    )
    op.create_index("ix_customer_phones_customer_id", "customer_phones", ["customer_id"])
    op.create_table(
        "disposition_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("queue_id", sa.Integer(), nullable=True),
        sa.Column("campaign_id", sa.Integer(), nullable=True),
        sa.Column("code", sa.String(32), nullable=False),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("effect", sa.String(16), nullable=False),
        sa.Column("created_at", TS, server_default=_now(), nullable=False),
        sa.CheckConstraint(
            "(queue_id IS NULL) <> (campaign_id IS NULL)",
            name=op.f("ck_disposition_codes_one_owner"),
        ),
        sa.CheckConstraint(
            f"effect IN ({EFFECTS})", name=op.f("ck_disposition_codes_effect_known")
        ),
        sa.CheckConstraint(
            "code ~ '^[a-z0-9][a-z0-9_.-]{0,31}$'", name=op.f("ck_disposition_codes_code_format")
        ),
        sa.ForeignKeyConstraint(
            ["queue_id"],
            ["queues.id"],
            name=op.f("fk_disposition_codes_queue_id_queues"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_disposition_codes_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_disposition_codes")),
        sa.UniqueConstraint("queue_id", "code", name=op.f("uq_disposition_codes_queue_id_code")),
        sa.UniqueConstraint(
            "campaign_id", "code", name=op.f("uq_disposition_codes_campaign_id_code")
        ),
    )
    op.create_table(
        "case_categories",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("created_at", TS, server_default=_now(), nullable=False),
        sa.CheckConstraint(
            "name ~ '^[a-z0-9][a-z0-9_-]{0,31}$'", name=op.f("ck_case_categories_name_format")
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_case_categories")),
    )
    op.create_table(
        "cases",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("number", sa.String(16), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("priority", sa.String(8), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("owner", sa.String(64), nullable=True),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("due_at", TS, nullable=True),
        sa.Column("resolution", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("resolved_at", TS, nullable=True),
        sa.Column("closed_at", TS, nullable=True),
        sa.CheckConstraint(
            "status IN ('open','pending','resolved','closed')", name=op.f("ck_cases_status_known")
        ),
        sa.CheckConstraint(
            "priority IN ('low','normal','high','urgent')", name=op.f("ck_cases_priority_known")
        ),
        sa.CheckConstraint(
            "status NOT IN ('resolved','closed') OR resolution <> ''",
            name=op.f("ck_cases_resolution_given"),
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_cases_customer_id_customers"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cases")),
        sa.UniqueConstraint("number", name=op.f("uq_cases_number")),
    )
    op.create_index("ix_cases_customer_status", "cases", ["customer_id", "status"])
    op.create_index("ix_cases_status_created", "cases", ["status", "created_at"])
    op.create_index("ix_cases_owner_status", "cases", ["owner", "status"])
    op.create_index("ix_cases_resolved_at", "cases", ["resolved_at"])
    op.create_table(
        "case_events",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("case_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("data", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("node", sa.String(64), nullable=True),
        sa.Column("uniqueid", sa.String(64), nullable=True),
        sa.CheckConstraint(
            "kind IN ('created','call','disposition','note','status','owner','priority',"
            "'due','category')",
            name=op.f("ck_case_events_kind_known"),
        ),
        sa.CheckConstraint(
            "kind <> 'call' OR uniqueid IS NOT NULL", name=op.f("ck_case_events_call_named")
        ),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["cases.id"],
            name=op.f("fk_case_events_case_id_cases"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_events")),
    )
    op.create_index("ix_case_events_case_at", "case_events", ["case_id", "at"])
    op.create_index(
        "ix_case_events_call",
        "case_events",
        ["case_id", "node", "uniqueid"],
        unique=True,
        postgresql_where=sa.text("kind = 'call'"),
    )
    op.create_table(
        "call_dispositions",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("node", sa.String(64), nullable=False),
        sa.Column("uniqueid", sa.String(64), nullable=False),
        sa.Column("visit", sa.SmallInteger(), nullable=False),
        sa.Column("queue", sa.String(64), nullable=True),
        sa.Column("campaign_id", sa.Integer(), nullable=True),
        sa.Column("agent", sa.String(64), nullable=True),
        sa.Column("code", sa.String(32), nullable=True),
        sa.Column("effect", sa.String(16), nullable=True),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("case_id", sa.BigInteger(), nullable=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("undocumented_at", TS, nullable=True),
        sa.CheckConstraint("visit >= 0", name=op.f("ck_call_dispositions_visit_positive")),
        sa.CheckConstraint(
            "code IS NOT NULL OR undocumented_at IS NOT NULL",
            name=op.f("ck_call_dispositions_code_or_mark"),
        ),
        sa.CheckConstraint(
            f"effect IS NULL OR effect IN ({EFFECTS})",
            name=op.f("ck_call_dispositions_effect_known"),
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_call_dispositions_campaign_id_campaigns"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["cases.id"],
            name=op.f("fk_call_dispositions_case_id_cases"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_dispositions")),
        sa.UniqueConstraint(
            "node", "uniqueid", "visit", name=op.f("uq_call_dispositions_node_uniqueid_visit")
        ),
    )
    op.create_index("ix_call_dispositions_at", "call_dispositions", ["at"])
    op.create_index(
        "ix_call_dispositions_undocumented",
        "call_dispositions",
        ["undocumented_at"],
        postgresql_where=sa.text("undocumented_at IS NOT NULL"),
    )
    op.create_index("ix_call_dispositions_case_id", "call_dispositions", ["case_id"])
    op.add_column("contacts", sa.Column("customer_id", sa.BigInteger(), nullable=True))
    op.create_foreign_key(
        op.f("fk_contacts_customer_id_customers"),
        "contacts",
        "customers",
        ["customer_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.create_index("ix_contacts_customer_id", "contacts", ["customer_id"])


def downgrade() -> None:
    op.drop_index("ix_contacts_customer_id", table_name="contacts")
    op.drop_constraint(op.f("fk_contacts_customer_id_customers"), "contacts", type_="foreignkey")
    op.drop_column("contacts", "customer_id")
    op.drop_table("call_dispositions")
    op.drop_table("case_events")
    op.drop_table("cases")
    op.drop_table("case_categories")
    op.drop_table("disposition_codes")
    op.drop_index("ix_customer_phones_customer_id", table_name="customer_phones")
    op.drop_table("customer_phones")
    op.drop_table("customers")
