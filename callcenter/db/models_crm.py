"""Tables of the agent's desktop and the CRM (migration 0009): customers and their numbers,
disposition codes and the disposition of each answered call, cases and their timeline.

They share :class:`~callcenter.db.models.Base` (its metadata and naming convention); importing
``callcenter.db`` loads this module, so migrations and the models==migrations test see them.
The stores in :mod:`callcenter.crm` validate everything before it reaches these tables; the
checks here are a backstop.

Indexes serve the screen-pop: a caller's number to the customer is the primary key of
``customer_phones``; the customer's past calls are ``calls``' ``ix_calls_caller_started``
(migration 0001), their dispositions ``call_dispositions``' unique (node, uniqueid, visit)
and their open cases ``ix_cases_customer_status``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from callcenter.db.models import Base, utcnow

#: What a disposition does to the contact: resolves it, needs a follow-up, schedules a
#: callback, or none of these (e.g. a wrong number).
EFFECTS = ("resolves", "follow_up", "callback", "none")
#: Built-in case categories; others are rows of ``case_categories``.
BUILTIN_CATEGORIES = ("question", "request", "complaint", "incident")
PRIORITIES = ("low", "normal", "high", "urgent")
CASE_STATUSES = ("open", "pending", "resolved", "closed")
#: Statuses of a case still being worked on.
CASE_OPEN = ("open", "pending")
#: What a timeline entry records.
EVENT_KINDS = (
    "created",
    "call",
    "disposition",
    "note",
    "status",
    "owner",
    "priority",
    "due",
    "category",
)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({','.join(repr(v) for v in values)})"


class Customer(Base):
    """One person or company behind inbound and outbound calls, found by their numbers."""

    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str] = mapped_column(String(254), default="")
    #: The customer's id in the company's own CRM; unique when set.
    crm_id: Mapped[str | None] = mapped_column(String(100), unique=True)
    fields: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[dt.datetime] = mapped_column(server_default=func.now(), onupdate=utcnow)

    phones: Mapped[list[CustomerPhone]] = relationship(
        back_populates="customer",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="CustomerPhone.position",
    )

    __table_args__ = (CheckConstraint("crm_id IS NULL OR crm_id <> ''", name="crm_id_set"),)


class CustomerPhone(Base):
    """A number of a customer, in E.164. A number belongs to one customer only: the primary
    key is the lookup by the caller's number."""

    __tablename__ = "customer_phones"

    phone: Mapped[str] = mapped_column(String(20), primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    #: The order the numbers were given in (0 first).
    position: Mapped[int] = mapped_column(SmallInteger, default=0)

    customer: Mapped[Customer] = relationship(back_populates="phones")

    __table_args__ = (CheckConstraint("phone ~ '^\\+[1-9][0-9]{1,14}$'", name="e164"),)


class DispositionCode(Base):
    """A disposition an agent may give a call of a queue, or of a campaign (exactly one)."""

    __tablename__ = "disposition_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    queue_id: Mapped[int | None] = mapped_column(ForeignKey("queues.id", ondelete="CASCADE"))
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(32))
    label: Mapped[str] = mapped_column(String(200), default="")
    effect: Mapped[str] = mapped_column(String(16), default="none")
    #: Answered calls need a disposition from this time on (the "not documented" rule).
    created_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())

    __table_args__ = (
        UniqueConstraint("queue_id", "code"),
        UniqueConstraint("campaign_id", "code"),
        CheckConstraint("(queue_id IS NULL) <> (campaign_id IS NULL)", name="one_owner"),
        CheckConstraint(_in("effect", EFFECTS), name="effect_known"),
        CheckConstraint("code ~ '^[a-z0-9][a-z0-9_.-]{0,31}$'", name="code_format"),
    )


