"""The agent's desktop: routes under ``/agent``.

Who may do what: an agent logs in with their name and the password set by ``callcenter
agents password`` (argon2, the board's login rate limit, nonce and Origin check); their
session reaches ``/agent`` only (the board, its API, its stream and /metrics refuse it), and
every form posts with the session's CSRF token from our own origin. An agent acts only on
themselves: their own pause and log-in state over AMI (the same QueuePause / QueueRemove /
QueueAdd as their phone's feature codes), dispositions of calls they answered, cases, and
calls from their own phone.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from typing import Any

import aiohttp_jinja2
import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.orm import Session

from callcenter import names
from callcenter.campaigns import callbacks, scheduling, store
from callcenter.campaigns.dialer import customer_channel
from callcenter.campaigns.numbers import Normaliser, NumberError
from callcenter.crm import CrmError, documentation
from callcenter.crm import cases as case_store
from callcenter.crm import customers as customer_store
from callcenter.crm.dispositions import allowed_codes
from callcenter.db.models import Agent, Call, Queue
from callcenter.directory import DirectoryError
from callcenter.jsonable import plain
from callcenter.wallboard.auth import Visitor
from callcenter.wallboard.context import http_error, is_api, parts, try_login
from callcenter.wallboard.control import ControlError
from callcenter.wallboard.model import AgentLive
from callcenter.wallboard.stream import KEEPALIVE, WRITE_TIMEOUT
from callcenter.wallboard.views import redirect

log = logging.getLogger(__name__)
UTC = dt.UTC


# --- who is asking -----------------------------------------------------------------------------


def require_agent(request: web.Request) -> Visitor:
    """The agent's session; else the agent login page (HTML) or 401 (JSON, the stream)."""
    visitor = parts(request).auth.visitor(request)
    if visitor is None or visitor.principal.kind != "agent" or visitor.csrf is None:
        if is_api(request) or request.path == "/agent/events":
            raise web.HTTPUnauthorized(text="log in as an agent at /agent/login")
        raise web.HTTPSeeOther("/agent/login")
    return visitor


async def agent_post(request: web.Request) -> tuple[Visitor, dict[str, str]]:
    """A form (or JSON body) an agent posts from our own page with its CSRF token."""
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except ValueError:
            raise web.HTTPBadRequest(text="the body is not JSON") from None
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(text="the body must be a JSON object")
        form = {str(k): "" if v is None else str(v) for k, v in body.items()}
    else:
        form = {k: str(v) for k, v in (await request.post()).items()}
    visitor = require_agent(request)
    auth = parts(request).auth
    if not auth.same_origin(request) or not auth.csrf_ok(visitor, form.get("csrf", "")):
        raise web.HTTPForbidden(text="the form's CSRF token is missing or wrong: reload the page")
    return visitor, form


def fail(status: int, message: str) -> web.Response:
    return web.json_response({"ok": False, "error": message}, status=status)


def me(request: web.Request, name: str) -> AgentLive | None:
    """The agent as the bridge reports them (on whichever node they are logged in)."""
    for agent in parts(request).state.agents.values():
        if agent.agent == name and agent.state != "logged_out":
            return agent
    return None


# --- logging in --------------------------------------------------------------------------------


def login_page(request: web.Request, message: str = "", status: int = 200,
               headers: dict[str, str] | None = None) -> web.Response:  # fmt: skip
    p = parts(request)
    response = web.Response(status=status, content_type="text/html", headers=headers)
    nonce = p.auth.login_nonce(request, response)
    response.text = aiohttp_jinja2.render_string(
        "desk_login.html.j2", request,
        {"site": p.settings.site.name, "csrf": nonce, "message": message},
    )  # fmt: skip
    response.headers["Cache-Control"] = "no-store"
    return response


async def login_form(request: web.Request) -> web.StreamResponse:
    visitor = parts(request).auth.visitor(request)
    if visitor is not None and visitor.principal.kind == "agent":
        return redirect("/agent")
    return login_page(request)


