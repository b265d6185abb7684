"""The history page's figures: calls and service level per 15 minutes of one day.

Each interval is computed with :func:`callcenter.reports.queue_figures_and_total` over that
interval, so the definitions (offered less short abandons, SL against each queue's threshold,
callers still waiting within it not yet missed...) are the report's own. Over all queues, SL
is sum(answered in SL) / sum(SL denominators): the report's total.

:class:`HistoryCache` keeps each day's result: at most one query per day runs at a time
however many browsers ask (they share it), today's figures are recomputed at most once per
``today_ttl`` and a past day's once per ``past_ttl``. So browsers asking for history cost the
database a bounded amount, whatever their number.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import OrderedDict
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from callcenter import reports
from callcenter.config import ReportingSettings
from callcenter.wallboard.kpis import bounded, day_bounds

SLOT = dt.timedelta(minutes=15)
EARLIEST = dt.date(2000, 1, 1)


@dataclass(frozen=True, slots=True)
class Slot:
    start: dt.datetime  # in the site's time zone
    offered: int
    answered: int
    abandoned: int
    answered_in_sl: int
    sl_base: int  # the SL denominator (see callcenter.reports: QueueFigures.sl_base)

    @property
    def service_level(self) -> float | None:
        return self.answered_in_sl / self.sl_base if self.sl_base else None


def slot_of(total: reports.QueueFigures, start: dt.datetime) -> Slot:
    """An interval's figures over its queues (the report's total: each visit judged by its
    own queue's threshold)."""
    return Slot(start, total.offered, total.answered, total.abandoned, total.answered_in_sl,
                total.sl_base)  # fmt: skip


def day_slots(
    session: Session,
    day: dt.date,
    tz: ZoneInfo,
    rules: ReportingSettings,
    queue: str | None = None,
    now: dt.datetime | None = None,
) -> list[Slot]:
    """The day's 15-minute intervals (92 or 100 on DST days), up to ``now`` for today."""
    since, until = day_bounds(day, tz)
    now = now or dt.datetime.now(dt.UTC)
    slots = []
    start = since
    while start < until and start < now:
        _, total = reports.queue_figures_and_total(
            session, start, start + SLOT, rules, queue, now=now
        )
        slots.append(slot_of(total, start.astimezone(tz)))
        start += SLOT
    return slots


def parse_day(text: str | None, tz: ZoneInfo, now: dt.datetime) -> dt.date:
    """``YYYY-MM-DD`` between 2000-01-01 and today; today when empty. ValueError otherwise."""
    current = now.astimezone(tz).date()
    if not text:
        return current
    day = dt.date.fromisoformat(text)
    if len(text) != 10 or not EARLIEST <= day <= current:
        raise ValueError(f"day must be a date from {EARLIEST} to {current} (YYYY-MM-DD)")
    return day


class HistoryCache:
    def __init__(
        self,
        engine: Engine,
        rules: ReportingSettings,
        tz: ZoneInfo,
        *,
        today_ttl: float = 60.0,
        past_ttl: float = 3600.0,
        size: int = 64,
    ) -> None:
        self.engine = engine
        self.rules = rules
        self.tz = tz
        self.today_ttl = today_ttl
        self.past_ttl = past_ttl
        self.size = size
        self.queries = 0
        self._done: OrderedDict[tuple[dt.date, str], tuple[float, list[Slot]]] = OrderedDict()
        self._running: dict[tuple[dt.date, str], asyncio.Task[list[Slot]]] = {}

    def _compute(self, day: dt.date, queue: str | None) -> list[Slot]:
        with Session(self.engine) as session, session.begin():
            return day_slots(bounded(session), day, self.tz, self.rules, queue)

    async def get(self, day: dt.date, queue: str | None = None) -> list[Slot]:
        key = (day, queue or "")
        now = time.monotonic()
        ttl = self.today_ttl if day >= dt.datetime.now(self.tz).date() else self.past_ttl
        held = self._done.get(key)
        if held is not None and now - held[0] < ttl:
            self._done.move_to_end(key)
            return held[1]
        task = self._running.get(key)
        if task is None:
            self.queries += 1
            task = asyncio.create_task(asyncio.to_thread(self._compute, day, queue))
            self._running[key] = task
            task.add_done_callback(lambda _: self._running.pop(key, None))
        # shield: one impatient browser leaving must not cancel the query the others await.
        slots = await asyncio.shield(task)
        self._done[key] = (time.monotonic(), slots)
        self._done.move_to_end(key)
        while len(self._done) > self.size:
            self._done.popitem(last=False)
        return slots

    async def close(self) -> None:
        """Cancel the queries still running (shutdown); their threads end with the
        statement time-out at the latest."""
        for task in list(self._running.values()):
            task.cancel()
        await asyncio.gather(*self._running.values(), return_exceptions=True)
