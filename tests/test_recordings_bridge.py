"""The bridge makes and completes the recordings' rows: a call recorded on a real Asterisk 22
(tests/fixtures/recordings) replayed by the fake AMI peer into the real PostgreSQL, with the
file laid down where MixMonitor would have written it. Also: a file that never closes, a
bridge stopped mid-recording, and the writer's upsert rules."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import struct
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from callcenter import config
from callcenter.ami.protocol import AmiParser, Message
from tests.fake_ami import FakeAmi
from tests.test_bridge import bridge_running, bridge_settings, eventually

FIXTURE = Path(__file__).parent / "fixtures" / "recordings" / "queue-call-muted.ami"
PATH = "2026/12/07/1796655109.0_1796655111.1.wav"
LEG = "1796655111.1"


def stream() -> list[str]:
    """The recorded events as a bridge receives them after its login and resync: without the
    first FullyBooted and the resync's list replies (the fake makes its own)."""
    out = []
    for f in AmiParser(expect_banner=False).feed(FIXTURE.read_bytes()):
        assert isinstance(f, Message)
        if f.event is None or "Privilege" not in f.fields or f.event == "FullyBooted":
            continue
        out.append(f.text)
    return out


def closed_wav(path: Path, seconds: float) -> int:
    frames = int(seconds * 8000)
    data = struct.pack(f"<{frames}h", *(int(3000 * math.sin(i / 3)) for i in range(frames)))
    header = (
        b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE"
        + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, 8000, 16000, 2, 16)
        + b"data" + struct.pack("<I", len(data))
    )  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + data)
    return len(header) + len(data)


