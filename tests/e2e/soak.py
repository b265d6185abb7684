"""The soak and fault harness: our services as separate processes against a private Asterisk,
a private PostgreSQL cluster and a private Mosquitto, so each can be killed, stopped and
measured on its own (scripts/soak.py, tests/e2e/test_faults.py; docs/soak.md).

Pure parts (what a comparison or a reconvergence check decides) are plain functions over
parsed records; the shells around them start processes, read /proc and talk AMI and HTTP.

Nothing here touches the machine's shared PostgreSQL or Mosquitto: the cluster is ``initdb``'d
into a temporary directory (run as user ``postgres``, as tests/test_bridge_outage.py does) and
the broker is ``mosquitto -p <free port>``. Every process started is stopped in ``finally``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import csv
import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC
from pathlib import Path
from typing import Any

import aiohttp

from callcenter.core.queue_log import QueueLogEntry, parse_queue_log
from tests.test_asterisk_live import Ami, free_port
from tests.test_bridge import Expected, expected_from_queue_log

ROOT = Path(__file__).resolve().parents[2]
SERVICES: dict[str, list[str]] = {
    "bridge": ["ami"],
    "ivr": ["agi"],
    "dialer": ["dialer"],
    "wallboard": ["wallboard"],
    "webhooks": ["webhooks", "run"],
}
KEYS = ("outcome", "agent", "wait_seconds", "talk_seconds")


# --- /proc -----------------------------------------------------------------------------------


def proc_cpu(pid: int) -> float:
    """utime + stime of a process, in seconds (fields 14 and 15 of /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_mb(pid: int) -> float:
    """Resident set size (VmRSS) in MiB; 0 when the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


# --- private PostgreSQL and Mosquitto --------------------------------------------------------


@dataclasses.dataclass
class PrivatePostgres:
    """A PostgreSQL cluster of our own (``initdb``), started and stopped with ``pg_ctl``."""

    bin: Path
    data: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/callcenter"

    def _as_postgres(self, *args: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *args], check=True,
                       capture_output=True, timeout=120)  # fmt: skip

    def start(self) -> None:
        self._as_postgres(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-l", str(self.data / "log"),
            "-o", f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c max_connections=300",
            "start",
        )  # fmt: skip

    def stop(self) -> None:
        self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-m", "fast",
                          "stop")  # fmt: skip


def postgres_missing() -> str | None:
    """Why a private cluster cannot be started here, or None."""
    if not sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl")):
        return "PostgreSQL server binaries (/usr/lib/postgresql/*/bin) are not installed"
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        return "a private PostgreSQL needs root (to run it as user postgres)"
    return None


@contextlib.contextmanager
def private_postgres(keep_log: Path | None = None) -> Iterator[PrivatePostgres]:
    """A fresh, migrated cluster on a free port until the block ends (then removed);
    ``keep_log``: where its server log is copied once it has stopped (the soak scans it)."""
    from callcenter import config
    from callcenter.db import engine as db

    bin_dir = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))[-1].parent
    root = Path(tempfile.mkdtemp(prefix="ccsoakpg", dir="/tmp"))
    shutil.chown(root, "postgres", "postgres")
    pg = PrivatePostgres(bin_dir, root / "data", free_port())
    try:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", str(bin_dir / "initdb"), "-D", str(pg.data),
             "-A", "trust", "-U", "postgres", "--no-sync"],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        pg.start()
        settings = config.DatabaseSettings(url=pg.url)
        db.ensure_database(settings)
        engine = db.make_engine(settings)
        db.upgrade(engine)
        engine.dispose()
        yield pg
    finally:
        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            pg.stop()
        if keep_log is not None:
            with contextlib.suppress(OSError):
                shutil.copyfile(pg.data / "log", keep_log)
        shutil.rmtree(root, ignore_errors=True)


@dataclasses.dataclass
class Broker:
    """``mosquitto -p <port>`` of our own; :meth:`stop` and :meth:`start` at will."""

    port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        conf = self.log.with_suffix(".conf")
        conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n")
        with self.log.open("ab") as fh:
            self.proc = subprocess.Popen(
                ["mosquitto", "-c", str(conf)], stdout=fh, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                import socket

                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            time.sleep(0.1)
        raise RuntimeError(f"mosquitto did not listen on {self.port}: {self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None


def broker_reconnects(log: Path, offset: int, started: float) -> list[tuple[str, float]]:
    """Each client's first connection in mosquitto's log after byte ``offset``, as seconds
    after ``started`` (lines ``<epoch>: New client connected from <addr> as <id> ...``)."""
    out: dict[str, float] = {}
    with log.open("rb") as fh:
        fh.seek(offset)
        text = fh.read().decode(errors="replace")
    for line in text.splitlines():
        stamp, _, rest = line.partition(": New client connected from ")
        if rest and " as " in rest and stamp.isdigit():
            client = rest.split(" as ", 1)[1].split(" ", 1)[0]
            out.setdefault(client, max(0.0, int(stamp) - started))
    return sorted(out.items(), key=lambda kv: kv[1])


def mosquitto_missing() -> str | None:
    return None if shutil.which("mosquitto") else "needs mosquitto (apt-get install mosquitto)"


# --- our services as processes ---------------------------------------------------------------


@dataclasses.dataclass
class Service:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    cpu_before: float = 0.0  # CPU seconds of earlier incarnations (killed and restarted)
    rss_start: float = 0.0
    rss_end: float = 0.0
    restarts: int = 0

    def cpu(self) -> float:
        try:
            return self.cpu_before + proc_cpu(self.proc.pid)
        except OSError:
            return self.cpu_before


class Services:
    """``callcenter ami``, ``agi``, ``dialer``, ``wallboard``, ``webhooks run``: each its own
    process with the same config file and environment; killed, restarted and measured one by
    one. ``log_level``: each one's ``--log-level`` (the soak runs them at ``debug``, so that
    its scan for secrets reads the debug lines too)."""

    def __init__(self, config_file: Path, env: Mapping[str, str], logs: Path,
                 log_level: str = "info") -> None:  # fmt: skip
        self.config_file = config_file
        self.env = {**os.environ, **env, "CALLCENTER_CONFIG": str(config_file)}
        self.logs = logs
        self.log_level = log_level
        self.running: dict[str, Service] = {}

    def start(self, name: str) -> Service:
        log = self.logs / f"{name}.log"
        with log.open("ab") as fh:
            proc = subprocess.Popen(
                [sys.executable, "-m", "callcenter", *SERVICES[name], "--log-level",
                 self.log_level],
                stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env,
                cwd=ROOT, start_new_session=True,
            )  # fmt: skip
        old = self.running.get(name)
        svc = Service(name, proc, log)
        if old is not None:
            svc.cpu_before, svc.rss_start, svc.restarts = old.cpu(), old.rss_start, old.restarts + 1
        self.running[name] = svc
        return svc

    def start_all(self, names: Sequence[str] = tuple(SERVICES)) -> None:
        for name in names:
            self.start(name)

    def kill(self, name: str) -> None:
        """SIGKILL, as the kernel's OOM killer or a crash would end it."""
        svc = self.running[name]
        svc.cpu_before = svc.cpu()
        svc.proc.send_signal(signal.SIGKILL)
        svc.proc.wait(timeout=10)

    def alive(self) -> dict[str, bool]:
        return {n: s.proc.poll() is None for n, s in self.running.items()}

    def mark_rss(self, which: str) -> None:
        for svc in self.running.values():
            setattr(svc, f"rss_{which}", proc_rss_mb(svc.proc.pid))

    def stop_all(self) -> None:
        for svc in self.running.values():
            if svc.proc.poll() is None:
                svc.proc.terminate()
        for svc in self.running.values():
            try:
                svc.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                svc.proc.kill()
                svc.proc.wait(timeout=10)


