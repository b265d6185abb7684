"""The HTML pages: log in, the board (TV and laptop layouts), history, the supervisor's
actions (pause, unpause, log out, log in), a screen's entry (``/tv``) and the icon. Pages are
rendered on the server from memory (the board) or from the history cache; ``static/board.js``
then keeps the board live from ``/events``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp_jinja2
import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from callcenter import names
from callcenter.crm.reports import build_crm_report
from callcenter.logsafe import clean
from callcenter.planning.erlang import PlanningError
from callcenter.wallboard import chart
from callcenter.wallboard.board import Row
from callcenter.wallboard.context import (
    client,
    http_error,
    parts,
    require,
    require_actor,
    security_log,
    try_login,
)
from callcenter.wallboard.control import ControlError
from callcenter.wallboard.history import parse_day

QUEUE_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
ACTIONS = "pause|unpause|logout|login"


def redirect(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


def page(request: web.Request, template: str, context: dict[str, Any], status: int = 200
         ) -> web.Response:  # fmt: skip
    p = parts(request)
    base = {"site": p.settings.site.name, "tz": p.settings.site.timezone, "options": p.options}
    response = aiohttp_jinja2.render_template(template, request, {**base, **context})
    response.set_status(status)
    response.headers["Cache-Control"] = "no-store"
    return response


def merged_queues(snapshot: Row) -> list[Row]:
    """Each queue's live row with its figures of the day (the browser merges the same way)."""
    figures = snapshot["kpis"].get("queues", {})
    return [{**figures.get(q["queue"], {}), **q} for q in snapshot["queues"]]


def agent_rows(snapshot: Row) -> list[Row]:
    figures = snapshot["kpis"].get("agents", {})
    return [{**a, "calls": figures.get(a["agent"], {}).get("calls", 0)}
            for a in snapshot["agents"]]  # fmt: skip


async def index(request: web.Request) -> web.Response:
    visitor = parts(request).auth.visitor(request)
    return redirect("/board" if visitor else "/login")


# --- logging in and out ---------------------------------------------------------------------


def login_page(request: web.Request, message: str = "", status: int = 200,
               headers: dict[str, str] | None = None) -> web.Response:  # fmt: skip
    auth = parts(request).auth
    response = web.Response(status=status, content_type="text/html", headers=headers)
    nonce = auth.login_nonce(request, response)
    p = parts(request)
    response.text = aiohttp_jinja2.render_string(
        "login.html.j2", request,
        {"site": p.settings.site.name, "csrf": nonce, "message": message},
    )  # fmt: skip
    response.headers["Cache-Control"] = "no-store"
    return response


async def login_form(request: web.Request) -> web.Response:
    if parts(request).auth.visitor(request) is not None:
        return redirect("/board")
    return login_page(request)


async def login(request: web.Request) -> web.Response:
    p = parts(request)
    form = await request.post()
    # Names are stored in NFC: "josé" typed with a combining accent is the same user.
    name = names.normalize(str(form.get("name", "")).strip())[: names.MAX_CHARS]
    password = str(form.get("password", ""))
    if not p.auth.same_origin(request) or not p.auth.login_nonce_ok(
        request, str(form.get("csrf", ""))
    ):
        return login_page(request, "The form had expired. Please try again.", 403)
    result = await try_login(request, "user", name, password)
    if result.wait:
        return login_page(request, "Too many failed attempts: wait a few minutes.", 429,
                          {"Retry-After": str(int(result.wait) + 1)})  # fmt: skip
    if result.principal is None:
        return login_page(request, "Wrong name or password.", 401)
    response = redirect("/board")
    p.auth.start_session(request, response, result.principal)
    return response


async def logout(request: web.Request) -> web.Response:
    """End the session on the server (its cookie, replayed, is refused) and in the browser."""
    form = await request.post()
    visitor = require(request)
    auth = parts(request).auth
    if not auth.same_origin(request) or not auth.csrf_ok(visitor, str(form.get("csrf", ""))):
        raise web.HTTPForbidden(text="the form's CSRF token is missing or wrong: reload the page")
    response = redirect("/login")
    await auth.end_session(response, visitor)
    return response


def tv_page(request: web.Request, message: str, status: int,
            headers: dict[str, str] | None = None) -> web.Response:  # fmt: skip
    """Why this screen cannot show the board, and how to get it a token."""
    response = page(request, "tv.html.j2", {"message": message}, status)
    response.headers.update(headers or {})
    return response


