"""A SIP scanner against the private Asterisk: counted, alerted, blocked, refused, unblocked.

SIPp plays the scanner from 127.0.0.2 (``-i``: any 127/8 address is this machine, and the
default ``[security] allow`` covers 127.0.0.1 only): REGISTERs with a wrong password for a real
account, then one for an account that does not exist. The bridge (with ``[security] block``)
must see Asterisk's security events, raise the alert on MQTT, write the block, render acl.conf
and reload it; the next REGISTER from 127.0.0.2 must get 403 while 127.0.0.1 still registers;
``callcenter security unblock`` must lift it.

``CALLCENTER_RECORD_SECURITY=DIR`` also records what a bridge's AMI connection received during
the test (the recorder of tests/e2e/recorder.py, a connection of its own) into ``DIR/security``:
that is how tests/fixtures/asterisk-traces/security was made. Record with this module alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from callcenter import config
from tests.conftest import Cli
from tests.e2e.conftest import SIPP_DIR, Pbx, stack
from tests.e2e.recorder import AmiRecorder
from tests.test_asterisk_live import free_port

pytestmark = [pytest.mark.asterisk, pytest.mark.slow]

RECORD_ENV = "CALLCENTER_RECORD_SECURITY"
SCANNER = "127.0.0.2"
THRESHOLD = 5


@contextlib.asynccontextmanager
async def maybe_recording(pbx: Pbx, tmp: Path) -> AsyncIterator[Path | None]:
    root = os.environ.get(RECORD_ENV, "")
    if not root:
        yield None
        return
    folder = Path(root) / "security"
    recorder = AmiRecorder(folder)
    await recorder.start(pbx.ami_port, "callcenter", pbx.settings.node("local").secret.reveal())
    try:
        yield folder
    finally:
        await asyncio.sleep(1.0)
        await recorder.stop()
        copy_logs(pbx, tmp, folder)


def copy_logs(pbx: Pbx, tmp: Path, folder: Path) -> None:
    """queue_log, and each SIPp step's messages as ``sip-<step>.log``."""
    folder.joinpath("queue_log").write_bytes(pbx.queue_log.read_bytes())
    for log in sorted(tmp.glob("sipp-*-messages.log")):
        tag = log.name.removeprefix("sipp-").removesuffix("-messages.log")
        folder.joinpath(f"sip-{tag}.log").write_bytes(log.read_bytes())


def start_sipp(pbx: Pbx, tmp: Path, tag: str, scenario: str, *args: str) -> subprocess.Popen[bytes]:
    cmd = [
        pbx.sipp, "-nostdin", "-sf", str(SIPP_DIR / scenario), "-p", str(free_port(udp_too=True)),
        "-cp", str(free_port(udp_too=True)), "-timeout", "15s", "-trace_msg",
        "-message_file", str(tmp / f"sipp-{tag}-messages.log"), *args,
        f"127.0.0.1:{pbx.sip_port}",
    ]  # fmt: skip
    with (tmp / f"sipp-{tag}.log").open("wb") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=tmp)


def messages(tmp: Path, tag: str) -> str:
    path = tmp / f"sipp-{tag}-messages.log"
    return path.read_text(errors="replace") if path.exists() else ""


async def sipp(pbx: Pbx, tmp: Path, tag: str, scenario: str, *args: str) -> tuple[int, str]:
    """Run one SIPp scenario of scripts/sipp to the end; its exit code and its messages."""
    proc = start_sipp(pbx, tmp, tag, scenario, *args)
    deadline = time.monotonic() + 30
    while proc.poll() is None and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    if proc.poll() is None:
        proc.kill()
    rc = proc.wait(5)
    return rc, messages(tmp, tag)


