"""The CRM's REST API (issue 14): customers, cases, calls and dispositions under
``/api/v1``, described in ``/api/openapi.json`` (:mod:`callcenter.wallboard.openapi`).

Who may do what (:func:`~callcenter.wallboard.context.require_scope`): reads need a
supervisor's or an administrator's session or an API token (``callcenter tokens add``);
writes a token of scope ``write``, or such a session with its CSRF token in the
``X-CSRF-Token`` header. A screen's TV token and an agent's session are refused (403): the
customers' records are personal data.

Conventions, as the rest of the JSON API: errors are ``{"error": "one line"}`` with 400 (bad
input, whatever the store refuses), 401, 403, 404 (an unknown id, case number or call), 409
(a write that lost a race with another: retry) and 413 (a body over the application's
``client_max_size``). Times are ISO 8601 in UTC; times given without an offset are in the
site's time zone. Bodies are JSON objects; a field or a query parameter this API does not
know is refused (400), so that a typo never silently widens a query or drops a change.

Lists are newest first (customers: by id, oldest first) and paged by keyset: ``limit`` (1 to
500, default 50) and ``after``, the opaque ``next`` of the previous page (null on the last
page). A page costs the same however deep it is.

The stores of :mod:`callcenter.crm` do the checking and the writing, in a thread, one
transaction per request; a change they make sends the webhooks it sends from the CLI and the
agent's desktop (in the same transaction).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import logging
import math
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NoReturn, TypeVar

import sqlalchemy as sa
from aiohttp import web
from sqlalchemy import or_, select, tuple_
from sqlalchemy.orm import Session, selectinload

from callcenter import logsafe, names, timespec
from callcenter.campaigns.numbers import Normaliser, NumberError
from callcenter.crm import CrmError, documentation
from callcenter.crm import cases as case_store
from callcenter.crm import customers as customer_store
from callcenter.db.models import Agent, Call, QueueVisit
from callcenter.db.models_crm import CASE_STATUSES, CallDisposition, Case, Customer, CustomerPhone
from callcenter.directory import DirectoryError
from callcenter.wallboard.auth import Visitor
from callcenter.wallboard.context import parts, require_scope

log = logging.getLogger(__name__)
UTC = dt.UTC
T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
#: Past calls in a customer's history by default, and at most.
HISTORY_CALLS = customer_store.HISTORY_CALLS
MAX_HISTORY_CALLS = 500
MAX_ID = 2**63 - 1
MAX_VISIT = 32767
#: Who did it, on a case's timeline (the column's width).
ACTOR_MAX = 64
CURSOR_MAX = 300
#: More numbers than this in a body is not a customer's list (the store keeps at most
#: ``PHONES_MAX`` after removing repeats): refused before any is parsed.
MAX_PHONES_GIVEN = 100


# --- answers and errors --------------------------------------------------------------------


def bad(message: str) -> NoReturn:
    raise web.HTTPBadRequest(text=message)


def not_found(message: str) -> NoReturn:
    raise web.HTTPNotFound(text=message)


def plain(value: Any) -> Any:
    """JSON's types only: times as ISO 8601 in UTC."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dt.datetime):
        return value.astimezone(UTC).isoformat() if value.tzinfo else value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def ok(data: dict[str, Any], status: int = 200, location: str | None = None) -> web.Response:
    headers = {"Cache-Control": "no-store"}
    if location is not None:
        headers["Location"] = location
    return web.json_response(plain(data), status=status, headers=headers)


def one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def shown(text: str, most: int = 60) -> str:
    """User input inside a message: quoted, escaped, short."""
    return repr(text if len(text) <= most else text[:most] + "...")


