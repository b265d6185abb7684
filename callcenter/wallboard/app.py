"""The wallboard process: the one place where its parts are built from settings and wired.

``callcenter wallboard`` runs :meth:`Wallboard.run` until SIGTERM/SIGINT; ``callcenter run``
runs it beside the bridge (it is a :data:`callcenter.service.Main`). Its parts: the HTTP
server (pages, API, stream, metrics), the MQTT feed, the hub that pushes to browsers, the
refresher of the day's figures, the cache of users and tokens, the roster of configured queues
and agents, and one AMI link per node for the supervisors' actions.

Shutdown: every stream is told to end, the HTTP server stops (open requests get
``SHUTDOWN_GRACE`` seconds), the background tasks are cancelled and awaited, the AMI links
log off, the database pool is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp_jinja2
import jinja2
import sqlalchemy as sa
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from sqlalchemy.engine import Engine

from callcenter.ami.link import AmiLink
from callcenter.config import ConfigError, Settings
from callcenter.db import engine as db
from callcenter.logsafe import LogGate, clean
from callcenter.monitoring import web as monitor_web
from callcenter.quality import web as qa_web
from callcenter.recordings import web as recordings_web
from callcenter.satisfaction import measures as satisfaction
from callcenter.wallboard import api, crm_api, fmt, metrics, stream, views
from callcenter.wallboard.auth import (
    Auth,
    DirectoryCache,
    LoginThrottle,
    Signer,
    forwarded_client,
)
from callcenter.wallboard.board import Board
from callcenter.wallboard.context import PARTS, RETRY_AFTER, Parts, is_api, log_refused
from callcenter.wallboard.control import AgentControl, links_for
from callcenter.wallboard.desk import views as desk_views
from callcenter.wallboard.desk.service import Desk
from callcenter.wallboard.history import HistoryCache
from callcenter.wallboard.hub import Hub
from callcenter.wallboard.kpis import KpiRefresher
from callcenter.wallboard.live import LiveState, MqttFeed
from callcenter.wallboard.options import WallboardOptions
from callcenter.wallboard.roster import Roster, RosterCache

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
#: Forms and JSON bodies are small; anything larger is refused with 413 before it is read.
MAX_BODY = 64 * 1024
SHUTDOWN_GRACE = 5.0
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


#: Set by :func:`forwarded` behind a trusted proxy: whether the client used HTTPS.
FORWARDED_HTTPS = web.RequestKey("forwarded_https", bool)
#: What SQLAlchemy raises when the database cannot be reached or gave up (connection refused
#: or lost, statement time-out, no pooled connection in time): 503, not a 500.
DB_UNAVAILABLE = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError)


@web.middleware
async def forwarded(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Behind a trusted proxy (``wallboard.trusted_proxies``), the request as the client
    made it: its address (``request.remote``: the login throttle, the logs) and scheme
    (``request.secure``: Secure cookies, HSTS) from ``X-Forwarded-For`` and
    ``X-Forwarded-Proto`` (:func:`~callcenter.wallboard.auth.forwarded_client`). From any
    other peer, or with no proxy configured, those headers are ignored."""
    proxies = request.app[PARTS].options.trusted_proxies
    peer = request.remote
    if not proxies or peer is None:
        return await handler(request)
    found = forwarded_client(peer, request.headers.getall("X-Forwarded-For", []),
                             request.headers.getall("X-Forwarded-Proto", []), proxies)  # fmt: skip
    if found is None:
        return await handler(request)
    address, scheme = found
    scheme = "https" if request.secure else scheme
    # The original request is the one aiohttp prepares a returned response with: it must
    # know too (security_headers).
    request[FORWARDED_HTTPS] = scheme == "https"
    return await handler(request.clone(remote=address, scheme=scheme))


class BadRequestLog(logging.Filter):
    """aiohttp logs every request it cannot even parse (a NUL or a line end in a header, a
    malformed request line...) with a traceback at ERROR, and answers it 400 itself: a
    client could fill the log at will. Such a record becomes one WARNING line without the
    traceback (the client's bytes escaped), at most ``burst`` a minute; any other record of
    aiohttp's server (a real fault) passes as it is."""

    def __init__(self, burst: int = 10) -> None:
        super().__init__()
        self.gate = LogGate(burst, 60.0)

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError):
            return True
        # aiohttp logged it at ERROR; as a WARNING it must pass the logger's level again.
        if not logging.getLogger(record.name).isEnabledFor(logging.WARNING):
            return False
        admitted, held = self.gate.admit("bad-http")
        if not admitted:
            return False
        peer = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
        record.msg = "wallboard: a request that is not valid HTTP from %s, answered %s: %s%s"
        record.args = (clean(peer, 64), exc.code or 400, clean(" ".join(str(exc).split())),
                       LogGate.note(held))  # fmt: skip
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.exc_info, record.exc_text = None, None
        return True


#: The logger aiohttp's server writes to (instead of its own aiohttp.server).
http_log = logging.getLogger("callcenter.wallboard.http")
http_log.addFilter(BadRequestLog())


