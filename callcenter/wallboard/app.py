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
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web
from sqlalchemy.engine import Engine

from callcenter.ami.link import AmiLink
from callcenter.config import Settings
from callcenter.db import engine as db
from callcenter.wallboard import api, crm_api, fmt, metrics, stream, views
from callcenter.wallboard.auth import Auth, DirectoryCache, RateLimiter, Signer
from callcenter.wallboard.board import Board
from callcenter.wallboard.context import PARTS, Parts, is_api
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
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """API errors as JSON; an unexpected exception as a bare 500 (the details go to the
    log, never to the client)."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or not is_api(request):
            raise
        headers = {k: v for k, v in exc.headers.items()
                   if k.lower() not in ("content-type", "content-length")}  # fmt: skip
        text = exc.text or exc.reason
        message = text.split(": ", 1)[1] if text.startswith(f"{exc.status}: ") else text
        return web.json_response({"error": message}, status=exc.status, headers=headers)
    except Exception:
        log.exception("wallboard: %s %s failed", request.method, request.path)
        if is_api(request):
            return web.json_response({"error": "internal error"}, status=500)
        return web.Response(status=500, text="internal error")


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    h = response.headers
    h.setdefault("Content-Security-Policy", CSP)
    h.setdefault("X-Content-Type-Options", "nosniff")
    h.setdefault("X-Frame-Options", "DENY")
    # The TV entry URL carries its token: never let it leave for another site in a Referer
    # header. (Not "no-referrer": browsers then send "Origin: null" on our own form posts.)
    h.setdefault("Referrer-Policy", "same-origin")


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
            limiter=RateLimiter(options.login_attempts, options.login_window),
            control=AgentControl(self.links),
            roster=RosterCache(self.engine, self._roster_changed),
            engine=self.engine,
            desk=Desk(self.engine, settings.site.region),
        )  # fmt: skip
        self.parts.desk.state = state
        self.parts.desk.control = self.parts.control
        self.feed = MqttFeed(settings.mqtt, state, self._live_changed, [self.parts.desk.tap])
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
        app = web.Application(middlewares=[errors], client_max_size=MAX_BODY)
        app[PARTS] = self.parts
        filters: dict[str, Callable[..., str]] = {
            "duration": fmt.duration,
            "since": fmt.since,
            "pct": fmt.pct,
            "pct1": fmt.pct1,
            "level": fmt.level,
            "state_label": fmt.state_label,
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
        app.router.add_get("/events", stream.events)
        app.router.add_get("/metrics", metrics.metrics)
        app.router.add_get("/favicon.ico", views.favicon)
        app.router.add_static("/static", HERE / "static", follow_symlinks=False)
        return app

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set, then shut down cleanly."""
        runner = web.AppRunner(self.make_app(), access_log=None, shutdown_timeout=SHUTDOWN_GRACE)
        await runner.setup()
        wb = self.settings.wallboard
        links_stop = asyncio.Event()
        p = self.parts
        tasks: list[asyncio.Task[None]] = []
        link_tasks: list[asyncio.Task[None]] = []
        try:
            site = web.TCPSite(runner, wb.host, wb.port)
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
            log.info("wallboard: serving on http://%s:%d/", wb.host, self.port)
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