def recordings(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM recordings ORDER BY id")).mappings().all()
    return [dict(r) for r in rows]


def state_of(engine: Engine) -> str | None:
    rows = recordings(engine)
    return rows[0]["state"] if rows else None


def with_recording(s: config.Settings, root: Path, missing_after: float = 30.0) -> config.Settings:
    return dataclasses.replace(
        s, recording=config.RecordingSettings(dir=str(root), missing_after=missing_after)
    )


async def test_a_recorded_call_becomes_a_complete_row(
    settings: config.Settings, clean_db: Engine, tmp_path: Path
) -> None:
    root = tmp_path / "recordings"
    size = closed_wav(root / PATH, 12.0)
    frames = stream()
    async with FakeAmi() as fake:
        s = with_recording(bridge_settings(settings, fake.port, tmp_path), root)
        async with bridge_running(s) as bridge:
            conn = await fake.accept()
            await conn.send_frames(frames)
            await eventually(lambda: state_of(clean_db) == "done", what="the row completes")
            keeper = bridge.nodes[0].recordings
            assert keeper is not None
            assert keeper.pending == 0
    [row] = recordings(clean_db)
    assert row["node"] == "pbx-test"
    assert (row["uniqueid"], row["visit"], row["queue"], row["agent"]) == (
        "1796655109.0", 1, "sales", "alice")  # fmt: skip
    assert (row["channel"], row["path"], row["reason"], row["requested_by"]) == (
        "PJSIP/1001-00000001", PATH, "policy", None)  # fmt: skip
    assert row["duration_ms"] == 12000
    assert row["size_bytes"] == size
    assert len(row["sha256"]) == 64
    assert row["mutes"] == 1
    assert row["muted_since"] is None
    assert row["muted_ms"] == pytest.approx(3000, abs=50)
    talk = (row["ended_at"] - row["started_at"]).total_seconds()
    assert talk == pytest.approx(12.0, abs=0.1)
    # The call log agrees on whose call it was.
    with clean_db.connect() as db:
        call = db.execute(sa.text("SELECT agent, agent_channel FROM calls WHERE uniqueid = :u"),
                          {"u": row["uniqueid"]}).one()  # fmt: skip
    assert tuple(call) == ("alice", row["channel"])


async def test_a_file_that_never_closes_is_marked_missing(
    settings: config.Settings, clean_db: Engine, tmp_path: Path
) -> None:
    root = tmp_path / "recordings"
    # MixMonitor opened it (data size 0) and never finished: the header never accounts for it.
    closed_wav(root / PATH, 1.0)
    raw = bytearray((root / PATH).read_bytes())
    raw[40:44] = b"\0\0\0\0"
    (root / PATH).write_bytes(raw)
    async with FakeAmi() as fake:
        s = with_recording(bridge_settings(settings, fake.port, tmp_path), root, 1.5)
        async with bridge_running(s):
            conn = await fake.accept()
            await conn.send_frames(stream())
            await eventually(lambda: state_of(clean_db) == "missing", timeout=20)
    [row] = recordings(clean_db)
    assert row["duration_ms"] is None
    assert row["ended_at"] is not None


async def test_a_bridge_stopped_mid_recording_completes_it_at_the_next_start(
    settings: config.Settings, clean_db: Engine, tmp_path: Path
) -> None:
    root = tmp_path / "recordings"
    frames = stream()
    cut = next(i for i, f in enumerate(frames) if "State: 1" in f and "MixMonitorMute" in f) + 1
    leg = (
        "Event: CoreShowChannel\r\nChannel: PJSIP/1001-00000001\r\nChannelState: 6\r\n"
        "ChannelStateDesc: Up\r\nCallerIDNum: 1001\r\nCallerIDName: alice\r\n"
        "ConnectedLineNum: 5551230001\r\nConnectedLineName: Carol\r\nLanguage: en\r\n"
        "AccountCode: \r\nContext: agents\r\nExten: \r\nPriority: 1\r\n"
        f"Uniqueid: {LEG}\r\nLinkedid: 1796655109.0\r\nApplication: AppQueue\r\n"
        "ApplicationData: (Outgoing Line)\r\nDuration: 00:00:05\r\nBridgeId: b1"
    )
    async with FakeAmi(channels=[leg]) as fake:
        s = with_recording(bridge_settings(settings, fake.port, tmp_path), root)
        async with bridge_running(s):
            conn = await fake.accept()
            await conn.send_frames(frames[:cut])
            await eventually(lambda: any(r["mutes"] == 1 for r in recordings(clean_db)))
        # Stopped with the recording running and muted; the leg is still up at the restart.
        [row] = recordings(clean_db)
        assert row["state"] == "recording"
        assert row["muted_since"] is not None
        closed_wav(root / PATH, 12.0)
        async with bridge_running(s) as bridge:
            conn = await fake.accept()
            keeper = bridge.nodes[0].recordings
            assert keeper is not None
            assert list(keeper.state.by_leg) == [LEG]
            await conn.send_frames(frames[cut:])
            await eventually(lambda: state_of(clean_db) == "done")
    [row] = recordings(clean_db)
    assert row["muted_ms"] == pytest.approx(3000, abs=50)
    assert row["duration_ms"] == 12000


async def test_a_resync_ends_the_recordings_of_channels_that_are_gone(
    settings: config.Settings, clean_db: Engine, tmp_path: Path
) -> None:
    root = tmp_path / "recordings"
    frames = stream()
    cut = next(i for i, f in enumerate(frames) if "UserEvent: CallRecording" in f) + 1
    async with FakeAmi() as fake:
        s = with_recording(bridge_settings(settings, fake.port, tmp_path), root)
        async with bridge_running(s):
            conn = await fake.accept()
            await conn.send_frames(frames[:cut])
            await eventually(lambda: state_of(clean_db) == "recording")
            closed_wav(root / PATH, 4.0)
            conn.drop()  # the link drops; at the reconnect, CoreShowChannels lists nothing
            await fake.accept()
            await eventually(lambda: state_of(clean_db) == "done")
    [row] = recordings(clean_db)
    assert row["ended_at"] is not None
    assert row["duration_ms"] == 4000


async def test_the_writer_never_brings_back_a_finished_row(
    settings: config.Settings, clean_db: Engine, tmp_path: Path
) -> None:
    """A replayed spool (an older snapshot after a newer one, or after a purge) changes
    nothing once the row is done, missing or purged; legal hold is never the bridge's."""
    import psycopg

    from callcenter.bridge.rows import Batch
    from callcenter.bridge.store import conninfo, write_batch

    base: dict[str, Any] = {
        "node": "n", "uniqueid": "1.1", "linkedid": "1.1", "visit": 1, "queue": "sales",
        "campaign": None, "agent": "alice", "channel": "PJSIP/1001-1", "path": PATH,
        "reason": "policy", "requested_by": None, "state": "recording",
        "started_at": 1796655000.0, "ended_at": None, "duration_ms": None, "size_bytes": None,
        "sha256": None, "muted_ms": 0, "mutes": 0, "muted_since": None,
    }  # fmt: skip
    done: dict[str, Any] = {**base, "state": "done", "ended_at": 1796655012.0, "duration_ms": 12000,
            "size_bytes": 192044, "sha256": "ab" * 32}  # fmt: skip
    async with await psycopg.AsyncConnection.connect(conninfo(settings.database.url)) as conn:
        for rows in ([base], [done], [base]):
            batch = Batch()
            for r in rows:
                batch.recordings[r["path"]] = r
            # Through the spool's JSON, as a replayed batch is.
            await write_batch(conn, Batch.from_json(batch.to_json()))
        with clean_db.begin() as db:
            db.execute(sa.text("UPDATE recordings SET legal_hold = true, hold_reason = 'claim'"))
        batch = Batch()
        batch.recordings[PATH] = {**done, "muted_ms": 5}
        await write_batch(conn, batch)
    [row] = recordings(clean_db)
    assert (row["state"], row["duration_ms"], row["muted_ms"]) == ("done", 12000, 0)
    assert (row["legal_hold"], row["hold_reason"]) == (True, "claim")


def test_the_keeper_does_nothing_while_nothing_ended(tmp_path: Path) -> None:
    """No file is looked at, and no timer runs, for a recording still being written."""
    from callcenter.ami import events as ev
    from callcenter.recordings.keeper import RecordingKeeper

    rows: list[dict[str, Any]] = []
    keeper = RecordingKeeper("n", tmp_path, rows.extend)
    event = ev.CallRecording("n", 1.0, "CallRecording", "PJSIP/1-1", "2.2", {}, PATH, "1.1",
                             "1.1", "sales", "", "alice", "policy", "")  # fmt: skip
    keeper.handle(event, 1)
    assert keeper.pending == 0
    assert [r["state"] for r in rows] == ["recording"]

    async def run_briefly() -> None:
        task = asyncio.create_task(keeper.run())
        await asyncio.sleep(0.2)
        assert keeper.checked == 0
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(run_briefly())
