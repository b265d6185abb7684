"""``POST /agents/{node}/{agent}/monitor`` (form field ``mode``: listen, whisper or barge):
the board's Listen / Whisper / Barge buttons.

Answers JSON to ``fetch`` (``Accept: application/json``: ``ok``, ``mode``, ``agent``,
``node``, ``phone``, ``message`` or ``error``), else redirects back to the board (or says
why not). Statuses: 200 originated; 400 no such mode; 401 nobody logged in; 403 not a
supervisor's or an administrator's session with its CSRF token (an agent's desktop session,
a screen's token, an API token); 404 a name that is no agent's; 409 no phone, the agent on no
call, their node down, their channel not known yet; 502/503/504 Asterisk or the link said no.
Every attempt from a known principal with a valid mode and agent name is logged
(:mod:`.service`); there is no API route: monitoring needs a person at the board.
"""

from __future__ import annotations

from aiohttp import web

from callcenter import names
from callcenter.monitoring import rules
from callcenter.monitoring.service import Ask, Monitoring
from callcenter.wallboard.context import http_error, is_api, parts
from callcenter.wallboard.control import ControlError

PATH = "/agents/{node}/{agent}/monitor"


def _answer(request: web.Request, status: int, body: dict[str, object]) -> web.Response:
    if "application/json" in request.headers.get("Accept", ""):
        return web.json_response(body, status=status)
    if status == 200:
        return web.Response(status=303, headers={"Location": "/board"})
    text = str(body.get("error", ""))
    if status == 403:
        raise web.HTTPForbidden(text=text)
    raise http_error(ControlError(status, text))


async def monitor(request: web.Request) -> web.Response:
    p = parts(request)
    visitor = p.auth.visitor(request)
    if visitor is None:
        if is_api(request):
            raise web.HTTPUnauthorized(
                text="log in", headers={"WWW-Authenticate": 'Bearer realm="wallboard"'}
            )
        raise web.HTTPSeeOther("/login")
    form = await request.post()
    node = request.match_info["node"]
    agent = names.normalize(request.match_info["agent"])
    mode = rules.parse_mode(str(form.get("mode", "")))
    if mode is None:
        return _answer(request, 400, {"ok": False, "error": "mode is listen, whisper or barge"})
    if names.agent_name_problem(agent) or not 0 < len(node) <= 64:
        return _answer(request, 404, {"ok": False, "error": "no such agent"})
    principal = visitor.principal
    csrf_ok = p.auth.same_origin(request) and p.auth.csrf_ok(visitor, str(form.get("csrf", "")))
    monitoring = Monitoring(
        p.engine, p.state, p.control, p.board.node_down,
        channel_wait=p.settings.bridge.flush_interval + 1.0,
    )  # fmt: skip
    outcome = await monitoring.start(
        Ask(principal.kind, principal.name, principal.role, csrf_ok, node, agent, mode)
    )
    a = outcome.attempt
    body: dict[str, object] = {"ok": outcome.ok, "mode": mode, "agent": agent, "node": node}
    if outcome.ok:
        body.update(action=mode, phone=a.phone, message=outcome.message)
    else:
        body["error"] = outcome.message
    return _answer(request, outcome.status, body)


def routes() -> list[web.RouteDef]:
    return [web.post(PATH, monitor)]
