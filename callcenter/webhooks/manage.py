"""The operator's side of webhooks (``callcenter webhooks add|list|remove|deliveries|retry``).

Every function works inside the caller's session and raises
:class:`~callcenter.webhooks.outbox.WebhookError` (reported as one ``Error:`` line) before
anything is written.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from callcenter.db.models_webhooks import (
    OUTBOX_STATUSES,
    Webhook,
    WebhookDeliveryLog,
    WebhookEvent,
    WebhookOutbox,
)
from callcenter.webhooks.outbox import WebhookError, check_events, check_url


@dataclass(frozen=True, slots=True)
class WebhookView:
    id: int
    url: str
    events: list[str]
    description: str
    created_at: dt.datetime
    pending: int = 0
    delivered: int = 0
    dead: int = 0


@dataclass(frozen=True, slots=True)
class DeliveryView:
    id: int
    webhook_id: int
    event_id: str
    type: str
    status: str
    attempts: int
    created_at: dt.datetime
    next_attempt_at: dt.datetime | None
    delivered_at: dt.datetime | None
    last_error: str


@dataclass(frozen=True, slots=True)
class TryView:
    delivery_id: int
    attempt: int
    at: dt.datetime
    ok: bool
    status_code: int | None
    error: str
    duration_ms: int


def add_webhook(
    session: Session, url: str, events: list[str], *, description: str = ""
) -> tuple[WebhookView, str]:
    """A new webhook: its view, and its signing secret (shown once)."""
    url = check_url(url.strip())
    wanted = check_events(events)
    if len(description) > 200:
        raise WebhookError("the description has more than 200 characters")
    secret = "whsec_" + secrets.token_urlsafe(32)
    row = Webhook(url=url, events=wanted, secret=secret, description=description)
    session.add(row)
    session.flush()
    session.refresh(row)
    return WebhookView(row.id, row.url, list(row.events), row.description, row.created_at), secret


def _get(session: Session, webhook_id: int) -> Webhook:
    row = session.get(Webhook, webhook_id)
    if row is None:
        raise WebhookError(f"no webhook {webhook_id}")
    return row


def list_webhooks(session: Session) -> list[WebhookView]:
    counts: dict[tuple[int, str], int] = {
        (hook, status): n
        for hook, status, n in session.execute(
            select(WebhookOutbox.webhook_id, WebhookOutbox.status, func.count()).group_by(
                WebhookOutbox.webhook_id, WebhookOutbox.status
            )
        )
    }
    return [
        WebhookView(
            w.id,
            w.url,
            list(w.events),
            w.description,
            w.created_at,
            counts.get((w.id, "pending"), 0),
            counts.get((w.id, "delivered"), 0),
            counts.get((w.id, "dead"), 0),
        )
        for w in session.scalars(select(Webhook).order_by(Webhook.id))
    ]


def remove_webhook(session: Session, webhook_id: int) -> WebhookView:
    """Remove the webhook and what it had still to deliver (and its delivery log)."""
    row = _get(session, webhook_id)
    view = WebhookView(row.id, row.url, list(row.events), row.description, row.created_at)
    session.delete(row)
    session.flush()
    # Events no webhook has left to deliver or to show are of no use any more.
    session.execute(
        delete(WebhookEvent).where(
            ~select(WebhookOutbox.id).where(WebhookOutbox.event_id == WebhookEvent.id).exists()
        )
    )
    return view


def list_deliveries(
    session: Session, *, webhook_id: int | None = None, status: str | None = None, limit: int = 50
) -> list[DeliveryView]:
    """The latest deliveries, newest first."""
    if status is not None and status not in OUTBOX_STATUSES:
        raise WebhookError(f"status {status!r} is not one of {', '.join(OUTBOX_STATUSES)}")
    if webhook_id is not None:
        _get(session, webhook_id)
    query = (
        select(WebhookOutbox, WebhookEvent)
        .join(WebhookEvent, WebhookEvent.id == WebhookOutbox.event_id)
        .order_by(WebhookOutbox.id.desc())
        .limit(limit)
    )
    if webhook_id is not None:
        query = query.where(WebhookOutbox.webhook_id == webhook_id)
    if status is not None:
        query = query.where(WebhookOutbox.status == status)
    return [
        DeliveryView(
            o.id,
            o.webhook_id,
            str(e.event_id),
            e.type,
            o.status,
            o.attempts,
            o.created_at,
            o.next_attempt_at if o.status == "pending" else None,
            o.delivered_at,
            o.last_error,
        )
        for o, e in session.execute(query)
    ]


def delivery_log(session: Session, delivery_id: int) -> list[TryView]:
    """Every try of one delivery, in order."""
    if session.get(WebhookOutbox, delivery_id) is None:
        raise WebhookError(f"no delivery {delivery_id}")
    rows = session.scalars(
        select(WebhookDeliveryLog)
        .where(WebhookDeliveryLog.outbox_id == delivery_id)
        .order_by(WebhookDeliveryLog.id)
    )
    return [
        TryView(r.outbox_id, r.attempt, r.at, r.ok, r.status_code, r.error, r.duration_ms)
        for r in rows
    ]


def retry_dead(session: Session, webhook_id: int, *, now: dt.datetime | None = None) -> int:
    """Try the webhook's dead deliveries again (e.g. after a receiver was down for longer than
    the maximum age): they become pending, due now, and get a full maximum age again."""
    _get(session, webhook_id)
    now = now or dt.datetime.now(dt.UTC)
    result = session.execute(
        update(WebhookOutbox)
        .where(WebhookOutbox.webhook_id == webhook_id, WebhookOutbox.status == "dead")
        .values(status="pending", next_attempt_at=now, created_at=now)
    )
    return int(getattr(result, "rowcount", 0) or 0)