def config_text(ivr_did: str, queue: str, sounds: Path) -> str:
    """The settings file of the soak: the IVR (DID -> key 1 -> ``queue``) and where its
    prompts are; everything else comes from the environment."""
    return (
        f'[agi]\nsounds_dir = "{sounds}"\n\n'
        f'[ivr.main]\nstart = "welcome"\ndids = ["{ivr_did}"]\n\n'
        '[ivr.main.nodes.welcome]\nprompt = "beep"\nchoices = { "1" = "sales" }\n\n'
        f'[ivr.main.nodes.sales]\ntarget = "queue"\nqueue = "{queue}"\n'
    )


# --- what Asterisk says, what we say ---------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LiveView:
    """The live state both sides can be compared on: callers waiting per queue, and per
    logged-in member (name): paused, in a call."""

    waiting: tuple[tuple[str, int], ...]
    members: tuple[tuple[str, bool, bool], ...]


def view_from_queue_status(items: Sequence[Mapping[str, str]]) -> LiveView:
    """QueueStatus' QueueParams/QueueMember/QueueEntry events -> :class:`LiveView`. A member
    is in a call when InCall is 1 or Status is INUSE (2) / ONHOLD (8)."""
    waiting: dict[str, int] = {}
    members: dict[str, tuple[bool, bool]] = {}
    for ev in items:
        kind = ev.get("Event")
        if kind == "QueueParams":
            waiting.setdefault(ev["Queue"], 0)
        elif kind == "QueueEntry":
            waiting[ev["Queue"]] = waiting.get(ev["Queue"], 0) + 1
        elif kind == "QueueMember":
            busy = ev.get("InCall") == "1" or ev.get("Status") in ("2", "8")
            was = members.get(ev["Name"], (False, False))
            members[ev["Name"]] = (was[0] or ev.get("Paused") == "1", was[1] or busy)
    return LiveView(
        tuple(sorted(waiting.items())),
        tuple(sorted((n, p, b) for n, (p, b) in members.items())),
    )


