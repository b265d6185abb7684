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
import socket
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import yarl
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session

from callcenter.core.queue_log import parse_queue_log
from tests.e2e import soak
from tests.e2e.conftest import (
    ADMIN_SECRET,
    DID,
    Pbx,
    Phones,
    start_pbx,
    wait_exit,
    zone_where,
)
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
    #: Phones stream RTP while their calls are up (conftest.scenario ``audio``), as people
    #: talking do: Asterisk relays media, as it does for real calls.
    audio: bool = True
    #: The services' --log-level: debug, so that the scan for secrets reads the lines an
    #: operator chasing a problem would switch on too.
    log_level: str = "debug"
    #: The tests' shorter intervals (:data:`QUICK_INTERVALS`); the long soak: the settings'.
    quick_intervals: bool = True


@dataclasses.dataclass
class FaultResult:
    """One fault. ``lost``: the disagreements of the final comparison (after the traffic,
    everything settled) about calls that were up around the fault (:func:`soak.attribute`);
    ``lost_at_fault``: what the comparison right after the fault showed more than the one
    before it (under load our log may still be catching up then: an early reading)."""

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
    #: From the fault's start to the live state agreeing with Asterisk again (epochs).
    window: tuple[float, float] = (0.0, 0.0)
    lost_at_fault: int = 0
    #: The final disagreements attributed to this fault (call and why).
    disagreements: tuple[soak.Disagreement, ...] = ()
    #: CPU seconds from the fault's start to its comparison done: ours per service (a killed
    #: one's earlier incarnation included), and Asterisk's. Traffic goes on meanwhile: set
    #: against ``seconds`` they tell what the fault cost over the run's usual rate.
    cpu: dict[str, float] = dataclasses.field(default_factory=dict)
    asterisk_cpu: float = 0.0
    seconds: float = 0.0


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
    #: The scan for secrets once everything stopped: what it found (file relative to the
    #: run's directory, the secret's name, line), the log files it read, the names of the
    #: secrets it looked for and of those too short to (soak.too_short), and what each step of
    #: :func:`exercise_secrets` got (:data:`EXERCISED`).
    leaks: list[soak.Leak] = dataclasses.field(default_factory=list)
    logs: list[str] = dataclasses.field(default_factory=list)
    secrets_checked: list[str] = dataclasses.field(default_factory=list)
    secrets_skipped: list[str] = dataclasses.field(default_factory=list)
    exercised: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def logs_scanned(self) -> int:
        return len(self.logs)


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
    # Where it is now 10:00-17:00: inside the calling window for the whole run, whatever
    # the hour it starts at (in UTC, a run at 22:00 dialled nobody).
    zone = zone_where(range(10, 18))
    path = tmp / "contacts.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["phone", "name", "timezone", "account"])
        for i, number in enumerate(numbers):
            w.writerow([number, f"Customer {i}", zone, f"S-{i:05d}"])
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


@dataclasses.dataclass(frozen=True)
class Credentials:
    """The accounts, tokens and keys the soak makes besides the AMI and SIP secrets of the
    e2e harness: each is used during the run (:func:`exercise_secrets`, the streams, the
    board reads, the webhook worker) and looked for in every log afterwards."""

    supervisor: str
    password: str
    agent: str
    agent_password: str
    api_token: str
    tv_token: str
    webhook_secret: str
    secret_key: str  # the wallboard's cookie signing key ([wallboard] secret_key)


def make_credentials(engine: Engine, agent: str, hook_url: str) -> Credentials:
    """A supervisor and ``agent``'s web password, an API token, a TV token, and a webhook
    for every event to ``hook_url`` (where nobody answers: the worker retries and logs each
    failure)."""
    from callcenter.wallboard import accounts
    from callcenter.webhooks import manage

    supervisor, password = "soaksup", secrets.token_urlsafe(18)
    agent_password = secrets.token_urlsafe(18)
    with Session(engine) as s, s.begin():
        accounts.add_user(s, supervisor, password, "supervisor")
        accounts.set_agent_password(s, agent, agent_password)
        _, tv = accounts.add_token(s, "soak-screen")
        _, hook = manage.add_webhook(s, hook_url, ["all"], description="soak: nobody answers")
    return Credentials(supervisor, password, agent, agent_password, api_token(engine), tv, hook,
                       secrets.token_urlsafe(32))  # fmt: skip


