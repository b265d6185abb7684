"""The call-log writer's edges: slicing big batches, a full spool, and coming back."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from callcenter.bridge.rows import Batch, copy_timestamp, event_row
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


# --- audit rows: the fast escape writes what a plain one does --------------------------------

_TEXT = st.text(st.sampled_from('aZ0 :.-\\\t\r\n"é'), max_size=12)


def _plain_copy_text(value: str | None) -> str:
    """COPY text escaping, the obvious way: every special character, one after the other."""
    if value is None:
        return "\\N"
    out = value.replace("\\", "\\\\").replace("\t", "\\t")
    return out.replace("\n", "\\n").replace("\r", "\\r")


@settings(max_examples=400)
@given(
    st.lists(
        st.tuples(st.sampled_from(["Event", "Uniqueid", "Linkedid", "X"]), _TEXT),
        min_size=1,
        max_size=6,
    ),
    st.floats(min_value=0, max_value=4e9, allow_nan=False),
    st.sampled_from(["pbx", "p\tb\\x"]),
    st.one_of(st.none(), _TEXT),
)
def test_event_row_escapes_as_copy_text_wants(
    pairs: list[tuple[str, str]], at: float, node: str, error: str | None
) -> None:
    raw = "\r\n".join(f"{k}: {v}" for k, v in pairs)
    first = dict(reversed(pairs))
    name, uid, lid = first.get("Event", ""), first.get("Uniqueid"), first.get("Linkedid")
    want = "\t".join(
        [_plain_copy_text(node), copy_timestamp(at), _plain_copy_text(name),
         _plain_copy_text(uid), _plain_copy_text(lid), _plain_copy_text(raw),
         _plain_copy_text(error), "c:1"]
    ) + "\n"  # fmt: skip
    assert event_row(node, "c:1", at, name, raw, error, uid, lid) == want


def test_copy_timestamp_in_any_order() -> None:
    # The cache keeps one second: times that go back (a resync's list, a second node) must
    # still format right.
    for at in (1795343012.25, 1795343012.5, 1795343011.000001, 1795343012.999999, 0.0):
        want = dt.datetime.fromtimestamp(at, dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f") + "+00"
        assert copy_timestamp(at) == want


async def test_spans_opened_and_closed_in_one_batch_end_closed(
    clean_db: Engine, database_url: str, tmp_path: Path
) -> None:
    """The pipelined write sends every close, then every open: a span that starts and ends
    within one batch must still be stored closed, and one left open stays open."""

    def span(state: str, at: float, prev: str | None, prev_at: float | None) -> dict[str, object]:
        return {"node": "pbx", "agent": "Alice", "state": state, "reason": None,
                "started_at": at, "previous_state": prev, "previous_reason": None,
                "previous_started_at": prev_at}  # fmt: skip

    writer = CallLogWriter(database_url, Spool(tmp_path / "s.spool"))
    writer.batch.spans.extend([
        span("available", 100.0, None, None),
        span("ringing", 110.0, "available", 100.0),
        span("on_call", 115.0, "ringing", 110.0),
    ])  # fmt: skip
    writer.batch.sessions.append(
        {"op": "login", "node": "pbx", "agent": "Alice", "interface": "PJSIP/a", "at": 100.0}
    )
    await writer.flush()
    await writer._drop_connection()
    with clean_db.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT state, extract(epoch FROM started_at), extract(epoch FROM ended_at) "
            "FROM agent_state_changes ORDER BY started_at"
        )).all()  # fmt: skip
        sessions = conn.execute(sa.text("SELECT count(*) FROM agent_sessions")).scalar_one()
    assert [(s, float(a), None if e is None else float(e)) for s, a, e in rows] == [
        ("available", 100.0, 110.0),
        ("ringing", 110.0, 115.0),
        ("on_call", 115.0, None),
    ]
    assert sessions == 1