async def login(request: web.Request) -> web.StreamResponse:
    p = parts(request)
    form = await request.post()
    name = names.normalize(str(form.get("name", "")).strip())[: names.MAX_CHARS]
    password = str(form.get("password", ""))
    if not p.auth.same_origin(request) or not p.auth.login_nonce_ok(
        request, str(form.get("csrf", ""))
    ):
        return login_page(request, "The form had expired. Please try again.", 403)
    result = await try_login(request, "agent", name, password)
    if result.wait:
        return login_page(request, "Too many failed attempts: wait a few minutes.", 429,
                          {"Retry-After": str(int(result.wait) + 1)})  # fmt: skip
    if result.principal is None:
        return login_page(request, "Wrong name or password.", 401)
    response = redirect("/agent")
    p.auth.start_session(request, response, result.principal)
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    """End the agent's session on the server (its cookie, replayed, is refused) and here."""
    visitor, _ = await agent_post(request)
    response = redirect("/agent/login")
    await parts(request).auth.end_session(response, visitor)
    return response


# --- the page and its stream -------------------------------------------------------------------


def _calls_today(request: web.Request, agent: str) -> int:
    p = parts(request)
    tz = p.settings.site.tz
    start = dt.datetime.now(tz).replace(hour=0, minute=0, second=0, microsecond=0)
    with Session(p.engine) as session:
        return int(
            session.scalar(
                sa.select(sa.func.count())
                .select_from(Call)
                .where(Call.agent == agent, Call.answered_at >= start)
            )
            or 0
        )


async def page(request: web.Request) -> web.Response:
    visitor = require_agent(request)
    p = parts(request)
    name = visitor.principal.name
    calls_today = await asyncio.to_thread(_calls_today, request, name)
    response = aiohttp_jinja2.render_template(
        "desk.html.j2", request,
        {"site": p.settings.site.name, "agent": name, "csrf": visitor.csrf,
         "calls_today": calls_today, "pause_reasons": p.options.pause_reasons},
    )  # fmt: skip
    response.headers["Cache-Control"] = "no-store"
    return response


async def events(request: web.Request) -> web.StreamResponse:
    visitor = require_agent(request)
    p = parts(request)
    desk = p.desk
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    sub = desk.subscribe(visitor.principal.name)
    try:
        data = b"retry: 2000\n\n" + desk.opening(visitor.principal.name)
        while True:
            if data:
                async with asyncio.timeout(WRITE_TIMEOUT):
                    await response.write(data)
            data = b""
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(KEEPALIVE):
                    await sub.wake.wait()
            if sub.dropped or request.transport is None or request.transport.is_closing():
                break
            if sub.pending:
                data = sub.take()
            else:
                sub.wake.clear()
                if p.auth.visitor(request) is None:
                    break
                data = b": keep-alive\n\n"
    except (ConnectionError, TimeoutError):
        pass
    finally:
        desk.unsubscribe(sub)
    return response


# --- the agent's own state, over AMI -----------------------------------------------------------


async def act(request: web.Request) -> web.Response:
    """``ready`` (unpause), ``pause`` (with a reason), ``logout`` (out of every queue),
    ``login`` (into the configured queues): the same AMI actions as the phone's codes."""
    visitor, form = await agent_post(request)
    p = parts(request)
    name = visitor.principal.name
    action = request.match_info["action"]
    agent = me(request, name)
    try:
        if action == "login":
            if agent is not None:
                raise ControlError(409, f"{name} is already logged in")
            configured = (await p.roster.reload()).agents.get(name)
            if configured is None:
                raise ControlError(404, f"no agent {name} is configured")
            await p.control.login(p.settings.nodes[0].name, configured, name)
        elif agent is None:
            raise ControlError(409, f"{name} is not logged in to any queue")
        elif action == "pause":
            await p.control.pause(agent, form.get("reason", ""), name)
        elif action == "ready":
            await p.control.unpause(agent, name)
        else:
            await p.control.logout(agent, name)
    except ControlError as exc:
        return fail(exc.status, str(exc))
    return web.json_response({"ok": True, "action": action})


# --- documenting the call ----------------------------------------------------------------------


def _session(request: web.Request) -> Session:
    return Session(parts(request).engine, expire_on_commit=False)


