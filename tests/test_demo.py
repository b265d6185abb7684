"""``make demo`` beside an operator's installation (issue 12): it runs for real -- its own
Asterisk, bridge, IVR, wallboard and simulated calls -- and after Ctrl-C the operator's
database, Asterisk instance (astdb: the queue members) and retained MQTT topics are exactly as
they were, and the demo leaves no retained topic and no process behind.

The operator's installation is a settings file in a temporary working directory: their
database is the test database (with an agent, a queue and a call of theirs), their Asterisk
directory ``var/asterisk`` holds an astdb and a queue_log, their MQTT prefix a retained agent
snapshot. The demo is ``python -m callcenter.simulate.demo``, as ``make demo`` runs it."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from subprocess import Popen
from typing import IO, Any

import aiomqtt
import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from callcenter import config
from callcenter.asterisk import run
from callcenter.db.engine import session_scope
from callcenter.db.models import Base
from callcenter.db.models import Call as CallRow
from callcenter.simulate import demo
from tests.conftest import Cli, drop_database
from tests.e2e.conftest import require_sounds
from tests.test_asterisk_live import asterisk_binary, free_port
from tests.test_bridge_resync import clear_under, retained_under


def test_the_demo_settings_are_its_own_and_only_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every place the demo writes to differs from the operator's; the operator's variables
    (which would override the demo's file) do not reach the demo's processes."""
    base = config.load(environ={
        "CALLCENTER_CONFIG": "",
        "CALLCENTER_DATABASE__URL": "postgresql+psycopg://cc:pw@db.example:5433/acme",
        "CALLCENTER_MQTT__TOPIC_PREFIX": "acme/cc",
        "CALLCENTER_TRUNKS__PROVIDER__HOST": "sip.example.net",
        "CALLCENTER_IVR__MAIN__START": "x",
    })  # fmt: skip
    ports = demo.Ports.beside(base, ami=None, sip=None, agi=None, wallboard=9999)
    assert ports == demo.Ports(ami=5138, sip=5160, agi=4673, wallboard=9999)
    monkeypatch.chdir(tmp_path)
    path = demo.write_settings(demo.demo_settings(base, ports))
    assert path.stat().st_mode & 0o777 == 0o600
    own = config.load(path=path, environ={})
    assert own.database.url == "postgresql+psycopg://cc:pw@db.example:5433/acme_demo"
    assert own.mqtt.topic_prefix == "acme/cc-demo"
    assert own.mqtt.client_id.endswith(f"-demo-{socket.gethostname()}")
    assert own.asterisk.directory == "var/asterisk-demo"
    assert own.asterisk.simulation
    assert own.bridge.spool_dir == "var/demo/spool"
    assert own.trunks == ()  # never registers with the operator's provider
    assert set(own.ivr) == {"demo"}
    assert [n.name for n in own.nodes] == ["local"]
    assert (own.node("local").port, own.asterisk.sip_port, own.agi.port) == (5138, 5160, 4673)
    monkeypatch.setenv("CALLCENTER_DATABASE__URL", base.database.url)
    env = demo.child_environment(path)
    assert not [k for k in env if k.startswith("CALLCENTER_") and k != "CALLCENTER_CONFIG"]
    assert config.load(environ=env).database.url == own.database.url


