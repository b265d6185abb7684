"""The webhook delivery worker: ``callcenter webhooks run``, and a part of ``callcenter run``.

Each turn it claims the outbox rows that are due (``FOR UPDATE SKIP LOCKED``, so several
workers share the work and never post the same row at once) and pushes their
``next_attempt_at`` past the time their posts can take: that is the claim. A worker that
dies mid-way leaves its rows claimed until then; another worker (or this one, restarted)
takes them again: delivery is at least once, never at most once.

The rows of one webhook are posted by one task, ``concurrency`` at a time, while the others'
tasks go on: a slow or dead receiver holds up only its own events. Each try goes into the
delivery log. A 2xx answer is a delivery; anything else reschedules the row with
:func:`~callcenter.webhooks.outbox.backoff` (or the receiver's ``Retry-After``) and pauses
the whole webhook (its pending rows are not due before the pause ends, for every worker;
after it, one probe goes first): a receiver that is down gets one try per pause, growing to
``backoff_cap``, not one per event. So when it is back, its backlog goes out within
``backoff_cap`` seconds. A row still pending ``max_age_hours`` after it was queued is given
up (``dead``; ``callcenter webhooks retry ID`` queues them again).

Time comes from ``clock`` (Unix seconds), so tests move it instead of sleeping.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import random
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any

import aiohttp
import sqlalchemy as sa
from aiohttp.abc import ResolveResult
from aiohttp.resolver import ThreadedResolver
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from callcenter.ami.connection import Backoff
from callcenter.config import Settings, WebhooksSettings
from callcenter.db import driver
from callcenter.db.engine import make_engine
from callcenter.db.models_webhooks import Webhook, WebhookDeliveryLog, WebhookEvent, WebhookOutbox
from callcenter.webhooks import outbox, producers

log = logging.getLogger(__name__)

#: Seconds a claim outlasts the posts it covers (the results still have to be written).
LEASE_MARGIN = 30.0
#: Seconds between two looks for rows past their maximum age (given up: "dead").
SWEEP_SECONDS = 60.0
#: Characters of a receiver's answer kept in the delivery log.
RESPONSE_KEPT = 300
#: How often delivered and dead rows older than ``keep_days`` are deleted.
PRUNE_EVERY = 3600.0
#: Seconds between looks at the call log for ended calls (call.ended).
SCAN_EVERY = 5.0
#: How far back the first look after a start goes before the last call.ended enqueued.
RESCAN = dt.timedelta(minutes=10)


class GuardedResolver(ThreadedResolver):
    """Name resolution that refuses what :func:`~callcenter.webhooks.outbox.check_url`
    refuses for literal addresses: a name that resolves to a link-local address (a cloud's
    metadata service) is not posted to, whatever it resolved to when the webhook was added."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await super().resolve(host, port, family)
        allowed = [r for r in found if outbox.forbidden_address(r["host"]) is None]
        if not allowed:
            reason = outbox.forbidden_address(found[0]["host"]) if found else "nothing"
            raise OSError(f"{host} resolves to {reason}")
        return allowed


@dataclasses.dataclass(frozen=True, slots=True)
class Job:
    """One claimed row: which try it is, where it goes, what it carries."""

    id: int
    attempt: int
    webhook_id: int
    url: str
    secret: str
    event_id: uuid.UUID
    type: str
    occurred_at: dt.datetime
    payload: dict[str, Any]
    queued_at: dt.datetime


@dataclasses.dataclass(frozen=True, slots=True)
class Result:
    job: Job
    at: float
    ok: bool
    status_code: int | None
    error: str
    duration_ms: int
    response: str = ""
    retry_after: float | None = None


