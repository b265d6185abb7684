"""Call-log rows for tests that write the database directly: the bridge writes a ``calls``
row per call and a ``queue_visits`` row per queue visit, and reports read the visits."""

from __future__ import annotations

from callcenter.db.models import Call, QueueVisit


def visit_of(c: Call, visit: int = 1) -> QueueVisit:
    """The queue visit row of a one-visit fixture call, as the bridge writes it."""
    assert c.queue is not None
    return QueueVisit(
        node=c.node,
        uniqueid=c.uniqueid,
        visit=visit,
        linkedid=c.linkedid,
        direction="inbound",
        caller_number=c.caller_number,
        caller_name="",
        queue=c.queue,
        agent=c.agent,
        queued_at=c.queued_at,
        answered_at=c.answered_at,
        ended_at=c.ended_at,
        wait_seconds=c.wait_seconds,
        talk_seconds=c.talk_seconds,
        wrapup_seconds=c.wrapup_seconds,
        ring_attempts=1,
        outcome=c.outcome,
    )


def with_visit(calls: list[Call]) -> list[Call | QueueVisit]:
    return [*calls, *(visit_of(c) for c in calls if c.queue is not None)]