async def tv(request: web.Request) -> web.Response:
    """A screen's one-time entry: the token becomes a long session, and the URL with the
    token leaves the address bar at once (and, with Referrer-Policy, every header). Without
    a token: the TV layout for a visitor already logged in, else a page that says how to
    get a token (401)."""
    p = parts(request)
    token = request.query.get("token", "")[:200]
    if not token:
        if p.auth.visitor(request) is not None:
            return redirect("/board?layout=tv")
        return tv_page(request, "This screen has no token yet.", 401, {
            "WWW-Authenticate": 'Bearer realm="wallboard"'})  # fmt: skip
    address = request.remote or "unknown"
    wait = p.limiter.retry_after(address, "tv")
    if wait:
        return tv_page(request, "Too many wrong tokens from this address: wait a few minutes.",
                       429, {"Retry-After": str(int(wait) + 1)})  # fmt: skip
    principal = p.auth.cache.directory.check_token(token)
    if principal is None:
        await p.auth.cache.reload_if_stale()
        principal = p.auth.cache.directory.check_token(token)
    if principal is None:
        lock = p.limiter.failed(address, "tv")
        security_log(request, "login-failed", "wallboard: wrong TV token from %s%s",
                     client(request), " (locked out)" if lock else "")  # fmt: skip
        return tv_page(request, "This screen's token is unknown or revoked.", 401, {
            "WWW-Authenticate": 'Bearer realm="wallboard", error="invalid_token"'})  # fmt: skip
    response = redirect("/board?layout=tv")
    p.auth.start_session(request, response, principal)
    return response


async def favicon(request: web.Request) -> web.Response:
    """Browsers ask for /favicon.ico by themselves: the board's icon is an SVG."""
    return web.Response(status=301, headers={"Location": "/static/favicon.svg",
                                             "Cache-Control": "max-age=86400"})  # fmt: skip


# --- the board and the history --------------------------------------------------------------


async def board(request: web.Request) -> web.Response:
    visitor = require(request)
    p = parts(request)
    default = "tv" if visitor.principal.kind == "token" else "laptop"
    layout = request.query.get("layout", default)
    if layout not in ("tv", "laptop"):
        raise web.HTTPBadRequest(text="layout is tv or laptop")
    snapshot = p.board.snapshot()
    can_act = bool(visitor.principal.can_act and visitor.csrf and layout == "laptop")
    # Listen / Whisper / Barge: a supervisor's own session, with a phone to ring
    # (callcenter/monitoring; the POST checks all of it again).
    phone = p.auth.cache.directory.phones.get(visitor.principal.name, "")
    return page(request, "board.html.j2", {
        "layout": layout, "visitor": visitor.principal, "csrf": visitor.csrf or "",
        "can_act": can_act,
        "can_monitor": bool(can_act and visitor.principal.kind == "user" and phone),
        "phone": phone,
        "now": snapshot["now"], "queues": merged_queues(snapshot), "agents": agent_rows(snapshot),
        "total": snapshot["total"],
        "nodes": snapshot["nodes"], "status": snapshot["status"], "kpis": snapshot["kpis"],
        "campaigns": snapshot["campaigns"], "thresholds": json.dumps(snapshot["thresholds"]),
    })  # fmt: skip


def day_and_queue(request: web.Request) -> tuple[dt.date, str | None]:
    """``day`` (absent: today in the site's time zone; present, it must be a date: an empty
    ``day=`` is refused, as the OpenAPI document says) and ``queue`` (absent or empty: all);
    400 otherwise."""
    p = parts(request)
    now = dt.datetime.now(dt.UTC)
    text = request.query.get("day")
    if text is not None and not text:
        raise web.HTTPBadRequest(text="day: a date (YYYY-MM-DD); leave it out for today")
    try:
        day = parse_day(text, p.settings.site.tz, now)
    except ValueError as exc:
        raise web.HTTPBadRequest(text=f"day: {clean(exc, 120)}") from exc
    queue = request.query.get("queue") or None
    if queue is not None and not QUEUE_RE.fullmatch(queue):  # "$" would pass "sales\n"
        raise web.HTTPBadRequest(text="queue: a queue name (a-z, 0-9, _ or -)")
    return day, queue


