"""What every request handler reaches: the wallboard's parts, and the checks of who asks.

The parts are built once by :mod:`callcenter.wallboard.app` and stored in the aiohttp
application under :data:`PARTS`.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from callcenter.config import Settings
from callcenter.wallboard.auth import Auth, RateLimiter, Visitor
from callcenter.wallboard.board import Board
from callcenter.wallboard.control import AgentControl, ControlError
from callcenter.wallboard.history import HistoryCache
from callcenter.wallboard.hub import Hub
from callcenter.wallboard.kpis import KpiRefresher
from callcenter.wallboard.live import LiveState
from callcenter.wallboard.options import WallboardOptions
from callcenter.wallboard.roster import RosterCache


@dataclass
class Parts:
    settings: Settings
    options: WallboardOptions
    state: LiveState
    board: Board
    hub: Hub
    kpis: KpiRefresher
    history: HistoryCache
    auth: Auth
    limiter: RateLimiter
    control: AgentControl
    roster: RosterCache


PARTS = web.AppKey("parts", Parts)


def parts(request: web.Request) -> Parts:
    return request.app[PARTS]


def is_api(request: web.Request) -> bool:
    """Requests answered in JSON (and with 401 rather than a redirect to the login page):
    the API, the stream, the metrics, and ``fetch`` calls that accept JSON."""
    path = request.path
    if path.startswith("/api/") or path in ("/events", "/metrics"):
        return True
    return "application/json" in request.headers.get("Accept", "")


def require(request: web.Request) -> Visitor:
    """The visitor, or: a redirect to the login page (HTML), 401 (API, stream, metrics)."""
    visitor = parts(request).auth.visitor(request)
    if visitor is None:
        if is_api(request):
            raise web.HTTPUnauthorized(
                text="log in, or send Authorization: Bearer <token>",
                headers={"WWW-Authenticate": 'Bearer realm="wallboard"'},
            )
        raise web.HTTPSeeOther("/login")
    return visitor


def require_actor(request: web.Request, csrf: str) -> Visitor:
    """A supervisor's session posting from our own page with its CSRF token; 403 otherwise
    (a screen's token cannot act, and a forged post has no valid token)."""
    visitor = require(request)
    auth = parts(request).auth
    if not visitor.principal.can_act:
        raise web.HTTPForbidden(text="this session may only watch the board")
    if not auth.same_origin(request) or not auth.csrf_ok(visitor, csrf):
        raise web.HTTPForbidden(text="the form's CSRF token is missing or wrong: reload the page")
    return visitor


def http_error(exc: ControlError) -> web.HTTPException:
    """The HTTP error that says why an action on an agent failed."""
    classes: dict[int, type[web.HTTPException]] = {
        400: web.HTTPBadRequest, 404: web.HTTPNotFound, 409: web.HTTPConflict,
        502: web.HTTPBadGateway, 503: web.HTTPServiceUnavailable, 504: web.HTTPGatewayTimeout,
    }  # fmt: skip
    return classes.get(exc.status, web.HTTPInternalServerError)(text=str(exc))
