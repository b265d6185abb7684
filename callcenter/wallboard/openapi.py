"""The OpenAPI 3.1 document of the JSON API, written by hand (it is small, and a generator
would need the handlers to carry schema annotations we do not otherwise want). A test checks
that it names every ``/api`` route of the application, and only those."""

from __future__ import annotations

from typing import Any

from callcenter import __version__


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


NUM = {"type": ["number", "null"]}
INT = {"type": "integer"}
STR = {"type": "string"}
BOOL = {"type": "boolean"}
#: A live count of a queue: null while every node of the queue is down (unknown).
LIVE_INT = {"type": ["integer", "null"]}
STRS = {"type": "array", "items": STR}
RATIO = {"type": ["number", "null"], "minimum": 0, "maximum": 1}

SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "properties": {"error": STR}, "required": ["error"]},
    "QueueRow": {
        "type": "object",
        "description": "A queue summed over nodes: live counts, and today's figures "
        "(definitions of `callcenter report`). Times are epoch seconds. Every configured "
        "queue has a row. Live counts are summed over the nodes that are up; `down` names "
        "the queue's nodes that are down, and with all of them down the row is `unknown` and "
        "its live counts null. In the board's `total`, agents are counted once each (by "
        "their state across queues).",
        "properties": {
            "queue": STR, "display_name": STR, "title": STR, "alias": STR,
            "configured": BOOL, "nodes": STRS, "live": BOOL, "down": STRS, "unknown": BOOL,
            "waiting": LIVE_INT, "longest_wait_since": NUM, "logged_in": LIVE_INT,
            "available": LIVE_INT, "ringing": LIVE_INT, "on_call": LIVE_INT,
            "wrap_up": LIVE_INT, "paused": LIVE_INT, "unavailable": LIVE_INT,
            "offered": INT, "answered": INT, "abandoned": INT, "timed_out": INT, "exited": INT,
            "service_level": RATIO, "service_level_threshold": INT, "asa": NUM, "aht": NUM,
            "abandon_rate": RATIO, "longest_wait": NUM,
            "sl_pending": {"type": "integer", "description": "callers still waiting within "
                           "the SL threshold: not yet in the service level"},
        },
        "required": ["queue", "title", "waiting", "logged_in", "unknown"],
    },
    "AgentRow": {
        "type": "object",
        "description": "Every configured agent (logged out: one row, on the node they were "
        "last seen on, else the first configured node), and any other the bridge reports "
        "logged in. `state` is `unknown` while the agent's node is down (`last_state` is "
        "what the bridge last said).",
        "properties": {
            "key": STR, "node": STR, "agent": STR, "full_name": STR, "title": STR,
            "alias": STR, "configured": BOOL, "enabled": BOOL, "interface": STR,
            "state": {"enum": ["available", "ringing", "on_call", "wrap_up", "paused",
                               "unavailable", "logged_out", "unknown"]},
            "last_state": STR, "reason": STR, "since": NUM, "caller": STR,
            "call_queue": STR, "queues": STRS, "calls": INT,
        },
        "required": ["key", "node", "agent", "title", "state", "since"],
    },
    "NodeRow": {
        "type": "object",
        "description": "`down`: what the board holds of the node is unknown (the bridge "
        "lost that Asterisk, or the bridge is offline).",
        "properties": {"node": STR, "known": BOOL, "connected": BOOL, "down": BOOL,
                       "detail": STR, "since": NUM},
    },
    "Status": {
        "type": "object",
        "properties": {"bridge_online": {"type": ["boolean", "null"]},
                       "feed": {"type": "boolean"}},
    },
    "CampaignRow": {
        "type": "object",
        "description": "An outbound campaign, from the dialer's snapshot (docs/events.md, "
        "`campaign`): the calls in flight now, the campaign queue's agents, today's attempts "
        "and live answers, the abandon rate over the rolling window (`window_days`) and the "
        "life against the cap (`*_level`: `alert` at or above the cap, `warn` above the "
        "target, `ok` at or below it, empty with no live answer yet), the abandons still "
        "allowed (`budget_left`, never below 0) and the contacts left. `at`: when the dialer "
        "published it.",
        "properties": {
            "campaign": STR, "title": STR,
            "mode": {"enum": ["preview", "progressive", "predictive", "agentless"]},
            "state": {"enum": ["stopped", "running", "paused"]}, "queue": STR,
            "paced": {"enum": ["progressive", "predictive", "preview", "agentless", "idle"]},
            "reason": STR, "dialling": INT, "ringing": INT, "waiting": INT, "connected": INT,
            "messages": INT, "agents_logged_in": INT, "agents_free": INT, "agents_busy": INT,
            "agents_wrap_up": INT, "agents_paused": INT, "attempts_today": INT,
            "live_today": INT, "connected_today": INT, "abandoned_today": INT,
            "window_days": INT, "window_live": INT, "window_abandoned": INT,
            "window_rate": RATIO, "window_level": {"enum": ["", "ok", "warn", "alert"]},
            "life_live": INT, "life_abandoned": INT, "life_rate": RATIO,
            "life_level": {"enum": ["", "ok", "warn", "alert"]},
            "cap": {"type": "number"}, "target": {"type": "number"}, "budget_left": INT,
            "contacts_left": INT, "dialer": STR, "at": {"type": "number"},
        },
        "required": ["campaign", "state", "window_rate", "cap", "budget_left"],
    },
    "Kpis": {
        "type": "object",
        "description": "Today's figures from the call log, from midnight in the site's time "
        "zone until `until`; `error` when the call log could not be read (the figures are then "
        "the last ones computed).",
        "properties": {
            "day": STR, "since": STR, "until": STR, "computed_at": NUM,
            "error": {"type": ["string", "null"]},
            "rules": {"type": "object"},
            "queues": {"type": "object", "additionalProperties": {"type": "object"}},
            "total": {"type": "object", "description": "All queues together (each visit "
                      "judged by its own queue's SL threshold)"},
            "agents": {"type": "object", "additionalProperties": {"type": "object"}},
        },
    },
    "Board": {
        "type": "object",
        "properties": {
            "now": {"type": "number"}, "version": INT, "thresholds": {"type": "object"},
            "queues": {"type": "array", "items": _ref("QueueRow")},
            "total": _ref("QueueRow"),
            "agents": {"type": "array", "items": _ref("AgentRow")},
            "nodes": {"type": "array", "items": _ref("NodeRow")},
            "status": _ref("Status"), "kpis": _ref("Kpis"),
            "campaigns": {"type": "array", "items": _ref("CampaignRow")},
        },
    },
    "Slot": {
        "type": "object",
        "properties": {"start": {"type": "string", "format": "date-time"}, "offered": INT,
                       "answered": INT, "abandoned": INT, "service_level": RATIO},
    },
}  # fmt: skip


