"""The soak's orchestration: set everything up, keep traffic flowing, inject faults at
recorded moments, compare and measure. Used by scripts/soak.py (long) and
tests/e2e/test_faults.py (short); docs/soak.md explains the figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import dataclasses
import datetime as dt
import secrets
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from callcenter.core.queue_log import parse_queue_log
from tests.e2e import soak
from tests.e2e.conftest import DID, Pbx, Phones, start_pbx, wait_exit
from tests.test_asterisk_live import Ami, free_port

FAULTS = ("restart", "postgres", "mosquitto", "bridge", "ivr", "dialer")
CUSTOMERS = "Local/{number}@sim-customer/n"


@dataclasses.dataclass(frozen=True)
class Plan:
    calls: int = 10
    agents: int = 6
    minutes: float = 1.0
    talk: int = 8
    faults: tuple[str, ...] = FAULTS
    streams: int = 5
    contacts: int = 200
    fault_gap: float = 20.0  # seconds of traffic between one fault's recovery and the next


@dataclasses.dataclass
class FaultResult:
    name: str
    at: float  # seconds since the traffic started
    lost: int
    duplicates: int
    reconverge_s: float | None
    note: str = ""
    #: ``ivr``: the callers in the IVR when it was killed, and those of them that never
    #: reached a queue (queue_log has no ENTERQUEUE of theirs).
    in_ivr: tuple[str, ...] = ()
    stranded: tuple[str, ...] = ()


@dataclasses.dataclass
class Outcome:
    plan: Plan
    comparison: soak.Comparison
    faults: list[FaultResult]
    cpu: dict[str, float]
    rss: dict[str, tuple[float, float]]
    asterisk_cpu: float
    seconds: float
    streams_bytes: list[int]
    try_later: list[str]


def missing(binary_finder: Callable[[], Any]) -> str | None:
    """Why the soak cannot run here, or None."""
    for why in (soak.postgres_missing(), soak.mosquitto_missing()):
        if why:
            return why
    if shutil.which("sipp") is None:
        return "needs SIPp (`sipp` on PATH)"
    try:
        binary_finder()
    except Exception as exc:
        return f"needs Asterisk: {exc}"
    return None


def customer_number(i: int) -> str:
    """+1 201 555 SS K D ([sim-customer]: K who answers, D * 5 s on the line): mostly people
    (K 1) staying 10-25 s, some machines, busy and never-answering numbers."""
    kind = (1, 1, 1, 1, 1, 1, 2, 3, 4, 6)[i % 10]
    stay = 2 + (i // 10) % 4
    serial = (i // 40) % 100
    return f"+1201555{serial:02d}{kind}{stay}"


def make_campaign(engine: Engine, tmp: Path, count: int) -> int:
    """A predictive campaign on queue sales with ``count`` distinct contacts; started."""
    from callcenter.campaigns import contacts as contact_lists
    from callcenter.campaigns import store
    from callcenter.campaigns.numbers import Normaliser

    numbers = sorted({customer_number(i) for i in range(count * 3)})[:count]
    path = tmp / "contacts.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["phone", "name", "timezone", "account"])
        for i, number in enumerate(numbers):
            w.writerow([number, f"Customer {i}", "UTC", f"S-{i:05d}"])
    with Session(engine) as s, s.begin():
        store.add_campaign(
            s, "soak", region="US", seller_name="Example Energy", seller_number="+12015550100",
            caller_id="+12015550100", ring_seconds=15, max_attempts=1, mode="predictive",
            queue="sales",
        )  # fmt: skip
    with Session(engine) as s, s.begin():
        contact_lists.import_contacts(s, "soak", path, Normaliser("US"), "UTC")
    with Session(engine) as s, s.begin():
        store.start_campaign(s, "soak", dt.datetime.now(dt.UTC), customer_channel=CUSTOMERS)
    return len(numbers)


def api_token(engine: Engine) -> str:
    from callcenter import tokens

    with Session(engine) as s, s.begin():
        _, raw = tokens.add_token(s, f"soak-{secrets.token_hex(3)}", "read")
    return raw


def service_env(pbx: Pbx, pg_url: str, broker_port: int, wallboard_port: int, tmp: Path,
                prefix: str) -> dict[str, str]:  # fmt: skip
    s = pbx.settings
    node = s.node("local")
    return {
        "CALLCENTER_DATABASE__URL": pg_url,
        "CALLCENTER_DATABASE__CONNECT_TIMEOUT": "2",
        "CALLCENTER_MQTT__PORT": str(broker_port),
        "CALLCENTER_MQTT__TOPIC_PREFIX": prefix,
        "CALLCENTER_NODES__LOCAL__PORT": str(node.port),
        "CALLCENTER_NODES__LOCAL__SECRET": node.secret.reveal(),
        "CALLCENTER_NODES__LOCAL__QUEUE_LOG_PATH": str(pbx.queue_log),
        "CALLCENTER_ASTERISK__SIP_PORT": str(s.asterisk.sip_port),
        "CALLCENTER_AGI__PORT": str(s.agi.port),
        "CALLCENTER_AGI__FALLBACK_QUEUE": "sales",
        "CALLCENTER_WALLBOARD__PORT": str(wallboard_port),
        "CALLCENTER_DIALER__CUSTOMER_CHANNEL": CUSTOMERS,
        "CALLCENTER_DIALER__TICK": "0.5",
        "CALLCENTER_DIALER__LEASE_SECONDS": "5",
        "CALLCENTER_DIALER__NAME": "soak-dialer",
        "CALLCENTER_BRIDGE__SPOOL_DIR": str(tmp / "spool"),
        "CALLCENTER_BRIDGE__FLUSH_INTERVAL": "0.5",
        "CALLCENTER_WEBHOOKS__POLL_INTERVAL": "1",
    }


async def until(check: Callable[[], Awaitable[bool]], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if await check():
                return True
        await asyncio.sleep(0.5)
    return False


class Soak:
    """One run: everything started in :meth:`running`, faults by name, comparisons."""

    def __init__(self, plan: Plan, pbx: Pbx, engine: Engine, pg: soak.PrivatePostgres,
                 broker: soak.Broker, services: soak.Services, tmp: Path, base: str,
                 token: str) -> None:  # fmt: skip
        self.plan, self.pbx, self.engine, self.pg = plan, pbx, engine, pg
        self.broker, self.services, self.tmp, self.base, self.token = (
            broker,
            services,
            tmp,
            base,
            token,
        )
        self.t0 = time.monotonic()
        self.queue_log_from = 0

    async def ami(self) -> Ami:
        return await self.pbx.ami()

    async def login_agents(self) -> None:
        ami = await self.ami()
        try:
            for name, ext in self.pbx.agents:
                await ami.send(Action="QueueAdd", Queue="sales", Interface=f"PJSIP/{ext}",
                               MemberName=name, StateInterface=f"PJSIP/{ext}", Penalty="0",
                               Paused="false")  # fmt: skip
        finally:
            await ami.close()

    async def converged(self, since: float | None = None, timeout: float = 120) -> float | None:
        return await soak.reconverge(self.ami, self.base, self.token, timeout=timeout,
                                     since=since)  # fmt: skip

    async def settled_comparison(self, timeout: float = 60) -> soak.Comparison:
        """Compare what ended at least 3 s ago, retrying while our log catches up."""
        result = soak.compare_all(self.pbx.directory, self.engine, self.queue_log_from)
        deadline = time.monotonic() + timeout
        while result.lost and time.monotonic() < deadline:
            await asyncio.sleep(2)
            result = soak.compare_all(self.pbx.directory, self.engine, self.queue_log_from)
        return result

    # --- the faults ----------------------------------------------------------------------

    async def fault(self, name: str, short: bool) -> FaultResult:
        at = time.monotonic() - self.t0
        before = await self.settled_comparison(timeout=20)
        note = ""
        in_ivr: tuple[str, ...] = ()
        log_from, started = 0, 0.0
        if name == "restart":
            from callcenter.asterisk import reload

            # Over the console socket, as an operator would (the bridge's AMI user rightly
            # lacks the command class). Asterisk re-executes itself: the same process id.
            with contextlib.suppress(reload.ReloadError):
                await asyncio.to_thread(
                    reload.console, self.pbx.binary, self.pbx.directory, "core restart now"
                )
            await asyncio.sleep(3)
            ok = await until(self._ami_up, 60)
            note = "Asterisk back" if ok else "Asterisk did not come back within 60 s"
            await self.login_agents()  # persistentmembers restores them; harmless if so
        elif name == "postgres":
            await asyncio.to_thread(self.pg.stop)
            await asyncio.sleep(10 if short else 60)
            await asyncio.to_thread(self.pg.start)
        elif name == "mosquitto":
            self.broker.stop()
            await asyncio.sleep(8 if short else 30)
            log_from = self.broker.log.stat().st_size
            self.broker.start()
            started = time.time()
        elif name in ("bridge", "ivr", "dialer"):
            if name == "ivr":
                # The fault is about callers mid-IVR: wait (a little) until there are some.
                await until(self._someone_in_ivr, 30)
                in_ivr = await self.in_ivr()
                note = f"{len(in_ivr)} callers in the IVR"
            self.services.kill(name)
            await asyncio.sleep(2 if short else 5)
            self.services.start(name)
        else:
            raise ValueError(f"unknown fault {name!r} (one of {', '.join(FAULTS)})")
        back = time.monotonic()
        seconds = await self.converged(since=back)
        after = await self.settled_comparison()
        if name == "mosquitto":
            back_in = soak.broker_reconnects(self.broker.log, log_from, started)
            note = "reconnected after " + ", ".join(f"{c} {s:.1f} s" for c, s in back_in)
        stranded = tuple(sorted(set(in_ivr) - self.queued()))
        return FaultResult(name, round(at, 1), after.lost - before.lost,
                           after.duplicates - before.duplicates,
                           None if seconds is None else round(seconds, 2), note, in_ivr,
                           stranded)  # fmt: skip

    async def in_ivr(self) -> tuple[str, ...]:
        """Uniqueids of the channels running AGI() now (CoreShowChannels)."""
        ami = await self.ami()
        try:
            items = await ami.send_list(Action="CoreShowChannels")
        finally:
            await ami.close()
        return tuple(sorted(ev["Uniqueid"] for ev in items
                            if ev.get("Event") == "CoreShowChannel"
                            and ev.get("Application") == "AGI"))  # fmt: skip

    async def _someone_in_ivr(self) -> bool:
        return bool(await self.in_ivr())

    def queued(self) -> set[str]:
        """Callids that queue_log shows entering a queue."""
        text = self.pbx.queue_log.read_text(errors="replace")
        return {e.callid for e in parse_queue_log(text) if e.event == "ENTERQUEUE"}

    def pause_campaign(self) -> None:
        """The end of the run: no new dial; those in flight finish."""
        from callcenter.campaigns import store

        with Session(self.engine) as s, s.begin():
            store.pause_campaign(s, "soak", dt.datetime.now(dt.UTC))

    async def attempts_done(self, timeout: float) -> bool:
        """Wait until no dialled attempt is open any more."""
        import sqlalchemy as sa

        sql = sa.text("SELECT count(*) FROM campaign_attempts"
                      " WHERE channel_id IS NOT NULL AND ended_at IS NULL")  # fmt: skip

        async def none_open() -> bool:
            with self.engine.connect() as conn:
                return bool(conn.execute(sql).scalar_one() == 0)

        return await until(none_open, timeout)

    async def _ami_up(self) -> bool:
        ami = await asyncio.wait_for(self.ami(), 3)
        try:
            await ami.send_list(Action="QueueStatus")
        finally:
            await ami.close()
        return True

    def try_later(self) -> list[str]:
        """Callers who heard "please try to call later" (CDR lastdata), by uniqueid: with a
        fallback queue, none should."""
        rows = soak.read_cdr(self.pbx.directory / "log" / "cdr-custom" / "Master.csv")
        return [r[16] for r in rows if r[7].startswith("please-try-call-later")]


@contextlib.asynccontextmanager
async def pbx_in_thread(
    where: Path, engine: Engine, binary: Path, sipp: str, agents: list[tuple[str, str]],
    environ: dict[str, str],
) -> AsyncIterator[Pbx]:  # fmt: skip
    """:func:`start_pbx` from inside a running loop: it waits for the boot with its own
    ``asyncio.run``, which cannot nest, so its enter and exit run in a worker thread."""
    cm = start_pbx(where, engine, binary, sipp, agents, environ)
    pbx = await asyncio.to_thread(cm.__enter__)
    try:
        yield pbx
    except BaseException as exc:
        if not await asyncio.to_thread(cm.__exit__, type(exc), exc, exc.__traceback__):
            raise
    else:
        await asyncio.to_thread(cm.__exit__, None, None, None)


@contextlib.asynccontextmanager
async def running(plan: Plan, binary: Path, sipp: str, work: Path) -> AsyncIterator[Soak]:
    """Private PostgreSQL, Mosquitto and Asterisk; the five services as processes; the agents
    registered and logged in; the campaign started. Stops it all on the way out."""
    from callcenter import config
    from callcenter.db import engine as db

    agents = [(f"soak{i:03d}", str(3000 + i)) for i in range(1, plan.agents + 1)]
    with soak.private_postgres() as pg:
        engine = db.make_engine(config.DatabaseSettings(url=pg.url))
        broker = soak.Broker(free_port(), work / "mosquitto.log")
        broker.start()
        services: soak.Services | None = None
        phones: Phones | None = None
        try:
            environ = {"CALLCENTER_AGI__FALLBACK_QUEUE": "sales"}
            async with pbx_in_thread(work / "ast", engine, binary, sipp, agents,
                                     environ) as pbx:  # fmt: skip
                token = api_token(engine)
                make_campaign(engine, work, plan.contacts)
                port = free_port()
                cfg = work / "callcenter.toml"
                cfg.write_text(soak.config_text(DID, "sales", pbx.sounds))
                env = service_env(pbx, pg.url, broker.port, port, work,
                                  f"ccsoak-{secrets.token_hex(3)}")  # fmt: skip
                (work / "logs").mkdir(exist_ok=True)
                services = soak.Services(cfg, env, work / "logs")
                services.start_all()
                base = f"http://127.0.0.1:{port}"
                phones = Phones(pbx, work)
                for name, ext in agents:
                    await phones.phone(name, ext, "answer", ring_ms=500,
                                       talk_ms=plan.talk * 1000)  # fmt: skip
                run = Soak(plan, pbx, engine, pg, broker, services, work, base, token)
                await run.login_agents()

                async def board_up() -> bool:
                    async with aiohttp.ClientSession() as http:
                        view = await soak.board_view(http, base, token)
                    return view is not None and bool(view.members)

                if not await until(board_up, 60):
                    logs = {n: s.log.read_text()[-1500:] for n, s in services.running.items()}
                    raise RuntimeError(f"the wallboard never showed the agents: {logs}")
                yield run
        finally:
            if phones is not None:
                phones.close()
            if services is not None:
                services.stop_all()
            broker.stop()
            engine.dispose()


async def traffic(run: Soak, seconds: float) -> Any:
    """SIPp callers keeping ``plan.calls`` up for about ``seconds``; returns the Sipp."""
    per_call = 4.0 + run.plan.talk + 6.0  # IVR, some wait, talk
    total = max(1, int(run.plan.calls * seconds / per_call))
    rate = max(1, round(run.plan.calls / per_call))
    phones = Phones(run.pbx, run.tmp)
    return phones, phones.callers(total, patience_ms=60000, rate=rate, limit=run.plan.calls)


#: About how long each fault takes until its comparison is done (outage, return, reconvergence
#: and the comparisons), short and long.
FAULT_SECONDS = {"restart": (20, 20), "postgres": (20, 70), "mosquitto": (18, 40),
                 "bridge": (15, 18), "ivr": (15, 18), "dialer": (15, 18)}  # fmt: skip


def traffic_seconds(plan: Plan, short: bool) -> float:
    """How long the callers keep calling: ``plan.minutes``, or longer when the faults would
    outlast it, so that every fault happens with calls up (the ``ivr`` fault needs callers
    in the IVR)."""
    faults = sum(FAULT_SECONDS[f][0 if short else 1] + plan.fault_gap for f in plan.faults)
    return max(plan.minutes * 60, min(30.0, plan.minutes * 15) + faults + 10)


async def soak_run(plan: Plan, binary: Path, sipp: str, *, short: bool) -> Outcome:
    """The whole run: traffic for ``plan.minutes``, the faults spaced over it, then the final
    comparison, CPU and RSS per process next to Asterisk's."""
    with tempfile.TemporaryDirectory(prefix="cc-soak-") as tmpdir:
        work = Path(tmpdir)
        async with running(plan, binary, sipp, work) as run:
            stop_streams = asyncio.Event()
            streams = asyncio.create_task(
                soak.hold_streams(run.base, run.token, plan.streams, stop_streams)
            )
            await asyncio.sleep(3)
            run.services.mark_rss("start")
            cpu0 = {n: s.cpu() for n, s in run.services.running.items()}
            ast0 = soak.proc_cpu(run.pbx.proc.pid)
            seconds = traffic_seconds(plan, short)
            phones, callers = await traffic(run, seconds)
            run.t0 = time.monotonic()
            results: list[FaultResult] = []
            try:
                await asyncio.sleep(min(30.0, plan.minutes * 15))
                for name in plan.faults:
                    results.append(await run.fault(name, short))
                    await asyncio.sleep(plan.fault_gap)
                rest = seconds - (time.monotonic() - run.t0)
                if rest > 0:
                    await asyncio.sleep(rest)
                run.pause_campaign()
                await wait_exit(callers, timeout=seconds * 3 + 300)
                await run.attempts_done(120)
                await asyncio.sleep(5)
                final = await run.settled_comparison(timeout=90)
                elapsed = time.monotonic() - run.t0
                run.services.mark_rss("end")
                cpu = {n: round(s.cpu() - cpu0.get(n, 0.0), 2)
                       for n, s in run.services.running.items()}  # fmt: skip
                # After a restart Asterisk is the same process (core restart execs in place).
                ast_cpu = round(soak.proc_cpu(run.pbx.proc.pid) - ast0, 2)
            finally:
                phones.close()
                stop_streams.set()
            read = await streams
            rss = {n: (round(s.rss_start, 1), round(s.rss_end, 1))
                   for n, s in run.services.running.items()}  # fmt: skip
            return Outcome(plan, final, results, cpu, rss, ast_cpu, round(elapsed, 1), read,
                           run.try_later())  # fmt: skip
