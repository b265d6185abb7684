"""The history page's figures: calls and service level per 15 minutes of one day, and the
forecast of that day's half hours against the calls offered and the agents logged in
(:func:`callcenter.planning.store.day_forecast`).

Each interval is computed with :func:`callcenter.reports.queue_figures_and_total` over that
interval, so the definitions (offered less short abandons, SL against each queue's threshold,
callers still waiting within it not yet missed...) are the report's own. Over all queues, SL
is sum(answered in SL) / sum(SL denominators): the report's total.

:class:`HistoryCache` keeps each day's result: at most one query per day runs at a time
however many browsers ask (they share it), today's figures are recomputed at most once per
``today_ttl`` and a past day's once per ``past_ttl``. So browsers asking for history cost the
database a bounded amount, whatever their number. The forecast is kept the same way, in two
parts: what it learned of the twelve weeks before the day's week (the costly part, measured
in ``scripts/bench_forecast.py``), recomputed at most once per ``past_ttl`` per week and
queue, and the day's own calls and agents, as the 15-minute figures.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from callcenter import reports
from callcenter.config import ReportingSettings
from callcenter.planning.store import DayForecast, Model, against, learn
from callcenter.wallboard.kpis import bounded, day_bounds

SLOT = dt.timedelta(minutes=15)
EARLIEST = dt.date(2000, 1, 1)
T = TypeVar("T")


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


class Shared(Generic[T]):
    """Results by key, each computed in a worker thread by at most one query at a time
    however many browsers ask (they share it), and kept for ``ttl`` seconds (the least
    recently used dropped past ``size``)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.queries = 0
        self._done: OrderedDict[Hashable, tuple[float, T]] = OrderedDict()
        self._running: dict[Hashable, asyncio.Task[T]] = {}

    async def get(self, key: Hashable, ttl: float, compute: Callable[[], T]) -> T:
        now = time.monotonic()
        held = self._done.get(key)
        if held is not None and now - held[0] < ttl:
            self._done.move_to_end(key)
            return held[1]
        task = self._running.get(key)
        if task is None:
            self.queries += 1
            task = asyncio.create_task(asyncio.to_thread(compute))
            self._running[key] = task
            task.add_done_callback(lambda _: self._running.pop(key, None))
        # shield: one impatient browser leaving must not cancel the query the others await.
        value = await asyncio.shield(task)
        self._done[key] = (time.monotonic(), value)
        self._done.move_to_end(key)
        while len(self._done) > self.size:
            self._done.popitem(last=False)
        return value

    async def close(self) -> None:
        """Cancel the queries still running (shutdown); their threads end with the
        statement time-out at the latest."""
        for task in list(self._running.values()):
            task.cancel()
        await asyncio.gather(*self._running.values(), return_exceptions=True)


class HistoryCache:
    """A day's 15-minute figures (:meth:`get`) and its forecast against what came
    (:meth:`forecast`), each shared and kept as the module docstring says."""

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
        self._slots: Shared[list[Slot]] = Shared(size)
        self._models: Shared[Model] = Shared(size)
        self._forecasts: Shared[DayForecast] = Shared(size)

    @property
    def queries(self) -> int:
        return self._slots.queries + self._models.queries + self._forecasts.queries

    def _ttl(self, day: dt.date) -> float:
        return self.today_ttl if day >= dt.datetime.now(self.tz).date() else self.past_ttl

    def _compute(self, day: dt.date, queue: str | None) -> list[Slot]:
        with Session(self.engine) as session, session.begin():
            return day_slots(bounded(session), day, self.tz, self.rules, queue)

    async def get(self, day: dt.date, queue: str | None = None) -> list[Slot]:
        return await self._slots.get(
            (day, queue or ""), self._ttl(day), lambda: self._compute(day, queue)
        )

    def _learn(self, day: dt.date, queue: str | None) -> Model:
        with Session(self.engine) as session, session.begin():
            return learn(bounded(session), queue, day, tz=self.tz)

    def _against(self, model: Model, day: dt.date, goal: float) -> DayForecast:
        with Session(self.engine) as session, session.begin():
            return against(bounded(session), model, day, tz=self.tz,
                           now=dt.datetime.now(dt.UTC), service_level=goal)  # fmt: skip

    async def forecast(self, day: dt.date, queue: str | None, goal: float) -> DayForecast:
        """The forecast of ``day`` against its calls and agents, agents for SL ``goal`` (see
        :mod:`callcenter.planning.store`). What the forecast learned of the weeks before the
        day's week is kept ``past_ttl`` (they are gone by: the costly part, twelve weeks of
        calls), the day's calls and agents as the 15-minute figures are."""
        week = day - dt.timedelta(days=day.weekday())
        model = await self._models.get((week, queue or ""), self.past_ttl,
                                       lambda: self._learn(week, queue))  # fmt: skip
        return await self._forecasts.get(
            (day, queue or "", goal), self._ttl(day), lambda: self._against(model, day, goal)
        )

    async def close(self) -> None:
        """Cancel the queries still running (shutdown)."""
        await self._slots.close()
        await self._models.close()
        await self._forecasts.close()
