"""Queue callbacks in the database (``callbacks``, migration 0002). Blocking: call from a thread.

Every state of a callback is in its row, so a restarted service loses none: it reads the open
ones (``pending``, ``dialing``) and carries on (:mod:`callcenter.agi.callback`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Engine

from callcenter.db.models_ivr import CALLBACK_OPEN, Callback


@dataclass(frozen=True, slots=True)
class CallbackRow:
    id: int
    node: str
    queue: str
    number: str
    caller_uniqueid: str
    requested_at: dt.datetime
    priority: int
    position: int | None
    status: str
    attempts: int
    last_attempt_at: dt.datetime | None
    dial: str
    placeholder: str | None
    placed_at: dt.datetime | None
    agent: str | None


_COLUMNS = [getattr(Callback, f) for f in CallbackRow.__dataclass_fields__]


def create(
    engine: Engine,
    *,
    node: str,
    queue: str,
    number: str,
    caller_uniqueid: str,
    caller_number: str,
    priority: int,
    position: int | None,
    dial: str,
    now: dt.datetime,
) -> int:
    """Store a request (pending); the same caller leg asking again updates it. Its id."""
    values = {
        "node": node, "queue": queue, "number": number, "caller_uniqueid": caller_uniqueid,
        "caller_number": caller_number, "requested_at": now, "priority": priority,
        "position": position, "status": "pending", "attempts": 0, "dial": dial,
    }  # fmt: skip
    base = insert(Callback).values(**values)
    stmt = base.on_conflict_do_update(
        index_elements=["node", "caller_uniqueid"],
        set_={k: base.excluded[k] for k in ("queue", "number", "priority", "position", "dial")},
    ).returning(Callback.id)
    with engine.begin() as conn:
        return int(conn.execute(stmt).scalar_one())


# The callback service asks these every few seconds: built once, not per ask (building a
# statement costs several times its cached execution; the soak's profile of the IVR).
_OPEN = (
    sa.select(*_COLUMNS)
    .where(Callback.node == sa.bindparam("node"), Callback.status.in_(CALLBACK_OPEN))
    .order_by(Callback.requested_at, Callback.id)
)
_ABANDONED = sa.select(Callback.id, Callback.placeholder).where(
    Callback.node == sa.bindparam("node"),
    Callback.status.in_(["cancelled", "failed"]),
    Callback.placeholder.is_not(None),
)


def open_callbacks(engine: Engine, node: str) -> list[CallbackRow]:
    """``pending`` and ``dialing`` callbacks of ``node``, oldest request first."""
    with engine.connect() as conn:
        return [CallbackRow(*row) for row in conn.execute(_OPEN, {"node": node}).all()]


def abandoned_placeholders(engine: Engine, node: str) -> list[tuple[int, str]]:
    """``(id, placeholder)`` of cancelled or failed callbacks whose placeholder may still wait
    in a queue: it must be hung up, or an agent would call a customer who no longer waits."""
    with engine.connect() as conn:
        return [(int(i), str(p)) for i, p in conn.execute(_ABANDONED, {"node": node}).all()]


def get(engine: Engine, callback_id: int) -> CallbackRow | None:
    with engine.connect() as conn:
        row = conn.execute(sa.select(*_COLUMNS).where(Callback.id == callback_id)).first()
    return CallbackRow(*row) if row is not None else None


def update(engine: Engine, callback_id: int, *, only_open: bool = True, **values: Any) -> bool:
    """Set ``values`` on one callback (by default only while it is open). Whether it changed."""
    stmt = sa.update(Callback).where(Callback.id == callback_id).values(**values)
    if only_open:
        stmt = stmt.where(Callback.status.in_(CALLBACK_OPEN))
    with engine.begin() as conn:
        return conn.execute(stmt).rowcount > 0


def listing(engine: Engine, statuses: Sequence[str] = CALLBACK_OPEN) -> list[dict[str, Any]]:
    """Callbacks with one of ``statuses``, oldest first, for the operator CLI."""
    columns = [
        Callback.id, Callback.node, Callback.queue, Callback.number, Callback.status,
        Callback.attempts, Callback.requested_at, Callback.agent, Callback.completed_at,
        Callback.error,
    ]  # fmt: skip
    query = (
        sa.select(*columns)
        .where(Callback.status.in_(list(statuses)))
        .order_by(Callback.requested_at, Callback.id)
    )
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query).all()]
