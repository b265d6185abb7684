"""The load run: SIPp callers through IVR -> queue -> SIPp agent phones on a real Asterisk.

    ASTERISK_BIN=/opt/asterisk/sbin/asterisk .venv/bin/python scripts/load_run.py \\
        [--callers 20] [--minutes 1] [--agents 16] [--talk 4] \\
        [--services all|bridge,agi] [--idle 20] [--py-spy out.txt]

Not part of ``make test`` (it takes minutes and needs Asterisk and SIPp). What it does:

1. A database of its own (``cc_load_<hex>`` on ``CALLCENTER_TEST_PG``, dropped at the end), the
   queue and ``--agents`` agents; a private Asterisk rendered from them in a temporary directory
   (the e2e harness's :func:`tests.e2e.conftest.start_pbx`).
2. Our services in a process of their own, as ``callcenter run`` composes them (the bridge, the
   IVR's FastAGI server, the wallboard, the dialer and the webhooks' worker: ``--services all``,
   the default) or only some (``--services bridge,agi``: the bridge and the IVR), with the
   settings' own intervals. This script (SIPp control, MQTT clean-up, the checks) runs in the
   parent, so none of its work is counted as ours.
3. Every agent phone is a SIPp UAS registered as its PJSIP endpoint, answering after 0.5 s and
   hanging up after ``--talk`` seconds. Calls carry audio both ways as real ones do: every
   phone streams G.711 RTP while its call is up (a caller from a second after its keys, an
   agent from the answer), so Asterisk relays media as it would for people talking;
   ``--silent`` leaves the phones mute (Asterisk then only signals and plays music on hold,
   which understates its work per call). Then ``--idle`` seconds with nothing to do (what our
   services spend on timers, pings and polls while nothing changes). Then callers: one SIPp
   UAC keeping ``--callers`` calls up at once for ``--minutes`` (DTMF 1 into the IVR, then the
   queue; patience 60 s), until the call log has closed every call queue_log knows.
4. Afterwards, for every call Asterisk's queue_log knows: our call log must have it with the
   same outcome, agent, wait and talk, and Asterisk's CDR (Master.csv) must have a record of the
   caller's channel. Every call failing one of these is a lost record.
5. CPU (utime + stime from /proc) of our process next to Asterisk's, in the idle window and in
   the load window; ``--py-spy PATH`` records our process with py-spy during the load window
   (raw collapsed stacks, ``--nonblocking``: the target is never stopped).

Writes ``load.calls``, ``load.lost_records``, ``load.cpu_ratio`` (ours / Asterisk's under load),
``load.callers``, ``load.idle_cpu_ratio`` and ``load.idle_cpu_ms_per_s`` (ours, idle) into
bench/results.json, keeping the other keys. Exit status 1 when a record is lost.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import dataclasses
import json
import multiprocessing
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from multiprocessing.synchronize import Event as MpEvent

    from sqlalchemy.engine import Engine

    from callcenter.config import Settings
    from tests.e2e.conftest import Pbx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "bench" / "results.json"
CALL_SECONDS = 2.5 + 1.5  # SIPp keys after 2.5 s; IVR prompt and hand-over
SERVICES = ("bridge", "agi", "wallboard", "dialer", "webhooks")


def proc_cpu(pid: int) -> tuple[float, float]:
    """(utime, stime) of a process and all its threads, in seconds (fields 14 and 15 of
    /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def cdr_uniqueids(path: Path) -> set[str]:
    """Uniqueids of Master.csv (cdr_csv with loguniqueid: the 17th column)."""
    if not path.exists():
        return set()
    with path.open(newline="") as fh:
        return {row[16] for row in csv.reader(fh) if len(row) > 16}


# --- our services, in a process of their own --------------------------------------------------


def serve(
    settings: Settings, services: Sequence[str], sounds: str, ready: MpEvent, stop: MpEvent
) -> None:
    """The child: our services until ``stop``; ``ready`` once the bridge has resynced."""
    asyncio.run(_serve(settings, services, sounds, ready, stop))


async def _serve(
    settings: Settings, services: Sequence[str], sounds: str, ready: MpEvent, stop: MpEvent
) -> None:
    from callcenter import service
    from callcenter.agi.app import AgiService, build_services
    from callcenter.agi.ivr import load_ivrs
    from callcenter.bridge.app import Bridge
    from tests.e2e.conftest import IVRS

    service.setup_logging("WARNING")
    bridge = Bridge(settings)
    parts: list[service.Main] = [bridge.run]
    if "agi" in services:
        ivrs = load_ivrs(IVRS, "UTC", sounds_dir=Path(sounds))
        parts.append(AgiService(settings, services=build_services(settings, ivrs=ivrs)).run)
    if "wallboard" in services:
        from callcenter.wallboard.app import Wallboard

        parts.append(Wallboard(settings).run)
    if "dialer" in services:
        from callcenter.campaigns.dialer import Dialer

        parts.append(Dialer(settings).run)
    if "webhooks" in services:
        from callcenter.webhooks.delivery import DeliveryWorker

        parts.append(DeliveryWorker(settings).run)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()

    async def watch() -> None:
        # Blocked in a thread on the parent's event: no polling in the measured process.
        await loop.run_in_executor(None, stop.wait)
        stopping.set()

    async def announce() -> None:
        while bridge.nodes[0].counters.resyncs < 1:
            await asyncio.sleep(0.05)
        ready.set()

    tasks = [asyncio.create_task(watch()), asyncio.create_task(announce())]
    await service.run_all(parts, stopping)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def child_settings(pbx: Pbx, tmp: Path) -> Settings:
    """The private Asterisk's settings, with an MQTT prefix, spool and web port of the run's
    own; every interval as the settings have it (no test shortcuts)."""
    from callcenter import config

    tag = secrets.token_hex(4)
    s = pbx.settings
    return dataclasses.replace(
        s,
        mqtt=dataclasses.replace(s.mqtt, topic_prefix=f"ccload-{tag}", client_id=f"ccload-{tag}"),
        bridge=dataclasses.replace(s.bridge, spool_dir=str(tmp / "spool")),
        agi=dataclasses.replace(s.agi, host="127.0.0.1"),
        wallboard=dataclasses.replace(
            s.wallboard, port=0, secret_key=config.Secret(secrets.token_hex(16))
        ),
    )


# --- the run ----------------------------------------------------------------------------------


async def ami_each(pbx: Pbx, actions: list[dict[str, str]]) -> None:
    ami = await pbx.ami()
    try:
        for action in actions:
            reply = await ami.send(**action)
            if action["Action"] == "QueueAdd":
                assert reply["Response"] == "Success", reply
    finally:
        await ami.close()


def cpu_window(pid: int, ast: int, since: tuple[float, float, float, float]) -> dict[str, float]:
    now = (*proc_cpu(pid), *proc_cpu(ast))
    d = [b - a for a, b in zip(since, now, strict=True)]
    return {"ours_user": d[0], "ours_sys": d[1], "ours": d[0] + d[1], "ast": d[2] + d[3]}


def snapshot(pid: int, ast: int) -> tuple[float, float, float, float]:
    return (*proc_cpu(pid), *proc_cpu(ast))


def start_py_spy(binary: str, pid: int, out: str) -> subprocess.Popen[bytes]:
    """py-spy recording ``pid`` into ``out`` (raw collapsed stacks) until :func:`stop_py_spy`;
    ``--nonblocking``: it never stops the process it samples; ``--gil``: only the thread
    holding the GIL is sampled, so the stacks share out CPU time, not time spent waiting on
    the database or the network."""
    return subprocess.Popen(
        [binary, "record", "--pid", str(pid), "--nonblocking", "--gil", "--rate", "200",
         "--format", "raw", "-o", out],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def stop_py_spy(spy: subprocess.Popen[bytes]) -> None:
    spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
    spy.wait(timeout=30)


async def load(args: argparse.Namespace, pbx: Pbx, engine: Engine, tmp: Path) -> dict[str, float]:
    from callcenter.core.queue_log import parse_queue_log
    from tests.e2e.conftest import Phones, wait_exit
    from tests.test_bridge import MqttWatcher, calls, expected_from_queue_log

    settings = child_settings(pbx, tmp)
    ctx = multiprocessing.get_context("spawn")
    ready, stop = ctx.Event(), ctx.Event()
    child = ctx.Process(
        target=serve, args=(settings, args.services, str(pbx.sounds), ready, stop), daemon=True
    )
    watcher = MqttWatcher(settings.mqtt.topic_prefix)  # only to clear retained topics after
    watch = asyncio.create_task(watcher.run())
    phones = Phones(pbx, tmp)
    spy: subprocess.Popen[bytes] | None = None
    child.start()
    assert child.pid is not None
    pid, ast = child.pid, pbx.proc.pid
    try:
        deadline = time.monotonic() + 30
        while not ready.is_set():
            assert child.is_alive(), "our services' process ended before it was ready"
            assert time.monotonic() < deadline, "the bridge did not resync within 30 s"
            await asyncio.sleep(0.1)
        start = len(pbx.queue_log.read_text()) if pbx.queue_log.exists() else 0
        for name, ext in pbx.agents:
            for attempt in range(3):
                try:
                    await phones.phone(name, ext, "answer", ring_ms=500, talk_ms=args.talk * 1000,
                                       audio=not args.silent)  # fmt: skip
                    break
                except AssertionError:  # SIPp lost a race for a free port (rc 254): again
                    if attempt == 2:
                        raise
        add = {"Action": "QueueAdd", "Queue": "sales", "Penalty": "0", "Paused": "false"}
        await ami_each(pbx, [
            {**add, "Interface": f"PJSIP/{ext}", "MemberName": name,
             "StateInterface": f"PJSIP/{ext}"}
            for name, ext in pbx.agents
        ])  # fmt: skip
        await asyncio.sleep(2)  # the logins' events are handled
        mark = snapshot(pid, ast)
        await asyncio.sleep(args.idle)
        idle = cpu_window(pid, ast, mark)

        per_call = CALL_SECONDS + args.talk + 2
        total = max(1, int(args.callers * args.minutes * 60 / per_call))
        rate = max(1, round(args.callers / per_call))
        print(f"load: {total} calls, {args.callers} at once, {len(pbx.agents)} agents, "
              f"services {','.join(args.services)} (pid {pid})")  # fmt: skip
        if args.py_spy:
            spy = start_py_spy(args.py_spy_bin, pid, args.py_spy)
        mark = snapshot(pid, ast)
        began = time.monotonic()
        callers = phones.callers(
            total, patience_ms=60000, rate=rate, limit=args.callers, audio=not args.silent
        )
        await wait_exit(callers, timeout=args.minutes * 60 * 3 + 120)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            entries = list(parse_queue_log(pbx.queue_log.read_text()[start:]))
            joined = {e.callid for e in entries if e.event == "ENTERQUEUE"}
            done = expected_from_queue_log(entries)
            rows = calls(engine)
            closed = {u for u, r in rows.items() if r["outcome"] is not None}
            if len(done) == len(joined) and set(done) <= closed:
                break
            await asyncio.sleep(1)
        busy = cpu_window(pid, ast, mark)
        seconds = time.monotonic() - began
        if spy is not None:
            stop_py_spy(spy)
        entries = list(parse_queue_log(pbx.queue_log.read_text()[start:]))
        expected = expected_from_queue_log(entries)
        rows = calls(engine)
        logout = [
            {"Action": "QueueRemove", "Queue": "sales", "Interface": f"PJSIP/{ext}"}
            for _, ext in pbx.agents
        ]
        await ami_each(pbx, logout)
    finally:
        phones.close()
        stop.set()
        child.join(timeout=30)
        if child.is_alive():
            child.kill()
        watch.cancel()
        await asyncio.gather(watch, return_exceptions=True)
        await watcher.clear_retained()
    cdrs = cdr_uniqueids(pbx.directory / "log" / "cdr-csv" / "Master.csv")
    lost = 0
    for uid, exp in expected.items():
        row = rows.get(uid)
        same = row is not None and (
            row["outcome"],
            row["agent"],
            row["wait_seconds"],
            row["talk_seconds"],
        ) == (exp.outcome, exp.agent, exp.wait, exp.talk)
        if not same or uid not in cdrs:
            lost += 1
            keys = ("outcome", "agent", "wait_seconds", "talk_seconds")
            ours = row and {k: row[k] for k in keys}
            print(f"lost: {uid}: queue_log {exp}, ours {ours}, in CDR: {uid in cdrs}")
    lost += len(set(rows) - set(expected))  # a call we logged that Asterisk did not
    ratio = busy["ours"] / busy["ast"] if busy["ast"] > 0 else float("nan")
    idle_ratio = idle["ours"] / idle["ast"] if idle["ast"] > 0 else float("nan")
    print(f"calls {len(expected)}  lost records {lost}")
    print(
        f"idle {args.idle:.0f} s: ours {idle['ours']:.2f} s (user {idle['ours_user']:.2f}, "
        f"sys {idle['ours_sys']:.2f}), Asterisk {idle['ast']:.2f} s, ratio {idle_ratio:.2f}"
    )
    print(
        f"load {seconds:.0f} s: ours {busy['ours']:.2f} s (user {busy['ours_user']:.2f}, "
        f"sys {busy['ours_sys']:.2f}), Asterisk {busy['ast']:.2f} s, ratio {ratio:.2f}"
    )
    return {"load.calls": float(len(expected)), "load.lost_records": float(lost),
            "load.cpu_ratio": round(ratio, 3), "load.callers": float(args.callers),
            "load.idle_cpu_ratio": round(idle_ratio, 3),
            "load.idle_cpu_ms_per_s": round(1000 * idle["ours"] / args.idle, 1)}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--callers", type=int, default=10, help="concurrent callers")
    parser.add_argument("--minutes", type=float, default=1.0, help="how long callers arrive")
    parser.add_argument("--agents", type=int, default=8, help="SIPp agent phones")
    parser.add_argument("--talk", type=int, default=4, help="seconds an agent talks")
    parser.add_argument(
        "--services", default="all",
        help=f"ours to run: all ({','.join(SERVICES)}, as `callcenter run`) or a list",
    )  # fmt: skip
    parser.add_argument("--idle", type=float, default=20.0, help="idle seconds measured")
    parser.add_argument("--py-spy", default="", help="record our process into this file")
    parser.add_argument(
        "--silent", action="store_true", help="phones send no audio (signalling and MOH only)"
    )
    parser.add_argument("--no-results", action="store_true", help="do not write results.json")
    args = parser.parse_args()
    args.services = SERVICES if args.services == "all" else tuple(args.services.split(","))
    if "bridge" not in args.services or set(args.services) - set(SERVICES):
        parser.error(f"--services: all, or a list of {', '.join(SERVICES)} with bridge")
    args.py_spy_bin = ""
    if args.py_spy:
        found = shutil.which("py-spy") or shutil.which(
            "py-spy", path=str(Path(sys.executable).parent)
        )
        if found is None:
            parser.error("--py-spy needs py-spy (pip install py-spy)")
        args.py_spy_bin = found

    from callcenter import config
    from callcenter.asterisk import run
    from callcenter.asterisk.sample import settings as sample_settings
    from callcenter.db import engine as db
    from tests.conftest import create_database, drop_database
    from tests.e2e.conftest import start_pbx

    try:
        binary = run.find_binary(sample_settings())
    except run.AsteriskNotFound as exc:
        print(f"load run needs Asterisk (ASTERISK_BIN or PATH): {exc}")
        return 2
    sipp = shutil.which("sipp")
    if sipp is None:
        print("load run needs SIPp (`sipp` on PATH; Debian: apt-get install sip-tester)")
        return 2
    url = create_database()
    engine = db.make_engine(config.DatabaseSettings(url=url))
    try:
        db.upgrade(engine)
        agents = [(f"load{i:03d}", str(2000 + i)) for i in range(1, args.agents + 1)]
        with tempfile.TemporaryDirectory(prefix="cc-load-") as tmpdir:
            tmp = Path(tmpdir)
            with start_pbx(tmp / "ast", engine, binary, sipp, agents) as pbx:
                figures = asyncio.run(load(args, pbx, engine, tmp))
    finally:
        engine.dispose()
        drop_database(url)
    if not args.no_results:
        results: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        results.update(figures)
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(json.dumps(dict(sorted(results.items())), indent=2) + "\n")
    return 1 if figures["load.lost_records"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
