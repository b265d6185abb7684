"""The day's figures, from the call log, with :mod:`callcenter.reports` (the same SQL and the
same rules as ``callcenter report``, so the board and the report agree).

:class:`KpiRefresher` queries them in a worker thread, never for a browser: after a call moved
on (:meth:`KpiRefresher.poke`) once the bridge has had time to write it, at most once per
``kpi_interval`` (and in at most a fifth of the time), and at least every ``kpi_max_age`` (so
the day rolls over at midnight in the site's time zone), and when a caller waiting within
their queue's SL threshold passes it (they are then missed: SL changes with no event). The
result is one small dict that every browser gets; when the database is away the last figures
stay, marked with the error.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from callcenter import reports
from callcenter.config import ReportingSettings
from callcenter.logsafe import clean
from callcenter.satisfaction import measures as satisfaction
from callcenter.satisfaction import store as satisfaction_store
from callcenter.timespec import start_of_day

log = logging.getLogger(__name__)
#: What the board and the API say while the call log cannot be read (no detail: the log has it).
UNAVAILABLE = "the call log is unavailable; the figures are the last ones read"

#: A query of the board must never hold a connection for long (the call log may be huge).
STATEMENT_TIMEOUT_MS = 10_000
QUEUE_KEYS = ("offered", "answered", "abandoned", "timed_out", "exited", "service_level",
              "service_level_threshold", "asa", "aht", "abandon_rate", "longest_wait",
              "sl_pending")  # fmt: skip
#: All queues together: the same figures, each visit judged by its own queue's SL threshold.
TOTAL_KEYS = tuple(k for k in QUEUE_KEYS if k != "service_level_threshold")
#: Satisfaction of the day's survey answers (callcenter.satisfaction.measures): CSAT 0..1 and
#: NPS -100..100, None with no answer, each with its number of answers.
SATISFACTION_KEYS = ("csat", "csat_n", "nps", "nps_n")


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


_NEXT_SL_MISS_SQL = sa.text("""
SELECT min(v.queued_at + make_interval(secs => coalesce(q.service_level_seconds, :default_sl) + 1))
  FROM queue_visits v
  LEFT JOIN queues q ON q.name = v.queue
 WHERE v.queued_at >= :since AND v.queued_at < :now
   AND v.outcome IS NULL AND v.answered_at IS NULL
   AND v.queued_at + make_interval(secs => coalesce(q.service_level_seconds, :default_sl) + 1)
       > CAST(:now AS timestamptz)
