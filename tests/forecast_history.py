"""A call log with a known weekly pattern and trend, for the forecast's tests (the history
page's forecast chart, in the web test and in the browser).

Queue ``sales`` (members Alice and Carl, SL 20 s): on weekdays 09:00-17:00 (the site's time
zone, UTC in the tests) ``BASE`` calls per half hour, ``PEAK`` from 10:00 to 12:00, nothing at
weekends, growing 5% a week; the twelve weeks before the week of ``DAY`` and that week up to
``DAY``'s end, where the 10:00 half hour has ``SPIKE`` more calls than the pattern. Every tenth
call abandons after 30 s, the others are answered after 10 s and handled in 180 s (170 talk,
10 wrap-up). Queue ``support`` has calls only on ``DAY``: no history to forecast from.
Alice is logged in 09:00-13:00 on ``DAY``, Carl 10:15-11:00, Bob (no member of sales)
08:00-18:00.
"""

from __future__ import annotations

import datetime as dt
import math

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from callcenter import directory
from callcenter.db.models import AgentSession, QueueVisit
from callcenter.planning.forecast import SLOTS_PER_DAY, SLOTS_PER_WEEK

DAY = dt.date(2026, 11, 18)  # a Wednesday
MONDAY = DAY - dt.timedelta(days=DAY.weekday())
WEEKS = 12  # of history before DAY's week: 8 to learn from, 4 held out
BASE, PEAK, SPIKE, GROWTH = 6, 14, 9, 0.05
UTC = dt.UTC


def pattern(slot: int) -> int:
    """Calls in half hour ``slot`` of a week (0 = Monday 00:00), before the trend."""
    day, half = divmod(slot, SLOTS_PER_DAY)
    if day >= 5 or not 18 <= half < 34:
        return 0
    return PEAK if 20 <= half < 24 else BASE


def weeks() -> list[list[float]]:
    """Calls per half hour of each week, oldest first; the last is DAY's week up to its
    end."""
    out = []
    for w in range(WEEKS + 1):
        week = [float(round(pattern(s) * (1 + GROWTH * w))) for s in range(SLOTS_PER_WEEK)]
        if w == WEEKS:
            end = (DAY.weekday() + 1) * SLOTS_PER_DAY
            week[end:] = [0.0] * (SLOTS_PER_WEEK - end)
            week[DAY.weekday() * SLOTS_PER_DAY + 20] += SPIKE
        out.append(week)
    return out


def fill(engine: Engine, tz: dt.tzinfo = UTC) -> None:
    origin = dt.datetime.combine(MONDAY - dt.timedelta(weeks=WEEKS), dt.time(0), tzinfo=tz)
    rows = []
    n = 0
    for w, week in enumerate(weeks()):
        for slot, calls in enumerate(week):
            start = origin + dt.timedelta(weeks=w, minutes=30 * slot)
            for i in range(int(calls)):
                n += 1
                at = start + dt.timedelta(seconds=i * 1800 / calls)
                gone = n % 10 == 0
                rows.append({
                    "node": "pbx1", "uniqueid": f"9.{n}", "visit": 1, "linkedid": f"9.{n}",
                    "queue": "sales", "queued_at": at,
                    "answered_at": None if gone else at + dt.timedelta(seconds=10),
                    "ended_at": at + dt.timedelta(seconds=30 if gone else 190),
                    "wait_seconds": 30.0 if gone else 10.0,
                    "talk_seconds": None if gone else 170.0,
                    "wrapup_seconds": None if gone else 10.0,
                    "outcome": "abandoned" if gone else "answered",
                    "agent": None if gone else "Alice",
                })  # fmt: skip
    day = dt.datetime.combine(DAY, dt.time(9), tzinfo=tz)
    for i in range(5):
        n += 1
        rows.append({"node": "pbx1", "uniqueid": f"9.{n}", "visit": 1, "linkedid": f"9.{n}",
                     "queue": "support", "queued_at": day + dt.timedelta(minutes=i),
                     "answered_at": None, "ended_at": day + dt.timedelta(minutes=i, seconds=3),
                     "wait_seconds": 3.0, "talk_seconds": None, "wrapup_seconds": None,
                     "outcome": "abandoned", "agent": None})  # fmt: skip
    with Session(engine) as s, s.begin():
        if not s.scalar(sa.text("SELECT count(*) FROM queues WHERE name = 'sales'")):
            directory.add_queue(s, "sales", display_name="Sales team")
            directory.add_queue(s, "support")
            directory.add_agent(s, name="Alice", extension="1001", pin="4321")
            directory.add_agent(s, name="Bob", extension="1002", pin="4321")
            directory.add_agent(s, name="Carl", extension="1003", pin="4321")
            directory.join_queue(s, "sales", "Alice", 0)
            directory.join_queue(s, "sales", "Carl", 0)
        visits = QueueVisit.__table__
        assert isinstance(visits, sa.Table)
        s.connection().execute(sa.insert(visits), rows)
        for agent, since, until in LOGINS:
            s.add(AgentSession(
                node="pbx1", agent=agent, interface=f"PJSIP/{agent}",
                login_at=dt.datetime.combine(DAY, since, tzinfo=tz),
                logout_at=dt.datetime.combine(DAY, until, tzinfo=tz),
            ))  # fmt: skip


LOGINS = [
    ("Alice", dt.time(9), dt.time(13)),
    ("Carl", dt.time(10, 15), dt.time(11)),
    ("Bob", dt.time(8), dt.time(18)),
]

#: Mean agents of sales logged in per half hour of DAY (Bob is not a member).
SALES_LOGGED_IN = {"09:00": 1.0, "10:00": 1.5, "10:30": 2.0, "11:00": 1.0, "12:30": 1.0,
                   "13:00": 0.0}  # fmt: skip


def aht_and_patience() -> tuple[float, float]:
    """The handle time and the patience of the 8 weeks the forecast of DAY learns from: 180 s
    for every answered call; patience = all time waited / abandons."""
    calls = [int(c) for week in weeks()[WEEKS - 8 : WEEKS] for c in week]
    first = sum(int(c) for week in weeks()[: WEEKS - 8] for c in week)
    waited = abandons = 0.0
    n = first
    for c in calls:
        for _ in range(c):
            n += 1
            gone = n % 10 == 0
            abandons += gone
            waited += 30 if gone else 10
    return 180.0, waited / abandons if abandons else math.inf