def view_from_board(board: Mapping[str, Any]) -> LiveView:
    """The wallboard's /api/v1/board -> :class:`LiveView` (agents ``on_call`` are in a call;
    ``paused`` is paused; logged-out rows are left out)."""
    waiting = {
        q["queue"]: int(q.get("waiting") or 0) for q in board.get("queues", []) if q.get("live")
    }
    members = {
        a["agent"]: (a["state"] == "paused", a["state"] == "on_call")
        for a in board.get("agents", [])
        if a.get("state") not in (None, "logged_out")
    }
    return LiveView(
        tuple(sorted(waiting.items())),
        tuple(sorted((n, p, b) for n, (p, b) in members.items())),
    )


def agree(ours: LiveView, before: LiveView, after: LiveView) -> bool:
    """Ours matches Asterisk's state read just before or just after it (the state moves while
    both are read: a sandwich, not one instant)."""
    return ours in (before, after)


async def asterisk_view(ami: Ami) -> LiveView:
    return view_from_queue_status(await ami.send_list(Action="QueueStatus"))


async def board_view(http: aiohttp.ClientSession, base: str, token: str) -> LiveView | None:
    try:
        async with http.get(f"{base}/api/v1/board",
                            headers={"Authorization": f"Bearer {token}"}) as r:  # fmt: skip
            if r.status != 200:
                return None
            return view_from_board(await r.json())
    except (aiohttp.ClientError, TimeoutError):
        return None


async def reconverge(
    ami_login: Callable[[], Awaitable[Ami]],
    base: str,
    token: str,
    *,
    timeout: float = 120.0,
    since: float | None = None,
) -> float | None:
    """Seconds from ``since`` (default now) until the board agrees with Asterisk; None when
    it does not within ``timeout``. ``ami_login``: an async callable giving a logged-in Ami
    (Asterisk may be restarting: failures are retried)."""
    start = since if since is not None else time.monotonic()
    deadline = time.monotonic() + timeout
    ami: Ami | None = None
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
        try:
            while time.monotonic() < deadline:
                try:
                    if ami is None:
                        ami = await asyncio.wait_for(ami_login(), 5)
                    current: Ami = ami
                    before = await asyncio.wait_for(asterisk_view(current), 5)
                    ours = await board_view(http, base, token)
                    after = await asyncio.wait_for(asterisk_view(current), 5)
                except (OSError, TimeoutError, asyncio.IncompleteReadError, AssertionError):
                    ami = None
                    await asyncio.sleep(0.5)
                    continue
                if ours is not None and agree(ours, before, after):
                    return time.monotonic() - start
                await asyncio.sleep(0.25)
        finally:
            if ami is not None:
                with contextlib.suppress(Exception):
                    await ami.close()
    return None


# --- the comparison: Asterisk's records against ours -----------------------------------------


@dataclasses.dataclass(frozen=True)
class Disagreement:
    call: str
    why: str