def database_unavailable(request: web.Request, exc: Exception) -> web.Response:
    """503 with ``Retry-After`` and nothing of the error for the client (no address, user or
    query); the log gets one line per kind of failure a minute, not a traceback a request."""
    orig = getattr(exc, "orig", None) or exc
    kind = type(orig).__name__
    admitted, held = request.app[PARTS].db_log_gate.admit(kind)
    if admitted:
        detail = str(orig).strip().splitlines() or [kind]
        log.warning("wallboard: the database is unavailable (%s: %s); answering 503 to %s %s%s",
                    kind, clean(detail[0]), request.method, clean(request.path),
                    LogGate.note(held))  # fmt: skip
    headers = {"Retry-After": RETRY_AFTER, "Cache-Control": "no-store"}
    if is_api(request) or request.content_type == "application/json":
        return web.json_response({"error": "database unavailable"}, status=503, headers=headers)
    return web.Response(status=503, headers=headers,
                        text="The database is unavailable: try again in a moment.")  # fmt: skip


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """API errors as JSON; refusals (403) logged (:func:`~.context.log_refused`); the
    database away as 503 (:func:`database_unavailable`); an unexpected exception as a bare
    500 (the details go to the log, never to the client)."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.status == 403:
            log_refused(request, exc.status, exc.text or exc.reason)
        if exc.status < 400 or not is_api(request):
            raise
        headers = {k: v for k, v in exc.headers.items()
                   if k.lower() not in ("content-type", "content-length")}  # fmt: skip
        text = exc.text or exc.reason
        message = text.split(": ", 1)[1] if text.startswith(f"{exc.status}: ") else text
        return web.json_response({"error": message}, status=exc.status, headers=headers)
    except DB_UNAVAILABLE as exc:
        return database_unavailable(request, exc)
    except Exception:
        log.exception("wallboard: %s %s failed", request.method, clean(request.path))
        if is_api(request):
            return web.json_response({"error": "internal error"}, status=500)
        return web.Response(status=500, text="internal error")
    if response.status == 403:
        log_refused(request, response.status, response.reason)
    return response


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """CSP, no sniffing, no framing, no Referer to other sites; over HTTPS (direct, or a
    trusted proxy's), ``Strict-Transport-Security`` (``wallboard.hsts`` seconds)."""
    h = response.headers
    hsts = request.app[PARTS].options.hsts
    if hsts and (request.secure or request.get(FORWARDED_HTTPS, False)):
        h.setdefault("Strict-Transport-Security", f"max-age={hsts}")
    h.setdefault("Content-Security-Policy", CSP)
    h.setdefault("X-Content-Type-Options", "nosniff")
    h.setdefault("X-Frame-Options", "DENY")
    # The TV entry URL carries its token: never let it leave for another site in a Referer
    # header. (Not "no-referrer": browsers then send "Origin: null" on our own form posts.)
    h.setdefault("Referrer-Policy", "same-origin")


def tls_context(cert: str, key: str) -> ssl.SSLContext | None:
    """The server's TLS (1.2 or newer) from ``wallboard.tls_cert`` and ``tls_key`` (PEM
    files: the certificate, then any intermediates, and its unencrypted key); None when
    neither is set. :class:`ConfigError` naming the keys and the file when one is missing,
    unreadable, not PEM, or the key is not the certificate's (or is encrypted: a service
    cannot type a passphrase)."""
    if not cert and not key:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    where = f"wallboard.tls_cert = {cert!r}, wallboard.tls_key = {key!r}"
    try:
        # A callable passphrase: asked only for an encrypted key, and a wrong one fails
        # here rather than OpenSSL prompting on a terminal no one watches.
        context.load_cert_chain(cert, key, password=lambda: b"")
    except OSError as exc:
        if isinstance(exc, ssl.SSLError):
            raise ConfigError(f"{where}: not a PEM certificate and its unencrypted key "
                              f"({exc.reason or exc})") from None  # fmt: skip
        raise ConfigError(f"{where}: cannot read {exc.filename or cert}: "
                          f"{exc.strerror or exc}") from None  # fmt: skip
    return context


class Wallboard:
    """Every part of the wallboard, built from settings; :meth:`run` runs them all."""

    def __init__(
        self,
        settings: Settings,
        *,
        engine: Engine | None = None,
        links: dict[str, AmiLink] | None = None,
    ) -> None:
        self.settings = settings
        options = WallboardOptions.from_settings(settings)
        self.engine = engine or db.make_engine(settings.database)
        self._own_engine = engine is None
        state = LiveState()
        tz = settings.site.tz
        kpis = KpiRefresher(
            self.engine, settings.reporting, tz, self._kpis_changed,
            interval=options.kpi_interval, max_age=options.kpi_max_age,
            settle=settings.bridge.flush_interval + 0.2,
        )  # fmt: skip
        board = Board(state, kpis.current, options, [n.name for n in settings.nodes])
        hub = Hub(board.delta, board.snapshot, interval=options.push_interval)
        cache = DirectoryCache(self.engine)
        self.links = links if links is not None else links_for(settings.nodes)
        self.parts = Parts(
            settings=settings, options=options, state=state, board=board, hub=hub, kpis=kpis,
            history=HistoryCache(self.engine, settings.reporting, tz),
            auth=Auth(Signer(settings.wallboard.secret_key.reveal()), cache,
                      session_hours=options.session_hours, tv_days=options.tv_session_days),
            limiter=LoginThrottle(options.login_attempts, options.login_window,
                                  options.login_address_attempts),
            control=AgentControl(self.links),
            roster=RosterCache(self.engine, self._roster_changed),
            engine=self.engine,
            desk=Desk(self.engine, settings.site.region),
        )  # fmt: skip
        self.parts.desk.state = state
        self.parts.desk.control = self.parts.control
        self.feed = MqttFeed(settings.mqtt, state, self._live_changed, [self.parts.desk.tap])
        self.tls = tls_context(settings.wallboard.tls_cert, settings.wallboard.tls_key)
        self.port: int | None = None
        self.started = asyncio.Event()

    def _live_changed(self) -> None:
        self.parts.hub.changed()
        if self.parts.state.changes.calls:
            self.parts.kpis.poke()

    def _roster_changed(self, old: Roster, new: Roster) -> None:
        self.parts.board.set_roster(new)
        self.parts.hub.changed()

    def _kpis_changed(self) -> None:
        self.parts.board.kpis_changed()
        self.parts.hub.changed()

    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[forwarded, errors], client_max_size=MAX_BODY)
        app[PARTS] = self.parts
        filters: dict[str, Callable[..., str]] = {
            "duration": fmt.duration,
            "since": fmt.since,
            "pct": fmt.pct,
            "pct1": fmt.pct1,
            "level": fmt.level,
            "state_label": fmt.state_label,
            "csat": satisfaction.fmt_csat,
            "nps": satisfaction.fmt_nps,
        }
        aiohttp_jinja2.setup(
            app,
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            filters=filters,
        )
        app.on_response_prepare.append(security_headers)
        app.router.add_routes(views.routes())
        app.router.add_routes(api.routes())
        app.router.add_routes(crm_api.routes())
        app.router.add_routes(desk_views.routes())
        app.router.add_routes(monitor_web.routes())
        app.router.add_routes(qa_web.routes())
        app.router.add_routes(recordings_web.routes())
        app.router.add_get("/events", stream.events)
        app.router.add_get("/metrics", metrics.metrics)
        app.router.add_get("/favicon.ico", views.favicon)
        app.router.add_static("/static", HERE / "static", follow_symlinks=False)
        return app

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set, then shut down cleanly."""
        runner = web.AppRunner(self.make_app(), access_log=None, logger=http_log,
                               shutdown_timeout=SHUTDOWN_GRACE)  # fmt: skip
        await runner.setup()
        wb = self.settings.wallboard
        links_stop = asyncio.Event()
        p = self.parts
        tasks: list[asyncio.Task[None]] = []
        link_tasks: list[asyncio.Task[None]] = []
        try:
            site = web.TCPSite(runner, wb.host, wb.port, ssl_context=self.tls)
            await site.start()
            self.port = runner.addresses[0][1]
            tasks += [
                asyncio.create_task(self.feed.run(), name="wallboard-mqtt"),
                asyncio.create_task(p.hub.run(), name="wallboard-hub"),
                asyncio.create_task(p.kpis.run(), name="wallboard-kpis"),
                asyncio.create_task(p.auth.cache.run(), name="wallboard-users"),
                asyncio.create_task(p.roster.run(), name="wallboard-roster"),
                asyncio.create_task(p.desk.run(), name="wallboard-desk"),
            ]
            link_tasks += [
                asyncio.create_task(link.run(links_stop), name=f"wallboard-ami-{name}")
                for name, link in self.links.items()
            ]
            log.info("wallboard: serving on %s://%s:%d/", "https" if self.tls else "http",
                     wb.host, self.port)  # fmt: skip
            self.started.set()
            await self._wait(stop, tasks + link_tasks)
        finally:
            p.hub.close()
            await p.desk.close()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(SHUTDOWN_GRACE + 1):
                    await runner.cleanup()
            links_stop.set()  # the AMI links end on their own: they close their sessions
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, *link_tasks, return_exceptions=True)
            await p.history.close()
            if self._own_engine:
                self.engine.dispose()

    @staticmethod
    async def _wait(stop: asyncio.Event, tasks: list[asyncio.Task[None]]) -> None:
        """Until ``stop``; a background task that dies is a bug: stop the service with it."""
        stopper = asyncio.create_task(stop.wait(), name="wallboard-stop")
        try:
            done, _ = await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            await asyncio.gather(stopper, return_exceptions=True)
        for task in done:
            if task is not stopper and not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