@pytest.mark.asterisk
@pytest.mark.slow
def database_dump(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in a stable order."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            rows = conn.execute(sa.select(table)).all()
            out[table.name] = sorted((tuple(r) for r in rows), key=repr)
    return out


def tree(directory: Path) -> dict[str, str]:
    """Every file below ``directory`` by path, with its SHA-256."""
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def operator_installation(tmp: Path, database_url: str, prefix: str) -> Path:
    """The operator's settings file (their ports free, their Asterisk not running)."""
    settings = tmp / "callcenter.toml"
    settings.write_text(
        f'[database]\nurl = "{database_url}"\n\n'
        f'[mqtt]\ntopic_prefix = "{prefix}"\nclient_id = "{prefix}"\n\n'
        f'[nodes.local]\nport = {free_port()}\nsecret = "operators-own-secret"\n\n'
        f"[agi]\nport = {free_port()}\n\n[wallboard]\nport = {free_port()}\n\n"
        f'[asterisk]\ndirectory = "var/asterisk"\nsip_port = {free_port(udp_too=True)}\n'
    )
    instance = tmp / "var" / "asterisk"
    run.prepare(instance)
    (instance / "lib" / "astdb").write_bytes(b"the operator's astdb: alice in support\n")
    (instance / "log" / "queue_log").write_text("1795342885|MANAGER|support|alice|ADDMEMBER|\n")
    return settings


def demo_env(settings: Path, binary: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLCENTER_")}
    env["CALLCENTER_CONFIG"] = str(settings)
    env["ASTERISK_BIN"] = str(binary)
    return env


def start_demo(args: list[str], cwd: Path, env: dict[str, str], out: IO[bytes]) -> Popen[bytes]:
    """``make demo``'s command, in the operator's working directory."""
    return subprocess.Popen(
        [sys.executable, "-m", "callcenter.simulate.demo", *args], cwd=cwd, env=env,
        stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
    )  # fmt: skip


async def wait_for(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(check):
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.5)


async def test_the_demo_runs_beside_and_leaves_the_operators_installation_as_it_was(
    database_url: str, clean_db: Engine, tmp_path: Path
) -> None:
    binary = asterisk_binary()
    require_sounds(binary)
    prefix = f"cctest-op-{secrets.token_hex(4)}"
    settings = operator_installation(tmp_path, database_url, prefix)
    operator = Cli(database_url)
    operator.ok("queues", "add", "support")
    operator.ok("agents", "add", "alice", "-e", "1001", "--pin", "1234", "--queue", "support")
    with session_scope(clean_db) as db:  # a call of theirs, in their report
        db.add(CallRow(node="local", uniqueid="1795342827.0", linkedid="1795342827.0",
                       started_at=dt.datetime(2026, 11, 22, 9, 0, tzinfo=dt.UTC),
                       queue="support", agent="alice", outcome="answered"))  # fmt: skip
    async with aiomqtt.Client("127.0.0.1", 1883) as client:
        await client.publish(
            f"{prefix}/local/agents/alice",
            orjson.dumps({"v": 1, "type": "agent", "agent": "alice", "state": "paused"}),
            qos=1, retain=True,
        )  # fmt: skip
    before_db = database_dump(clean_db)
    before_files = tree(tmp_path / "var" / "asterisk")
    before_mqtt = await retained_under(prefix)
    assert before_mqtt  # what the demo must leave as it is

    demo_db = demo.demo_database_url(database_url)
    demo_prefix = f"{prefix}-demo"
    ports = {name: free_port(udp_too=name == "sip") for name in ("ami", "sip", "agi", "wallboard")}
    log = (tmp_path / "demo.out").open("wb")
    args = [a for name, port in ports.items() for a in (f"--{name}-port", str(port))]
    proc = start_demo(["--rate", "60", *args], tmp_path, demo_env(settings, binary), log)
    demo_engine = sa.create_engine(demo_db, poolclass=sa.pool.NullPool)

    def output() -> str:
        return (tmp_path / "demo.out").read_text(errors="replace")

    def demo_calls() -> int:
        try:
            with demo_engine.connect() as conn:
                return int(conn.scalar(sa.text("SELECT count(*) FROM calls")) or 0)
        except sa.exc.SQLAlchemyError:
            return 0

    try:
        await wait_for(lambda: "Ctrl-C stops everything" in output() or proc.poll() is not None,
                       180, "the demo did not start")  # fmt: skip
        text = output()
        assert proc.poll() is None, text
        assert "your installation is not touched" in text
        assert f"/{demo_db.rsplit('/', 1)[1]}" in text  # it names its own database
        assert f"{Path('var/asterisk-demo')}/" in text  # ... and its own Asterisk
        # It runs for real: simulated agents on the demo's topics, calls in the demo's log.
        await wait_for(lambda: demo_calls() >= 2, 120, f"no calls:\n{output()}")
        held = await retained_under(demo_prefix)
        assert any("/agents/sim0" in t for t in held), held
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        code = await asyncio.to_thread(proc.wait, 120)
        assert code == 0, output()
        leftover = await retained_under(demo_prefix)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        log.close()
        demo_engine.dispose()
        demo_instance = tmp_path / "var" / "asterisk-demo"
        if run.is_running(demo_instance):  # leave nothing running, whatever happened
            await asyncio.to_thread(
                subprocess.run, run.console_command(binary, demo_instance, "core stop now"),
                timeout=30, check=False,
            )  # fmt: skip
        await clear_under(demo_prefix)
        drop_database(demo_db)
    text = output()
    assert "retained MQTT topics of the demo cleared" in text, text
    assert leftover == {}
    assert not run.is_running(tmp_path / "var" / "asterisk-demo")
    # The operator's installation, as it was.
    assert database_dump(clean_db) == before_db
    assert tree(tmp_path / "var" / "asterisk") == before_files
    assert await retained_under(prefix) == before_mqtt
    assert not (tmp_path / "var" / "spool").exists()
    settings_after = config.load(path=settings, environ={})
    assert settings_after.database.url == database_url