async def history(request: web.Request) -> web.Response:
    visitor = require(request)
    p = parts(request)
    day, queue = day_and_queue(request)
    # Staffing for the board's SL target (a target of 100% has no finite answer).
    goal = min(p.options.sl_target, 0.99)
    slots, planned = await asyncio.gather(
        p.history.get(day, queue), p.history.forecast(day, queue, goal), return_exceptions=True
    )
    if isinstance(slots, BaseException):
        raise slots
    # Without its forecast (no answer, or its query failed) the page still shows the day.
    forecast, forecast_error = None, ""
    if isinstance(planned, PlanningError):
        forecast_error = str(planned)
    elif isinstance(planned, sa.exc.SQLAlchemyError):
        forecast_error = "the call log could not be read (try again in a minute)"
    elif isinstance(planned, BaseException):
        raise planned
    else:
        forecast = planned
    try:
        crm = await asyncio.to_thread(crm_day, p.engine, p.settings.site.tz, day, queue)
    except sa.exc.SQLAlchemyError:
        crm = None
    return page(request, "history.html.j2", {
        "visitor": visitor.principal, "csrf": visitor.csrf or "", "day": day.isoformat(),
        "queue": queue or "", "queues": p.board.queue_names(), "nodes": p.board.node_rows(),
        "chart": chart.build(slots, day, p.settings.site.tz, p.options.sl_target),
        "forecast": forecast, "forecast_error": forecast_error,
        "fchart": chart.build_forecast(forecast) if forecast and forecast.has_history else None,
        "today": dt.datetime.now(p.settings.site.tz).date().isoformat(), "crm": crm,
    })  # fmt: skip


def crm_day(engine: Engine, tz: ZoneInfo, day: dt.date, queue: str | None) -> dict[str, Any]:
    """The CRM's figures of ``day`` (callcenter report --crm, the same SQL): first-contact
    resolution, repeat callers, dispositions, undocumented calls, open cases by age."""
    since = dt.datetime.combine(day, dt.time(0), tzinfo=tz)
    until = since + dt.timedelta(days=1)
    now = dt.datetime.now(dt.UTC)
    with Session(engine) as session:
        report = build_crm_report(session, since, min(until, max(now, since + dt.timedelta(
            seconds=1))), now=now, queue=queue)  # fmt: skip
    return report.as_dict()


# --- supervisor actions ---------------------------------------------------------------------


async def act_on(request: web.Request, action: str, reason: str, by: str) -> None:
    """Do ``action`` to the agent the URL names, through AMI; :class:`ControlError` says why
    not. Shared by the form (here) and the JSON API."""
    p = parts(request)
    node, name = request.match_info["node"], names.normalize(request.match_info["agent"])
    agent = p.state.agents.get((node, name))
    if action == "login":
        # The memberships as they are now (the roster is refreshed every few seconds).
        configured = (await p.roster.reload()).agents.get(name)
        if configured is None:
            raise ControlError(404, f"no agent {name} is configured")
        if agent is not None and agent.state != "logged_out":
            raise ControlError(409, f"{name} is already logged in on node {node}")
        await p.control.login(node, configured, by)
        return
    if agent is None or agent.state == "logged_out":
        raise ControlError(404, f"no agent {name} is logged in on node {node}")
    if action == "pause":
        await p.control.pause(agent, reason, by)
    elif action == "unpause":
        await p.control.unpause(agent, by)
    else:
        await p.control.logout(agent, by)


async def act(request: web.Request) -> web.Response:
    """Pause, unpause, log out or log in an agent. Answers JSON to ``fetch`` (Accept:
    application/json), else redirects back to the board."""
    form = await request.post()
    visitor = require_actor(request, str(form.get("csrf", "")))
    action = request.match_info["action"]
    reason = str(form.get("reason", ""))
    try:
        await act_on(request, action, reason, visitor.principal.name)
    except ControlError as exc:
        if "application/json" in request.headers.get("Accept", ""):
            return web.json_response({"ok": False, "error": str(exc)}, status=exc.status)
        raise http_error(exc) from exc
    if "application/json" in request.headers.get("Accept", ""):
        return web.json_response({"ok": True, "action": action, **request.match_info})
    return redirect("/board")


def routes() -> list[web.RouteDef]:
    return [
        web.get("/", index),
        web.get("/login", login_form),
        web.post("/login", login),
        web.post("/logout", logout),
        web.get("/tv", tv),
        web.get("/board", board),
        web.get("/history", history),
        web.post("/agents/{node}/{agent}/{action:" + ACTIONS + "}", act),
    ]
