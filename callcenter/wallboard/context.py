"""What every request handler reaches: the wallboard's parts, and the checks of who asks.

The parts are built once by :mod:`callcenter.wallboard.app` and stored in the aiohttp
application under :data:`PARTS`.

What a client can make happen at will and an operator must see (failed logins, lockouts,
refused requests) is logged at WARNING by :func:`security_log`: every value from the client
escaped (:func:`callcenter.logsafe.clean`), at most ``SECURITY_BURST`` lines of a kind a
minute, so neither a newline in a typed value nor a flood of requests can forge or drown
the log.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from aiohttp import web
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from callcenter.config import Settings
from callcenter.db.models_wallboard import ROLES
from callcenter.logsafe import LogGate, clean
from callcenter.wallboard.accounts import Principal
from callcenter.wallboard.auth import Auth, LoginThrottle, Visitor
from callcenter.wallboard.board import Board
from callcenter.wallboard.control import AgentControl, ControlError
from callcenter.wallboard.desk.service import Desk
from callcenter.wallboard.history import HistoryCache
from callcenter.wallboard.hub import Hub
from callcenter.wallboard.kpis import KpiRefresher
from callcenter.wallboard.live import LiveState
from callcenter.wallboard.options import WallboardOptions
from callcenter.wallboard.roster import RosterCache

log = logging.getLogger(__name__)
#: Lines of one kind of security event logged per minute at most (then a count of the rest).
SECURITY_BURST = 30
#: Seconds a client is told to wait (``Retry-After``) when the database is unavailable (503).
RETRY_AFTER = "5"


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
    limiter: LoginThrottle
    control: AgentControl
    roster: RosterCache
    engine: Engine
    desk: Desk
    log_gate: LogGate = field(default_factory=lambda: LogGate(SECURITY_BURST, 60.0))
    #: The database being away: one line per kind of failure a minute (app.py).
    db_log_gate: LogGate = field(default_factory=lambda: LogGate(1, 60.0))


PARTS = web.AppKey("parts", Parts)
T = TypeVar("T")


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


def supervisor_only(visitor: Visitor, what: str) -> Visitor:
    """``visitor`` if it is a supervisor's or an administrator's own session; else 403
    saying that ``what`` (e.g. "recordings") is for supervisors. A screen's session and API
    tokens never reach what only a person in charge may see (recordings, QA scores)."""
    principal = visitor.principal
    if principal.kind != "user" or principal.role not in ROLES:
        raise web.HTTPForbidden(
            text=f"{what} are for supervisors: log in with a supervisor's account"
        )
    return visitor


def require_supervisor(request: web.Request, what: str) -> Visitor:
    """A supervisor's or an administrator's session; else the login page, the agent's
    desktop (an agent's session) or 403 (a screen's session, an API token)."""
    return supervisor_only(require(request), what)


async def in_session(request: web.Request, fn: Callable[[Session], T], *, write: bool = False
                     ) -> T:  # fmt: skip
    """``fn`` in one transaction (committed when ``write``), in a worker thread: a page's
    queries never hold the event loop."""
    engine = parts(request).engine

    def work() -> T:
        with Session(engine, expire_on_commit=False) as s:
            if not write:
                return fn(s)
            with s.begin():
                return fn(s)

    return await asyncio.to_thread(work)


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


# --- what the log must hear about ------------------------------------------------------------


def security_log(request: web.Request, kind: str, message: str, *args: object) -> None:
    """A WARNING a client can cause at will (``kind`` names it for the rate limit; every
    value in ``args`` that came from a client must already be :func:`clean`)."""
    admitted, held = parts(request).log_gate.admit(kind)
    if admitted:
        log.warning(message + "%s", *args, LogGate.note(held))


def client(request: web.Request) -> str:
    """The client's address (behind a trusted proxy, the one it forwarded for: app.py)."""
    return clean(request.remote or "unknown", 64)


def log_refused(request: web.Request, status: int, reason: str) -> None:
    """A request refused for who sent it (403: a read-only session acting, a CSRF token or
    Origin wrong, an agent's session on the board): who, from where, what, why."""
    visitor = parts(request).auth.visitor(request)
    who = visitor.principal.ident if visitor else "no session"
    security_log(request, "refused", "wallboard: refused %s %s from %s (%s): %d %s",
                 request.method, clean(request.path), client(request), clean(who), status,
                 clean(reason))  # fmt: skip


@dataclass(frozen=True, slots=True)
class LoginResult:
    """A login form's outcome: the principal, or none (wrong name or password), or the
    seconds this client must wait first (``wait`` > 0: the password was not checked)."""

    principal: Principal | None
    wait: float = 0.0


async def try_login(request: web.Request, kind: Literal["user", "agent"], name: str,
                    password: str) -> LoginResult:  # fmt: skip
    """Check a name and password (a supervisor's or an agent's) within the login throttle
    (:class:`~callcenter.wallboard.auth.LoginThrottle`: per client address and account, and
    per client address). A failure is counted and logged at WARNING with the name and the
    address; the lockout it may start, once."""
    p = parts(request)
    address = request.remote or "unknown"
    account = f"{kind}:{name}"
    wait = p.limiter.retry_after(address, account)
    if wait:
        return LoginResult(None, wait)
    cache = p.auth.cache
    known = cache.directory.users if kind == "user" else cache.directory.agents
    if name not in known:
        await cache.reload_if_stale()
    directory = cache.directory
    check = directory.check_password if kind == "user" else directory.check_agent_password
    # argon2 takes tens of milliseconds of CPU: not on the event loop.
    principal = await asyncio.to_thread(check, name, password)
    if principal is not None:
        p.limiter.succeeded(address, account)
        return LoginResult(principal)
    lock = p.limiter.failed(address, account)
    security_log(request, "login-failed", "wallboard: failed login of %s %s from %s", kind,
                 clean(name), client(request))  # fmt: skip
    if lock is not None:
        limits = p.limiter.pairs if lock == "account" else p.limiter.places
        what = f"{kind} {clean(name)}" if lock == "account" else "every account"
        security_log(request, "lockout", "wallboard: %s locked out for %s for %d s after %d "
                     "failed logins", client(request), what, limits.window,
                     limits.attempts)  # fmt: skip
    return LoginResult(None)
