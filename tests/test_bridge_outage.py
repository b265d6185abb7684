"""The database stopped and restarted under traffic: nothing is lost.

PostgreSQL is really stopped and started here, but a private cluster of the test's own
(``initdb`` into a temporary directory), so the shared server the other tests use is never
touched. Needs PostgreSQL's server binaries and root (to run them as ``postgres``); skipped
with the reason otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from callcenter import config, doctor
from callcenter.db import engine as db
from tests.fake_ami import FakeAmi, recorded_events
from tests.test_bridge import (
    assert_matches_queue_log,
    audited,
    bridge_running,
    bridge_settings,
    calls,
    closed_calls,
    eventually,
    expected_calls,
)


def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PrivatePostgres:
    bin: Path
    data: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/callcenter"

    def _as_postgres(self, *args: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *args], check=True,
                       capture_output=True, timeout=60)  # fmt: skip

    def start(self) -> None:
        self._as_postgres(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-l", str(self.data / "log"),
            "-o", f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off",
            "start",
        )  # fmt: skip

    def stop(self) -> None:
        self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-m", "fast",
                          "stop")  # fmt: skip


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    bin_dir = _pg_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries (/usr/lib/postgresql/*/bin) are not installed")
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        pytest.skip("starting a private PostgreSQL needs root (to run it as user postgres)")
    root = Path(tempfile.mkdtemp(prefix="ccpg", dir="/tmp"))
    shutil.chown(root, "postgres", "postgres")
    pg = PrivatePostgres(bin_dir, root / "data", _free_port())
    subprocess.run(
        ["runuser", "-u", "postgres", "--", str(bin_dir / "initdb"), "-D", str(pg.data), "-A",
         "trust", "-U", "postgres", "--no-sync"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    pg.start()
    settings = config.DatabaseSettings(url=pg.url)
    db.ensure_database(settings)
    engine = db.make_engine(settings)
    db.upgrade(engine)
    engine.dispose()
    try:
        yield pg
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            pg.stop()
        shutil.rmtree(root, ignore_errors=True)


async def test_database_stopped_and_restarted_under_traffic(
    private_pg: PrivatePostgres, settings: config.Settings, tmp_path: Path
) -> None:
    scenario = "burst"
    frames = recorded_events(scenario)
    half = len(frames) // 2
    engine = db.make_engine(config.DatabaseSettings(url=private_pg.url))
    try:
        async with FakeAmi() as fake:
            s = bridge_settings(settings, fake.port, tmp_path)
            s = replace(s, database=config.DatabaseSettings(url=private_pg.url, connect_timeout=1))
            async with bridge_running(s) as bridge:
                conn = await fake.accept()
                await conn.send_frames(frames[:half])
                await eventually(lambda: bridge.writer.rows_written > 0)
                await asyncio.to_thread(private_pg.stop)
                await conn.send_frames(frames[half:])  # traffic goes on while it is down
                await eventually(lambda: bridge.writer.spool.depth > 0, timeout=20)
                spool = await doctor.check_spool(s)
                assert spool.status is doctor.Status.WARN
                assert "wait for the database" in spool.detail
                assert not bridge.writer.database_up
                await asyncio.sleep(1.0)  # more flushes while down: all must spool
                await asyncio.to_thread(private_pg.start)
                await eventually(lambda: closed_calls(engine) >= 20, timeout=30)
                await eventually(lambda: not bridge.writer.spool, timeout=10)
            assert (await doctor.check_spool(s)).status is doctor.Status.OK
        assert_matches_queue_log(calls(engine), scenario)
        assert len(calls(engine)) == len(expected_calls(scenario))
        assert audited(engine) == len(frames)  # every event, none twice
    finally:
        engine.dispose()