async def codes(request: web.Request) -> web.Response:
    """The disposition codes of a call's queue and campaign."""
    require_agent(request)
    node, uniqueid = request.query.get("node", ""), request.query.get("uniqueid", "")
    queue = request.query.get("queue") or None

    def read() -> list[dict[str, Any]]:
        with _session(request) as s:
            try:
                ctx = documentation.call_context(s, node=node, uniqueid=uniqueid, queue=queue)
            except CrmError:
                return []
            found = allowed_codes(s, queue=ctx.queue, campaign_id=ctx.campaign_id)
            return [
                {"code": c.code, "label": c.label, "effect": c.effect}
                for c in sorted(found.values(), key=lambda c: c.code)
            ]

    return web.json_response({"codes": await asyncio.to_thread(read)})


async def dispose(request: web.Request) -> web.Response:
    """Save the disposition. A code whose effect is ``callback`` books the callback in the
    same transaction (``callback_at``, ``callback_number``: the caller's, ``callback_for``
    me | anyone): without its time, nothing is saved."""
    visitor, form = await agent_post(request)
    p = parts(request)
    now = dt.datetime.now(UTC)
    name = visitor.principal.name

    def write() -> dict[str, Any]:
        with _session(request) as s, s.begin():
            d = documentation.dispose(
                s, node=form.get("node", ""), uniqueid=form.get("uniqueid", ""),
                agent=name, code=form.get("code", ""), now=now,
                notes=form.get("notes", ""), case_number=form.get("case") or None,
                queue=form.get("queue") or None,
            )  # fmt: skip
            view: dict[str, Any] = plain(
                documentation.disposition_view(d, form.get("case") or None)
            )
            if d.effect == "callback":
                raw = form.get("callback_at", "")
                if not raw:
                    raise CrmError(f"code {d.code} books a callback: give its time")
                try:
                    at = dt.datetime.fromisoformat(raw)
                except ValueError:
                    raise CrmError("the callback's time must read YYYY-MM-DDTHH:MM") from None
                if at.tzinfo is None:
                    at = at.replace(tzinfo=p.settings.site.tz)
                contact = callbacks.schedule_callback(
                    s, p.options.callback_campaign, Normaliser(p.settings.site.region),
                    form.get("callback_number", ""), at, booked_by=name,
                    for_agent=name if form.get("callback_for", "me") == "me" else None,
                    note=form.get("notes", "")[:500], source=form.get("uniqueid", ""), now=now,
                    site_tz=p.settings.site.timezone,
                )  # fmt: skip
                view["callback"] = {"phone": contact.phone, "at": at.isoformat()}
            return view

    try:
        view = await asyncio.to_thread(write)
    except (CrmError, DirectoryError) as exc:
        return fail(400, str(exc))
    await parts(request).desk.documented(
        visitor.principal.name, form.get("node", ""), form.get("uniqueid", "")
    )
    return web.json_response({"ok": True, "disposition": view})


async def customer(request: web.Request) -> web.Response:
    """A customer record for the caller (name, the caller's number)."""
    _visitor, form = await agent_post(request)
    p = parts(request)

    def write() -> dict[str, Any]:
        numbers = Normaliser(p.settings.site.region)
        with _session(request) as s, s.begin():
            c = customer_store.create_customer(
                s, numbers, name=form.get("name", ""), phones=[form.get("phone", "")],
                email=form.get("email", ""),
            )  # fmt: skip
            view: dict[str, Any] = plain(customer_store.customer_view(c))
            return view

    try:
        view = await asyncio.to_thread(write)
    except (CrmError, DirectoryError, NumberError) as exc:
        return fail(400, str(exc))
    return web.json_response({"ok": True, "customer": view})


async def case(request: web.Request) -> web.Response:
    """Open a case for the caller's customer, linked to the call."""
    visitor, form = await agent_post(request)
    now = dt.datetime.now(UTC)
    actor = visitor.principal.name

    def write() -> dict[str, Any]:
        with _session(request) as s, s.begin():
            raw_id = form.get("customer_id", "")
            if not raw_id.isdigit():
                raise CrmError("a case needs the customer (create the customer first)")
            c = case_store.create_case(
                s, customer_id=int(raw_id), category=form.get("category", "question"),
                actor=actor, now=now, priority=form.get("priority", "normal"),
                owner=actor, subject=form.get("subject", ""), note=form.get("note", ""),
            )  # fmt: skip
            if form.get("uniqueid"):
                case_store.link_call(
                    s, c, node=form.get("node", ""), uniqueid=form["uniqueid"], actor=actor,
                    at=now, data={"agent": actor},
                )  # fmt: skip
            view: dict[str, Any] = plain(case_store.case_view(c))
            return view

    try:
        view = await asyncio.to_thread(write)
    except (CrmError, DirectoryError) as exc:
        return fail(400, str(exc))
    return web.json_response({"ok": True, "case": view})