#: The agents' PIN as tests/e2e/conftest.py seed_directory sets it: a secret, but too short
#: for the scan (listed among those not looked for).
AGENT_PIN = "2468"


def run_secrets(pbx: Pbx, pg_url: str, creds: Credentials) -> dict[str, str]:
    """Every secret the run makes or uses, by name: AMI (ours and the harness's
    administrator), SIP (each agent's endpoint), web passwords, tokens, signing keys, and the
    database's and broker's passwords where they have one (the soak's have none)."""
    s = pbx.settings
    out = {
        "AMI secret (callcenter)": s.node("local").secret.reveal(),
        "AMI secret (e2e-admin)": ADMIN_SECRET,
        "wallboard secret_key": creds.secret_key,
        "supervisor password": creds.password,
        "agent web password": creds.agent_password,
        "API token": creds.api_token,
        "TV token": creds.tv_token,
        "webhook signing secret": creds.webhook_secret,
        "agent PIN": AGENT_PIN,
    }
    out.update({f"SIP secret of {name}": value for name, value in pbx.secrets.items()})
    if make_url(pg_url).password:
        out["database password"] = str(make_url(pg_url).password)
    if s.mqtt.password:
        out["MQTT password"] = s.mqtt.password.reveal()
    return out


#: What each step of :func:`exercise_secrets` must get: a wrong password or token refused,
#: the right one let in (303 to the page; the API 200).
EXERCISED = {
    "supervisor login, wrong password": "401",
    "supervisor login": "303",
    "board API, supervisor's session": "200",
    "agent login, wrong password": "401",
    "agent login": "303",
    "TV entry, wrong token": "401",
    "TV entry": "303",
    "board API, API token": "200",
    "board API, wrong token": "401",
    "AMI login, wrong secret": "Error",
}


async def _form_login(http: aiohttp.ClientSession, url: str, name: str, password: str) -> str:
    """The login form at ``url`` filled in and posted as a browser does (its CSRF nonce and
    cookie); the status of the answer."""
    async with http.get(url) as page:
        html = await page.text()
    nonce = html.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    form = {"name": name, "password": password, "csrf": nonce}
    async with http.post(url, data=form, allow_redirects=False) as r:
        return str(r.status)


def _session_cookie(http: aiohttp.ClientSession, base: str) -> str:
    from callcenter.wallboard.auth import SESSION_COOKIE

    morsel = http.cookie_jar.filter_cookies(yarl.URL(base)).get(SESSION_COOKIE)
    return morsel.value if morsel is not None else ""


