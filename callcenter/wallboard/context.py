"""What every request handler reaches: the wallboard's parts, and the checks of who asks.

The parts are built once by :mod:`callcenter.wallboard.app` and stored in the aiohttp
application under :data:`PARTS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from aiohttp import web
from sqlalchemy.engine import Engine

from callcenter.config import Settings
from callcenter.db.models_wallboard import ROLES
from callcenter.wallboard.auth import Auth, RateLimiter, Visitor
from callcenter.wallboard.board import Board
from callcenter.wallboard.control import AgentControl, ControlError
from callcenter.wallboard.desk.service import Desk
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
    engine: Engine
    desk: Desk


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
    """The visitor, or: a redirect to the login page (HTML), 401 (API, stream, metrics).
    An agent's session is not a visitor of the board: 403 (API), else their own page."""
    visitor = parts(request).auth.visitor(request)
    if visitor is None:
        if is_api(request):
            raise web.HTTPUnauthorized(
                text="log in, or send Authorization: Bearer <token>",
                headers={"WWW-Authenticate": 'Bearer realm="wallboard"'},
            )
        raise web.HTTPSeeOther("/login")
    if visitor.principal.kind == "agent":
        if is_api(request):
            raise web.HTTPForbidden(text="an agent's session reaches the agent's desktop only")
        raise web.HTTPSeeOther("/agent")
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


#: The API tokens' roles (:func:`callcenter.tokens.scope_allows`) that may read, and write,
#: the CRM's data; sessions may do both when they are a supervisor's or an administrator's.
API_READERS = ("api-read", "api-write")
API_WRITERS = ("api-write",)


def require_scope(request: web.Request, scope: Literal["read", "write"]) -> Visitor:
    """The visitor, if it may ``read`` or ``write`` the CRM's data (the customers' personal
    data: a screen's TV token, whose page shows no one, may not); else 401 (nobody) or 403.

    - read: a supervisor's or an administrator's session, or an API token (read or write);
    - write: such a session posting with its CSRF token in ``X-CSRF-Token`` from our own
      origin (as :func:`require_actor`), or an API token of scope write (a bearer request
      carries no cookie a browser could send on its own, so it needs no CSRF token).

    An agent's session is refused by :func:`require`: it reaches the agent's desktop only.
    """
    if scope not in ("read", "write"):
        raise ValueError(f"unknown scope {scope!r}")
    visitor = require(request)
    principal = visitor.principal
    if principal.kind == "api":
        allowed = API_WRITERS if scope == "write" else API_READERS
        if principal.role not in allowed:
            raise web.HTTPForbidden(text=f"this API token may only read; {scope} needs a "
                                    "token of scope write")  # fmt: skip
        return visitor
    if principal.kind != "user" or principal.role not in ROLES:
        raise web.HTTPForbidden(text="a screen's token does not reach the CRM's data: use a "
                                "supervisor's session or an API token")  # fmt: skip
    if scope == "write":
        auth = parts(request).auth
        supplied = request.headers.get("X-CSRF-Token", "")
        if (
            visitor.csrf is None
            or not auth.same_origin(request)
            or not auth.csrf_ok(visitor, supplied)
        ):
            raise web.HTTPForbidden(
                text="the session's CSRF token is missing or wrong (header X-CSRF-Token)"
            )
    return visitor


def http_error(exc: ControlError) -> web.HTTPException:
    """The HTTP error that says why an action on an agent failed."""
    classes: dict[int, type[web.HTTPException]] = {
        400: web.HTTPBadRequest, 404: web.HTTPNotFound, 409: web.HTTPConflict,
        502: web.HTTPBadGateway, 503: web.HTTPServiceUnavailable, 504: web.HTTPGatewayTimeout,
    }  # fmt: skip
    return classes.get(exc.status, web.HTTPInternalServerError)(text=str(exc))
