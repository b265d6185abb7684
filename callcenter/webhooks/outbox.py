"""The webhook outbox: events written in the producer's own transaction, and the pure rules of
their delivery (the body, the headers and signature, the backoff, which URLs are allowed).

A producer calls :func:`enqueue` with its session, before it commits: the event is stored
with the change it reports, or not at all (a rolled-back change sends nothing; a committed
one is delivered even if every process stops right after). Delivery is at least once, by
:mod:`callcenter.webhooks.delivery`.

What a receiver gets, for every try of every event (``POST``, ``Content-Type:
application/json``; the body is the same bytes on every try)::

    {"id": "<event id, a UUID>", "type": "campaign.attempt",
     "occurred_at": "2026-12-14T10:00:00+00:00", "data": {...}}

Headers:

- ``X-Callcenter-Event``: the event type;
- ``X-Callcenter-Event-Id`` and ``Idempotency-Key``: the event id, the same on every retry
  (a receiver that has seen it may answer 2xx and do nothing);
- ``X-Callcenter-Delivery``: this delivery (event and webhook), ``X-Callcenter-Attempt``: its
  try, 1, 2, ...;
- ``X-Callcenter-Timestamp``: Unix seconds when this try was signed;
- ``X-Callcenter-Signature``: ``sha256=<hex>``, the HMAC-SHA256 under the webhook's secret of
  ``<timestamp>.<body>`` (:func:`signature`; a receiver checks it with :func:`verify`, and
  refuses timestamps far from its clock: a captured request cannot be replayed later).

Any 2xx answer is a delivery; anything else (another status, a redirect, a refused
connection, a timeout) is retried with :func:`backoff` until ``max_age``. Events are not
delivered in order: retries overtake, and several are in flight at once; receivers order
by ``occurred_at`` or the data's own times.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import random
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from callcenter import __version__
from callcenter.db import driver
from callcenter.db.models_campaigns import CampaignAttempt
from callcenter.db.models_webhooks import EVENT_TYPES, Webhook, WebhookEvent, WebhookOutbox
from callcenter.directory import DirectoryError
from callcenter.jsonable import plain

SIGNATURE_HEADER = "X-Callcenter-Signature"
TIMESTAMP_HEADER = "X-Callcenter-Timestamp"
EVENT_HEADER = "X-Callcenter-Event"
EVENT_ID_HEADER = "X-Callcenter-Event-Id"
IDEMPOTENCY_HEADER = "Idempotency-Key"
DELIVERY_HEADER = "X-Callcenter-Delivery"
ATTEMPT_HEADER = "X-Callcenter-Attempt"
USER_AGENT = f"callcenter-webhooks/{__version__}"

#: Event ids are UUIDv5 of the event's type and key in this namespace: the same event
#: enqueued twice (a producer that runs again after a crash) is stored, and sent, once.
NAMESPACE = uuid.UUID("6c1f8f5e-2f0e-5b7a-9d4e-3c0a1b2c3d4e")

MAX_URL = 2000


class WebhookError(DirectoryError):
    """A webhook that cannot be accepted (bad URL, unknown event): one line for an operator
    (a :class:`~callcenter.directory.DirectoryError`: the CLI reports it as ``Error:``)."""


# --- enqueueing (in the producer's transaction) ------------------------------------------


def event_id(event_type: str, key: str) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"{event_type}\0{key}")


def hooks_for(session: Session, event_type: str) -> list[int]:
    """The ids of the webhooks that want ``event_type``, as ``session``'s transaction sees
    them now (read each time: a webhook added or removed is seen by the next call)."""
    return [row[0] for row in driver.rows(session, _HOOKS_FOR, ([event_type],))]


def enqueue(
    session: Session,
    event_type: str,
    payload: Mapping[str, Any],
    *,
    key: str,
    at: dt.datetime | None = None,
    hooks: Sequence[int] | None = None,
) -> uuid.UUID | None:
    """Store the event ``event_type`` for every webhook that wants it, in ``session``'s
    transaction (nothing is committed here). ``key`` names the event among those of its type
    (e.g. ``attempt:42``): the same type and key again is the same event, stored once, so a
    producer that runs again after a crash sends nothing twice. It must therefore differ
    for every event: ``case.changed`` needs the change's own id, not the case's.
    ``payload`` is stored as JSON (times become ISO 8601 strings). Returns the event id, or
    None when no webhook wants this type (then nothing is written). ``hooks``: the webhooks
    that want it (:func:`hooks_for` in this transaction), for a producer that enqueues many
    events at once; by default they are read here. What ``session`` has pending is written
    first (as its autoflush would)."""
    ids = enqueue_many(session, event_type, [(payload, key, at)], hooks=hooks)
    return ids[0] if ids else None


def enqueue_many(
    session: Session,
    event_type: str,
    items: Iterable[tuple[Mapping[str, Any], str, dt.datetime | None]],
    *,
    hooks: Sequence[int] | None = None,
) -> list[uuid.UUID]:
    """:func:`enqueue` for many events of one type, each ``(payload, key, at)``, in one
    statement: the same rows, ids and order as enqueueing them one after another (an event
    stored before, or earlier in ``items``, is stored once). Times must carry a zone; None
    is now (one time for the whole call). Returns the events' ids, in the order of
    ``items``; none when no webhook wants ``event_type`` (nothing is written)."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event type {event_type!r}")
    if hooks is None:
        hooks = hooks_for(session, event_type)
    if not hooks:
        return []
    now: dt.datetime | None = None
    idents: list[uuid.UUID] = []
    keys: list[str] = []
    payloads: list[str] = []
    times: list[dt.datetime] = []
    for payload, key, at in items:
        if at is None:
            at = now = now or dt.datetime.now(dt.UTC)
        idents.append(event_id(event_type, key))
        keys.append(key[:200])
        payloads.append(_json(payload))
        times.append(at)
    if idents:
        params = (idents, keys, payloads, times, event_type, list(hooks))
        driver.rows(session, _ENQUEUE_MANY, params)
    return idents