async def exercise_secrets(run: Soak) -> dict[str, str]:
    """Every path of ours that handles a secret, once each, so that the scan of the logs at
    the end means something: the supervisor's and an agent's login forms with a wrong
    password and the right one, a screen's ``/tv?token=`` entry (the token in the query
    string) wrong and right, the API with the API token and a wrong one, and an AMI login
    with a wrong secret. The wrong values and the session cookies join ``run.secrets``.
    Returns what each step got (:data:`EXERCISED`), an ``error: ...`` where it failed."""
    creds, base = run.creds, run.base
    wrong = {what: secrets.token_urlsafe(18) for what in (
        "wrong password", "wrong agent password", "wrong TV token", "wrong API token",
        "wrong AMI secret")}  # fmt: skip
    run.secrets.update(wrong)
    got: dict[str, str] = {}
    timeout = aiohttp.ClientTimeout(total=30)

    def jar() -> aiohttp.CookieJar:
        return aiohttp.CookieJar(unsafe=True)  # cookies for 127.0.0.1 too

    async def step(what: str, action: Callable[[], Awaitable[str]]) -> None:
        try:
            got[what] = await action()
        except Exception as exc:  # a step that fails is reported, not the end of the run
            got[what] = f"error: {exc!r}"

    async def get(http: aiohttp.ClientSession, path: str, **kw: Any) -> str:
        async with http.get(f"{base}{path}", allow_redirects=False, **kw) as r:
            return str(r.status)

    async with aiohttp.ClientSession(cookie_jar=jar(), timeout=timeout) as http:
        url = f"{base}/login"
        await step(
            "supervisor login, wrong password",
            lambda: _form_login(http, url, creds.supervisor, wrong["wrong password"]),
        )
        await step("supervisor login",
                   lambda: _form_login(http, url, creds.supervisor, creds.password))  # fmt: skip
        run.secrets["supervisor's session cookie"] = _session_cookie(http, base)
        await step("board API, supervisor's session", lambda: get(http, "/api/v1/board"))
    async with aiohttp.ClientSession(cookie_jar=jar(), timeout=timeout) as http:
        url = f"{base}/agent/login"
        await step(
            "agent login, wrong password",
            lambda: _form_login(http, url, creds.agent, wrong["wrong agent password"]),
        )
        await step("agent login",
                   lambda: _form_login(http, url, creds.agent, creds.agent_password))  # fmt: skip
        run.secrets["agent's session cookie"] = _session_cookie(http, base)
    async with aiohttp.ClientSession(cookie_jar=jar(), timeout=timeout) as http:
        await step(
            "TV entry, wrong token",
            lambda: get(http, "/tv", params={"token": wrong["wrong TV token"]}),
        )
        await step("TV entry", lambda: get(http, "/tv", params={"token": creds.tv_token}))
        run.secrets["TV session cookie"] = _session_cookie(http, base)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        right = {"Authorization": f"Bearer {creds.api_token}"}
        bad = {"Authorization": f"Bearer {wrong['wrong API token']}"}
        await step("board API, API token", lambda: get(http, "/api/v1/board", headers=right))
        await step("board API, wrong token", lambda: get(http, "/api/v1/board", headers=bad))
    await step(
        "AMI login, wrong secret", lambda: _ami_login(run.pbx.ami_port, wrong["wrong AMI secret"])
    )
    return got