""")


def next_sl_miss(session: Session, since: dt.datetime, now: dt.datetime) -> dt.datetime | None:
    """When the first caller waiting within their queue's SL threshold passes it (the
    moment :data:`reports.QUEUE_SQL` stops counting them in ``sl_pending``): the figures
    change then with no event to say so."""
    found = session.execute(
        _NEXT_SL_MISS_SQL,
        {"since": since, "now": now, "default_sl": reports.DEFAULT_SL_SECONDS},
    ).scalar()
    return found if isinstance(found, dt.datetime) else None


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


#: The figures of a queue no call entered today (its SL threshold comes from the queues table).
_NO_CALLS: dict[str, Any] = {
    "offered": 0, "answered": 0, "abandoned": 0, "timed_out": 0, "exited": 0,
    "service_level": None, "asa": None, "aht": None, "abandon_rate": None,
    "longest_wait": None, "sl_pending": 0,
}  # fmt: skip
_THRESHOLDS_SQL = sa.text(
    "SELECT name, service_level_seconds FROM queues WHERE name = ANY(CAST(:names AS text[]))"
)


def with_satisfaction(
    queues: dict[str, dict[str, Any]],
    total: dict[str, Any],
    answers: dict[Any, Any],
    thresholds: dict[str, int | None],
) -> None:
    """Add each queue's CSAT and NPS (``answers``: queue -> Satisfaction) to its figures, in
    place: every queue gets them (None with n = 0 when nobody answered). A queue with answers
    but no call today (a survey answered after midnight, an outbound survey of an older
    call) gets the figures of a queue with no calls, with its SL threshold (``thresholds``,
    else the reports' default). The total is over the answers that have a queue, so that it
    adds up the queues shown (an outbound survey of no queue is in ``callcenter report
    --satisfaction --by campaign`` only)."""
    for name in {q for q in answers if q is not None} - set(queues):
        threshold = thresholds.get(name)
        queues[name] = {
            **_NO_CALLS,
            "service_level_threshold": reports.DEFAULT_SL_SECONDS if threshold is None
            else threshold,
        }  # fmt: skip
    for name, row in queues.items():
        row.update(answers.get(name, satisfaction.Satisfaction()).figures())
    queued = satisfaction.total(s for q, s in answers.items() if q is not None)
    total.update(queued.figures())


def _pick(figures: Any, keys: tuple[str, ...]) -> dict[str, Any]:
    """These fields of a figures dataclass (attributes: ``asdict`` copied all of them, for
    every key, on every refresh)."""
    return {k: getattr(figures, k) for k in keys}


def day_figures(
    session: Session, rules: ReportingSettings, tz: ZoneInfo, now: dt.datetime
) -> dict[str, Any]:
    """Today so far as browsers get it, with the figures ``callcenter report`` (no --since or
    --until: from midnight in the site's time zone until ``now``) gives for the same
    interval: per queue its KPIs and its satisfaction (``callcenter report --satisfaction``:
    the survey answers given today), their total over all queues, per agent the calls
    answered. A caller still waiting has waited until ``now``."""
    until = now.astimezone(dt.UTC)
    since, _ = day_bounds(today(tz, until), tz)
    queues, total = reports.queue_figures_and_total(session, since, until, rules, now=until)
    queue_rows = {q.queue: _pick(q, QUEUE_KEYS) for q in queues}
    total_row = _pick(total, TOTAL_KEYS)
    answers = satisfaction_store.counts(session, since, until, "queue")
    quiet = sorted(q for q in answers if q is not None and q not in queue_rows)
    thresholds: dict[str, int | None] = {}
    if quiet:
        found = session.execute(_THRESHOLDS_SQL, {"names": quiet}).all()
        thresholds = {str(name): seconds for name, seconds in found}
    with_satisfaction(queue_rows, total_row, answers, thresholds)
    miss = next_sl_miss(session, since, until) if total.sl_pending else None
    return {
        # Not shown: when to query again (KpiRefresher takes it out of the view).
        "next_sl_miss": miss.timestamp() if miss is not None else None,
        "day": since.astimezone(tz).date().isoformat(),
        "since": since.isoformat(),
        "until": until.isoformat(),
        "rules": {"short_abandon_seconds": rules.short_abandon_seconds,
                  "abandons_count_against_sl": rules.abandons_count_against_sl},
        "queues": dict(sorted(queue_rows.items())),
        "total": total_row,
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
        self.failure: str | None = None  # the kind of the last failure, logged once
        self.refreshed_at: float | None = None
        self.last_seconds: float | None = None
        self.refreshes = 0
        #: Epoch seconds when a waiting caller passes their SL threshold (None: nobody will).
        self.next_sl_miss: float | None = None
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
            # The detail (the server's address, the driver's words) is for the log, once per
            # kind of failure; browsers and the API see that the figures are stale, no more.
            orig = getattr(exc, "orig", None) or exc
            if type(orig).__name__ != self.failure:
                self.failure = type(orig).__name__
                detail = str(orig).strip().splitlines() or [self.failure]
                log.warning("wallboard: the call log is unavailable (%s: %s); keeping the last "
                            "figures", self.failure, clean(detail[0]))  # fmt: skip
            if self.error != UNAVAILABLE:
                self.error = UNAVAILABLE
                self.on_change()
            return
        self.failure = None
        self.next_sl_miss = view.pop("next_sl_miss", None)
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
            # say so: the figures are queried again at that moment (or, not knowing it, at
            # the usual pace), not every second while somebody waits.
            pending = (self.view.get("total") or {}).get("sl_pending")
            wait = self.max_age
            if pending and self.next_sl_miss is not None:
                wait = min(self.max_age, max(self.interval, self.next_sl_miss - time.time()))
            elif pending:
                wait = self.interval
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._trigger.wait()
                    poked = True
            self._trigger.clear()
            if poked:
                await asyncio.sleep(self.settle)
            # Pokes that come while we wait or query are served by the next refresh. A slow
            # call log is queried less often: at most a fifth of the time goes to queries.
            gap = max(self.interval, 4 * (self.last_seconds or 0.0))
            await asyncio.sleep(max(0.0, done + gap - time.monotonic()))
