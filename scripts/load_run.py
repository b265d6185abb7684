"""The load run: SIPp callers through IVR -> queue -> SIPp agent phones on a real Asterisk.

    ASTERISK_BIN=/opt/asterisk/sbin/asterisk .venv/bin/python scripts/load_run.py \\
        [--callers 10] [--minutes 1] [--agents 8] [--talk 4]

Not part of ``make test`` (it takes minutes and needs Asterisk and SIPp). What it does:

1. A database of its own (``cc_load_<hex>`` on ``CALLCENTER_TEST_PG``, dropped at the end), the
   queue and ``--agents`` agents; a private Asterisk rendered from them in a temporary directory
   (the e2e harness's :func:`tests.e2e.conftest.start_pbx`); the bridge and the IVR in this
   process.
2. Every agent phone is a SIPp UAS registered as its PJSIP endpoint, answering after 0.5 s and
   hanging up after ``--talk`` seconds. Callers: one SIPp UAC keeping ``--callers`` calls up at
   once for ``--minutes`` (DTMF 1 into the IVR, then the queue; patience 60 s).
3. Afterwards, for every call Asterisk's queue_log knows: our call log must have it with the
   same outcome, agent, wait and talk, and Asterisk's CDR (Master.csv) must have a record of the
   caller's channel. Every call failing one of these is a lost record.
4. CPU: ours (this process: bridge + IVR, getrusage) next to Asterisk's (/proc/<pid>/stat).

Writes ``load.calls``, ``load.lost_records`` and ``load.cpu_ratio`` (ours / Asterisk's) into
bench/results.json, keeping the other keys. Exit status 1 when a record is lost.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from tests.e2e.conftest import Pbx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "bench" / "results.json"
CALL_SECONDS = 2.5 + 1.5  # SIPp keys after 2.5 s; IVR prompt and hand-over


def proc_cpu(pid: int) -> float:
    """utime + stime of a process, in seconds (fields 14 and 15 of /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cdr_uniqueids(path: Path) -> set[str]:
    """Uniqueids of Master.csv (cdr_csv with loguniqueid: the 17th column)."""
    if not path.exists():
        return set()
    with path.open(newline="") as fh:
        return {row[16] for row in csv.reader(fh) if len(row) > 16}


async def load(args: argparse.Namespace, pbx: Pbx, engine: Engine, tmp: Path) -> dict[str, float]:
    from callcenter.core.queue_log import parse_queue_log
    from tests.e2e.conftest import stack, wait_exit
    from tests.test_bridge import calls, expected_from_queue_log

    async with stack(pbx, engine, tmp) as st:
        start = len(pbx.queue_log.read_text()) if pbx.queue_log.exists() else 0
        for name, ext in pbx.agents:
            await st.phones.phone(name, ext, "answer", ring_ms=500, talk_ms=args.talk * 1000)
        await st.login(*(name for name, _ in pbx.agents))
        cpu_ours, cpu_ast = own_cpu(), proc_cpu(pbx.proc.pid)
        per_call = CALL_SECONDS + args.talk + 2
        total = max(1, int(args.callers * args.minutes * 60 / per_call))
        rate = max(1, round(args.callers / per_call))
        print(f"load: {total} calls, {args.callers} at once, {len(pbx.agents)} agents")
        callers = st.phones.callers(total, patience_ms=60000, rate=rate, limit=args.callers)
        await wait_exit(callers, timeout=args.minutes * 60 * 3 + 120)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            entries = list(parse_queue_log(pbx.queue_log.read_text()[start:]))
            joined = {e.callid for e in entries if e.event == "ENTERQUEUE"}
            done = expected_from_queue_log(entries)
            rows = calls(st.engine)
            closed = {u for u, r in rows.items() if r["outcome"] is not None}
            if len(done) == len(joined) and set(done) <= closed:
                break
            await asyncio.sleep(1)
        await asyncio.sleep(2)
        cpu_ours, cpu_ast = own_cpu() - cpu_ours, proc_cpu(pbx.proc.pid) - cpu_ast
        entries = list(parse_queue_log(pbx.queue_log.read_text()[start:]))
        expected = expected_from_queue_log(entries)
        rows = calls(st.engine)
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
    ratio = cpu_ours / cpu_ast if cpu_ast > 0 else float("nan")
    print(f"calls {len(expected)}  lost records {lost}")
    print(f"CPU: ours (bridge + IVR) {cpu_ours:.2f} s, Asterisk {cpu_ast:.2f} s, "
          f"ratio {ratio:.2f}")  # fmt: skip
    return {"load.calls": float(len(expected)), "load.lost_records": float(lost),
            "load.cpu_ratio": round(ratio, 3)}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--callers", type=int, default=10, help="concurrent callers")
    parser.add_argument("--minutes", type=float, default=1.0, help="how long callers arrive")
    parser.add_argument("--agents", type=int, default=8, help="SIPp agent phones")
    parser.add_argument("--talk", type=int, default=4, help="seconds an agent talks")
    args = parser.parse_args()

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
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results.update(figures)
    RESULTS.write_text(json.dumps(dict(sorted(results.items())), indent=2) + "\n")
    return 1 if figures["load.lost_records"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