def _json(payload: Mapping[str, Any]) -> str:
    """The payload's JSON text, as SQLAlchemy's JSONB type wrote it (``json.dumps``)."""
    return json.dumps(plain(dict(payload)))


#: hooks_for: the ``@>`` of SQLAlchemy's ``ARRAY.contains``.
_HOOKS_FOR = f"SELECT id FROM {Webhook.__tablename__} WHERE events @> %s::varchar[]"
#: The events, in the order given (their ids follow it: ORDER BY n), and the outbox rows of
#: those that are new, event by event, webhook by webhook in the order given (an event
#: stored before inserts nothing: its deliveries exist already).
_ENQUEUE_MANY = (
    "WITH v AS (SELECT * FROM unnest(%s::uuid[], %s::text[], %s::text[], %s::timestamptz[]) "
    "WITH ORDINALITY AS v(event_id, key, payload, created_at, n)), "
    f"e AS (INSERT INTO {WebhookEvent.__tablename__} "
    "(event_id, type, key, payload, created_at) "
    "SELECT v.event_id, %s, v.key, v.payload::jsonb, v.created_at FROM v ORDER BY v.n "
    "ON CONFLICT (event_id) DO NOTHING RETURNING id, created_at) "
    f"INSERT INTO {WebhookOutbox.__tablename__} "
    "(event_id, webhook_id, created_at, next_attempt_at) "
    "SELECT e.id, h.id, e.created_at, e.created_at "
    "FROM e CROSS JOIN unnest(%s::int[]) WITH ORDINALITY AS h(id, n) ORDER BY e.id, h.n"
)


def iso(value: dt.datetime | None) -> str | None:
    """A time as a payload carries it: ISO 8601 in UTC."""
    return value.astimezone(dt.UTC).isoformat() if value is not None else None


def attempt_key(attempt: CampaignAttempt) -> str:
    return attempt_key_of(attempt.id)


def attempt_key_of(attempt_id: int) -> str:
    return f"attempt:{attempt_id}"


#: The ``campaign.attempt`` payload's fields: columns of ``campaign_attempts``.
_ATTEMPT_FIELDS = ("id", "campaign_id", "contact_id", "phone", "attempt_no", "mode", "paced",
                   "outcome", "reason", "hangup_cause", "amd_status", "agent", "caller_id",
                   "channel_id", "node")  # fmt: skip
_ATTEMPT_TIMES = ("created_at", "originated_at", "answered_at", "human_at", "agent_at",
                  "ended_at")  # fmt: skip


def attempt_event(attempt: CampaignAttempt) -> dict[str, Any]:
    """The ``campaign.attempt`` payload of an ended attempt."""
    return attempt_payload({k: getattr(attempt, k) for k in (*_ATTEMPT_FIELDS, *_ATTEMPT_TIMES)})


def attempt_payload(row: Mapping[str, Any]) -> dict[str, Any]:
    """The ``campaign.attempt`` payload of an ended attempt's row (``scheduling.finish``)."""
    out = {("attempt_id" if k == "id" else k): row[k] for k in _ATTEMPT_FIELDS}
    out.update((k, iso(row[k])) for k in _ATTEMPT_TIMES)
    return out


