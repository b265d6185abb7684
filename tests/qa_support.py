"""Helpers of the QA tests (no tests of its own): recordings as the recorder leaves them, a
form of three questions, and answers for it."""

from __future__ import annotations

import datetime as dt
import itertools

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from callcenter.db.models_quality import Recording
from callcenter.quality import store
from callcenter.quality.scoring import parse_form_file

_serial = itertools.count(1)

SALES_FORM = """
name = "Sales v1"
queue = "sales"

[[question]]
text = "Greeted the caller with the company's name"

[[question]]
text = "Found out what the caller needed"
kind = "scale"
max = 5
weight = 3

[[question]]
text = "Stayed polite"
critical = true
weight = 2
"""

ANY_FORM = """
name = "Every queue"

[[question]]
text = "Was the call handled well"
kind = "scale"
max = 4
"""


def add_recording(
    engine: Engine,
    *,
    agent: str | None = "alice",
    queue: str | None = "sales",
    node: str = "pbx1",
    started_at: dt.datetime | None = None,
    state: str = "done",
) -> int:
    """A finished recording row (no file: the tests never play it)."""
    n = next(_serial)
    started = started_at or dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)
    with Session(engine) as s, s.begin():
        rec = Recording(
            node=node,
            uniqueid=f"1795000000.{n}",
            linkedid=f"1795000000.{n}",
            visit=1,
            queue=queue,
            agent=agent,
            channel=f"PJSIP/{agent or 'x'}-0000000{n}",
            path=f"2026/11/23/rec-{n}-{started.timestamp():.0f}.wav",
            state=state,
            started_at=started,
            ended_at=started + dt.timedelta(seconds=95),
            duration_ms=95_000,
            size_bytes=1_520_044,
        )
        s.add(rec)
        s.flush()
        return rec.id


def add_form(engine: Engine, text: str = SALES_FORM) -> store.FormView:
    with Session(engine) as s, s.begin():
        form, _, _ = store.import_form(s, parse_form_file(text))
        return store.form_view(s, form)


def answers(form: store.FormView, *points: int) -> dict[int, int]:
    """Question id -> points, in the form's order."""
    assert len(points) == len(form.questions)
    return {q.id: p for q, p in zip(form.questions, points, strict=True)}
