"""Tables of the CRM's API tokens and webhooks (migration 0010).

- ``api_tokens``: tokens for scripts and the CRM (``Authorization: Bearer ccapi_...``). As for
  the wallboard's TV tokens, only the SHA-256 of the token is kept (the token is 256 random
  bits: a slow hash adds nothing, and a digest is looked up by equality), with its first
  characters (``prefix``) to tell tokens apart in listings.
- ``webhooks``: where events are posted, which events, and the HMAC key that signs them (kept
  as it is: the sender needs it; it is shown once, when the webhook is added).
- ``webhook_events``: one row per event, written in the same transaction as the change it
  reports (:func:`callcenter.webhooks.outbox.enqueue`). ``event_id`` is the idempotency key
  receivers see: the same on every retry.
- ``webhook_outbox``: one row per event and webhook: the delivery to do, its state
  (``pending`` until a 2xx answer, ``delivered``, or ``dead`` past the maximum age), how many
  tries and when the next one is due. A worker claims due rows with ``FOR UPDATE SKIP LOCKED``
  and pushes ``next_attempt_at`` past the time a try can take, so a worker that dies
  mid-delivery only delays the row.
- ``webhook_delivery_log``: every try: when, the HTTP status or the error, how long it took.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from callcenter.db.models import Base

#: What an API token may do: ``read`` (GET) or ``write`` (also POST, PUT, PATCH, DELETE).
TOKEN_SCOPES = ("read", "write")

#: The events a webhook may subscribe to.
EVENT_TYPES = (
    "call.ended",
    "call.dispositioned",
    "case.created",
    "case.changed",
    "campaign.attempt",
)

OUTBOX_STATUSES = ("pending", "delivered", "dead")


class ApiToken(Base):
    """A bearer token for the REST API. ``name`` is unique among tokens not revoked."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scope: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    expires_at: Mapped[dt.datetime | None] = mapped_column()
    last_used_at: Mapped[dt.datetime | None] = mapped_column()
    revoked_at: Mapped[dt.datetime | None] = mapped_column()

    __table_args__ = (
        CheckConstraint("scope IN ('read','write')", name="scope_known"),
        Index(
            "ix_api_tokens_name_active",
            "name",
            unique=True,
            postgresql_where=text("revoked_at IS NULL"),
        ),
    )


class Webhook(Base):
    """A receiver: ``url`` (http or https, no credentials in it) and the events it wants."""

    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[list[str]] = mapped_column(ARRAY(String(32)))
    secret: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(String(200), default="", server_default="")
    created_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())

    __table_args__ = (CheckConstraint("cardinality(events) > 0", name="events_given"),)


class WebhookEvent(Base):
    """An event to post, as its producer wrote it (``payload``), once per ``event_id``."""

    __tablename__ = "webhook_events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    type: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column()


class WebhookOutbox(Base):
    """One event to deliver to one webhook."""

    __tablename__ = "webhook_outbox"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    event_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("webhook_events.id", ondelete="CASCADE")
    )
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(12), default="pending", server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[dt.datetime] = mapped_column()
    next_attempt_at: Mapped[dt.datetime] = mapped_column()
    last_attempt_at: Mapped[dt.datetime | None] = mapped_column()
    delivered_at: Mapped[dt.datetime | None] = mapped_column()
    last_error: Mapped[str] = mapped_column(String(300), default="", server_default="")

    __table_args__ = (
        CheckConstraint("status IN ('pending','delivered','dead')", name="status_known"),
        # The worker's question: what is due now? Only pending rows are in the index.
        Index(
            "ix_webhook_outbox_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
        ),
        Index("ix_webhook_outbox_webhook_id", "webhook_id", "id"),
        Index("ix_webhook_outbox_event_id", "event_id"),
    )


class WebhookDeliveryLog(Base):
    """One try to deliver an outbox row: ``status_code`` when the receiver answered, else
    ``error`` (connection refused, timeout, ...)."""

    __tablename__ = "webhook_delivery_log"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    outbox_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("webhook_outbox.id", ondelete="CASCADE")
    )
    attempt: Mapped[int] = mapped_column(Integer)
    at: Mapped[dt.datetime] = mapped_column()
    ok: Mapped[bool] = mapped_column(Boolean)
    status_code: Mapped[int | None] = mapped_column(SmallInteger)
    error: Mapped[str] = mapped_column(String(300), default="", server_default="")
    duration_ms: Mapped[int] = mapped_column(Integer)
    response: Mapped[str] = mapped_column(Text, default="", server_default="")

    __table_args__ = (Index("ix_webhook_delivery_log_outbox_id", "outbox_id", "id"),)