@dataclasses.dataclass(frozen=True)
class Comparison:
    calls: int
    lost: int
    duplicates: int
    attempts: int
    disagreements: tuple[Disagreement, ...]
    #: Of ``calls``, the SIPp callers' (an Asterisk Uniqueid for callid); the rest are the
    #: campaign's customers. None inbound means the callers never got through.
    inbound: int = 0


def read_cdr(path: Path) -> list[list[str]]:
    """cdr_custom's Master.csv rows (uniqueid is column 17, disposition 14, channel 5)."""
    if not path.exists():
        return []
    with path.open(newline="") as fh:
        return [row for row in csv.reader(fh) if len(row) >= 17]


#: A callid that is an Asterisk Uniqueid (``<epoch>.<n>``): an inbound caller's.
INBOUND_CALLID = re.compile(r"\d+\.\d+")


def expected_visits(entries: Sequence[QueueLogEntry]) -> dict[str, Expected]:
    """What queue_log says of each finished queue visit, by callid (tests/test_bridge.py's
    reading). A callid need not look like a Uniqueid here: the dialer's customers carry the
    ChannelId it gave Originate (a UUID). Only ``NONE`` and ``MANAGER`` (member and queue
    lines) are not calls."""
    return expected_from_queue_log(entries, lambda callid: callid not in ("", "NONE", "MANAGER"))


def compare_calls(
    expected: Mapping[str, Expected],
    rows: Sequence[Mapping[str, Any]],
    cdr_ids: set[str],
    still_open: set[str],
    node: str = "local",
) -> tuple[int, int, list[Disagreement]]:
    """queue_log's calls of ``node`` (Asterisk wins) against our call rows and the CDR:
    (lost, duplicates, disagreements). A call is lost when our row is missing or says
    another outcome, agent, wait or talk, or when the CDR has no record of it; a row of ours
    that Asterisk has no finished call for (and that is not still going on) is lost too.

    Both sides are keyed as they really are: our rows by (node, uniqueid) (the table's unique
    key), queue_log's visits by callid within the one node whose file it is. A uniqueid is
    ``<epoch second of creation>.<counter>`` and the counter restarts at 0 with Asterisk, so
    the same uniqueid on two nodes is two calls, not a duplicate; a duplicate is a key of ours
    twice."""
    by_key: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for r in rows:
        by_key.setdefault((str(r["node"]), str(r["uniqueid"])), []).append(r)
    duplicates = sum(len(v) - 1 for v in by_key.values())
    lost: list[Disagreement] = []
    for uid, exp in sorted(expected.items()):
        row = by_key.get((node, uid), [None])[0]
        want = (exp.outcome, exp.agent, exp.wait, exp.talk)
        if row is None:
            lost.append(Disagreement(uid, f"no row of ours; queue_log says {want}"))
            continue
        got = tuple(row[k] for k in KEYS)
        if got != want:
            lost.append(Disagreement(uid, f"queue_log says {want}, ours {got}"))
        elif uid not in cdr_ids:
            lost.append(Disagreement(uid, "no CDR record of the caller's channel"))
    mine = {uid for n, uid in by_key if n == node}
    for uid in sorted(mine - set(expected) - still_open):
        row = by_key[(node, uid)][0]
        if row.get("queue"):  # IVR-only calls have no queue_log lines
            lost.append(Disagreement(uid, f"ours only ({row.get('outcome')}): not in queue_log"))
    return len(lost), duplicates, lost


def _cdr_end(row: Sequence[str]) -> float | None:
    """The CDR's end (column 11, ``YYYY-MM-DD HH:MM:SS`` in Asterisk's local time, which is
    this machine's) as an epoch, None when unreadable."""
    return _cdr_time(row[10])


def _cdr_time(value: str) -> float | None:
    import datetime as dt

    try:
        return dt.datetime.strptime(value, "%Y-%m-%d %H:%M:%S").timestamp()
    except ValueError:
        return None