async def case_update(request: web.Request) -> web.Response:
    visitor, form = await agent_post(request)
    now = dt.datetime.now(UTC)

    def write() -> dict[str, Any]:
        with _session(request) as s, s.begin():
            c = case_store.update_case(
                s, form.get("number", ""), actor=visitor.principal.name, now=now,
                status=form.get("status") or None, note=form.get("note") or None,
                resolution=form.get("resolution") or None,
            )  # fmt: skip
            view: dict[str, Any] = plain(case_store.case_view(c))
            return view

    try:
        view = await asyncio.to_thread(write)
    except (CrmError, DirectoryError) as exc:
        return fail(400, str(exc))
    return web.json_response({"ok": True, "case": view})


async def transfer(request: web.Request) -> web.Response:
    """Transfer the agent's current caller to a queue (``queue``) or an agent (``agent``),
    blind or attended (``attended`` true): the agent's channel from the call log."""
    visitor, form = await agent_post(request)
    p = parts(request)
    name = visitor.principal.name
    me_now = me(request, name)
    if me_now is None or me_now.state != "on_call" or not me_now.call:
        return fail(409, "you are on no call to transfer")
    queue, agent = form.get("queue", "").strip(), form.get("agent", "").strip()
    if bool(queue) == bool(agent):
        return fail(400, "transfer to one queue or one agent")
    call_id = me_now.call

    def target() -> tuple[str, str, str | None]:
        with _session(request) as s:
            channel = s.scalar(
                sa.select(Call.agent_channel).where(
                    Call.node == me_now.node, Call.uniqueid == call_id
                )
            )
            if queue:
                found = s.scalar(sa.select(Queue.name).where(Queue.name == queue))
                if found is None:
                    raise CrmError(f"no queue named {queue!r}")
                return "queue-transfer", queue, channel
            ext = s.scalar(sa.select(Agent.extension).where(Agent.name == agent))
            if ext is None:
                raise CrmError(f"no agent named {agent!r}")
            return "agent-dial", ext, channel

    try:
        context, exten, channel = await asyncio.to_thread(target)
    except CrmError as exc:
        return fail(400, str(exc))
    if not channel:
        return fail(409, "the call log does not know your channel yet: try again in a second")
    try:
        await p.control.transfer(me_now.node, channel, context, exten,
                                 attended=form.get("attended") == "true", by=name)  # fmt: skip
    except ControlError as exc:
        return fail(exc.status, str(exc))
    return web.json_response({"ok": True, "to": f"{exten}@{context}"})


async def callback(request: web.Request) -> web.Response:
    """Book a callback: ``number``, ``at`` (ISO 8601 local time of the site, or with an
    offset), ``for`` me | anyone, ``note``: a contact of the callback campaign, due then."""
    visitor, form = await agent_post(request)
    p = parts(request)
    name = visitor.principal.name
    now = dt.datetime.now(UTC)
    try:
        at = dt.datetime.fromisoformat(form.get("at", ""))
    except ValueError:
        return fail(400, "the callback's time must read YYYY-MM-DDTHH:MM")
    if at.tzinfo is None:
        at = at.replace(tzinfo=p.settings.site.tz)

    def write() -> dict[str, Any]:
        numbers = Normaliser(p.settings.site.region)
        with _session(request) as s, s.begin():
            contact = callbacks.schedule_callback(
                s, p.options.callback_campaign, numbers, form.get("number", ""), at,
                booked_by=name, for_agent=name if form.get("for") == "me" else None,
                note=form.get("note", ""), source=form.get("uniqueid", ""), now=now,
                site_tz=p.settings.site.timezone,
            )  # fmt: skip
            return {"phone": contact.phone, "at": at.isoformat(),
                    "campaign": p.options.callback_campaign}  # fmt: skip

    try:
        view = await asyncio.to_thread(write)
    except (CrmError, DirectoryError) as exc:
        return fail(400, str(exc))
    return web.json_response({"ok": True, "callback": view})


