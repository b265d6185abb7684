"""Writes call-log batches to PostgreSQL, at most a second behind, and spools them when the
database is away.

Every write is idempotent, so a batch written twice (a crash while draining the spool, a
resync that re-reports a call) changes nothing the second time:

- ``calls``: upsert on (node, uniqueid) with the latest snapshot; ``survey_score`` is not
  touched (the IVR owns it).
- ``queue_visits``: upsert on (node, uniqueid, visit) with the latest snapshot.
- ``agent_state_changes``: the previous span is closed by upsert on its key (created closed
  if we never saw it open), the new one inserted unless present.
- ``agent_pauses``: at most one open pause per (node, agent, queue): an end closes the open
  one (or stores it closed if we never saw it begin), a start inserts unless one is open.
- ``agent_sessions``: a login inserts unless present; a logout closes the open session.
- ``recordings``: upsert on path with the latest snapshot, while the row is still recording.
- ``call_events``: COPY, one write per batch of pre-formatted lines; a batch written before
  (a replayed spool) goes through a temporary table and inserts only the rows not there yet
  by (node, dedup_key). COPY is what makes 20,000 audit rows a second cheap.

We use psycopg 3 directly rather than SQLAlchemy here: the bridge needs COPY and pipelined
executemany on one long-lived connection, and nothing of the ORM.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

import psycopg

from callcenter.bridge.rows import (
    CALL_COLUMNS,
    EVENT_COLUMNS,
    TIME_COLUMNS,
    VISIT_COLUMNS,
    VISIT_TIME_COLUMNS,
    Batch,
    open_call,
)
from callcenter.bridge.spool import Spool, SpoolFull
from callcenter.core.records import Call
from callcenter.domain import CallOutcome
from callcenter.recordings.track import ROW_COLUMNS as REC_COLUMNS
from callcenter.recordings.track import ROW_TIME_COLUMNS as REC_TIME_COLUMNS

log = logging.getLogger(__name__)


#: Open-batch depth, in ``max_batch`` slices, at which the bridge stops reading AMI.
BACKLOG_BATCHES = 4


def conninfo(url: str) -> str:
    """A SQLAlchemy URL (``postgresql+psycopg://``) as a libpq one."""
    for prefix in ("postgresql+psycopg://", "postgresql+psycopg_async://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url


def _ts(value: float | None) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromtimestamp(value, dt.UTC)


_UPDATE = ", ".join(f"{c} = EXCLUDED.{c}" for c in CALL_COLUMNS if c not in ("node", "uniqueid"))
UPSERT_CALL = (
    f"INSERT INTO calls ({', '.join(CALL_COLUMNS)}, updated_at) "
    f"VALUES ({', '.join('%s' for _ in CALL_COLUMNS)}, now()) "
    f"ON CONFLICT (node, uniqueid) DO UPDATE SET {_UPDATE}, updated_at = now()"
)
_VISIT_UPDATE = ", ".join(
    f"{c} = EXCLUDED.{c}" for c in VISIT_COLUMNS if c not in ("node", "uniqueid", "visit")
)
UPSERT_VISIT = (
    f"INSERT INTO queue_visits ({', '.join(VISIT_COLUMNS)}, updated_at) "
    f"VALUES ({', '.join('%s' for _ in VISIT_COLUMNS)}, now()) "
    f"ON CONFLICT (node, uniqueid, visit) DO UPDATE SET {_VISIT_UPDATE}, updated_at = now()"
)
# The open pause of (node, agent, queue) ends; if there is none (the bridge never saw it
# begin), the pause is stored closed. ``started_at <= end`` keeps a replayed old end from
# closing a later pause.
END_PAUSE = """
WITH closed AS (
    UPDATE agent_pauses SET ended_at = %(end)s::timestamptz
     WHERE node = %(node)s::text AND agent = %(agent)s::text AND queue = %(queue)s::text
       AND ended_at IS NULL AND started_at <= %(end)s::timestamptz
 RETURNING 1)
INSERT INTO agent_pauses (node, agent, queue, reason, started_at, ended_at)
SELECT %(node)s::text, %(agent)s::text, %(queue)s::text, %(reason)s::text,
       %(start)s::timestamptz, %(end)s::timestamptz
 WHERE %(start)s::timestamptz IS NOT NULL AND NOT EXISTS (SELECT 1 FROM closed)
ON CONFLICT (node, agent, queue, started_at) DO UPDATE SET ended_at = EXCLUDED.ended_at
"""
START_PAUSE = """
INSERT INTO agent_pauses (node, agent, queue, reason, started_at)
SELECT %(node)s::text, %(agent)s::text, %(queue)s::text, %(reason)s::text,
       %(start)s::timestamptz
 WHERE NOT EXISTS (SELECT 1 FROM agent_pauses
                    WHERE node = %(node)s::text AND agent = %(agent)s::text
                      AND queue = %(queue)s::text
                      AND (ended_at IS NULL OR started_at = %(start)s::timestamptz))
"""
CLOSE_SPAN = (
    "INSERT INTO agent_state_changes (node, agent, state, reason, started_at, ended_at) "
    "VALUES (%s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (node, agent, started_at, state) DO UPDATE SET ended_at = EXCLUDED.ended_at"
)
OPEN_SPAN = (
    "INSERT INTO agent_state_changes (node, agent, state, reason, started_at) "
    "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (node, agent, started_at, state) DO NOTHING"
)
LOGIN = (
    "INSERT INTO agent_sessions (node, agent, interface, login_at) VALUES (%s, %s, %s, %s) "
    "ON CONFLICT (node, agent, login_at) DO NOTHING"
)
LOGOUT = (
    "UPDATE agent_sessions SET logout_at = %s, logout_reason = %s "
    "WHERE node = %s AND agent = %s AND logout_at IS NULL AND login_at <= %s"
)

# A recording's row, from the bridge's recordings tracker (callcenter.recordings.track): the
# latest snapshot wins while the row is still recording; once done, missing or purged the
# bridge never touches it again (a replayed spool cannot bring a purged file's row back).
_REC_UPDATE = ", ".join(f"{c} = EXCLUDED.{c}" for c in REC_COLUMNS if c != "path")
UPSERT_RECORDING = (
    f"INSERT INTO recordings ({', '.join(REC_COLUMNS)}, updated_at) "
    f"VALUES ({', '.join('%s' for _ in REC_COLUMNS)}, now()) "
    f"ON CONFLICT (path) DO UPDATE SET {_REC_UPDATE}, updated_at = now() "
    "WHERE recordings.state = 'recording'"
)
# The recordings of a node the database holds unfinished (a stop of the bridge cut them).
OPEN_RECORDINGS = f"""
SELECT {", ".join(REC_COLUMNS)} FROM recordings
 WHERE node = %s AND state = 'recording' ORDER BY started_at
"""

# Where a node's call log leaves off: its latest call start or end.
LAST_CALL_AT = """
SELECT extract(epoch FROM max(greatest(started_at, ended_at))) AS at FROM calls WHERE node = %s
"""

# The calls of a node the call log holds open, with their newest queue visit.
_OPEN_CALL_COLUMNS = ", ".join(f"c.{col}" for col in CALL_COLUMNS)
OPEN_CALLS = f"""
SELECT {_OPEN_CALL_COLUMNS},
       v.visit, v.outcome AS visit_outcome, v.ended_at AS visit_ended_at, v.transfer_target
  FROM calls c
  LEFT JOIN LATERAL (SELECT visit, outcome, ended_at, transfer_target FROM queue_visits q
                      WHERE q.node = c.node AND q.uniqueid = c.uniqueid
                      ORDER BY visit DESC LIMIT 1) v ON true
 WHERE c.node = %s AND c.outcome IS NULL
 ORDER BY c.started_at
"""

# Some calls of a node by uniqueid, with their newest queue visit (as OPEN_CALLS).
CALLS_BY_ID = OPEN_CALLS.replace("c.outcome IS NULL", "c.uniqueid = ANY(%s)")


def _call_params(rows: Iterable[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        tuple(_ts(row[c]) if c in TIME_COLUMNS else row[c] for c in CALL_COLUMNS) for row in rows
    ]


def _visit_params(rows: Iterable[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        tuple(_ts(row[c]) if c in VISIT_TIME_COLUMNS else row[c] for c in VISIT_COLUMNS)
        for row in rows
    ]


def _recording_params(rows: Iterable[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        tuple(_ts(row[c]) if c in REC_TIME_COLUMNS else row[c] for c in REC_COLUMNS) for row in rows
    ]


def _pause_params(pauses: Iterable[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """Each pause change as its statements, in order: the end of the previous pause, then
    the start of the new one (a change of reason is both)."""
    out: list[tuple[str, dict[str, Any]]] = []
    for p in pauses:
        key = {"node": p["node"], "agent": p["agent"], "queue": p["queue"]}
        at = _ts(p["at"])
        if p["previous_paused"]:
            start = _ts(p["previous_started_at"])
            out.append((END_PAUSE, {**key, "reason": p["previous_reason"], "start": start,
                                    "end": at}))  # fmt: skip
        if p["paused"]:
            out.append((START_PAUSE, {**key, "reason": p["reason"], "start": at}))
    return out


async def write_batch(conn: psycopg.AsyncConnection[Any], batch: Batch) -> None:
    """Write one batch in one transaction.

    The row statements go out in one pipeline (no round trip per row: a busy minute has
    thousands of state spans), then the audit lines by COPY, which a pipeline cannot carry.
    Spans are sent as all closes, then all opens: an open never overwrites a row (``DO
    NOTHING``), so a span opened and closed in the same batch ends up closed either way.
    Sessions keep their order (a logout closes the login before it).
    """
    closes: list[tuple[Any, ...]] = []
    opens: list[tuple[Any, ...]] = []
    for span in batch.spans:
        if span["previous_state"] and span["previous_started_at"] is not None:
            start = span["previous_started_at"]
            end = max(start, span["started_at"])
            closes.append((span["node"], span["agent"], span["previous_state"],
                           span["previous_reason"], _ts(start), _ts(end)))  # fmt: skip
        if span["state"] != "logged_out":
            opens.append((span["node"], span["agent"], span["state"], span["reason"],
                          _ts(span["started_at"])))  # fmt: skip
    async with conn.transaction(), conn.cursor() as cur:
        if (batch.calls or batch.visits or closes or opens or batch.pauses or batch.sessions
                or batch.recordings):  # fmt: skip
            async with conn.pipeline():
                if batch.calls:
                    await cur.executemany(UPSERT_CALL, _call_params(batch.calls.values()))
                if batch.recordings:
                    await cur.executemany(
                        UPSERT_RECORDING, _recording_params(batch.recordings.values())
                    )
                if batch.visits:
                    await cur.executemany(UPSERT_VISIT, _visit_params(batch.visits.values()))
                for statement, params in _pause_params(batch.pauses):
                    await cur.execute(statement, params)
                if closes:
                    await cur.executemany(CLOSE_SPAN, closes)
                if opens:
                    await cur.executemany(OPEN_SPAN, opens)
                for s in batch.sessions:
                    at = _ts(s["at"])
                    if s["op"] == "login":
                        await cur.execute(LOGIN, (s["node"], s["agent"], s["interface"], at))
                    else:
                        await cur.execute(LOGOUT, (at, s["reason"], s["node"], s["agent"], at))
        if batch.events:
            await _copy_events(cur, batch.events)


async def _copy_events(cur: psycopg.AsyncCursor[Any], lines: Sequence[str]) -> None:
    """COPY the audit lines straight into call_events. If the batch was written before (a
    spooled batch replayed after a crash), the unique key refuses it: then go through a
    temporary table and keep only the rows not there yet."""
    data = "".join(lines).encode("utf-8")
    cols = ", ".join(EVENT_COLUMNS)
    try:
        # A savepoint, so that the fallback can go on in the same transaction.
        async with (
            cur.connection.transaction(),
            cur.copy(f"COPY call_events ({cols}) FROM STDIN") as copy,
        ):
            await copy.write(data)
        return
    except psycopg.errors.UniqueViolation:
        pass
    await cur.execute(
        "CREATE TEMP TABLE IF NOT EXISTS _events_in "
        "(LIKE call_events INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
    )
    async with cur.copy(f"COPY _events_in ({cols}) FROM STDIN") as copy:
        await copy.write(data)
    await cur.execute(
        f"INSERT INTO call_events ({cols}) SELECT {cols} FROM _events_in "
        "ON CONFLICT (node, dedup_key) DO NOTHING"
    )


class CallLogWriter:
    """Collects changes, flushes them at least once a second, spools when the database is
    away, and drains the spool (in order) when it is back.

    ``add_*`` never block and never do I/O. :meth:`run` is the flushing task. When the spool
    is full, :attr:`writable` is cleared: the bridge waits on it before reading more AMI.
    """

    def __init__(
        self,
        url: str,
        spool: Spool,
        *,
        interval: float = 1.0,
        max_batch: int = 20_000,
        connect_timeout: float = 5.0,
    ) -> None:
        self._conninfo = conninfo(url)
        self.spool = spool
        self.interval = interval
        self.max_batch = max_batch
        self.connect_timeout = connect_timeout
        self._batch = Batch()
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._kick = asyncio.Event()
        self.writable = asyncio.Event()
        self.writable.set()
        self.database_up = False
        self.in_flight = 0  # rows handed to the database and not yet committed
        self.rows_written = 0
        self.batches_written = 0
        self.last_error = ""

    @property
    def pending(self) -> int:
        return len(self._batch)

    def add(self, batch_rows: Batch) -> None:
        """Merge rows prepared elsewhere into the open batch."""
        self._batch.calls.update(batch_rows.calls)
        self._batch.recordings.update(batch_rows.recordings)
        self._batch.visits.update(batch_rows.visits)
        self._batch.spans.extend(batch_rows.spans)
        self._batch.pauses.extend(batch_rows.pauses)
        self._batch.sessions.extend(batch_rows.sessions)
        self._batch.events.extend(batch_rows.events)
        if len(self._batch) >= self.max_batch:
            self._kick.set()

    @property
    def batch(self) -> Batch:
        """The open batch, for callers that add rows directly (then :meth:`poke`)."""
        return self._batch

    def poke(self) -> None:
        size = len(self._batch)
        if size >= self.max_batch:
            self._kick.set()
            if size >= BACKLOG_BATCHES * self.max_batch and self.writable.is_set():
                # The database is slower than Asterisk: stop reading AMI for a moment
                # (Asterisk buffers) rather than let the batch, and memory, grow unbounded.
                self.writable.clear()

    def flush_soon(self) -> None:
        """Flush now rather than at the next interval (the open batch may be small)."""
        self._kick.set()

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(
                self._conninfo, connect_timeout=max(1, round(self.connect_timeout))
            )
        return self._conn

    async def _query(self, sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
        """Rows of one query on a connection of its own (the writer's may be busy); raises
        psycopg.Error / OSError / TimeoutError when the database is away."""
        from psycopg.rows import dict_row

        async with asyncio.timeout(max(5.0, self.connect_timeout * 2)):
            conn = await psycopg.AsyncConnection.connect(
                self._conninfo, connect_timeout=max(1, round(self.connect_timeout)),
                row_factory=dict_row,
            )  # fmt: skip
            try:
                cur = await conn.execute(sql, params)
                return await cur.fetchall()
            finally:
                await conn.close()

    async def last_call_at(self, node: str) -> float | None:
        """The latest start or end of a call of ``node`` in the call log (epoch), None when
        it has none: where a bridge that stopped left off."""
        rows = await self._query(LAST_CALL_AT, (node,))
        value = rows[0]["at"] if rows else None
        return float(value) if value is not None else None

    async def calls_by_id(self, node: str, uniqueids: Sequence[str]) -> dict[str, Call]:
        """The call log's calls of ``node`` among ``uniqueids``, as the core's records
        (closed ones with their outcome)."""
        out: dict[str, Call] = {}
        for row in await self._query(CALLS_BY_ID, (node, list(uniqueids))):
            call = open_call(row)
            if row["outcome"] is not None:
                with contextlib.suppress(ValueError):
                    call = replace(call, outcome=CallOutcome(row["outcome"]), closed=True)
            out[call.uniqueid] = call
        return out

    async def open_calls(self, node: str) -> list[Call]:
        """The calls of ``node`` the call log holds open (no outcome): calls a stop of the
        services cut, whose end the bridge never saw. On a connection of its own (the
        writer's may be busy); raises psycopg.Error / OSError / TimeoutError when the
        database is away."""
        return [open_call(row) for row in await self._query(OPEN_CALLS, (node,))]

    def add_recordings(self, rows: Iterable[dict[str, Any]]) -> None:
        """Recording rows (:func:`callcenter.recordings.track.row`) into the open batch."""
        for row in rows:
            self._batch.recordings[row["path"]] = row
        self.poke()

    async def open_recordings(self, node: str) -> list[dict[str, Any]]:
        """The rows of ``node``'s recordings the database holds unfinished (state recording),
        times as epoch seconds; on a connection of its own, raising as :meth:`open_calls`."""
        from psycopg.rows import dict_row

        async with asyncio.timeout(max(5.0, self.connect_timeout * 2)):
            conn = await psycopg.AsyncConnection.connect(
                self._conninfo, connect_timeout=max(1, round(self.connect_timeout)),
                row_factory=dict_row,
            )  # fmt: skip
            try:
                cur = await conn.execute(OPEN_RECORDINGS, (node,))
                rows = await cur.fetchall()
            finally:
                await conn.close()
        return [
            {k: (v.timestamp() if isinstance(v, dt.datetime) else v) for k, v in row.items()}
            for row in rows
        ]

    async def _write(self, batch: Batch) -> None:
        self.in_flight = len(batch)
        try:
            conn = await self._connection()
            async with asyncio.timeout(max(30.0, self.connect_timeout * 6)):
                await write_batch(conn, batch)
        finally:
            self.in_flight = 0
        self.rows_written += len(batch)
        self.batches_written += 1

    @property
    def idle(self) -> bool:
        """Nothing pending, nothing being written, nothing spooled."""
        return not self._batch and not self.in_flight and not self.spool

    async def _drop_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                await self._conn.close()
            self._conn = None

    async def flush(self) -> None:
        """Write the open batch (after the spool, if anything is spooled), in slices of at
        most ``max_batch`` audit rows, each its own transaction with its own time-out."""
        batch, self._batch = self._batch, Batch()
        parts = list(batch.slices(self.max_batch))
        for i, part in enumerate(parts):
            if not self.spool:
                try:
                    await self._write(part)
                    self.database_up = True
                    continue
                except (psycopg.Error, OSError, TimeoutError) as exc:
                    self._database_down(exc)
                    await self._drop_connection()
            if not self._to_spool(part):
                # Spool full: keep what is left in memory, oldest first, and stop reading.
                self._requeue([*parts[i:], self._batch])
                break
        if self.spool:
            await self.drain()
        if not self.spool and len(self._batch) < self.max_batch:
            self.writable.set()

    def _to_spool(self, batch: Batch) -> bool:
        """Spool ``batch``; False (and stop reading AMI) when the spool is full."""
        try:
            self.spool.append(batch.to_json())
        except SpoolFull as exc:
            log.error("%s: not reading AMI until the database is back", exc)
            self.writable.clear()
            return False
        return True

    def _requeue(self, batches: list[Batch]) -> None:
        self._batch = Batch()
        for b in batches:
            self.add(b)

    def _database_down(self, exc: BaseException) -> None:
        if self.database_up or not self.last_error:
            # Unreachable or refusing (e.g. a schema behind the code): either way the rows
            # wait in the spool, and are written once the database takes them.
            what = (
                "unavailable"
                if isinstance(exc, psycopg.OperationalError | OSError)
                else ("refused the batch")
            )
            log.error("call log: database %s (%s); spooling to %s", what,
                      str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc),
                      self.spool.path)  # fmt: skip
        self.database_up = False
        self.last_error = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)

    async def drain(self) -> bool:
        """Write every spooled batch, oldest first; True when the spool is empty."""
        if not self.spool:
            return True
        try:
            for data in self.spool.batches():
                await self._write(Batch.from_json(data))
        except (psycopg.Error, OSError, TimeoutError) as exc:
            self._database_down(exc)
            await self._drop_connection()
            return False
        log.info("call log: database back; %d spooled batches written", self.spool.depth)
        self.spool.clear()
        self.database_up = True
        self.writable.set()
        return True

    async def run(self) -> None:
        """Flush every ``interval`` seconds (sooner when a batch is full) until cancelled;
        on cancellation, flush what is left (to the database or the spool)."""
        try:
            while True:
                try:
                    async with asyncio.timeout(self.interval):
                        await self._kick.wait()
                except TimeoutError:
                    pass
                self._kick.clear()
                try:
                    await self.flush()
                except (psycopg.Error, OSError) as exc:  # pragma: no cover - belt and braces
                    self._database_down(exc)
                    await self._drop_connection()
        finally:
            await asyncio.shield(self._final_flush())

    async def _final_flush(self) -> None:
        try:
            await self.flush()
        except Exception as exc:  # the process is ending: keep the rows on disk
            log.error("call log: final flush failed (%r); spooling", exc)
            if self._batch and self._to_spool(self._batch):
                self._batch = Batch()
        await self._drop_connection()