def call_spans(
    entries: Sequence[QueueLogEntry], cdr: Sequence[Sequence[str]]
) -> dict[str, tuple[float, float]]:
    """When each call was up, as epochs, by the keys disagreements name: queue_log's callid
    (first to last line) and the CDR's uniqueid (start to end, whole seconds)."""
    spans: dict[str, tuple[float, float]] = {}
    for e in entries:
        if e.callid and e.callid not in ("NONE", "MANAGER"):
            lo, hi = spans.get(e.callid, (e.time, e.time))
            spans[e.callid] = (min(lo, e.time), max(hi, e.time))
    for row in cdr:
        start, end = _cdr_time(row[8]), _cdr_time(row[10])
        if start is None or end is None:
            continue
        lo, hi = spans.get(row[16], (start, end + 1))
        spans[row[16]] = (min(lo, start), max(hi, end + 1))
    return spans


def attribute(
    disagreements: Sequence[Disagreement],
    spans: Mapping[str, tuple[float, float]],
    windows: Mapping[str, tuple[float, float]],
    margin: float = 5.0,
) -> dict[str, list[Disagreement]]:
    """Each fault's share of the final disagreements: those about a call that was up from
    ``margin`` seconds before the fault began until ``margin`` after the live state agreed
    again (``windows``: fault -> (began, reconverged), epochs). A disagreement may fall to
    two faults close together, or to none (a call far from every fault, or a contact, which
    has no span): the run's total counts it either way."""
    out: dict[str, list[Disagreement]] = {name: [] for name in windows}
    for d in disagreements:
        span = spans.get(d.call)
        if span is None:
            continue
        for name, (began, back) in windows.items():
            if span[0] <= back + margin and span[1] >= began - margin:
                out[name].append(d)
    return out


def compare_attempts(
    attempts: Sequence[Mapping[str, Any]],
    cdr: Sequence[Sequence[str]],
    now: float,
    settle: float = 5.0,
    unanswered_after: float = 120.0,
) -> tuple[int, int, list[Disagreement]]:
    """The dialer's attempts against the CDR of the customers' Local channels: (lost,
    dialled twice, disagreements). Lost: an originated attempt that has not ended although
    Asterisk's CDR of its channel closed more than ``settle`` seconds before ``now`` (or,
    with no CDR at all, although it was originated more than ``unanswered_after`` seconds
    ago: a call that never got a channel still ends by OriginateResponse), or a customer
    channel in the CDR that no attempt names. An attempt still on the line is neither. Twice:
    a contact with two dialled attempts (every soak campaign has max_attempts = 1)."""
    out: list[Disagreement] = []
    named = {str(a["channel_id"]) for a in attempts if a["channel_id"]}
    ended: dict[str, float] = {}
    for row in cdr:
        end = _cdr_end(row)
        if end is not None:
            ended[row[16]] = max(end, ended.get(row[16], 0.0))
    for a in attempts:
        uid = str(a["channel_id"] or "")
        if not uid or a["ended_at"] is not None:
            continue
        closed = ended.get(uid)
        originated = a["originated_at"] or a["created_at"]
        if closed is not None and closed < now - settle:
            out.append(Disagreement(uid, f"attempt {a['id']} never ended (its CDR did)"))
        elif (
            closed is None
            and originated is not None
            and (
                originated.replace(tzinfo=originated.tzinfo or UTC).timestamp()
                < now - unanswered_after
            )
        ):
            out.append(Disagreement(uid, f"attempt {a['id']} never ended (no channel either)"))
    customers = {row[16] for row in cdr if "@sim-customer" in row[4] and row[4].endswith(";1")}
    for uid in sorted(customers - named):
        out.append(Disagreement(uid, "a customer channel in the CDR that no attempt names"))
    per_contact: dict[Any, int] = {}
    for a in attempts:
        if a["channel_id"]:
            per_contact[a["contact_id"]] = per_contact.get(a["contact_id"], 0) + 1
    twice = sum(1 for n in per_contact.values() if n > 1)
    for contact, n in sorted(per_contact.items(), key=lambda kv: str(kv[0])):
        if n > 1:
            out.append(Disagreement(f"contact {contact}", f"dialled {n} times"))
    return len(out) - twice, twice, out