class CallDisposition(Base):
    """How an answered call (one queue visit of it) ended, as its agent documented it; or,
    with ``code`` NULL, the mark of a call left undocumented past its wrap-up.

    ``visit`` is the queue visit's number (``queue_visits.visit``), 0 for a call that had
    none (a direct or click-to-call call). ``queue``, ``campaign_id`` and ``effect`` are
    copied when it is written, so reports read what held then. A disposition given after the
    mark keeps ``undocumented_at``: the call was documented late.
    """

    __tablename__ = "call_dispositions"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    node: Mapped[str] = mapped_column(String(64))
    uniqueid: Mapped[str] = mapped_column(String(64))
    visit: Mapped[int] = mapped_column(SmallInteger, default=0)
    queue: Mapped[str | None] = mapped_column(String(64))
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id", ondelete="SET NULL"))
    agent: Mapped[str | None] = mapped_column(String(64))
    code: Mapped[str | None] = mapped_column(String(32))
    effect: Mapped[str | None] = mapped_column(String(16))
    notes: Mapped[str] = mapped_column(Text, default="")
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id", ondelete="SET NULL"))
    #: When it was given (or marked).
    at: Mapped[dt.datetime] = mapped_column()
    undocumented_at: Mapped[dt.datetime | None] = mapped_column()

    __table_args__ = (
        UniqueConstraint("node", "uniqueid", "visit"),
        CheckConstraint("visit >= 0", name="visit_positive"),
        CheckConstraint("code IS NOT NULL OR undocumented_at IS NOT NULL", name="code_or_mark"),
        CheckConstraint(f"effect IS NULL OR {_in('effect', EFFECTS)}", name="effect_known"),
        Index("ix_call_dispositions_at", "at"),
        Index(
            "ix_call_dispositions_undocumented",
            "undocumented_at",
            postgresql_where=text("undocumented_at IS NOT NULL"),
        ),
        Index("ix_call_dispositions_case_id", "case_id"),
    )


class CaseCategory(Base):
    """A case category of this site, besides the built-in ones."""

    __tablename__ = "case_categories"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    label: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())

    __table_args__ = (CheckConstraint("name ~ '^[a-z0-9][a-z0-9_-]{0,31}$'", name="name_format"),)


class Case(Base):
    """What a customer asked, requested, complained about or reported, until it is resolved.

    ``number`` is the human-readable ``C-000123`` (from ``id``). ``resolved_at`` is the last
    time it was resolved (cleared when it is reopened).
    """

    __tablename__ = "cases"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    number: Mapped[str] = mapped_column(String(16), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="RESTRICT"))
    category: Mapped[str] = mapped_column(String(32))
    priority: Mapped[str] = mapped_column(String(8), default="normal")
    status: Mapped[str] = mapped_column(String(16), default="open")
    owner: Mapped[str | None] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(200), default="")
    due_at: Mapped[dt.datetime | None] = mapped_column()
    resolution: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[dt.datetime] = mapped_column()
    updated_at: Mapped[dt.datetime] = mapped_column()
    resolved_at: Mapped[dt.datetime | None] = mapped_column()
    closed_at: Mapped[dt.datetime | None] = mapped_column()

    __table_args__ = (
        CheckConstraint(_in("status", CASE_STATUSES), name="status_known"),
        CheckConstraint(_in("priority", PRIORITIES), name="priority_known"),
        CheckConstraint(
            "status NOT IN ('resolved','closed') OR resolution <> ''", name="resolution_given"
        ),
        Index("ix_cases_customer_status", "customer_id", "status"),
        Index("ix_cases_status_created", "status", "created_at"),
        Index("ix_cases_owner_status", "owner", "status"),
        Index("ix_cases_resolved_at", "resolved_at"),
    )


class CaseEvent(Base):
    """One entry of a case's timeline: created, a call, a disposition, a note, a change of
    status, owner, priority, due time or category; who (``actor``) and when (``at``).

    A ``call`` entry names its call (``node``, ``uniqueid``), once per case: first-contact
    resolution counts them.
    """

    __tablename__ = "case_events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(64), default="")
    at: Mapped[dt.datetime] = mapped_column()
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    node: Mapped[str | None] = mapped_column(String(64))
    uniqueid: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        CheckConstraint(_in("kind", EVENT_KINDS), name="kind_known"),
        CheckConstraint("kind <> 'call' OR uniqueid IS NOT NULL", name="call_named"),
        Index("ix_case_events_case_at", "case_id", "at"),
        Index(
            "ix_case_events_call",
            "case_id",
            "node",
            "uniqueid",
            unique=True,
            postgresql_where=text("kind = 'call'"),
        ),
    )
