"""The day's figures, from the call log, with :mod:`callcenter.reports` (the same SQL and the
same rules as ``callcenter report``, so the board and the report agree).

:class:`KpiRefresher` queries them in a worker thread, never for a browser: after a call moved
on (:meth:`KpiRefresher.poke`) once the bridge has had time to write it, at most once per
``kpi_interval`` (and in at most a fifth of the time), and at least every ``kpi_max_age`` (so
the day rolls over at midnight in the site's time zone), or every ``kpi_interval`` while a
caller waits within their queue's SL threshold (past it, they are missed: SL changes with no
event). The result is one small dict that every browser gets; when the database is away the
last figures stay, marked with the error.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from callcenter import reports
from callcenter.config import ReportingSettings
from callcenter.timespec import start_of_day

log = logging.getLogger(__name__)

#: A query of the board must never hold a connection for long (the call log may be huge).
STATEMENT_TIMEOUT_MS = 10_000
QUEUE_KEYS = ("offered", "answered", "abandoned", "timed_out", "exited", "service_level",
              "service_level_threshold", "asa", "aht", "abandon_rate", "longest_wait",
              "sl_pending")  # fmt: skip
#: All queues together: the same figures, each visit judged by its own queue's SL threshold.
TOTAL_KEYS = tuple(k for k in QUEUE_KEYS if k != "service_level_threshold")


def day_bounds(day: dt.date, tz: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    """[midnight, next midnight) of ``day`` in ``tz``, in UTC (23 or 25 hours on DST days)."""
    return start_of_day(day, tz), start_of_day(day + dt.timedelta(days=1), tz)


def today(tz: ZoneInfo, now: dt.datetime) -> dt.date:
    return now.astimezone(tz).date()


def bounded(session: Session) -> Session:
    """Put a statement time-out on the session's transaction (a worker thread cannot be
    cancelled, so the database must give up instead), and keep its queries to one process:
    they are index range scans of tens of milliseconds, run every second or so, where starting
    parallel workers costs more than it saves and takes cores from Asterisk (measured on 10M
    calls: median 20.5 ms serial against 23.7 ms parallel, worst 29 against 47 ms)."""
    session.execute(sa.text(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}"))
    session.execute(sa.text("SET LOCAL max_parallel_workers_per_gather = 0"))
    return session


def agent_calls(session: Session, since: dt.datetime, until: dt.datetime) -> dict[str, int]:
    """Calls answered per agent, by answer time: the ``calls`` of
    :func:`callcenter.reports.agent_figures`, from its own statement. The board shows no
    occupancy, so it does not pay for the agent-state half of ``agent_figures`` (the larger
    part of its time on a big call log: see the report of issue 6, which proposes this as a
    function of reports.py)."""
    rows = session.execute(
        reports.AGENT_CALLS_SQL, {"since": since, "until": until, "agent": None}
    ).mappings()
    return {r["agent"]: int(r["calls"]) for r in rows}


def day_figures(
    session: Session, rules: ReportingSettings, tz: ZoneInfo, now: dt.datetime
) -> dict[str, Any]:
    """Today so far as browsers get it, with the figures ``callcenter report`` (no --since or
    --until: from midnight in the site's time zone until ``now``) gives for the same
    interval: per queue its KPIs, their total over all queues, per agent the calls
    answered. A caller still waiting has waited until ``now``."""
    until = now.astimezone(dt.UTC)
    since, _ = day_bounds(today(tz, until), tz)
    queues, total = reports.queue_figures_and_total(session, since, until, rules, now=until)
    return {
        "day": since.astimezone(tz).date().isoformat(),
        "since": since.isoformat(),
        "until": until.isoformat(),
        "rules": {"short_abandon_seconds": rules.short_abandon_seconds,
                  "abandons_count_against_sl": rules.abandons_count_against_sl},
        "queues": {q.queue: {k: asdict(q)[k] for k in QUEUE_KEYS} for q in queues},
        "total": {k: asdict(total)[k] for k in TOTAL_KEYS},
        "agents": {name: {"calls": n}
                   for name, n in sorted(agent_calls(session, since, until).items())},
    }  # fmt: skip


def same_figures(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two views show the same figures (``until`` moves on with every query)."""
    keys = ("day", "queues", "total", "agents", "rules")
    return all(a.get(k) == b.get(k) for k in keys)


class KpiRefresher:
    def __init__(
        self,
        engine: Engine,
        rules: ReportingSettings,
        tz: ZoneInfo,
        on_change: Callable[[], None],
        *,
        interval: float = 1.0,
        max_age: float = 30.0,
        settle: float = 1.2,
    ) -> None:
        """``settle``: seconds to wait after a poke before querying, so that the bridge's
        call-log writer (``bridge.flush_interval``) has written what caused the poke."""
        self.engine = engine
        self.rules = rules
        self.tz = tz
        self.on_change = on_change
        self.interval = interval
        self.max_age = max_age
        self.settle = settle
        self.view: dict[str, Any] = {"queues": {}, "total": {}, "agents": {},
                                     "rules": self._rules()}  # fmt: skip
        self.error: str | None = None
        self.refreshed_at: float | None = None
        self.last_seconds: float | None = None
        self.refreshes = 0
        self._trigger = asyncio.Event()

    def _rules(self) -> dict[str, Any]:
        return {"short_abandon_seconds": self.rules.short_abandon_seconds,
                "abandons_count_against_sl": self.rules.abandons_count_against_sl}  # fmt: skip

    def current(self) -> dict[str, Any]:
        """The figures browsers see, with when they were computed and the error, if any."""
        return {**self.view, "computed_at": self.refreshed_at, "error": self.error}

    def poke(self) -> None:
        self._trigger.set()

    def compute(self, now: dt.datetime | None = None) -> dict[str, Any]:
        """Query the day's figures (blocking: run it in a thread)."""
        now = now or dt.datetime.now(dt.UTC)
        with Session(self.engine) as session, session.begin():
            return day_figures(bounded(session), self.rules, self.tz, now)

    async def refresh(self) -> None:
        started = time.perf_counter()
        try:
            view = await asyncio.to_thread(self.compute)
        except sa.exc.SQLAlchemyError as exc:
            detail = str(getattr(exc, "orig", None) or exc).strip().splitlines() or ["?"]
            error = f"the call log is unavailable: {detail[0]}"
            if error != self.error:
                log.warning("wallboard: %s; keeping the last figures", error)
                self.error = error
                self.on_change()
            return
        self.last_seconds = time.perf_counter() - started
        self.refreshes += 1
        self.refreshed_at = time.time()
        changed = not same_figures(view, self.view) or self.error is not None
        self.view, self.error = view, None
        if changed:
            self.on_change()

    async def run(self) -> None:
        """Refresh until cancelled."""
        while True:
            await self.refresh()
            done = time.monotonic()
            poked = False
            # A caller waiting within the threshold is missed once past it, with no event to
            # say so: while there is one, the figures are queried again at the usual pace.
            pending = (self.view.get("total") or {}).get("sl_pending")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval if pending else self.max_age):
                    await self._trigger.wait()
                    poked = True
            self._trigger.clear()
            if poked:
                await asyncio.sleep(self.settle)
            # Pokes that come while we wait or query are served by the next refresh. A slow
            # call log is queried less often: at most a fifth of the time goes to queries.
            gap = max(self.interval, 4 * (self.last_seconds or 0.0))
            await asyncio.sleep(max(0.0, done + gap - time.monotonic()))
