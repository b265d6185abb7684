"""Events that no transaction of ours produces: ``call.ended`` from the bridge's call log.

The bridge writes the call log in batches on its hot path, with raw upserts; putting the
outbox in them would slow every call event for a feature most sites do not use. Instead the
delivery worker looks every few seconds for calls written ended since it last looked (by
``started_at`` within the last ``HORIZON``, which the ``(started_at)`` index serves, and
``updated_at`` from the watermark on) and enqueues one ``call.ended`` each. The event key is the
call's node and uniqueid, so a call seen twice (a restart rescans the last ``horizon``) is
sent once (:func:`callcenter.webhooks.outbox.enqueue`). Nothing is enqueued, and no call is
read, while no webhook wants ``call.ended``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from callcenter.db import driver
from callcenter.db.models import Call
from callcenter.webhooks import outbox

UTC = dt.UTC
#: Calls longer than this (from start to end) are not looked for.
HORIZON = dt.timedelta(hours=12)
#: At most this many calls per scan (the rest wait for the next one).
BATCH = 2000


#: The ``call.ended`` payload's fields, in its order: columns of ``calls``.
_CALL_FIELDS = ("node", "uniqueid", "linkedid", "direction", "caller_number", "caller_name",
                "did", "ivr_path", "queue", "agent", "started_at", "queued_at", "answered_at",
                "ended_at", "wait_seconds", "talk_seconds", "outcome", "hangup_cause",
                "survey_score")  # fmt: skip
_CALL_TIMES = frozenset(("started_at", "queued_at", "answered_at", "ended_at"))


def call_event(call: object) -> dict[str, Any]:
    """The ``call.ended`` payload: the call log's row (its last queue visit's figures), of a
    :class:`~callcenter.db.models.Call` or any object with its attributes."""
    return call_payload({k: getattr(call, k) for k in _CALL_FIELDS})


def call_payload(row: Mapping[str, Any]) -> dict[str, Any]:
    """The ``call.ended`` payload of a ``calls`` row (a mapping of at least its fields)."""
    return {k: (outbox.iso(row[k]) if k in _CALL_TIMES else row[k]) for k in _CALL_FIELDS}


def scan_ended_calls(
    session: Session, since: dt.datetime | None, now: dt.datetime
) -> tuple[int, dt.datetime | None]:
    """Enqueue ``call.ended`` for the calls written ended since the watermark ``since`` (the
    ``updated_at`` of the last one seen; None: the last ``HORIZON``); (how many, the new
    watermark). ``updated_at`` is the database's clock when the bridge wrote the row, so a
    call the bridge wrote late (from its spool, after an outage) is still found. Runs in the
    caller's transaction."""
    hooks = outbox.hooks_for(session, "call.ended")
    if not hooks:
        return 0, since
    # The payload's columns only, in the driver's own statement, and the events in one
    # statement (outbox.enqueue_many): loading Call objects and enqueueing them one by one
    # was a quarter of the delivery worker's CPU (the soak's profile).
    if since is None:
        rows = driver.rows(session, _SCAN, (now - HORIZON, BATCH))
    else:
        # >=: rows written in the same instant as the last one seen are looked at again
        # (and sent once: the key).
        rows = driver.rows(session, _SCAN_SINCE, (now - HORIZON, since, BATCH))
    mark = since
    items = []
    for found in rows:
        row = dict(zip(_SCAN_COLUMNS, found, strict=True))
        updated_at = row["updated_at"]
        items.append((call_payload(row), f"{row['node']}:{row['uniqueid']}", row["ended_at"]))
        mark = updated_at if mark is None else max(mark, updated_at)
    outbox.enqueue_many(session, "call.ended", items, hooks=hooks)
    return len(rows), mark


_SCAN_COLUMNS = (*_CALL_FIELDS, "updated_at")
_SCAN_WHERE = (
    f"SELECT {', '.join(_SCAN_COLUMNS)} FROM {Call.__tablename__} "
    "WHERE started_at >= %s AND ended_at IS NOT NULL AND outcome IS NOT NULL"
)
_SCAN = f"{_SCAN_WHERE} ORDER BY updated_at LIMIT %s"
_SCAN_SINCE = f"{_SCAN_WHERE} AND updated_at >= %s ORDER BY updated_at LIMIT %s"
