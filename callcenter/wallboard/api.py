"""The JSON API: the board's figures for scripts and other screens, and the supervisor's
actions. Described by ``/api/openapi.json`` (:mod:`callcenter.wallboard.openapi`).

Reads need a session or ``Authorization: Bearer <token>``; they are served from memory
(history from its cache). Actions need a supervisor's session and its CSRF token in the
``X-CSRF-Token`` header (a bearer token is read-only). Errors are JSON: ``{"error": ...}``.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from callcenter.wallboard.context import RETRY_AFTER, http_error, parts, require, require_actor
from callcenter.wallboard.control import ControlError
from callcenter.wallboard.openapi import document
from callcenter.wallboard.views import ACTIONS, act_on, agent_rows, day_and_queue, merged_queues


def ok(data: Any) -> web.Response:
    return web.json_response(data, headers={"Cache-Control": "no-store"})


async def board(request: web.Request) -> web.Response:
    require(request)
    return ok(parts(request).board.snapshot())


async def queues(request: web.Request) -> web.Response:
    require(request)
    return ok({"queues": merged_queues(parts(request).board.snapshot())})


async def agents(request: web.Request) -> web.Response:
    require(request)
    return ok({"agents": agent_rows(parts(request).board.snapshot())})


async def nodes(request: web.Request) -> web.Response:
    require(request)
    b = parts(request).board
    return ok({"nodes": b.node_rows(), "status": b.status()})


async def kpis(request: web.Request) -> web.Response:
    """Today's figures; 503 (``database unavailable``, ``Retry-After``) while the call log
    cannot be read: the last figures would pass for today's, and the cause is the log's."""
    require(request)
    current = parts(request).kpis.current()
    if current.get("error"):
        raise web.HTTPServiceUnavailable(text="database unavailable",
                                         headers={"Retry-After": RETRY_AFTER})  # fmt: skip
    return ok(current)


async def history(request: web.Request) -> web.Response:
    require(request)
    day, queue = day_and_queue(request)
    slots = await parts(request).history.get(day, queue)
    return ok({
        "day": day.isoformat(), "queue": queue,
        "slots": [{"start": s.start.isoformat(), "offered": s.offered, "answered": s.answered,
                   "abandoned": s.abandoned, "service_level": s.service_level}
                  for s in slots],
    })  # fmt: skip


async def act(request: web.Request) -> web.Response:
    visitor = require_actor(request, request.headers.get("X-CSRF-Token", ""))
    body: Any = {}
    if request.can_read_body:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise web.HTTPBadRequest(text=f"the body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="the body must be a JSON object")
    reason = body.get("reason", "")
    if not isinstance(reason, str):
        raise web.HTTPBadRequest(text="reason must be a string")
    action = request.match_info["action"]
    try:
        await act_on(request, action, reason, visitor.principal.name)
    except ControlError as exc:
        raise http_error(exc) from exc
    return ok({"ok": True, "action": action, **request.match_info})


async def openapi(request: web.Request) -> web.Response:
    return ok(document())


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/openapi.json", openapi),
        web.get("/api/v1/board", board),
        web.get("/api/v1/queues", queues),
        web.get("/api/v1/agents", agents),
        web.get("/api/v1/nodes", nodes),
        web.get("/api/v1/kpis", kpis),
        web.get("/api/v1/history", history),
        web.post("/api/v1/agents/{node}/{agent}/{action:" + ACTIONS + "}", act),
    ]