async def eventually(check: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def blocks(engine: Engine) -> dict[str, dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM sip_blocks")).mappings().all()
    return {r["address"]: dict(r) for r in rows}


async def test_scanner_is_blocked_then_unblocked(
    pbx: Pbx, engine: Engine, database_url: str, tmp_path: Path
) -> None:
    security = config.SecuritySettings(threshold=THRESHOLD, window=60.0, block=True)
    saved = pbx.settings
    # The bridge renders and reloads the blocklist of the instance in [asterisk] directory.
    pbx.settings = dataclasses.replace(
        saved,
        security=security,
        asterisk=dataclasses.replace(saved.asterisk, directory=str(pbx.directory)),
    )
    acl = pbx.directory / "etc" / "acl.conf"
    cli = Cli(database_url)
    cli_env = {"CALLCENTER_ASTERISK__DIRECTORY": str(pbx.directory)}
    try:
        async with maybe_recording(pbx, tmp_path), stack(pbx, engine, tmp_path) as st:
            alerts_topic = f"{st.settings.mqtt.topic_prefix}/security/alerts"
            events_topic = f"{st.settings.mqtt.topic_prefix}/security/events"
            await eventually(lambda: alerts_topic in st.mqtt.last, "the empty alert list")
            assert st.mqtt.last[alerts_topic]["count"] == 0
            assert "\ndeny = " not in acl.read_text()
            # An AMI login with a wrong secret (InvalidPassword) from 127.0.0.1: counted, but
            # that address is in the allow-list, and one failure is no attack anyway.
            reader, writer = await asyncio.open_connection("127.0.0.1", pbx.ami_port)
            await reader.readline()
            writer.write(b"Action: Login\r\nUsername: callcenter\r\nSecret: wrong\r\n\r\n")
            assert b"Authentication failed" in await reader.readuntil(b"\r\n\r\n")
            writer.close()
            await eventually(lambda: st.bridge.security.counters.failures == 1, "InvalidPassword")

            # Three wrong passwords for a real account: one failure each, under the threshold.
            rc, sent = await sipp(
                pbx, tmp_path, "wrong", "register-wrong.xml", "-i", SCANNER, "-s", "1001",
                "-au", "1001", "-ap", "not-the-password", "-m", "3",
            )  # fmt: skip
            assert rc == 0, sent[-3000:]
            assert sent.count("SIP/2.0 401") == 6  # each try challenged twice
            await asyncio.sleep(1.5)
            assert not blocks(engine), "an alert under the threshold"
            # One guess at an account that does not exist: three failures on Asterisk 22.
            rc, sent = await sipp(
                pbx, tmp_path, "unknown", "register-wrong.xml", "-i", SCANNER, "-s", "9999",
                "-au", "9999", "-ap", "guess", "-m", "1",
            )  # fmt: skip
            assert rc == 0, sent[-3000:]

            row = await eventually(
                lambda: blocks(engine).get(SCANNER, {}).get("blocked_at"), "the block row"
            )
            assert row is not None
            block = blocks(engine)[SCANNER]
            assert block["unblocked_at"] is None
            assert block["failures"] >= THRESHOLD
            assert block["node"] == "local"
            assert "ChallengeResponseFailed 3" in block["reason"]
            assert "InvalidAccountID" in block["reason"]
            assert "1001" in block["reason"]
            await eventually(lambda: "deny = 127.0.0.2/255.255.255.255" in acl.read_text(),
                             "the rendered ACL")  # fmt: skip
            listed = await eventually(
                lambda: [a for a in st.mqtt.last.get(alerts_topic, {}).get("alerts", [])
                         if a["address"] == SCANNER and a["blocked"]],
                "the MQTT alert",
            )  # fmt: skip
            assert listed[0]["failures"] >= THRESHOLD
            assert listed[0]["node"] == "local"
            changes = st.mqtt.last.get(events_topic, {})
            assert changes.get("address") == SCANNER
            counters = st.bridge.security.counters
            assert (counters.alerts, counters.blocks) == (1, 1), counters

            # Asterisk refuses the scanner now (403, before any account is looked up)...
            await eventually(lambda: counters.acl_reloads == 1, "the reload of acl.conf")
            rc, sent = await sipp(
                pbx, tmp_path, "refused", "register-refused.xml", "-i", SCANNER, "-s", "1001",
                "-m", "1",
            )  # fmt: skip
            assert rc == 0, sent[-3000:]
            assert "SIP/2.0 403" in sent
            # ... and still lets a phone of the allow-list register.
            rc, sent = await sipp(
                pbx, tmp_path, "phone", "register.xml", "-i", "127.0.0.1", "-s", "1001",
                "-au", "1001", "-ap", pbx.secrets["alice"], "-m", "1", "-aa",
            )  # fmt: skip
            assert rc == 0, sent[-3000:]

            result = cli("security", "list", "--json", env=cli_env)
            assert result.exit_code == 0, result.output
            rows = json.loads(result.output)
            assert [(r["address"], r["status"]) for r in rows] == [(SCANNER, "blocked")]

            # An operator lifts the block: acl.conf rendered without it and reloaded.
            result = cli("security", "unblock", SCANNER, env=cli_env)
            assert result.exit_code == 0, result.output
            assert "reloaded" in result.output, result.output
            assert "127.0.0.2" not in acl.read_text()
            rc, sent = await sipp(
                pbx, tmp_path, "again", "register-wrong.xml", "-i", SCANNER, "-s", "1001",
                "-au", "1001", "-ap", "not-the-password", "-m", "1",
            )  # fmt: skip
            assert rc == 0, sent[-3000:]  # challenged (401) again, not refused
            assert "SIP/2.0 403" not in sent
            # The bridge reads the unblock back: the alert ends, the address counts anew.
            await eventually(
                lambda: st.mqtt.last.get(alerts_topic, {}).get("count") == 0,
                "the alert's end after the unblock",
                timeout=25,
            )
            assert blocks(engine)[SCANNER]["unblocked_at"] is not None
    finally:
        pbx.settings = saved