def _at(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def _line(text: str, limit: int = 300) -> str:
    return " ".join(text.split())[:limit]


def _columns(rows: list[tuple[Any, ...]]) -> list[list[Any]]:
    """The columns of ``rows`` (not empty), as the arrays a statement unnests."""
    return [list(column) for column in zip(*rows, strict=True)]


class DeliveryWorker:
    """Delivers the outbox until stopped (:meth:`run` is a :data:`callcenter.service.Main`)."""

    def __init__(
        self,
        settings: Settings,
        *,
        engine: Engine | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        lease_margin: float = LEASE_MARGIN,
    ) -> None:
        self.options: WebhooksSettings = settings.webhooks
        self.engine = engine or make_engine(settings.database)
        self._own_engine = engine is None
        self.clock = clock
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not secrecy
        self.lease_margin = lease_margin
        #: webhook id -> the task posting its claimed rows
        self.busy: dict[int, asyncio.Task[None]] = {}
        #: webhook id -> until when it is left alone after a failure, and how many in a row
        self.paused: dict[int, float] = {}
        self.failures: dict[int, int] = {}
        self.stopping = False
        self.tries = 0
        self.delivered = 0
        self._pruned_at = -float("inf")
        self._swept_at = -float("inf")
        self._scanned_at = -float("inf")
        #: call.ended: the ``updated_at`` of the last ended call enqueued (None: not known yet).
        self._calls_mark: dt.datetime | None = None
        self._calls_started = False
        self._pruning: asyncio.Task[int] | None = None

    # --- the loop --------------------------------------------------------------------------

    def session(self) -> aiohttp.ClientSession:
        """The HTTP client: a total timeout per post, no redirects followed (see ``_post``),
        no cookies kept, names resolved by :class:`GuardedResolver`."""
        connector = aiohttp.TCPConnector(
            resolver=GuardedResolver(), limit=100, limit_per_host=self.options.concurrency
        )
        return aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.options.timeout),
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop``; then claim nothing more, let the posts under way finish
        (each within ``timeout``) and write their results."""
        log.info("webhooks: delivering the outbox")
        db_backoff = Backoff(base=0.5, cap=30.0)
        try:
            async with self.session() as http:
                while not stop.is_set():
                    full = False
                    try:
                        await self._produce_if_due()
                        full = await self.step(http)
                        self._prune_if_due()
                        db_backoff.reset()
                    except sa.exc.SQLAlchemyError as exc:
                        wait = db_backoff.next()
                        log.warning(
                            "webhooks: database unavailable (%s); again in %.0f s",
                            _line(str(exc), 120),
                            wait,
                        )
                        await self._wait(stop, wait)
                        continue
                    if not full:
                        await self._wait(stop, self.options.poll_interval)
                self.stopping = True
                await self.settle()
        finally:
            self.stopping = True
            for task in self.busy.values():
                task.cancel()
            await asyncio.gather(*self.busy.values(), return_exceptions=True)
            if self._pruning is not None:  # a thread: it cannot be cancelled, only awaited
                await asyncio.gather(self._pruning, return_exceptions=True)
            if self._own_engine:
                self.engine.dispose()
            log.info("webhooks: stopped")

    async def _wait(self, stop: asyncio.Event, seconds: float) -> None:
        """Until ``stop``, ``seconds``, or a webhook's task ending (it may have more due)."""
        stopper = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait(
                [stopper, *self.busy.values()], timeout=seconds, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            stopper.cancel()
            await asyncio.gather(stopper, return_exceptions=True)

    async def step(self, http: aiohttp.ClientSession) -> bool:
        """Claim what is due for the webhooks that are neither busy nor paused, and start
        their tasks. True when a whole batch was claimed (more may be due)."""
        now = self.clock()
        self.paused = {w: until for w, until in self.paused.items() if until > now}
        for wid in [w for w, task in self.busy.items() if task.done()]:
            self.busy.pop(wid).result()  # a task never raises (see _work); if it did: a bug
        skip = set(self.busy) | set(self.paused)
        jobs = await asyncio.to_thread(self.claim, now, skip)
        groups: dict[int, list[Job]] = {}
        for job in jobs:
            groups.setdefault(job.webhook_id, []).append(job)
        for wid, group in groups.items():
            self.busy[wid] = asyncio.create_task(
                self._work(http, wid, group), name=f"webhook-{wid}"
            )
        return len(jobs) >= self.options.batch

    async def settle(self) -> None:
        """Wait for every webhook's task (tests: one whole turn)."""
        while self.busy:
            tasks = list(self.busy.values())
            await asyncio.gather(*tasks)
            self.busy = {w: t for w, t in self.busy.items() if not t.done()}

    # --- the database (in a thread) ----------------------------------------------------------

    def claim(self, now: float, skip: set[int]) -> list[Job]:
        """Give up the rows past their maximum age, then claim up to ``batch`` due rows of
        webhooks not in ``skip``."""
        o = self.options
        at = _at(now)
        oldest = at - dt.timedelta(hours=o.max_age_hours)
        # Giving up is a matter of hours (max_age_hours): look for such rows once a minute,
        # not at every poll (an UPDATE a second is most of an idle worker's CPU).
        sweep = now - self._swept_at >= SWEEP_SECONDS
        # The driver's own statements (callcenter.db.driver), built once: the ORM's select of
        # three entities and its flush of their changes were most of a claim's CPU.
        with self.engine.begin() as conn:
            if sweep:
                self._swept_at = now
                driver.rows(conn, _SWEEP, (at, oldest))
            # Past its age a row is never posted, swept or not yet (created_at > oldest).
            rows = driver.rows(conn, _CLAIM, (at, oldest, list(skip), o.batch))
            if not rows:
                return []
            per_hook: dict[int, int] = {}
            for row in rows:
                per_hook[row[3]] = per_hook.get(row[3], 0) + 1
            jobs = []
            nexts = []
            for ident, attempts, queued_at, wid, url, secret, event, kind, occurred, data in rows:
                # Long enough for this webhook's posts, concurrency at a time, to end.
                rounds = -(-per_hook[wid] // o.concurrency)
                nexts.append(at + dt.timedelta(seconds=rounds * o.timeout + self.lease_margin))
                jobs.append(
                    Job(
                        ident,
                        attempts + 1,
                        wid,
                        url,
                        secret,
                        event,
                        kind,
                        occurred,
                        dict(data),
                        queued_at,
                    )
                )
            ids = [job.id for job in jobs]
            driver.rows(conn, _CLAIMED, (at, ids, [job.attempt for job in jobs], nexts))
        return jobs

    def record(
        self,
        wid: int,
        results: list[Result],
        untried: list[Job],
        now: float,
        paused_until: float | None = None,
    ) -> None:
        """Write webhook ``wid``'s tries and what follows from them; put back the rows not
        tried. A row claimed again meanwhile (``attempts`` moved on) keeps its new claim; a
        row removed meanwhile (with its webhook) is not logged. When the webhook failed,
        none of its rows is due before ``paused_until``: the pause holds for every worker,
        and the due rows of a receiver that is down do not clog the claim's index scan."""
        o = self.options
        max_age = dt.timedelta(hours=o.max_age_hours)
        # The driver's own statements, each for all the rows at once (unnest of arrays), not
        # an ORM insert and an UPDATE per try: this was the worker's costliest step.
        with self.engine.begin() as conn:
            ids = [r.job.id for r in results] + [j.id for j in untried]
            alive = {row[0] for row in driver.rows(conn, _ALIVE, (ids,))}
            logs: list[tuple[Any, ...]] = []
            outcomes: list[tuple[Any, ...]] = []
            for r in results:
                job, at = r.job, _at(r.at)
                if job.id not in alive:
                    continue
                logs.append((job.id, job.attempt, at, r.ok, r.status_code, r.error[:300],
                             r.duration_ms, r.response))  # fmt: skip
                if r.ok:
                    outcomes.append((job.id, True, job.attempt, "delivered", at, None, ""))
                    continue
                wait = outbox.backoff(
                    job.attempt, base=o.backoff_base, cap=o.backoff_cap, rng=self.rng
                )
                if r.retry_after is not None:
                    wait = max(wait, r.retry_after)
                deadline = job.queued_at + max_age
                due = min(at + dt.timedelta(seconds=wait), deadline)
                given_up = at >= deadline
                status = "dead" if given_up else "pending"
                error = (("gave up: " if given_up else "") + r.error)[:300]
                outcomes.append((job.id, False, job.attempt, status, None, due, error))
            if logs:
                driver.rows(conn, _LOG, _columns(logs))
                driver.rows(conn, _DONE, _columns(outcomes))
            if untried:  # due again now, or when the pause ends (below)
                back = (_at(now), [j.id for j in untried], [j.attempt for j in untried])
                driver.rows(conn, _UNTRIED, back)
            if paused_until is not None:
                until = _at(paused_until)
                driver.rows(conn, _PAUSE, (until, wid, until))

    def prune(self, now: float) -> int:
        """Delete delivered and dead rows (and their log) older than ``keep_days``, and the
        events left without rows. Returns how many rows went."""
        cutoff = _at(now) - dt.timedelta(days=self.options.keep_days)
        with Session(self.engine) as session, session.begin():
            gone = session.execute(
                sa.delete(WebhookOutbox).where(
                    WebhookOutbox.status.in_(("delivered", "dead")),
                    WebhookOutbox.created_at < cutoff,
                )
            )
            session.execute(
                sa.delete(WebhookEvent).where(
                    WebhookEvent.created_at < cutoff,
                    ~sa.select(WebhookOutbox.id)
                    .where(WebhookOutbox.event_id == WebhookEvent.id)
                    .exists(),
                )
            )
            return int(getattr(gone, "rowcount", 0) or 0)

    async def _produce_if_due(self) -> None:
        """``call.ended`` from the call log (:mod:`callcenter.webhooks.producers`), every
        :data:`SCAN_EVERY` seconds."""
        now = time.monotonic()
        if now - self._scanned_at < SCAN_EVERY:
            return
        self._scanned_at = now
        await asyncio.to_thread(self._produce)

    def _produce(self) -> None:
        with Session(self.engine) as session, session.begin():
            at = dt.datetime.fromtimestamp(self.clock(), dt.UTC)
            if not self._calls_started:
                # Where the last run stopped (its last call.ended), a few minutes back for
                # calls the bridge wrote late; else the last few minutes only.
                last = session.scalar(
                    sa.select(sa.func.max(WebhookEvent.created_at)).where(
                        WebhookEvent.type == "call.ended"
                    )
                )
                self._calls_mark = (last or at) - RESCAN
                self._calls_started = True
            _, self._calls_mark = producers.scan_ended_calls(session, self._calls_mark, at)

    def _prune_if_due(self) -> None:
        now = time.monotonic()
        if now - self._pruned_at >= PRUNE_EVERY:
            self._pruned_at = now
            self._pruning = asyncio.create_task(asyncio.to_thread(self.prune, self.clock()))
            self._pruning.add_done_callback(_pruned)

    # --- one webhook's posts -----------------------------------------------------------------

    async def _work(self, http: aiohttp.ClientSession, wid: int, jobs: list[Job]) -> None:
        """Post ``jobs`` (all for webhook ``wid``), ``concurrency`` at a time (only one, first,
        when it was failing), until one fails; then write what happened. Never raises: a
        failure to write only delays the rows (their claim runs out and they are tried
        again)."""
        gate = asyncio.Semaphore(self.options.concurrency)
        results: list[Result] = []
        untried: list[Job] = []
        failed = False

        async def one(job: Job) -> None:
            nonlocal failed
            async with gate:
                if failed or self.stopping:
                    untried.append(job)
                    return
                result = await self._post(http, job)
                results.append(result)
                if not result.ok:
                    failed = True

        if wid in self.failures:  # it was failing: one probe first, then the rest
            await one(jobs[0])
            jobs = jobs[1:]
        await asyncio.gather(*(one(job) for job in jobs))
        now = self.clock()
        paused_until: float | None = None
        if failed:
            count = self.failures[wid] = self.failures.get(wid, 0) + 1
            pause = outbox.backoff(
                count, base=self.options.backoff_base, cap=self.options.backoff_cap, rng=self.rng
            )
            hints = [r.retry_after for r in results if r.retry_after is not None]
            pause = max([pause, *hints])
            paused_until = self.paused[wid] = now + pause
            last = next(r for r in results if not r.ok)
            log.warning(
                "webhooks: %s failed (%s); next try in %.0f s", last.job.url, last.error, pause
            )
        else:
            self.failures.pop(wid, None)
            self.paused.pop(wid, None)
        self.tries += len(results)
        self.delivered += sum(r.ok for r in results)
        backoff = Backoff(base=0.2, cap=2.0)
        for _ in range(5):
            try:
                await asyncio.to_thread(self.record, wid, results, untried, now, paused_until)
                return
            except sa.exc.SQLAlchemyError as exc:
                log.warning(
                    "webhooks: cannot write %d results (%s)", len(results), _line(str(exc), 120)
                )
                await asyncio.sleep(backoff.next())
        log.error(
            "webhooks: %d results of webhook %d not written; those rows will be tried "
            "again when their claim runs out",
            len(results),
            wid,
        )

    async def _post(self, http: aiohttp.ClientSession, job: Job) -> Result:
        payload = outbox.body(job.event_id, job.type, job.occurred_at, job.payload)
        started = self.clock()
        ticks = time.monotonic()
        head = outbox.headers(
            job.secret,
            ident=job.event_id,
            event_type=job.type,
            delivery=job.id,
            attempt=job.attempt,
            timestamp=int(started),
            payload=payload,
        )

        def took() -> int:
            return round((time.monotonic() - ticks) * 1000)

        try:
            outbox.check_url(job.url)  # the rules may have changed since it was added
            async with http.post(
                job.url, data=payload, headers=head, allow_redirects=False
            ) as response:
                text = (await response.content.read(RESPONSE_KEPT)).decode("utf-8", "replace")
                status = response.status
                ok = 200 <= status < 300
                hint = outbox.retry_after(
                    response.headers.get("Retry-After"), self.options.backoff_cap
                )
                error = "" if ok else f"HTTP {status} {response.reason or ''}".strip()
                return Result(job, started, ok, status, error, took(), _line(text), hint)
        except TimeoutError:
            error = f"no answer within {self.options.timeout:g} s"
        except aiohttp.ClientConnectorError as exc:
            error = f"cannot connect: {exc.os_error.strerror or exc.os_error}"
        except (aiohttp.ClientError, OSError, outbox.WebhookError) as exc:
            error = _line(str(exc) or type(exc).__name__)
        return Result(job, started, False, None, error, took())


_OUTBOX = WebhookOutbox.__tablename__
#: Rows past their maximum age are given up: (now, oldest created_at kept).
_SWEEP = (
    f"UPDATE {_OUTBOX} SET status = 'dead', last_error = left('gave up: ' || last_error, 300) "
    "WHERE status = 'pending' AND next_attempt_at <= %s AND created_at <= %s"
)
#: The due rows (now, oldest created_at, webhooks skipped, batch), with their events and
#: webhooks: Job's fields but the try, in the order of the row's unpacking in ``claim``.
_CLAIM = (
    "SELECT o.id, o.attempts, o.created_at, w.id, w.url, w.secret, "
    "e.event_id, e.type, e.created_at, e.payload "
    f"FROM {_OUTBOX} o JOIN {WebhookEvent.__tablename__} e ON e.id = o.event_id "
    f"JOIN {Webhook.__tablename__} w ON w.id = o.webhook_id "
    "WHERE o.status = 'pending' AND o.next_attempt_at <= %s AND o.created_at > %s "
    "AND o.webhook_id <> ALL(%s::int[]) "
    "ORDER BY o.next_attempt_at, o.id LIMIT %s FOR UPDATE OF o SKIP LOCKED"
)
#: The claim of the rows just selected (locked): (now, ids, their tries, their next times).
_CLAIMED = (
    f"UPDATE {_OUTBOX} o SET attempts = v.attempts, last_attempt_at = %s, "
    "next_attempt_at = v.next_attempt_at "
    "FROM unnest(%s::bigint[], %s::int[], %s::timestamptz[]) AS v(id, attempts, next_attempt_at) "
    "WHERE o.id = v.id"
)
#: Which of these rows still exist, locked until the results are written.
_ALIVE = f"SELECT id FROM {_OUTBOX} WHERE id = ANY(%s::bigint[]) FOR UPDATE"
#: The tries, in the order given (their log ids follow it).
_LOG = (
    f"INSERT INTO {WebhookDeliveryLog.__tablename__} "
    "(outbox_id, attempt, at, ok, status_code, error, duration_ms, response) "
    "SELECT outbox_id, attempt, at, ok, status_code, error, duration_ms, response "
    "FROM unnest(%s::bigint[], %s::int[], %s::timestamptz[], %s::boolean[], %s::smallint[], "
    "%s::text[], %s::int[], %s::text[]) WITH ORDINALITY "
    "AS v(outbox_id, attempt, at, ok, status_code, error, duration_ms, response, n) ORDER BY n"
)
#: What follows from each try (id, ok, try, status, delivered_at, next_attempt_at,
#: last_error): a delivery ends a pending row whatever its claim; a failure reschedules it
#: (or gives it up) only while the row is still that try's claim.
_DONE = (
    f"UPDATE {_OUTBOX} o SET status = v.status, "
    "delivered_at = CASE WHEN v.ok THEN v.delivered_at ELSE o.delivered_at END, "
    "next_attempt_at = CASE WHEN v.ok THEN o.next_attempt_at ELSE v.next_attempt_at END, "
    "last_error = v.last_error "
    "FROM unnest(%s::bigint[], %s::boolean[], %s::int[], %s::text[], %s::timestamptz[], "
    "%s::timestamptz[], %s::text[]) "
    "AS v(id, ok, attempt, status, delivered_at, next_attempt_at, last_error) "
    "WHERE o.id = v.id AND o.status = 'pending' AND (v.ok OR o.attempts = v.attempt)"
)
#: Rows not tried go back (now, ids, their tries), unless claimed again meanwhile.
_UNTRIED = (
    f"UPDATE {_OUTBOX} o SET attempts = o.attempts - 1, next_attempt_at = %s "
    "FROM unnest(%s::bigint[], %s::int[]) AS v(id, attempt) "
    "WHERE o.id = v.id AND o.status = 'pending' AND o.attempts = v.attempt"
)
#: A failing webhook's pending rows wait for its pause (until, webhook, until).
_PAUSE = (
    f"UPDATE {_OUTBOX} SET next_attempt_at = %s "
    "WHERE webhook_id = %s AND status = 'pending' AND next_attempt_at < %s"
)


def _pruned(task: asyncio.Task[int]) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.warning("webhooks: pruning old deliveries failed: %s", _line(str(exc), 120))
    elif task.result():
        log.info("webhooks: %d old deliveries deleted", task.result())