def clean(label: str, text: str) -> str:
    """``text`` if PostgreSQL can store and compare it: no NUL, no lone surrogate."""
    if "\x00" in text:
        bad(f"{label} holds a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        bad(f"{label} is not valid Unicode text")
    return text


async def in_session(request: web.Request, work: Callable[[Session], T]) -> T:
    """``work`` in a thread, in one transaction (committed when it returns). The stores'
    refusals are 400; a write that lost a race (a unique key taken meanwhile) is 409."""
    engine = parts(request).engine

    def run() -> T:
        with Session(engine, expire_on_commit=False) as session, session.begin():
            return work(session)

    try:
        return await asyncio.to_thread(run)
    except (CrmError, DirectoryError, NumberError) as exc:
        raise web.HTTPBadRequest(text=one_line(exc)) from None
    except sa.exc.IntegrityError as exc:
        log.info("crm api: %s %s conflicts: %s", request.method, logsafe.clean(request.path),
                 logsafe.clean(one_line(exc)))  # fmt: skip
        raise web.HTTPConflict(
            text="the change conflicts with another made meanwhile (a number, a CRM id or a "
            "disposition taken): read again and retry"
        ) from None
    except sa.exc.DataError as exc:
        log.info("crm api: %s %s: bad value: %s", request.method, logsafe.clean(request.path),
                 logsafe.clean(one_line(exc)))  # fmt: skip
        raise web.HTTPBadRequest(text="a value is out of range or malformed") from None
    # The database away (OperationalError, InterfaceError) goes on to the app's middleware:
    # 503 "database unavailable" with Retry-After, one log line per kind a minute.


def numbers_of(request: web.Request) -> Normaliser:
    return Normaliser(parts(request).settings.site.region)


def actor_of(visitor: Visitor) -> str:
    """Who did it, on a case's timeline: the user, or ``api:`` and the token's name."""
    principal = visitor.principal
    name = f"api:{principal.name}" if principal.kind == "api" else principal.name
    return name[:ACTOR_MAX]


# --- query parameters ------------------------------------------------------------------------


def query(request: web.Request, known: Iterable[str], repeated: Iterable[str] = ()) -> None:
    """Refuse parameters this endpoint does not know, and those given twice."""
    allowed, many = set(known), set(repeated)
    for key in set(request.query.keys()):
        if key not in allowed:
            listed = ", ".join(sorted(allowed)) or "none"
            bad(f"unknown query parameter {shown(key)} (this endpoint takes: {listed})")
        if key not in many and len(request.query.getall(key)) > 1:
            bad(f"query parameter {key} is given more than once")
        for value in request.query.getall(key):
            clean(key, value)


def param(request: web.Request, name: str) -> str | None:
    """The parameter's value, stripped; None when absent or empty."""
    value = request.query.get(name, "").strip()
    return value or None


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 19


def int_param(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    """A whole number in [lo, hi]; ``default`` when left out. ASCII digits only, as the
    document's integer type says: empty (``limit=``), padded (`` 5``) or other scripts'
    digits (``٣``) are refused, not read as the default or a number."""
    text = request.query.get(name)
    if text is None:
        return default
    if not _digits(text) or not lo <= int(text) <= hi:
        bad(f"{name} must be a whole number from {lo} to {hi}, not {shown(text)}")
    return int(text)


def id_param(request: web.Request, name: str) -> int | None:
    text = request.query.get(name)
    if text is None:
        return None
    if not _digits(text) or not 1 <= int(text) <= MAX_ID:
        bad(f"{name} must be an id (a whole number from 1), not {shown(text)}")
    return int(text)


def read_time(label: str, text: str, tz: Any) -> dt.datetime:
    # A "+" sent unencoded in a query string arrives as a space: 10:00:00 02:00.
    text = re.sub(r"(T[\d:.]+) (\d{2}(?::?\d{2})?)$", r"\1+\2", text.strip())
    try:
        return timespec.parse_time(text, tz)
    except timespec.TimeSpecError as exc:
        bad(f"{label}: {one_line(exc)}")
    except (OverflowError, ValueError):
        bad(f"{label} {shown(text)} is out of range")


def time_param(request: web.Request, name: str) -> dt.datetime | None:
    text = param(request, name)
    if text is None:
        return None
    return read_time(name, text, parts(request).settings.site.tz)


def limit_param(request: web.Request) -> int:
    return int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)


# --- cursors ---------------------------------------------------------------------------------


def make_cursor(kind: str, *values: Any) -> str:
    raw = json.dumps([kind, *plain(list(values))], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def cursor_param(request: web.Request, kind: str, shape: Sequence[str]) -> list[Any] | None:
    """The values ``after`` holds: ``shape`` names each one's kind (``id``, ``time``)."""
    text = param(request, "after")
    if text is None:
        return None
    wrong = f"after {shown(text, 30)} is not a cursor of this list (give a page's next)"
    if len(text) > CURSOR_MAX:
        bad(wrong)
    try:
        data = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, RecursionError):
        bad(wrong)
    if not isinstance(data, list) or len(data) != len(shape) + 1 or data[0] != kind:
        bad(wrong)
    out: list[Any] = []
    for value, what in zip(data[1:], shape, strict=True):
        if what == "id":
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_ID:
                bad(wrong)
            out.append(value)
        else:
            try:
                when = dt.datetime.fromisoformat(value) if isinstance(value, str) else None
            except ValueError:
                when = None
            if when is None or when.tzinfo is None:
                bad(wrong)
            out.append(when)
    return out


def page(rows: list[T], limit: int, cursor: Callable[[T], str]) -> tuple[list[T], str | None]:
    """The first ``limit`` of ``rows`` (read with one more) and the next page's cursor."""
    if len(rows) > limit:
        rows = rows[:limit]
        return rows, cursor(rows[-1])
    return rows, None


# --- bodies ----------------------------------------------------------------------------------


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


async def json_body(request: web.Request, known: Sequence[str]) -> dict[str, Any]:
    """The body: a JSON object of ``known`` fields only, every string storable."""
    raw = await request.read()  # over client_max_size: 413
    try:
        body = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError:
        bad("the body is not UTF-8 text")
    except RecursionError:
        bad("the body is nested too deeply")
    except ValueError as exc:
        bad(f"the body is not JSON: {one_line(exc)}")
    if not isinstance(body, dict):
        bad("the body must be a JSON object")
    for key in body:
        if key not in known:
            bad(f"unknown field {shown(key)} (known: {', '.join(known)})")
    stack: list[tuple[str, Any]] = list(body.items())
    while stack:
        where, value = stack.pop()
        if isinstance(value, str):
            clean(where, value)
        elif isinstance(value, float) and not math.isfinite(value):
            bad(f"{where} is not a finite number")
        elif isinstance(value, dict):
            for k, v in value.items():
                stack.append((where, clean(where, k)))
                stack.append((f"{where}.{k}"[:80], v))
        elif isinstance(value, list):
            stack.extend((where, v) for v in value)
    return body


def text_field(body: dict[str, Any], key: str, *, nullable: bool = False) -> str | None:
    """A string field; None when absent (or null, where ``nullable``)."""
    value = body.get(key)
    if value is None and (key not in body or nullable):
        return None
    if not isinstance(value, str):
        bad(f"{key} must be a string" + (" or null" if nullable else ""))
    return value


def int_field(body: dict[str, Any], key: str, lo: int, hi: int) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        bad(f"{key} must be a whole number from {lo} to {hi}")
    return value


def phones_field(body: dict[str, Any]) -> list[str] | None:
    value = body.get("phones")
    if value is None and "phones" not in body:
        return None
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        bad("phones must be a list of strings")
    if len(value) > MAX_PHONES_GIVEN:
        bad(f"phones: at most {customer_store.PHONES_MAX} numbers (a list of {len(value)})")
    return list(value)


def fields_field(body: dict[str, Any], *, removable: bool) -> dict[str, Any] | None:
    """Free fields: strings, numbers or booleans (null removes one in a change)."""
    value = body.get("fields")
    if value is None and "fields" not in body:
        return None
    if not isinstance(value, dict):
        bad("fields must be an object")
    for key, item in value.items():
        scalar = isinstance(item, str | int | float | bool) or (item is None and removable)
        if not scalar:
            also = " (or null, to remove it)" if removable else ""
            bad(f"field {shown(key)} must be a string, a number or a boolean{also}")
    return {k: v for k, v in value.items() if v is not None or removable}


def due_field(request: web.Request, body: dict[str, Any]) -> tuple[dt.datetime | None, bool]:
    """``due_at``: the time, and whether it is cleared (null or "")."""
    if "due_at" not in body:
        return None, False
    text = text_field(body, "due_at", nullable=True)
    if text is None or not text.strip():
        return None, True
    tz = parts(request).settings.site.tz
    try:
        return case_store.parse_due(text, tz, dt.datetime.now(UTC)), False
    except CrmError as exc:
        bad(one_line(exc))
    except (OverflowError, ValueError):
        bad(f"due_at {shown(text)} is out of range")


# --- views -----------------------------------------------------------------------------------


def call_view(c: Call) -> dict[str, Any]:
    return {
        "node": c.node, "uniqueid": c.uniqueid, "linkedid": c.linkedid,
        "direction": c.direction, "caller_number": c.caller_number,
        "caller_name": c.caller_name, "did": c.did, "queue": c.queue, "agent": c.agent,
        "started_at": c.started_at, "queued_at": c.queued_at, "answered_at": c.answered_at,
        "ended_at": c.ended_at, "ivr_path": c.ivr_path, "wait_seconds": c.wait_seconds,
        "talk_seconds": c.talk_seconds, "hold_seconds": c.hold_seconds,
        "wrapup_seconds": c.wrapup_seconds, "outcome": c.outcome, "exit_key": c.exit_key,
        "hangup_cause": c.hangup_cause, "survey_score": c.survey_score,
    }  # fmt: skip


def visit_view(v: QueueVisit) -> dict[str, Any]:
    return {
        "visit": v.visit, "queue": v.queue, "agent": v.agent, "queued_at": v.queued_at,
        "answered_at": v.answered_at, "ended_at": v.ended_at, "wait_seconds": v.wait_seconds,
        "talk_seconds": v.talk_seconds, "hold_seconds": v.hold_seconds,
        "wrapup_seconds": v.wrapup_seconds, "ring_attempts": v.ring_attempts,
        "outcome": v.outcome, "exit_key": v.exit_key, "transfer_target": v.transfer_target,
    }  # fmt: skip


def case_detail(session: Session, case: Case) -> dict[str, Any]:
    customer = session.get(Customer, case.customer_id)
    calls = case_store.calls_of(session, [case.id]).get(case.id, 0)
    return {
        "case": case_store.case_view(case, customer, calls),
        "timeline": case_store.timeline(session, case),
    }


def find_case(session: Session, number: str, *, lock: bool = False) -> Case:
    try:
        return case_store.get_case(session, number, lock=lock)
    except CrmError:
        not_found(f"no case {shown(number, 30)}")


def find_customer(session: Session, text: str) -> Customer:
    if not text.isdecimal() or len(text) > 19 or not 1 <= int(text) <= MAX_ID:
        not_found(f"no customer with id {shown(text, 30)}")
    customer = session.get(Customer, int(text), options=[selectinload(Customer.phones)])
    if customer is None:
        not_found(f"no customer with id {text}")
    return customer


# --- customers -------------------------------------------------------------------------------

CUSTOMER_FIELDS = ("name", "phones", "email", "crm_id", "fields")


async def customers(request: web.Request) -> web.Response:
    require_scope(request, "read")
    query(request, ("search", "phone", "crm_id", "limit", "after"))
    limit = limit_param(request)
    after = cursor_param(request, "customers", ["id"])
    search, phone = param(request, "search"), param(request, "phone")
    crm_id = param(request, "crm_id")
    numbers = numbers_of(request)
    e164 = None
    if phone is not None:
        try:
            e164 = numbers.e164(phone)
        except NumberError as exc:
            bad(f"phone: {one_line(exc)}")

    def read(s: Session) -> tuple[list[dict[str, Any]], str | None]:
        q = select(Customer).options(selectinload(Customer.phones))
        if search is not None:
            like = "%" + re.sub(r"([\\%_])", r"\\\1", search) + "%"
            conditions: list[Any] = [
                Customer.name.ilike(like, escape="\\"),
                Customer.email.ilike(like, escape="\\"),
                Customer.crm_id.ilike(like, escape="\\"),
            ]
            try:
                found = numbers.e164(search) if re.search(r"\d{3}", search) else None
            except NumberError:
                found = None
            if found is not None:
                conditions.append(
                    Customer.id.in_(
                        select(CustomerPhone.customer_id).where(CustomerPhone.phone == found)
                    )
                )
            q = q.where(or_(*conditions))
        if e164 is not None:
            owners = select(CustomerPhone.customer_id).where(CustomerPhone.phone == e164)
            q = q.where(Customer.id.in_(owners))
        if crm_id is not None:
            q = q.where(Customer.crm_id == crm_id)
        if after is not None:
            q = q.where(Customer.id > after[0])
        rows = list(s.scalars(q.order_by(Customer.id).limit(limit + 1)))
        kept, nxt = page(rows, limit, lambda c: make_cursor("customers", c.id))
        return [customer_store.customer_view(c) for c in kept], nxt

    found, nxt = await in_session(request, read)
    return ok({"customers": found, "next": nxt})


async def customer(request: web.Request) -> web.Response:
    require_scope(request, "read")
    query(request, ("calls",))
    limit = int_param(request, "calls", HISTORY_CALLS, 0, MAX_HISTORY_CALLS)
    ident = request.match_info["id"]

    def read(s: Session) -> dict[str, Any]:
        found = find_customer(s, ident)
        history: dict[str, Any] = customer_store.customer_history(s, found, limit=limit).as_dict()
        return history

    return ok(await in_session(request, read))


async def customer_create(request: web.Request) -> web.Response:
    require_scope(request, "write")
    query(request, ())
    body = await json_body(request, CUSTOMER_FIELDS)
    name = text_field(body, "name") or ""
    email = text_field(body, "email") or ""
    crm_id = text_field(body, "crm_id", nullable=True)
    phones = phones_field(body) or []
    fields = fields_field(body, removable=False)
    numbers = numbers_of(request)

    def write(s: Session) -> dict[str, Any]:
        c = customer_store.create_customer(
            s, numbers, name=name, phones=phones, email=email, crm_id=crm_id, fields=fields
        )
        return customer_store.customer_view(c)

    view = await in_session(request, write)
    return ok({"customer": view}, 201, f"/api/v1/customers/{view['id']}")


async def customer_update(request: web.Request) -> web.Response:
    require_scope(request, "write")
    query(request, ())
    body = await json_body(request, CUSTOMER_FIELDS)
    name = text_field(body, "name")
    email = text_field(body, "email")
    crm_id = text_field(body, "crm_id", nullable=True)
    if "crm_id" in body and crm_id is None:
        crm_id = ""  # null clears it
    phones = phones_field(body)
    fields = fields_field(body, removable=True)
    numbers = numbers_of(request)
    ident = request.match_info["id"]

    def write(s: Session) -> dict[str, Any]:
        found = find_customer(s, ident)
        c = customer_store.update_customer(
            s, numbers, found.id, name=name, phones=phones, email=email, crm_id=crm_id,
            fields=fields,
        )  # fmt: skip
        return customer_store.customer_view(c)

    return ok({"customer": await in_session(request, write)})


# --- cases -----------------------------------------------------------------------------------

CASE_NEW_FIELDS = ("customer_id", "category", "priority", "owner", "subject", "due_at", "note")
CASE_CHANGE_FIELDS = (
    "status", "owner", "priority", "due_at", "category", "subject", "note", "resolution",
)  # fmt: skip


async def cases(request: web.Request) -> web.Response:
    require_scope(request, "read")
    query(request, ("status", "owner", "customer", "limit", "after"), repeated=("status",))
    limit = limit_param(request)
    after = cursor_param(request, "cases", ["time", "id"])
    statuses = sorted(
        {s.strip() for v in request.query.getall("status", []) for s in v.split(",") if s.strip()}
    )
    for status in statuses:
        if status not in CASE_STATUSES:
            bad(f"status {shown(status)} is not one of {', '.join(CASE_STATUSES)}")
    owner = param(request, "owner")
    customer_id = id_param(request, "customer")

    def read(s: Session) -> tuple[list[dict[str, Any]], str | None]:
        q = select(Case, Customer).join(Customer, Customer.id == Case.customer_id)
        if statuses:
            q = q.where(Case.status.in_(statuses))
        if owner is not None:
            q = q.where(Case.owner == names.normalize(owner))
        if customer_id is not None:
            q = q.where(Case.customer_id == customer_id)
        if after is not None:
            q = q.where(
                Case.created_at <= after[0],
                tuple_(Case.created_at, Case.id) < tuple_(after[0], after[1]),
            )
        q = q.order_by(Case.created_at.desc(), Case.id.desc()).limit(limit + 1)
        rows = [(c, k) for c, k in s.execute(q)]
        kept, nxt = page(rows, limit, lambda r: make_cursor("cases", r[0].created_at, r[0].id))
        calls = case_store.calls_of(s, [c.id for c, _ in kept])
        return [case_store.case_view(c, k, calls.get(c.id, 0)) for c, k in kept], nxt

    found, nxt = await in_session(request, read)
    return ok({"cases": found, "next": nxt})


async def case(request: web.Request) -> web.Response:
    require_scope(request, "read")
    query(request, ())
    number = clean("the case number", request.match_info["number"])

    def read(s: Session) -> dict[str, Any]:
        return case_detail(s, find_case(s, number))

    return ok(await in_session(request, read))


async def case_create(request: web.Request) -> web.Response:
    visitor = require_scope(request, "write")
    query(request, ())
    body = await json_body(request, CASE_NEW_FIELDS)
    customer_id = int_field(body, "customer_id", 1, MAX_ID)
    if customer_id is None:
        bad("customer_id is required: a case is a customer's")
    category = text_field(body, "category")
    if category is None:
        bad("category is required")
    priority = text_field(body, "priority") or "normal"
    owner = text_field(body, "owner", nullable=True)
    subject = text_field(body, "subject") or ""
    note = text_field(body, "note") or ""
    due_at, _ = due_field(request, body)
    actor = actor_of(visitor)
    now = dt.datetime.now(UTC)

    def write(s: Session) -> dict[str, Any]:
        c = case_store.create_case(
            s, customer_id=customer_id, category=category, actor=actor, now=now,
            priority=priority, owner=owner or None, subject=subject, due_at=due_at, note=note,
        )  # fmt: skip
        return case_detail(s, c)

    view = await in_session(request, write)
    return ok(view, 201, f"/api/v1/cases/{view['case']['number']}")


async def case_update(request: web.Request) -> web.Response:
    visitor = require_scope(request, "write")
    query(request, ())
    body = await json_body(request, CASE_CHANGE_FIELDS)
    status = text_field(body, "status")
    owner = text_field(body, "owner", nullable=True)
    if "owner" in body and owner is None:
        owner = ""  # null takes the owner away
    priority = text_field(body, "priority")
    category = text_field(body, "category")
    subject = text_field(body, "subject")
    note = text_field(body, "note")
    resolution = text_field(body, "resolution")
    due_at, clear_due = due_field(request, body)
    actor = actor_of(visitor)
    now = dt.datetime.now(UTC)
    number = clean("the case number", request.match_info["number"])

    def write(s: Session) -> dict[str, Any]:
        found = find_case(s, number, lock=True)
        c = case_store.update_case(
            s, found.number, actor=actor, now=now, status=status, owner=owner,
            priority=priority, due_at=due_at, clear_due=clear_due, category=category,
            subject=subject, note=note or None, resolution=resolution,
        )  # fmt: skip
        return case_detail(s, c)

    return ok(await in_session(request, write))


# --- calls -----------------------------------------------------------------------------------


def caller_forms(numbers: Normaliser, caller: str) -> list[str]:
    """The caller IDs a number may have in the call log (every form of a phone number)."""
    try:
        return customer_store.caller_forms(numbers.e164(caller))
    except NumberError:
        return [caller]


async def calls(request: web.Request) -> web.Response:
    require_scope(request, "read")
    query(request, ("since", "until", "queue", "agent", "caller", "direction", "limit", "after"))
    limit = limit_param(request)
    after = cursor_param(request, "calls", ["time", "id"])
    since, until = time_param(request, "since"), time_param(request, "until")
    queue, agent = param(request, "queue"), param(request, "agent")
    direction = request.query.get("direction")  # an enum: exactly, not stripped nor empty
    if direction is not None and direction not in ("inbound", "outbound", "internal"):
        bad(f"direction {shown(direction)} is not one of inbound, outbound, internal")
    caller = param(request, "caller")
    forms = caller_forms(numbers_of(request), caller) if caller is not None else None

    def read(s: Session) -> tuple[list[dict[str, Any]], str | None]:
        q = select(Call)
        if since is not None:
            q = q.where(Call.started_at >= since)
        if until is not None:
            q = q.where(Call.started_at < until)
        if queue is not None:
            q = q.where(Call.queue == queue)
        if agent is not None:
            q = q.where(Call.agent == names.normalize(agent))
        if direction is not None:
            q = q.where(Call.direction == direction)
        if forms is not None:
            q = q.where(Call.caller_number.in_(forms))
        if after is not None:
            q = q.where(
                Call.started_at <= after[0],
                tuple_(Call.started_at, Call.id) < tuple_(after[0], after[1]),
            )
        q = q.order_by(Call.started_at.desc(), Call.id.desc()).limit(limit + 1)
        rows = list(s.scalars(q))
        kept, nxt = page(rows, limit, lambda c: make_cursor("calls", c.started_at, c.id))
        return [call_view(c) for c in kept], nxt

    found, nxt = await in_session(request, read)
    return ok({"calls": found, "next": nxt})


def call_key(request: web.Request) -> tuple[str, str]:
    return (
        clean("node", request.match_info["node"]),
        clean("uniqueid", request.match_info["uniqueid"]),
    )


def case_numbers(session: Session, ids: Iterable[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = session.execute(select(Case.id, Case.number).where(Case.id.in_(wanted)))
    return {int(i): str(n) for i, n in rows}


async def call(request: web.Request) -> web.Response:
    require_scope(request, "read")
    query(request, ())
    node, uniqueid = call_key(request)

    def read(s: Session) -> dict[str, Any]:
        found = s.scalar(select(Call).where(Call.node == node, Call.uniqueid == uniqueid))
        if found is None:
            not_found(f"no call {shown(uniqueid, 40)} on node {shown(node, 40)}")
        visits = s.scalars(
            select(QueueVisit)
            .where(QueueVisit.node == node, QueueVisit.uniqueid == uniqueid)
            .order_by(QueueVisit.visit)
        )
        done = documentation.dispositions_of(s, node, uniqueid)
        numbers = case_numbers(s, (d.case_id for d in done))
        return {
            "call": call_view(found),
            "visits": [visit_view(v) for v in visits],
            "dispositions": [
                documentation.disposition_view(d, numbers.get(d.case_id or 0)) for d in done
            ],
        }

    return ok(await in_session(request, read))


# --- dispositions ----------------------------------------------------------------------------

DISPOSITION_FIELDS = ("agent", "code", "notes", "case", "visit", "queue", "campaign")


async def dispositions(request: web.Request) -> web.Response:
    require_scope(request, "read")
    query(request, ("since", "until", "queue", "agent", "code", "limit", "after"))
    limit = limit_param(request)
    after = cursor_param(request, "dispositions", ["time", "id"])
    since, until = time_param(request, "since"), time_param(request, "until")
    queue, agent = param(request, "queue"), param(request, "agent")
    code = param(request, "code")

    def read(s: Session) -> tuple[list[dict[str, Any]], str | None]:
        q = select(CallDisposition, Case.number).outerjoin(Case, Case.id == CallDisposition.case_id)
        if since is not None:
            q = q.where(CallDisposition.at >= since)
        if until is not None:
            q = q.where(CallDisposition.at < until)
        if queue is not None:
            q = q.where(CallDisposition.queue == queue)
        if agent is not None:
            q = q.where(CallDisposition.agent == names.normalize(agent))
        if code is not None:
            q = q.where(CallDisposition.code == code.lower())
        if after is not None:
            q = q.where(
                CallDisposition.at <= after[0],
                tuple_(CallDisposition.at, CallDisposition.id) < tuple_(after[0], after[1]),
            )
        q = q.order_by(CallDisposition.at.desc(), CallDisposition.id.desc()).limit(limit + 1)
        rows = [(d, n) for d, n in s.execute(q)]
        kept, nxt = page(rows, limit, lambda r: make_cursor("dispositions", r[0].at, r[0].id))
        return [documentation.disposition_view(d, n) for d, n in kept], nxt

    found, nxt = await in_session(request, read)
    return ok({"dispositions": found, "next": nxt})


async def dispose(request: web.Request) -> web.Response:
    """Document a call on behalf of the agent it credits (a CRM, a supervisor)."""
    require_scope(request, "write")
    query(request, ())
    node, uniqueid = call_key(request)
    body = await json_body(request, DISPOSITION_FIELDS)
    agent = text_field(body, "agent")
    if agent is None or not agent.strip():
        bad("agent is required: the agent the disposition is credited to")
    agent = names.normalize(agent.strip())
    code = text_field(body, "code")
    if code is None:
        bad("code is required")
    notes = text_field(body, "notes") or ""
    case_number = text_field(body, "case", nullable=True) or None
    visit = int_field(body, "visit", 0, MAX_VISIT)
    queue = text_field(body, "queue", nullable=True) or None
    campaign = text_field(body, "campaign", nullable=True) or None
    now = dt.datetime.now(UTC)

    def write(s: Session) -> dict[str, Any]:
        logged = s.scalar(
            select(Call.id).where(Call.node == node, Call.uniqueid == uniqueid)
        ) or s.scalar(
            select(QueueVisit.id).where(QueueVisit.node == node, QueueVisit.uniqueid == uniqueid)
        )
        if logged is None and queue is None and campaign is None:
            not_found(
                f"no call {shown(uniqueid, 40)} on node {shown(node, 40)} in the call log "
                "(a call not logged yet needs its queue or campaign)"
            )
        if s.scalar(select(Agent.id).where(Agent.name == agent)) is None:
            bad(f"no agent named {shown(agent, 40)}")
        d = documentation.dispose(
            s, node=node, uniqueid=uniqueid, agent=agent, code=code, now=now, notes=notes,
            visit=visit, case_number=case_number, queue=queue, campaign=campaign,
            any_agent=True,
        )  # fmt: skip
        number = case_numbers(s, [d.case_id]).get(d.case_id or 0)
        return documentation.disposition_view(d, number)

    view = await in_session(request, write)
    # The agent held in wrap-up until this call is documented may go on (the desktop's rule).
    await parts(request).desk.documented(agent, node, uniqueid)
    return ok({"disposition": view}, 201)


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/v1/customers", customers),
        web.post("/api/v1/customers", customer_create),
        web.get("/api/v1/customers/{id}", customer),
        web.patch("/api/v1/customers/{id}", customer_update),
        web.get("/api/v1/cases", cases),
        web.post("/api/v1/cases", case_create),
        web.get("/api/v1/cases/{number}", case),
        web.patch("/api/v1/cases/{number}", case_update),
        web.get("/api/v1/calls", calls),
        web.get("/api/v1/calls/{node}/{uniqueid}", call),
        web.post("/api/v1/calls/{node}/{uniqueid}/dispositions", dispose),
        web.get("/api/v1/dispositions", dispositions),
    ]
