"""The call-log writer's edges: slicing big batches, a full spool, and coming back."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from callcenter.bridge.rows import Batch, event_row
from callcenter.bridge.spool import Spool
from callcenter.bridge.store import BACKLOG_BATCHES, CallLogWriter

DEAD = "postgresql+psycopg://postgres@127.0.0.1:9/nowhere"


def events(n: int, start: int = 0) -> list[str]:
    return [
        event_row(
            "pbx",
            f"k:{i}",
            1795343012.0 + i,
            "Newexten",
            f"Event: Newexten\r\nN: {i}",
            None,
            None,
            None,
        )
        for i in range(start, start + n)
    ]


def test_slices_keep_order_and_put_calls_first() -> None:
    batch = Batch(events=events(25))
    batch.spans.append({"x": 1})
    parts = list(batch.slices(10))
    assert [len(p.events) for p in parts] == [10, 10, 5]
    assert [e for p in parts for e in p.events] == batch.events
    assert parts[0].spans == [{"x": 1}]
    assert parts[1].spans == []
    assert list(Batch().slices(10)) == []


def stored_keys(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return [
            r[0] for r in conn.execute(sa.text("SELECT dedup_key FROM call_events ORDER BY id"))
        ]


async def test_full_spool_holds_rows_in_memory_then_everything_is_written(
    clean_db: Engine, database_url: str, tmp_path: Path
) -> None:
    spool = Spool(tmp_path / "s.spool", max_bytes=3000)
    writer = CallLogWriter(DEAD, spool, max_batch=10, connect_timeout=1)
    writer.batch.events.extend(events(10))
    await writer.flush()  # the database is away: the batch is spooled
    assert spool.depth == 1
    assert writer.writable.is_set()
    writer.batch.events.extend(events(30, start=10))
    await writer.flush()  # three slices; the spool takes what fits, the rest stays in memory
    assert not writer.writable.is_set()  # the bridge stops reading AMI
    kept = writer.pending
    assert kept > 0
    assert spool.size <= 3000
    # The database is back.
    writer._conninfo = database_url.replace("postgresql+psycopg://", "postgresql://")
    await writer.flush()
    await writer.flush()
    assert writer.writable.is_set()
    assert not spool
    assert writer.pending == 0
    assert stored_keys(clean_db) == [f"k:{i}" for i in range(40)]  # once each, in order
    await writer._drop_connection()


async def test_a_deep_backlog_stops_reading(clean_db: Engine, tmp_path: Path) -> None:
    writer = CallLogWriter(DEAD, Spool(tmp_path / "s.spool"), max_batch=10)
    writer.batch.events.extend(events(BACKLOG_BATCHES * 10))
    writer.poke()
    assert not writer.writable.is_set()