def _get(summary: str, schema: dict[str, Any], params: list[Any] | None = None) -> Any:
    return {"get": {
        "summary": summary, "parameters": params or [],
        "responses": {
            "200": {"description": "OK", "content": {"application/json": {"schema": schema}}},
            "401": {"description": "No session and no bearer token", "content": {
                "application/json": {"schema": _ref("Error")}}},
        },
    }}  # fmt: skip


def document() -> dict[str, Any]:
    day = {"name": "day", "in": "query", "schema": {"type": "string", "format": "date"},
           "description": "YYYY-MM-DD in the site's time zone; default today"}  # fmt: skip
    queue = {"name": "queue", "in": "query", "schema": STR, "description": "one queue only"}
    path_params = [
        {"name": "node", "in": "path", "required": True, "schema": STR},
        {"name": "agent", "in": "path", "required": True, "schema": STR},
        {"name": "action", "in": "path", "required": True,
         "schema": {"enum": ["pause", "unpause", "logout", "login"]}},
        {"name": "X-CSRF-Token", "in": "header", "required": True, "schema": STR,
         "description": "the session's CSRF token (in the board page's meta csrf-token)"},
    ]  # fmt: skip
    error = {"content": {"application/json": {"schema": _ref("Error")}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "callcenter wallboard", "version": __version__,
                 "description": "Live queue and agent state and today's figures. Reads "
                 "accept a session cookie or `Authorization: Bearer <token>` "
                 "(`callcenter users token add`)."},
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "cc_session"},
            },
        },
        "security": [{"bearer": []}, {"session": []}],
        "paths": {
            "/api/openapi.json": _get("This document", {"type": "object"}),
            "/api/v1/board": _get("The whole board", _ref("Board")),
            "/api/v1/queues": _get("Queues with today's figures", {
                "type": "object", "properties": {
                    "queues": {"type": "array", "items": _ref("QueueRow")}}}),
            "/api/v1/agents": _get("Every configured agent, and any other logged in", {
                "type": "object", "properties": {
                    "agents": {"type": "array", "items": _ref("AgentRow")}}}),
            "/api/v1/nodes": _get("PBX connection state of each node", {
                "type": "object", "properties": {
                    "nodes": {"type": "array", "items": _ref("NodeRow")},
                    "status": _ref("Status")}}),
            "/api/v1/kpis": _get("Today's figures", _ref("Kpis")),
            "/api/v1/history": _get("Calls and service level per 15 minutes of a day", {
                "type": "object", "properties": {
                    "day": STR, "queue": {"type": ["string", "null"]},
                    "slots": {"type": "array", "items": _ref("Slot")}}}, [day, queue]),
            "/api/v1/agents/{node}/{agent}/{action}": {"post": {
                "summary": "Pause (optional JSON body {\"reason\": ...}), unpause, log out or "
                "log in an agent, through AMI. Log in sends one QueueAdd per configured "
                "membership, as the agent's *11 does; the agent shows logged in when the bridge "
                "reports it. A supervisor's session only.",
                "security": [{"session": []}],
                "parameters": path_params,
                "requestBody": {"required": False, "content": {"application/json": {
                    "schema": {"type": "object", "properties": {"reason": STR}}}}},
                "responses": {
                    "200": {"description": "Asterisk accepted the action"},
                    "400": {"description": "Bad JSON or reason", **error},
                    "401": {"description": "Not logged in", **error},
                    "403": {"description": "Read-only session, or CSRF token wrong", **error},
                    "404": {"description": "No such agent logged in (log in: configured), or "
                            "no such node", **error},
                    "409": {"description": "Log in: already logged in, disabled, or in no "
                            "queue", **error},
                    "413": {"description": "Body too large", **error},
                    "502": {"description": "Asterisk refused the action", **error},
                    "503": {"description": "No AMI connection to the node", **error},
                    "504": {"description": "The node did not answer in time", **error},
                },
            }},
        },
    }  # fmt: skip