def compare_all(
    pbx_dir: Path, engine: Any, queue_log_from: int = 0, settle: float = 5.0
) -> Comparison:
    """Everything Asterisk recorded (queue_log from byte ``queue_log_from``, CDR) against our
    call log and attempts, now. Calls still going on, or ended less than ``settle`` seconds
    ago (our log is up to a flush behind), are left out on both sides."""
    import sqlalchemy as sa

    text = (pbx_dir / "log" / "queue_log").read_text(errors="replace")
    entries = list(parse_queue_log(text[queue_log_from:]))
    now = time.time()
    cut = now - settle
    recent = {e.callid for e in entries if e.time > cut}
    expected = {k: v for k, v in expected_visits(entries).items() if k not in recent}
    joined = {e.callid for e in entries if e.event == "ENTERQUEUE"} | recent
    cdr = read_cdr(pbx_dir / "log" / "cdr-custom" / "Master.csv")
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(sa.text("SELECT * FROM calls")).mappings()]
        sql = (
            "SELECT id, contact_id, channel_id, created_at, originated_at, ended_at"
            " FROM campaign_attempts"
        )
        attempts = [dict(r) for r in conn.execute(sa.text(sql)).mappings()]
    lost, dups, why = compare_calls(expected, rows, {r[16] for r in cdr}, joined - set(expected))
    a_lost, twice, a_why = compare_attempts(attempts, cdr, now, settle)
    inbound = sum(1 for callid in expected if INBOUND_CALLID.fullmatch(callid))
    return Comparison(len(expected), lost + a_lost, dups + twice, len(attempts),
                      tuple(why + a_why), inbound)  # fmt: skip


# --- browsers --------------------------------------------------------------------------------


async def hold_streams(base: str, token: str, count: int, stop: asyncio.Event) -> list[int]:
    """``count`` clients holding /events open (reconnecting, as EventSource does) until
    ``stop``; returns the bytes each read."""
    read = [0] * count

    async def one(i: int) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as http:
            while not stop.is_set():
                try:
                    auth = {"Authorization": f"Bearer {token}"}
                    async with http.get(f"{base}/events", headers=auth) as r:
                        while not stop.is_set():
                            chunk = await asyncio.wait_for(r.content.readany(), 30)
                            if not chunk:
                                break
                            read[i] += len(chunk)
                except (aiohttp.ClientError, TimeoutError, OSError):
                    pass
                if not stop.is_set():
                    await asyncio.sleep(1)

    tasks = [asyncio.create_task(one(i)) for i in range(count)]
    await stop.wait()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return read


# --- secrets in logs -------------------------------------------------------------------------

#: Secrets shorter than this are not looked for: a 4-digit PIN or a short word turns up by
#: chance in timestamps, uniqueids, ports and counters, so a hit would say nothing (and a scan
#: that always fails is as useless as none). Every secret the soak makes is far longer.
MIN_SECRET_CHARS = 8
#: Bytes read at a time; the end of each block is kept for the next (a value across the edge).
SCAN_CHUNK = 1 << 20
#: Base64 runs shorter than this are not looked for (a secret's base64 core at an unlucky
#: alignment can be short; a few base64 characters match anything).
_MIN_FORM = 8


@dataclasses.dataclass(frozen=True)
class Leak:
    """A secret found in a log: the file, the secret's *name* (never its value), the line
    (1-based) and the form it was written in (``raw``, ``url``, ``json``, ``base64``...)."""

    file: Path
    secret: str
    line: int
    form: str


def too_short(secrets: Mapping[str, str]) -> list[str]:
    """The names of the secrets :func:`find_secrets` does not look for (shorter than
    :data:`MIN_SECRET_CHARS`)."""
    return sorted(name for name, value in secrets.items() if len(value) < MIN_SECRET_CHARS)


def _base64_cores(raw: bytes, alphabet: bytes | None) -> list[bytes]:
    """The part of the secret's base64 that is the same wherever the secret sits in a longer
    encoded value (``user:secret`` of basic auth, a cookie, a JSON blob): for each of the
    three alignments, the 4-character groups made of secret bytes only."""
    out = []
    for lead in range(3):
        enc = base64.b64encode(b"\0" * lead + raw, altchars=alphabet)
        first, last = (1 if lead else 0), (lead + len(raw)) // 3
        core = enc[4 * first : 4 * last]
        if len(core) >= _MIN_FORM:
            out.append(core)
    return out