async def _ami_login(port: int, secret: str) -> str:
    """The Response of an AMI Login as user callcenter with ``secret``."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
    try:
        await asyncio.wait_for(reader.readline(), 5)  # the banner
        writer.write(f"Action: Login\r\nUsername: callcenter\r\nSecret: {secret}\r\n\r\n"
                     .encode())  # fmt: skip
        raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    finally:
        writer.close()
    fields = dict(line.partition(": ")[::2] for line in raw.decode(errors="replace").split("\r\n"))
    return fields.get("Response", "?")


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
        "CALLCENTER_DIALER__NAME": "soak-dialer",
        "CALLCENTER_BRIDGE__SPOOL_DIR": str(tmp / "spool"),
    }


#: The tests' shorter intervals (a faster dialer tick and lease, the call log half a second
#: behind): the long soak runs with the settings' own, as `callcenter run` does, so that its
#: CPU is what production spends.
QUICK_INTERVALS = {
    "CALLCENTER_DIALER__TICK": "0.5",
    "CALLCENTER_DIALER__LEASE_SECONDS": "5",
    "CALLCENTER_BRIDGE__FLUSH_INTERVAL": "0.5",
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
                 creds: Credentials, known_secrets: dict[str, str]) -> None:  # fmt: skip
        self.plan, self.pbx, self.engine, self.pg = plan, pbx, engine, pg
        self.broker, self.services, self.tmp, self.base = broker, services, tmp, base
        self.creds, self.token = creds, creds.api_token
        #: Every secret of the run by name (:func:`run_secrets`, then the ones
        #: :func:`exercise_secrets` adds): what the scan of the logs looks for.
        self.secrets = known_secrets
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

    def cpu_now(self) -> tuple[dict[str, float], float]:
        """CPU seconds so far of each of our services, and of Asterisk."""
        ours = {n: s.cpu() for n, s in self.services.running.items()}
        return ours, soak.proc_cpu(self.pbx.proc.pid)

    async def fault(self, name: str, short: bool) -> FaultResult:
        at = time.monotonic() - self.t0
        began = time.time()
        cpu0, ast0 = self.cpu_now()
        t0 = time.monotonic()
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
        window = (began, time.time())
        after = await self.settled_comparison()
        if name == "mosquitto":
            back_in = soak.broker_reconnects(self.broker.log, log_from, started)
            note = "reconnected after " + ", ".join(f"{c} {s:.1f} s" for c, s in back_in)
        stranded = tuple(sorted(set(in_ivr) - self.queued()))
        cpu1, ast1 = self.cpu_now()
        cpu = {n: round(cpu1[n] - cpu0.get(n, 0.0), 2) for n in cpu1}
        return FaultResult(name, round(at, 1), after.lost - before.lost,
                           after.duplicates - before.duplicates,
                           None if seconds is None else round(seconds, 2), note, in_ivr,
                           stranded, window, cpu=cpu, asterisk_cpu=round(ast1 - ast0, 2),
                           seconds=round(time.monotonic() - t0, 1))  # fmt: skip

    def attribute(self, final: soak.Comparison, results: list[FaultResult]) -> list[FaultResult]:
        """Each fault's ``lost`` from the final comparison (see :class:`FaultResult`)."""
        text = (self.pbx.directory / "log" / "queue_log").read_text(errors="replace")
        entries = list(parse_queue_log(text[self.queue_log_from :]))
        cdr = soak.read_cdr(self.pbx.directory / "log" / "cdr-custom" / "Master.csv")
        spans = soak.call_spans(entries, cdr)
        shares = soak.attribute(final.disagreements, spans, {r.name: r.window for r in results})
        return [dataclasses.replace(r, lost=len(shares[r.name]), lost_at_fault=r.lost,
                                    disagreements=tuple(shares[r.name]))
                for r in results]  # fmt: skip

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
        """Callers who heard "please try to call later" (CDR lastdata) without ever reaching
        a queue, by uniqueid: with a fallback queue, none should. (After a queue's time-out,
        or a queue nobody is logged in to, the message is what [inbound-queue] plays.)"""
        rows = soak.read_cdr(self.pbx.directory / "log" / "cdr-custom" / "Master.csv")
        queued = self.queued()
        return [r[16] for r in rows
                if r[7].startswith("please-try-call-later") and r[16] not in queued]  # fmt: skip


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
    (work / "logs").mkdir(exist_ok=True)
    with soak.private_postgres(keep_log=work / "logs" / "postgres.log") as pg:
        engine = db.make_engine(config.DatabaseSettings(url=pg.url))
        broker = soak.Broker(free_port(), work / "mosquitto.log")
        broker.start()
        services: soak.Services | None = None
        phones: Phones | None = None
        # Bound, never listening: the webhook's POSTs are refused, and no free_port() of
        # the run can hand its port out again.
        hook = socket.socket()
        hook.bind(("127.0.0.1", 0))
        try:
            environ = {"CALLCENTER_AGI__FALLBACK_QUEUE": "sales"}
            async with pbx_in_thread(work / "ast", engine, binary, sipp, agents,
                                     environ) as pbx:  # fmt: skip
                creds = make_credentials(
                    engine, agents[0][0], f"http://127.0.0.1:{hook.getsockname()[1]}/hook"
                )
                token = creds.api_token
                make_campaign(engine, work, plan.contacts)
                port = free_port()
                cfg = work / "callcenter.toml"
                cfg.write_text(soak.config_text(DID, "sales", pbx.sounds))
                env = service_env(pbx, pg.url, broker.port, port, work,
                                  f"ccsoak-{secrets.token_hex(3)}")  # fmt: skip
                env["CALLCENTER_WALLBOARD__SECRET_KEY"] = creds.secret_key
                if plan.quick_intervals:
                    env.update(QUICK_INTERVALS)
                services = soak.Services(cfg, env, work / "logs", plan.log_level)
                services.start_all()
                base = f"http://127.0.0.1:{port}"
                phones = Phones(pbx, work)
                for name, ext in agents:
                    await phones.phone(name, ext, "answer", ring_ms=500,
                                       talk_ms=plan.talk * 1000, audio=plan.audio)  # fmt: skip
                run = Soak(plan, pbx, engine, pg, broker, services, work, base, creds,
                           run_secrets(pbx, pg.url, creds))  # fmt: skip
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
            hook.close()
            engine.dispose()


