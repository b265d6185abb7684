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
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from callcenter.db.models import Call
from callcenter.webhooks import outbox

UTC = dt.UTC
#: Calls longer than this (from start to end) are not looked for.
HORIZON = dt.timedelta(hours=12)
#: At most this many calls per scan (the rest wait for the next one).
BATCH = 2000


def call_event(call: Call) -> dict[str, Any]:
    """The ``call.ended`` payload: the call log's row (its last queue visit's figures)."""

    def iso(value: dt.datetime | None) -> str | None:
        return value.astimezone(UTC).isoformat() if value else None

    return {
        "node": call.node,
        "uniqueid": call.uniqueid,
        "linkedid": call.linkedid,
        "direction": call.direction,
        "caller_number": call.caller_number,
        "caller_name": call.caller_name,
        "did": call.did,
        "ivr_path": call.ivr_path,
        "queue": call.queue,
        "agent": call.agent,
        "started_at": iso(call.started_at),
        "queued_at": iso(call.queued_at),
        "answered_at": iso(call.answered_at),
        "ended_at": iso(call.ended_at),
        "wait_seconds": call.wait_seconds,
        "talk_seconds": call.talk_seconds,
        "outcome": call.outcome,
        "hangup_cause": call.hangup_cause,
        "survey_score": call.survey_score,
    }


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
    query = (
        sa.select(Call)
        .where(
            Call.started_at >= now - HORIZON,
            Call.ended_at.is_not(None),
            Call.outcome.is_not(None),
        )
        .order_by(Call.updated_at)
        .limit(BATCH)
    )
    if since is not None:
        # >=: rows written in the same instant as the last one seen are looked at again
        # (and sent once: the key).
        query = query.where(Call.updated_at >= since)
    rows = session.scalars(query).all()
    mark = since
    for call in rows:
        assert call.ended_at is not None
        outbox.enqueue(
            session,
            "call.ended",
            call_event(call),
            key=f"{call.node}:{call.uniqueid}",
            at=call.ended_at,
            hooks=hooks,
        )
        mark = call.updated_at if mark is None else max(mark, call.updated_at)
    return len(rows), mark