# --- what is sent ------------------------------------------------------------------------


def body(
    ident: uuid.UUID, event_type: str, occurred_at: dt.datetime, data: Mapping[str, Any]
) -> bytes:
    """The JSON body: the same bytes for the same event on every try."""
    document = {
        "id": str(ident),
        "type": event_type,
        "occurred_at": iso(occurred_at),
        "data": data,
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def signature(secret: str, timestamp: int, payload: bytes) -> str:
    """``sha256=`` and the hex HMAC-SHA256 under ``secret`` of ``<timestamp>.<body>``."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + payload, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(
    secret: str, headers: Mapping[str, str], payload: bytes, *, now: float, tolerance: float = 300.0
) -> bool:
    """What a receiver does: the signature holds and the timestamp is within ``tolerance``
    seconds of ``now``. ``headers`` as received (any case-insensitive mapping)."""
    stamp = headers.get(TIMESTAMP_HEADER, "")
    given = headers.get(SIGNATURE_HEADER, "")
    if not stamp.isdigit() or abs(now - int(stamp)) > tolerance:
        return False
    return hmac.compare_digest(signature(secret, int(stamp), payload).encode(), given.encode())


def headers(
    secret: str,
    *,
    ident: uuid.UUID,
    event_type: str,
    delivery: int,
    attempt: int,
    timestamp: int,
    payload: bytes,
) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_HEADER: event_type,
        EVENT_ID_HEADER: str(ident),
        IDEMPOTENCY_HEADER: str(ident),
        DELIVERY_HEADER: str(delivery),
        ATTEMPT_HEADER: str(attempt),
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature(secret, timestamp, payload),
    }


# --- when to try again -------------------------------------------------------------------


def backoff(attempt: int, *, base: float, cap: float, rng: random.Random) -> float:
    """Seconds to wait after failed try number ``attempt`` (1, 2, ...): ``base`` doubling
    each time up to ``cap``, drawn between half and all of that (the jitter spreads the
    retries of many events that failed together, e.g. while a receiver was down)."""
    ceiling = min(cap, base * 2.0 ** min(max(attempt - 1, 0), 60))
    return rng.uniform(ceiling / 2, ceiling)


def retry_after(value: str | None, cap: float) -> float | None:
    """A receiver's ``Retry-After`` in seconds (only the seconds form), at most ``cap``."""
    if value and value.strip().isdigit():
        return min(float(value.strip()), cap)
    return None


# --- which URLs ----------------------------------------------------------------------------


def forbidden_address(address: str) -> str | None:
    """Why an IP address may not receive webhooks, or None. Link-local addresses (cloud
    metadata services such as 169.254.169.254), multicast and unspecified ones are refused;
    loopback and private ones are allowed: a CRM on the premises is the common case."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return None
    if ip.is_link_local:
        return "a link-local address (such as a cloud metadata service)"
    if ip.is_multicast or ip.is_unspecified or ip.is_reserved:
        return "not a unicast address"
    return None


def check_url(url: str) -> str:
    """The URL if webhooks may be posted to it; else :class:`WebhookError` saying why."""
    if len(url) > MAX_URL:
        raise WebhookError(f"the URL is longer than {MAX_URL} characters")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise WebhookError("the URL contains spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise WebhookError(f"the URL cannot be read: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise WebhookError("the URL must start with http:// or https://")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise WebhookError(
            "the URL must not contain a user name or password: receivers "
            "authenticate the sender by the signature"
        )
    host = parts.hostname
    if not host:
        raise WebhookError("the URL names no host")
    if port == 0:
        raise WebhookError("the URL has port 0")
    if parts.fragment:
        raise WebhookError("the URL must not have a #fragment")
    reason = forbidden_address(host)
    if reason:
        raise WebhookError(f"the URL's host {host} is {reason}")
    return url


def check_events(events: list[str]) -> list[str]:
    """The event types, in the order of :data:`EVENT_TYPES`; ``all`` means every one."""
    wanted = {e.strip() for item in events for e in item.split(",") if e.strip()}
    if "all" in wanted:
        return list(EVENT_TYPES)
    unknown = sorted(wanted - set(EVENT_TYPES))
    if unknown:
        raise WebhookError(
            f"unknown event {unknown[0]!r}: use all or some of {', '.join(EVENT_TYPES)}"
        )
    if not wanted:
        raise WebhookError(f"name the events: all, or some of {', '.join(EVENT_TYPES)}")
    return [e for e in EVENT_TYPES if e in wanted]