# --- calling out --------------------------------------------------------------------------------


async def click_to_call(request: web.Request) -> web.Response:
    """The agent's phone first, then the number (do-not-call and the number's validity
    checked first): an AMI Originate into [outbound-preview]."""
    visitor, form = await agent_post(request)
    p = parts(request)
    agent = me(request, visitor.principal.name)
    if agent is None:
        return fail(409, "log in first: the call starts on your phone")

    def check() -> str:
        numbers = Normaliser(p.settings.site.region)
        with _session(request) as s:
            e164, held = store.dnc_check(s, numbers, form.get("number", ""))
        if held is not None:
            raise CrmError(f"{e164} is on the do-not-call list")
        return e164

    try:
        number = await asyncio.to_thread(check)
    except (CrmError, DirectoryError) as exc:
        return fail(400, str(exc))
    dial_string = customer_channel(p.settings, number)
    try:
        await p.control.originate(
            agent.node,
            {
                "Channel": agent.interface,
                "Context": "outbound-preview",
                "Exten": "s",
                "Priority": "1",
                "Timeout": "30000",
                "CallerID": f'"{number}" <{number}>',
                "Variable": [
                    f"CAMPAIGN_ID=manual-{visitor.principal.name}",
                    f"CAMPAIGN_CUSTOMER={dial_string}",
                    "CAMPAIGN_RING=30",
                    f"CAMPAIGN_CALLER_ID={form.get('caller_id', '')}",
                ],
            },
        )
    except ControlError as exc:
        return fail(exc.status, str(exc))
    return web.json_response({"ok": True, "number": number})


async def preview(request: web.Request) -> web.Response:
    """The preview campaign's next contact for this agent (``take``), or ``dial`` / ``skip``
    the one on screen."""
    visitor, form = await agent_post(request)
    p = parts(request)
    action = request.match_info["action"]
    name = visitor.principal.name
    now = dt.datetime.now(UTC)

    def run() -> dict[str, Any]:
        with _session(request) as s, s.begin():
            campaign = store.get_campaign(s, form.get("campaign", ""))
            if action == "take":
                shown = scheduling.preview_take(s, campaign, name, now=now, dialer="desk",
                                                site_tz=p.settings.site.tz)  # fmt: skip
                if shown is None:
                    return {"contact": None}
                contact = {"phone": shown.phone, "name": shown.name, "fields": shown.fields,
                           "attempt": shown.attempt_no}  # fmt: skip
                return {"contact": contact}
            if action == "dial":
                a = scheduling.preview_dial(s, campaign, name, now=now)
                return {"phone": a.phone, "outcome": a.outcome, "reason": a.reason}
            a = scheduling.preview_skip(s, campaign, name, form.get("reason", ""), now=now)
            return {"phone": a.phone, "outcome": a.outcome}

    try:
        out = await asyncio.to_thread(run)
    except (CrmError, DirectoryError) as exc:
        return fail(400, str(exc))
    return web.json_response({"ok": True, **out})


def routes() -> list[web.RouteDef]:
    return [
        web.get("/agent/login", login_form),
        web.post("/agent/login", login),
        web.post("/agent/logout", logout),
        web.get("/agent", page),
        web.get("/agent/events", events),
        web.post(r"/agent/state/{action:ready|pause|logout|login}", act),
        web.get("/agent/codes", codes),
        web.post("/agent/dispose", dispose),
        web.post("/agent/customer", customer),
        web.post("/agent/case", case),
        web.post("/agent/case/update", case_update),
        web.post("/agent/call", click_to_call),
        web.post("/agent/callback", callback),
        web.post("/agent/transfer", transfer),
        web.post(r"/agent/preview/{action:take|dial|skip}", preview),
    ]


def http(exc: ControlError) -> web.HTTPException:
    return http_error(exc)