def secret_forms(value: str) -> list[tuple[str, bytes]]:
    """What to look for: the value as UTF-8 and as it reads URL-quoted (``%XX`` upper or
    lower case, ``+`` for space), JSON- and repr-escaped, hex-encoded and base64-encoded
    (standard and URL-safe alphabet, any alignment: see :func:`_base64_cores`); each distinct
    byte string once, the plain forms first."""
    candidates: list[tuple[str, bytes]] = [("raw", value.encode())]
    for quoted in (urllib.parse.quote(value, safe=""), urllib.parse.quote_plus(value, safe="")):
        candidates.append(("url", quoted.encode()))
        lower = re.sub("%[0-9A-F]{2}", lambda m: m.group().lower(), quoted)
        candidates.append(("url", lower.encode()))
    candidates += [
        ("json", json.dumps(value)[1:-1].encode()),
        ("repr", repr(value)[1:-1].encode()),
        ("hex", value.encode().hex().encode()),
        ("hex", value.encode().hex().upper().encode()),
    ]
    candidates += [("base64", c) for c in _base64_cores(value.encode(), None)]
    candidates += [("base64", c) for c in _base64_cores(value.encode(), b"-_")]
    seen: set[bytes] = set()
    out = []
    for form, pattern in candidates:
        if pattern and pattern not in seen:
            seen.add(pattern)
            out.append((form, pattern))
    return out


def find_secrets(
    files: Iterable[Path], secrets: Mapping[str, str], chunk: int = SCAN_CHUNK
) -> list[Leak]:
    """Every line of ``files`` holding a secret of ``secrets`` (name -> value) in one of its
    :func:`secret_forms`; one :class:`Leak` per file, secret and line, in file order.

    Files are read as bytes (a log may hold anything: binary, broken UTF-8), ``chunk`` bytes
    at a time; the last ``longest form - 1`` bytes of each block are read again with the
    next, so a value across a block's edge is found, and found once. Secrets shorter than
    :data:`MIN_SECRET_CHARS` are not looked for (:func:`too_short`). A file that vanished
    before it was read is skipped; any other error reading one is raised."""
    patterns = [
        (name, form, pattern)
        for name, value in secrets.items()
        if len(value) >= MIN_SECRET_CHARS
        for form, pattern in secret_forms(value)
    ]
    if not patterns:
        return []
    keep = max(len(p) for _, _, p in patterns) - 1
    leaks: list[Leak] = []
    for path in files:
        found: dict[tuple[str, int], str] = {}
        carry, line0 = b"", 1  # bytes kept from the last block; the line they start on
        try:
            fh = path.open("rb")
        except FileNotFoundError:
            continue
        with fh:
            while block := fh.read(max(chunk, 1)):
                data = carry + block
                for name, form, pattern in patterns:
                    at = data.find(pattern)
                    while at != -1:
                        # A match that ends inside the carried bytes was found last block.
                        if at + len(pattern) > len(carry):
                            line = line0 + data.count(b"\n", 0, at)
                            found.setdefault((name, line), form)
                        at = data.find(pattern, at + 1)
                cut = max(0, len(data) - keep)
                line0 += data.count(b"\n", 0, cut)
                carry = data[cut:]
        ordered = sorted(found.items(), key=lambda kv: (kv[0][1], kv[0][0]))
        leaks += [Leak(path, name, line, form) for (name, line), form in ordered]
    return leaks


#: Names of the files a program writes its log to, besides ``*.log``: Asterisk's logger
#: channels (``messages``, ``full``, and their rotations) and queue_log.
LOG_NAMES = ("messages", "full", "queue_log", "security", "log")


def log_files(root: Path) -> list[Path]:
    """Every regular file below ``root`` that is a log: named ``*.log``, ``*.log.<n>`` or
    one of :data:`LOG_NAMES` (``messages.1``...), or anywhere below a directory named ``log``
    or ``logs`` (Asterisk's CDR and CEL files among them). Configuration (pjsip.conf holds
    the SIP secrets by design), the database and the spool are not logs."""
    out = []
    for path in sorted(root.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        rel = path.relative_to(root)
        stem = path.name.split(".", 1)[0]
        if (
            path.suffix == ".log"
            or ".log." in path.name
            or stem in LOG_NAMES
            or any(part in ("log", "logs") for part in rel.parts[:-1])
        ):
            out.append(path)
    return out