async def traffic(run: Soak, seconds: float) -> Any:
    """SIPp callers keeping ``plan.calls`` up for about ``seconds``; returns the Sipp."""
    per_call = 4.0 + run.plan.talk + 6.0  # IVR, some wait, talk
    total = max(1, int(run.plan.calls * seconds / per_call))
    rate = max(1, round(run.plan.calls / per_call))
    phones = Phones(run.pbx, run.tmp)
    return phones, phones.callers(total, patience_ms=60000, rate=rate, limit=run.plan.calls,
                                  audio=run.plan.audio)  # fmt: skip


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


async def soak_run(
    plan: Plan, binary: Path, sipp: str, *, short: bool, keep: Path | None = None
) -> Outcome:
    """The whole run: traffic for ``plan.minutes``, the faults spaced over it, then the final
    comparison, CPU and RSS per process next to Asterisk's; once everything has stopped,
    every log of the run scanned for every secret of it (:func:`scan_logs`)."""
    with tempfile.TemporaryDirectory(prefix="cc-soak-") as tmpdir:
        work = Path(tmpdir)
        async with running(plan, binary, sipp, work) as run:
            stop_streams = asyncio.Event()
            # The screens' streams hold the TV token (Authorization: Bearer), as a wall
            # display given one would; the board reads of the comparison use the API token.
            streams = asyncio.create_task(
                soak.hold_streams(run.base, run.creds.tv_token, plan.streams, stop_streams)
            )
            exercised = await exercise_secrets(run)
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
                results = run.attribute(final, results)
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
            outcome = Outcome(plan, final, results, cpu, rss, ast_cpu, round(elapsed, 1), read,
                              run.try_later(), exercised=exercised)  # fmt: skip
            known = run.secrets
        # Every process has stopped (the logs are complete, PostgreSQL's copied into logs/);
        # the directory is still there.
        scan_logs(outcome, work, known)
        if keep is not None:
            keep_logs(work, keep)
        return outcome


def keep_logs(work: Path, keep: Path) -> None:
    """The run's logs (ours, Asterisk's, queue_log, PostgreSQL's, Mosquitto's; not SIPp's)
    copied into ``keep``, for a look at what happened when."""
    keep.mkdir(parents=True, exist_ok=True)
    for f in soak.log_files(work):
        if (f.suffix == ".log" and not f.name.startswith("sipp")) or f.name == "queue_log":
            shutil.copy2(f, keep / "_".join(f.relative_to(work).parts))


def scan_logs(outcome: Outcome, work: Path, known: dict[str, str]) -> None:
    """Every log below ``work`` (soak.log_files: the services' logs/*.log and PostgreSQL's
    logs/postgres.log, mosquitto.log, Asterisk's stdout.log and log/ (queue_log, CDR), the
    SIPp logs) searched for every secret of ``known``; the result into ``outcome``, with
    paths relative to ``work``."""
    files = soak.log_files(work)
    leaks = soak.find_secrets(files, known)
    outcome.leaks = [dataclasses.replace(x, file=x.file.relative_to(work)) for x in leaks]
    outcome.logs = [str(f.relative_to(work)) for f in files]
    outcome.secrets_skipped = soak.too_short(known)
    outcome.secrets_checked = sorted(set(known) - set(outcome.secrets_skipped))
