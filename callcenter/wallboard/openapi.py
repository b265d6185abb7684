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
#: Today's satisfaction of a queue (callcenter.satisfaction.measures), null with no answer.
SATISFACTION = {
    "csat": {**RATIO, "description": "share of today's CSAT survey answers (1-5) that are 4 "
             "or 5; null when nobody answered"},
    "csat_n": {"type": "integer", "description": "CSAT answers behind `csat`"},
    "nps": {"type": ["number", "null"], "minimum": -100, "maximum": 100,
            "description": "% promoters (9-10) - % detractors (0-6) of today's NPS survey "
            "answers (0-10); null when nobody answered"},
    "nps_n": {"type": "integer", "description": "NPS answers behind `nps`"},
}  # fmt: skip

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
            **SATISFACTION,
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
                       "feed": {"type": "boolean"},
                       "sip_alert": {"type": "string", "description": "The board's warning "
                                     "of a SIP login attack (docs/security-sip.md); absent "
                                     "without one"}},
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
            "queues": {"type": "object", "description": "Per queue: its figures from the "
                       "call log, and its satisfaction (`csat`, `csat_n`, `nps`, `nps_n`: the "
                       "survey answers given today)",
                       "additionalProperties": _ref("QueueKpis")},
            "total": {**_ref("QueueKpis"), "description": "All queues together (each visit "
                      "judged by its own queue's SL threshold; satisfaction over the answers "
                      "that have a queue)"},
            "agents": {"type": "object", "additionalProperties": {"type": "object"}},
        },
    },
    "QueueKpis": {
        "type": "object",
        "description": "A queue's figures of the day (definitions of `callcenter report` and "
        "`callcenter report --satisfaction`).",
        "properties": {
            "offered": INT, "answered": INT, "abandoned": INT, "timed_out": INT, "exited": INT,
            "service_level": RATIO, "service_level_threshold": INT, "asa": NUM, "aht": NUM,
            "abandon_rate": RATIO, "longest_wait": NUM, "sl_pending": INT, **SATISFACTION,
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


# --- the CRM (callcenter.wallboard.crm_api) ----------------------------------------------

TIME = {"type": "string", "format": "date-time"}
TIME_OR_NULL = {"type": ["string", "null"], "format": "date-time"}
STR_OR_NULL = {"type": ["string", "null"]}
INT_OR_NULL = {"type": ["integer", "null"]}
NEXT = {
    "type": ["string", "null"],
    "description": "the `after` of the next page; null on the last page",
}
PRIORITY = {"enum": ["low", "normal", "high", "urgent"]}
CASE_STATUS = {"enum": ["open", "pending", "resolved", "closed"]}
OUTCOME = {"enum": [None, "answered", "abandoned", "timed_out", "exit_key", "exit_empty",
                    "transferred", "ivr_hangup", "callback", "lost"]}  # fmt: skip
FIELD_VALUE = {"type": ["string", "number", "boolean"]}


def _list_of(key: str, item: str) -> dict[str, Any]:
    return {"type": "object", "properties": {key: {"type": "array", "items": _ref(item)},
                                             "next": NEXT},
            "required": [key, "next"]}  # fmt: skip


CRM_SCHEMAS: dict[str, Any] = {
    "Customer": {
        "type": "object",
        "description": "A customer: numbers in E.164 (each a customer's only), free fields.",
        "properties": {
            "id": INT, "name": STR, "phones": STRS, "email": STR, "crm_id": STR_OR_NULL,
            "fields": {"type": "object", "additionalProperties": FIELD_VALUE},
            "created_at": TIME, "updated_at": TIME,
        },
        "required": ["id", "name", "phones", "email", "crm_id", "fields"],
    },
    "PastDisposition": {
        "type": "object",
        "description": "A disposition of a past call; `undocumented`: the mark of a call left "
        "without one past its wrap-up (no code).",
        "properties": {
            "visit": INT, "agent": STR_OR_NULL, "code": STR_OR_NULL,
            "effect": {"enum": [None, "resolves", "follow_up", "callback", "none"]},
            "notes": STR, "case": STR_OR_NULL, "at": TIME, "undocumented": BOOL,
        },
    },
    "PastCall": {
        "type": "object",
        "properties": {
            "node": STR, "uniqueid": STR, "started_at": TIME, "direction": STR,
            "caller_number": STR, "queue": STR_OR_NULL, "agent": STR_OR_NULL,
            "outcome": OUTCOME, "wait_seconds": NUM, "talk_seconds": NUM, "ivr_path": STR,
            "survey_score": INT_OR_NULL,
            "dispositions": {"type": "array", "items": _ref("PastDisposition")},
        },
    },
    "OpenCase": {
        "type": "object",
        "properties": {
            "number": STR, "category": STR, "priority": PRIORITY, "status": CASE_STATUS,
            "owner": STR_OR_NULL, "subject": STR, "due_at": TIME_OR_NULL, "created_at": TIME,
        },
    },
    "CustomerHistory": {
        "type": "object",
        "description": "The customer with their history, as the agent's screen-pop shows "
        "it: past calls from any of their numbers (newest first, with dispositions and "
        "notes), open cases, survey scores.",
        "properties": {
            "customer": _ref("Customer"), "numbers": STRS,
            "calls": {"type": "array", "items": _ref("PastCall")},
            "open_cases": {"type": "array", "items": _ref("OpenCase")},
            "survey_scores": {"type": "array", "items": INT}, "survey_mean": NUM,
        },
        "required": ["customer", "calls", "open_cases"],
    },
    "Case": {
        "type": "object",
        "description": "A case. `calls`: how many calls its timeline has. `resolved_at` is "
        "the last time it was resolved (null again when reopened).",
        "properties": {
            "number": STR, "customer_id": INT, "customer": STR, "category": STR,
            "priority": PRIORITY, "status": CASE_STATUS, "owner": STR_OR_NULL, "subject": STR,
            "due_at": TIME_OR_NULL, "resolution": STR, "created_by": STR, "created_at": TIME,
            "updated_at": TIME, "resolved_at": TIME_OR_NULL, "closed_at": TIME_OR_NULL,
            "calls": INT,
        },
        "required": ["number", "customer_id", "category", "priority", "status"],
    },
    "TimelineEntry": {
        "type": "object",
        "description": "What happened to a case, who did it (`actor`: an agent, a user, "
        "`api:` and a token's name) and when; a call names its `node` and `uniqueid`.",
        "properties": {
            "kind": {"enum": ["created", "call", "disposition", "note", "status", "owner",
                              "priority", "due", "category"]},
            "actor": STR, "at": TIME, "node": STR_OR_NULL, "uniqueid": STR_OR_NULL,
            "data": {"type": "object"},
        },
    },
    "CaseDetail": {
        "type": "object",
        "properties": {"case": _ref("Case"),
                       "timeline": {"type": "array", "items": _ref("TimelineEntry")}},
        "required": ["case", "timeline"],
    },
    "Call": {
        "type": "object",
        "description": "A call of the call log (`calls`: one row per call; its queue columns "
        "describe its last queue visit). Durations in seconds.",
        "properties": {
            "node": STR, "uniqueid": STR, "linkedid": STR,
            "direction": {"enum": ["inbound", "outbound", "internal"]},
            "caller_number": STR, "caller_name": STR, "did": STR, "queue": STR_OR_NULL,
            "agent": STR_OR_NULL, "started_at": TIME, "queued_at": TIME_OR_NULL,
            "answered_at": TIME_OR_NULL, "ended_at": TIME_OR_NULL, "ivr_path": STR,
            "wait_seconds": NUM, "talk_seconds": NUM, "hold_seconds": NUM,
            "wrapup_seconds": NUM, "outcome": OUTCOME, "exit_key": STR_OR_NULL,
            "hangup_cause": INT_OR_NULL, "survey_score": INT_OR_NULL,
        },
        "required": ["node", "uniqueid", "started_at"],
    },
    "QueueVisit": {
        "type": "object",
        "description": "One time the call entered a queue (1, 2... in order).",
        "properties": {
            "visit": INT, "queue": STR, "agent": STR_OR_NULL, "queued_at": TIME_OR_NULL,
            "answered_at": TIME_OR_NULL, "ended_at": TIME_OR_NULL, "wait_seconds": NUM,
            "talk_seconds": NUM, "hold_seconds": NUM, "wrapup_seconds": NUM,
            "ring_attempts": INT, "outcome": OUTCOME, "exit_key": STR_OR_NULL,
            "transfer_target": STR_OR_NULL,
        },
    },
    "Disposition": {
        "type": "object",
        "description": "How a call (one queue visit of it; visit 0: a call without one) ended, "
        "as documented; with `code` null, the mark of a call left undocumented "
        "(`undocumented_at`, kept when it is documented late).",
        "properties": {
            "node": STR, "uniqueid": STR, "visit": INT, "queue": STR_OR_NULL,
            "campaign_id": INT_OR_NULL, "agent": STR_OR_NULL, "code": STR_OR_NULL,
            "effect": {"enum": [None, "resolves", "follow_up", "callback", "none"]},
            "notes": STR, "case": STR_OR_NULL, "at": TIME, "undocumented_at": TIME_OR_NULL,
        },
        "required": ["node", "uniqueid", "visit", "code", "at"],
    },
    "CallDetail": {
        "type": "object",
        "properties": {
            "call": _ref("Call"),
            "visits": {"type": "array", "items": _ref("QueueVisit")},
            "dispositions": {"type": "array", "items": _ref("Disposition")},
        },
        "required": ["call", "visits", "dispositions"],
    },
    "CustomerList": _list_of("customers", "Customer"),
    "CaseList": _list_of("cases", "Case"),
    "CallList": _list_of("calls", "Call"),
    "DispositionList": _list_of("dispositions", "Disposition"),
    "CustomerWrapped": {"type": "object", "properties": {"customer": _ref("Customer")},
                        "required": ["customer"]},
    "DispositionWrapped": {"type": "object", "properties": {"disposition": _ref("Disposition")},
                           "required": ["disposition"]},
    "NewCustomer": {
        "type": "object", "additionalProperties": False,
        "description": "A name or a number at least. Numbers in any form the site's region "
        "reads (stored in E.164); a number that is another customer's, or a CRM id taken: 400.",
        "properties": {
            "name": {"type": "string", "maxLength": 200}, "phones": STRS,
            "email": {"type": "string", "maxLength": 254},
            "crm_id": {"type": ["string", "null"], "maxLength": 100},
            "fields": {"type": "object", "additionalProperties": FIELD_VALUE},
        },
    },
    "CustomerChange": {
        "type": "object", "additionalProperties": False,
        "description": "What is given changes: `phones` replaces the numbers, `fields` is "
        "merged (a field set to null is removed), `crm_id` null clears it.",
        "properties": {
            "name": {"type": "string", "maxLength": 200}, "phones": STRS,
            "email": {"type": "string", "maxLength": 254},
            "crm_id": {"type": ["string", "null"], "maxLength": 100},
            "fields": {"type": "object",
                       "additionalProperties": {"type": ["string", "number", "boolean", "null"]}},
        },
    },
    "NewCase": {
        "type": "object", "additionalProperties": False,
        "description": "`category`: question, request, complaint, incident or one the site "
        "added (`callcenter cases categories`); `owner`: an agent or a wallboard user; "
        "`due_at`: ISO 8601, a date, or +4h, +2d, +1w.",
        "properties": {
            "customer_id": {"type": "integer", "minimum": 1}, "category": STR,
            "priority": PRIORITY, "owner": STR_OR_NULL,
            "subject": {"type": "string", "maxLength": 200}, "due_at": STR_OR_NULL,
            "note": {"type": "string", "maxLength": 10000},
        },
        "required": ["customer_id", "category"],
    },
    "CaseChange": {
        "type": "object", "additionalProperties": False,
        "description": "Each change is an entry of the timeline. Status goes open <-> "
        "pending, either to resolved (with a `resolution`), resolved to closed or back to "
        "open. `owner` null or \"\" takes the owner away; `due_at` null or \"\" clears it.",
        "properties": {
            "status": CASE_STATUS, "owner": STR_OR_NULL, "priority": PRIORITY,
            "due_at": STR_OR_NULL, "category": STR,
            "subject": {"type": "string", "maxLength": 200},
            "note": {"type": "string", "maxLength": 10000},
            "resolution": {"type": "string", "maxLength": 10000},
        },
    },
    "NewDisposition": {
        "type": "object", "additionalProperties": False,
        "description": "A disposition given on behalf of `agent` (credited with it; any agent, "
        "not only the one who answered). `code`: one of the codes of the call's queue or "
        "campaign. `visit`: the queue visit (default: the latest one the agent answered, else "
        "the latest). `queue` or `campaign`: for a call the call log does not have yet. "
        "`case`: a case number (C-000123) whose timeline gets the call. Saving again "
        "replaces the disposition of that visit.",
        "properties": {
            "agent": STR, "code": STR, "notes": {"type": "string", "maxLength": 10000},
            "case": STR_OR_NULL, "visit": {"type": ["integer", "null"], "minimum": 0,
                                           "maximum": 32767},
            "queue": STR_OR_NULL, "campaign": STR_OR_NULL,
        },
        "required": ["agent", "code"],
    },
}  # fmt: skip
SCHEMAS.update(CRM_SCHEMAS)


#: What a board read may answer besides 200 and 401: an agent's session is refused (403).
_BOARD_403 = "An agent's session (it reaches the agent's desktop only)"
#: The database away (a read that queries it): 503 with Retry-After, no detail.
_DB_503 = ("The database is unavailable (`{\"error\": \"database unavailable\"}`, nothing "
           "more); retry after `Retry-After` seconds")  # fmt: skip


def _get(summary: str, schema: dict[str, Any], params: list[Any] | None = None,
         errors: dict[str, str] | None = None) -> Any:  # fmt: skip
    error = {"content": {"application/json": {"schema": _ref("Error")}}}
    responses: dict[str, Any] = {
        "200": {"description": "OK", "content": {"application/json": {"schema": schema}}},
        "401": {"description": "No session and no bearer token", **error},
        "403": {"description": _BOARD_403, **error},
    }
    for code, text in (errors or {}).items():
        responses[code] = {"description": text, **error}
        if code == "503":
            responses[code]["headers"] = {"Retry-After": {"schema": {"type": "integer"},
                                          "description": "seconds"}}  # fmt: skip
    return {"get": {"summary": summary, "parameters": params or [], "responses": responses}}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _q(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": schema or STR, "description": description}


def _path(name: str, description: str = "") -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": STR,
            "description": description}  # fmt: skip


#: The errors every CRM operation may answer, and those of each kind of operation.
_ERRORS = {
    "400": "Bad input: a parameter or field, an unknown parameter or field, or what the "
    "store refuses (one line)",
    "401": "No session and no bearer token, or a token unknown, revoked or expired",
    "403": "A TV token, an agent's session, a read-only API token writing, or a session "
    "writing without its CSRF token",
    "503": "The database is unavailable",
}
_WRITE_ERRORS = {
    "409": "A change lost a race with another (a number or a CRM id taken meanwhile): retry",
    "413": "The body is too large",
}
_CSRF = {"name": "X-CSRF-Token", "in": "header", "required": False, "schema": STR,
         "description": "a session's CSRF token (the board page's meta csrf-token); needed "
         "with a session, not with a bearer token"}  # fmt: skip


def _op(summary: str, ok: dict[str, Any], params: list[Any], *, status: str = "200",
        body: str | None = None, not_found: str | None = None) -> dict[str, Any]:  # fmt: skip
    error = _json(_ref("Error"))
    responses: dict[str, Any] = {status: {"description": "OK", **_json(ok)}}
    for code, text in _ERRORS.items():
        responses[code] = {"description": text, **error}
    if not_found:
        responses["404"] = {"description": not_found, **error}
    op: dict[str, Any] = {"summary": summary, "parameters": params, "responses": responses}
    if body is not None:
        op["parameters"] = [*params, _CSRF]
        op["requestBody"] = {"required": True, **_json(_ref(body))}
        for code, text in _WRITE_ERRORS.items():
            responses[code] = {"description": text, **error}
        if status == "201":
            responses[status]["headers"] = {"Location": {"schema": STR}}
    return op


def crm_paths() -> dict[str, Any]:
    """The CRM's REST API: reads with a supervisor's session or any API token; writes with
    a write token or a session and its CSRF token (:mod:`callcenter.wallboard.crm_api`)."""
    limit = _q("limit", "rows per page, 1 to 500 (default 50)",
               {"type": "integer", "minimum": 1, "maximum": 500})  # fmt: skip
    after = _q("after", "the `next` of the previous page")
    since = _q("since", "from this time on (ISO 8601; without offset: the site's time zone; "
               "also a date, today, -2h, -7d)")  # fmt: skip
    until = _q("until", "before this time (as since)")
    queue = _q("queue", "one queue")
    agent = _q("agent", "one agent")
    cust_id = {**_path("id", "the customer's id"), "schema": {"type": "integer", "minimum": 1}}
    number = _path("number", "the case number, C-000123 (or 123)")
    node, uniqueid = _path("node", "the Asterisk node"), _path("uniqueid", "the call's uniqueid")
    no_customer = "No customer with that id"
    no_case = "No case with that number"
    no_call = "No such call in the call log"
    return {
        "/api/v1/customers": {
            "get": _op("Customers by id (oldest first); `search`: part of the name, e-mail "
                       "or CRM id, or a phone number", _ref("CustomerList"), [
                           _q("search", "a phone number, or part of a name, e-mail or CRM id"),
                           _q("phone", "a phone number (any form the site's region reads)"),
                           _q("crm_id", "the CRM id, exactly"), limit, after]),
            "post": _op("Create a customer", _ref("CustomerWrapped"), [], status="201",
                        body="NewCustomer"),
        },
        "/api/v1/customers/{id}": {
            "get": _op("A customer with their history", _ref("CustomerHistory"), [
                cust_id, _q("calls", "how many past calls (0 to 500, default 20)",
                            {"type": "integer", "minimum": 0, "maximum": 500})],
                not_found=no_customer),
            "patch": _op("Change a customer", _ref("CustomerWrapped"), [cust_id],
                         body="CustomerChange", not_found=no_customer),
        },
        "/api/v1/cases": {
            "get": _op("Cases, newest first", _ref("CaseList"), [
                {**_q("status", "open, pending, resolved or closed (repeat, or separate "
                      "with commas, for several)"), "explode": True},
                _q("owner", "the owner's name"),
                _q("customer", "the customer's id", {"type": "integer", "minimum": 1}),
                limit, after]),
            "post": _op("Open a case for a customer", _ref("CaseDetail"), [], status="201",
                        body="NewCase"),
        },
        "/api/v1/cases/{number}": {
            "get": _op("A case with its timeline", _ref("CaseDetail"), [number],
                       not_found=no_case),
            "patch": _op("Change a case: status, owner, priority, due time, category, "
                         "subject, a note, the resolution", _ref("CaseDetail"), [number],
                         body="CaseChange", not_found=no_case),
        },
        "/api/v1/calls": {
            "get": _op("Calls of the call log, newest first", _ref("CallList"), [
                since, until, queue, agent,
                _q("caller", "the caller's number (every form it takes in the call log)"),
                _q("direction", "inbound, outbound or internal",
                   {"enum": ["inbound", "outbound", "internal"]}),
                limit, after]),
        },
        "/api/v1/calls/{node}/{uniqueid}": {
            "get": _op("A call, its queue visits and its dispositions", _ref("CallDetail"),
                       [node, uniqueid], not_found=no_call),
        },
        "/api/v1/calls/{node}/{uniqueid}/dispositions": {
            "post": _op("Document a call on behalf of an agent", _ref("DispositionWrapped"),
                        [node, uniqueid], status="201", body="NewDisposition",
                        not_found=no_call + " (and no queue or campaign given)"),
        },
        "/api/v1/dispositions": {
            "get": _op("Dispositions (and undocumented marks), newest first",
                       _ref("DispositionList"), [
                           since, until, queue, agent, _q("code", "one disposition code"),
                           limit, after]),
        },
    }  # fmt: skip


def document() -> dict[str, Any]:
    day = {"name": "day", "in": "query", "schema": {"type": "string", "format": "date"},
           "description": "YYYY-MM-DD in the site's time zone, 2000-01-01 to today; left "
           "out: today (an empty `day=` is refused: 400)"}  # fmt: skip
    queue = {"name": "queue", "in": "query", "schema": STR,
             "description": "one queue (a-z, 0-9, _ or -); left out or empty: all"}  # fmt: skip
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
                 "description": "Live queue and agent state and today's figures, and the "
                 "CRM's customers, cases, calls and dispositions. The board's reads accept a "
                 "session cookie or `Authorization: Bearer <token>` (a TV token, `callcenter "
                 "users token add`, or an API token, `callcenter tokens add`). The CRM's "
                 "reads need a supervisor's session or an API token (a TV token is refused: "
                 "personal data); its writes an API token of scope write, or a supervisor's "
                 "session with its CSRF token in `X-CSRF-Token`. Unknown query parameters "
                 "and body fields are refused (400). Lists are paged by `limit` and `after` "
                 "(the previous page's `next`)."},
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
            "/api/v1/kpis": _get("Today's figures", _ref("Kpis"), errors={
                "503": "The call log cannot be read now: " + _DB_503}),
            "/api/v1/history": _get("Calls and service level per 15 minutes of a day", {
                "type": "object", "properties": {
                    "day": STR, "queue": {"type": ["string", "null"]},
                    "slots": {"type": "array", "items": _ref("Slot")}}}, [day, queue],
                errors={"400": "`day` not a date from 2000-01-01 to today (or empty), or "
                        "`queue` not a queue name", "503": _DB_503}),
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
            **crm_paths(),
        },
    }  # fmt: skip
