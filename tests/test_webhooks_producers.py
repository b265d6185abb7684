"""call.ended, produced from the bridge's call log by the delivery worker's scan."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from callcenter.db.models import Call
from callcenter.db.models_webhooks import WebhookEvent, WebhookOutbox
from callcenter.webhooks import producers
from tests.test_webhooks import hook

UTC = dt.UTC


def add_call(s: Session, uniqueid: str, *, started: dt.datetime, ended: bool = True) -> None:
    s.add(
        Call(
            node="pbx1",
            uniqueid=uniqueid,
            linkedid=uniqueid,
            direction="inbound",
            caller_number="+12015550101",
            started_at=started,
            queue="sales",
            agent="alice",
            answered_at=started if ended else None,
            ended_at=started + dt.timedelta(seconds=60) if ended else None,
            outcome="answered" if ended else None,
            talk_seconds=55.0 if ended else None,
        )
    )


def events(engine: Engine) -> list[str]:
    with Session(engine) as s:
        rows = s.execute(
            sa.select(WebhookEvent.key).where(WebhookEvent.type == "call.ended")
        ).scalars()
        return sorted(rows)


def test_ended_calls_are_enqueued_once_and_late_writes_are_found(clean_db: Engine) -> None:
    now = dt.datetime.now(UTC)
    with Session(clean_db) as s, s.begin():
        assert producers.scan_ended_calls(s, None, now) == (0, None)  # no webhook: nothing
    hook(clean_db, ["call.ended"])
    with Session(clean_db) as s, s.begin():
        add_call(s, "1.1", started=now - dt.timedelta(minutes=5))
        add_call(s, "1.2", started=now - dt.timedelta(minutes=2), ended=False)  # still talking
        add_call(s, "0.9", started=now - dt.timedelta(days=2))  # older than the horizon
    with Session(clean_db) as s, s.begin():
        n, mark = producers.scan_ended_calls(s, None, now)
    assert n == 1
    assert mark is not None
    assert events(clean_db) == ["pbx1:1.1"]
    # Seen again (the same instant's rows are looked at again): still one event, one outbox row.
    with Session(clean_db) as s, s.begin():
        producers.scan_ended_calls(s, mark, now)
    assert events(clean_db) == ["pbx1:1.1"]
    # The talking call ends, written by the bridge later: found from the watermark on.
    with Session(clean_db) as s, s.begin():
        s.execute(
            sa.text(
                "UPDATE calls SET ended_at = now(), outcome = 'answered', updated_at = now() "
                "WHERE uniqueid = '1.2'"
            )
        )
    with Session(clean_db) as s, s.begin():
        n, mark2 = producers.scan_ended_calls(s, mark, now)
    assert events(clean_db) == ["pbx1:1.1", "pbx1:1.2"]
    assert mark2 is not None
    assert mark2 >= mark
    with Session(clean_db) as s:
        payload = s.scalar(sa.select(WebhookEvent.payload).where(WebhookEvent.key == "pbx1:1.1"))
        assert payload is not None
        assert (payload["uniqueid"], payload["agent"], payload["outcome"]) == (
            "1.1",
            "alice",
            "answered",
        )
        assert s.scalar(sa.select(sa.func.count()).select_from(WebhookOutbox)) == 2


def test_a_call_marked_not_documented_is_a_call_dispositioned_event(clean_db: Engine) -> None:
    from callcenter import directory
    from callcenter.crm import dispositions
    from callcenter.crm.documentation import mark_undocumented
    from callcenter.db.models import QueueVisit

    hook(clean_db, ["call.dispositioned"])
    now = dt.datetime.now(UTC)
    answered = now - dt.timedelta(minutes=10)
    with Session(clean_db) as s, s.begin():
        directory.add_queue(s, "sales")
        dispositions.add_code(s, dispositions.Owner(queue="sales"), "sold")
        s.execute(
            sa.text("UPDATE disposition_codes SET created_at = :t"),
            {"t": answered - dt.timedelta(days=1)},
        )
        s.add(
            QueueVisit(
                node="pbx1",
                uniqueid="6.1",
                linkedid="6.1",
                visit=1,
                queue="sales",
                agent="alice",
                queued_at=answered,
                answered_at=answered,
                ended_at=answered + dt.timedelta(minutes=2),
                wrapup_seconds=10,
                outcome="answered",
            )
        )
    with Session(clean_db) as s, s.begin():
        assert mark_undocumented(s, now) == 1
    with Session(clean_db) as s, s.begin():
        assert mark_undocumented(s, now) == 0  # idempotent: no second mark, no second event
    with Session(clean_db) as s:
        payloads = s.scalars(
            sa.select(WebhookEvent.payload).where(WebhookEvent.type == "call.dispositioned")
        ).all()
    assert len(payloads) == 1
    assert (payloads[0]["uniqueid"], payloads[0]["code"], payloads[0]["agent"]) == (
        "6.1",
        None,
        "alice",
    )
    assert payloads[0]["undocumented_at"] is not None
