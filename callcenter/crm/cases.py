"""Cases: what a customer asked, requested, complained about or reported, until resolved.

A case has a number (``C-000123``, from its id), its customer (who must exist), a category
(:data:`~callcenter.db.models_crm.BUILTIN_CATEGORIES` and the site's own, ``case_categories``),
a priority, a status, an owner (an agent or a wallboard user), a due time, the resolution
text, and a timeline (``case_events``) of everything that happened to it, who did it and
when: its creation, the calls about it with their dispositions, notes, and each change of
status, owner, priority, due time and category.

Status moves only along :data:`TRANSITIONS`: open <-> pending, either to resolved (with a
resolution text), resolved to closed (final) or back to open (the resolution is kept on the
timeline, and a new one is needed to resolve it again).
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from collections.abc import Sequence
from typing import Any, TextIO
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from callcenter import names, timespec
from callcenter.crm import CrmError
from callcenter.db.models import Agent
from callcenter.db.models_crm import (
    BUILTIN_CATEGORIES,
    CASE_STATUSES,
    PRIORITIES,
    Case,
    CaseCategory,
    CaseEvent,
    Customer,
)
from callcenter.db.models_wallboard import User

UTC = dt.UTC
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "open": ("pending", "resolved"),
    "pending": ("open", "resolved"),
    "resolved": ("open", "closed"),
    "closed": (),
}
CATEGORY_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
NUMBER_RE = re.compile(r"^(?:[cC]-?)?0*([0-9]{1,15})$")
SUBJECT_MAX = 200
TEXT_MAX = 10_000
_RELATIVE = re.compile(r"^\+(\d+)([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


# --- pure --------------------------------------------------------------------------------


def case_number(case_id: int) -> str:
    return f"C-{case_id:06d}"


def parse_case_number(text: str) -> int:
    """``C-000123``, ``c123`` or ``123`` -> 123 (the case's id)."""
    m = NUMBER_RE.match(text.strip())
    if not m:
        raise CrmError(f"{text!r} is not a case number (e.g. C-000123)")
    return int(m.group(1))


def check_transition(current: str, target: str) -> None:
    if target not in CASE_STATUSES:
        raise CrmError(f"status {target!r} is not one of {', '.join(CASE_STATUSES)}")
    if target == current:
        return
    allowed = TRANSITIONS[current]
    if target not in allowed:
        ways = f"only to {' or '.join(allowed)}" if allowed else "no further (closed is final)"
        raise CrmError(f"a case that is {current} cannot become {target}: it goes {ways}")


def check_priority(priority: str) -> str:
    if priority not in PRIORITIES:
        raise CrmError(f"priority {priority!r} is not one of {', '.join(PRIORITIES)}")
    return priority


def check_text(label: str, text: str, most: int = TEXT_MAX) -> str:
    text = text.strip()
    if len(text) > most:
        raise CrmError(f"{label} is longer than {most} characters")
    return text


def parse_due(text: str, tz: ZoneInfo, now: dt.datetime) -> dt.datetime | None:
    """A due time an operator types: ``+4h``, ``+2d``, ``+1w``, ``tomorrow``, ``2026-12-24``
    or ``2026-12-24T17:00`` (site time unless it has an offset); "" or ``none`` clears it."""
    word = text.strip().lower()
    if word in ("", "none", "-"):
        return None
    rel = _RELATIVE.match(word)
    if rel:
        return now.astimezone(UTC) + dt.timedelta(**{_UNITS[rel.group(2)]: int(rel.group(1))})
    try:
        return timespec.parse_time(text, tz, now)
    except timespec.TimeSpecError:
        raise CrmError(
            f"cannot read the due time {text!r}: use +4h, +2d, +1w, tomorrow, 2026-12-24 or "
            "2026-12-24T17:00"
        ) from None


# --- categories --------------------------------------------------------------------------


def check_category_name(name: str) -> str:
    name = name.strip().lower()
    if not CATEGORY_RE.match(name):
        raise CrmError(
            f"category {name!r} must be lower-case letters, digits, '_' or '-' (at most 32)"
        )
    return name


def categories(session: Session) -> list[tuple[str, str, bool]]:
    """(name, label, built in) of every category, built-in ones first."""
    out = [(c, c, True) for c in BUILTIN_CATEGORIES]
    for row in session.scalars(select(CaseCategory).order_by(CaseCategory.name)):
        out.append((row.name, row.label, False))
    return out


def check_category(session: Session, name: str) -> str:
    name = name.strip().lower()
    if name in BUILTIN_CATEGORIES or session.get(CaseCategory, name) is not None:
        return name
    known = ", ".join(c for c, _, _ in categories(session))
    raise CrmError(f"category {name!r} is not one of {known} (cases categories add NAME)")


def add_category(session: Session, name: str, label: str = "") -> CaseCategory:
    name = check_category_name(name)
    if name in BUILTIN_CATEGORIES or session.get(CaseCategory, name) is not None:
        raise CrmError(f"category {name!r} exists already")
    row = CaseCategory(name=name, label=check_text("label", label, SUBJECT_MAX) or name)
    session.add(row)
    session.flush()
    return row


def remove_category(session: Session, name: str) -> None:
    name = name.strip().lower()
    if name in BUILTIN_CATEGORIES:
        raise CrmError(f"category {name!r} is built in and cannot be removed")
    row = session.get(CaseCategory, name)
    if row is None:
        raise CrmError(f"no category named {name!r}")
    used = session.scalar(select(func.count()).select_from(Case).where(Case.category == name))
    if used:
        raise CrmError(f"category {name!r} is the category of {used} cases: it stays")
    session.delete(row)
    session.flush()


# --- cases -------------------------------------------------------------------------------


def check_owner(session: Session, owner: str) -> str | None:
    """An agent's or a wallboard user's name (NFC); "" means nobody."""
    owner = names.normalize(owner.strip())
    if not owner:
        return None
    if session.scalar(select(Agent.id).where(Agent.name == owner)) is not None:
        return owner
    if session.scalar(select(User.id).where(User.name == owner)) is not None:
        return owner
    raise CrmError(f"owner {owner!r} is neither an agent nor a wallboard user")


def _event(
    session: Session,
    case: Case,
    kind: str,
    actor: str,
    at: dt.datetime,
    data: dict[str, Any],
) -> None:
    session.add(CaseEvent(case_id=case.id, kind=kind, actor=actor, at=at, data=data))


def _iso(value: dt.datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value else None


def create_case(
    session: Session,
    *,
    customer_id: int,
    category: str,
    actor: str,
    now: dt.datetime,
    priority: str = "normal",
    owner: str | None = None,
    subject: str = "",
    due_at: dt.datetime | None = None,
    note: str = "",
) -> Case:
    """A new open case of an existing customer; its timeline starts with ``created`` (and
    the note, when given)."""
    if session.get(Customer, customer_id) is None:
        raise CrmError(f"no customer with id {customer_id}: a case is a customer's")
    category = check_category(session, category)
    priority = check_priority(priority)
    owner_name = check_owner(session, owner) if owner else None
    subject = check_text("subject", subject, SUBJECT_MAX)
    note = check_text("note", note)
    case_id = int(
        session.scalar(sa.text("SELECT nextval(pg_get_serial_sequence('cases', 'id'))")) or 0
    )
    case = Case(
        id=case_id,
        number=case_number(case_id),
        customer_id=customer_id,
        category=category,
        priority=priority,
        status="open",
        owner=owner_name,
        subject=subject,
        due_at=due_at,
        resolution="",
        created_by=actor,
        created_at=now,
        updated_at=now,
    )
    session.add(case)
    session.flush()
    _event(
        session,
        case,
        "created",
        actor,
        now,
        {
            "customer_id": customer_id,
            "category": category,
            "priority": priority,
            "owner": owner_name,
            "subject": subject,
            "due_at": _iso(due_at),
        },
    )
    if note:
        _event(session, case, "note", actor, now, {"text": note})
    session.flush()
    _webhook(session, case, "case.created", str(case.id), now)
    return case


def _webhook(session: Session, case: Case, event_type: str, key: str, at: dt.datetime) -> None:
    """The CRM's webhook, in the change's own transaction (docs/webhooks.md)."""
    from callcenter.webhooks import outbox  # the webhooks package knows nothing of cases

    data = {**case_view(case), "actor_at": _iso(at)}
    outbox.enqueue(session, event_type, data, key=key, at=at)


def get_case(session: Session, number: str, *, lock: bool = False) -> Case:
    query = select(Case).where(Case.id == parse_case_number(number))
    if lock:
        query = query.with_for_update()
    case = session.scalar(query)
    if case is None:
        raise CrmError(f"no case {number.strip()}")
    return case


def update_case(
    session: Session,
    number: str,
    *,
    actor: str,
    now: dt.datetime,
    status: str | None = None,
    owner: str | None = None,
    priority: str | None = None,
    due_at: dt.datetime | None = None,
    clear_due: bool = False,
    category: str | None = None,
    subject: str | None = None,
    note: str | None = None,
    resolution: str | None = None,
) -> Case:
    """Change a case; each change is an entry of its timeline. Everything is checked before
    anything changes. ``owner`` "" takes the owner away; ``clear_due`` the due time."""
    case = get_case(session, number, lock=True)
    target = case.status if status is None else status
    check_transition(case.status, target)
    new_owner = check_owner(session, owner) if owner is not None else case.owner
    new_priority = check_priority(priority) if priority is not None else case.priority
    new_category = check_category(session, category) if category is not None else case.category
    new_subject = check_text("subject", subject, SUBJECT_MAX) if subject is not None else None
    note_text = check_text("note", note) if note is not None else ""
    text = check_text("resolution", resolution) if resolution is not None else None
    if text is not None and target not in ("resolved", "closed"):
        raise CrmError("a resolution is given when the case is resolved (--status resolved)")
    if target == "resolved" and case.status != "resolved" and not text:
        raise CrmError(f"case {case.number} needs a resolution text to be resolved")
    if text == "":
        raise CrmError("the resolution text is empty")
    new_due = None if clear_due else (due_at if due_at is not None else case.due_at)
    changed = False
    if target != case.status:
        data: dict[str, Any] = {"from": case.status, "to": target}
        if target == "resolved":
            case.resolved_at = now
            data["resolution"] = text
        elif target == "closed":
            case.closed_at = now
        elif case.status == "resolved":  # reopened: the old resolution stays on the timeline
            data["previous_resolution"] = case.resolution
            case.resolution = ""
            case.resolved_at = None
        if text:
            case.resolution = text
        case.status = target
        _event(session, case, "status", actor, now, data)
        changed = True
    elif text and text != case.resolution:
        _event(session, case, "note", actor, now, {"resolution": text, "was": case.resolution})
        case.resolution = text
        changed = True
    for kind, old, new in (
        ("owner", case.owner, new_owner),
        ("priority", case.priority, new_priority),
        ("category", case.category, new_category),
    ):
        if old != new:
            _event(session, case, kind, actor, now, {"from": old, "to": new})
            setattr(case, kind, new)
            changed = True
    if new_due != case.due_at:
        _event(session, case, "due", actor, now, {"from": _iso(case.due_at), "to": _iso(new_due)})
        case.due_at = new_due
        changed = True
    if new_subject is not None and new_subject != case.subject:
        _event(session, case, "note", actor, now, {"subject": new_subject, "was": case.subject})
        case.subject = new_subject
        changed = True
    if note_text:
        _event(session, case, "note", actor, now, {"text": note_text})
        changed = True
    if changed:
        case.updated_at = now
    session.flush()
    if changed:
        # One event per change: keyed by the timeline's newest entry, so every change is sent.
        last = session.scalar(select(func.max(CaseEvent.id)).where(CaseEvent.case_id == case.id))
        _webhook(session, case, "case.changed", f"{case.id}:{last}", now)
    return case


def link_call(
    session: Session,
    case: Case,
    *,
    node: str,
    uniqueid: str,
    actor: str,
    at: dt.datetime,
    data: dict[str, Any] | None = None,
) -> bool:
    """Put a call on the case's timeline, once (whether it was there already: False)."""
    result = session.execute(
        pg_insert(CaseEvent)
        .values(
            case_id=case.id,
            kind="call",
            actor=actor,
            at=at,
            data=data or {},
            node=node,
            uniqueid=uniqueid,
        )
        .on_conflict_do_nothing(
            index_elements=["case_id", "node", "uniqueid"], index_where=sa.text("kind = 'call'")
        )
        .returning(CaseEvent.id)
    )
    added = result.first() is not None
    if added:
        case.updated_at = max(case.updated_at, at)
    return added


def add_event(
    session: Session, case: Case, kind: str, actor: str, at: dt.datetime, data: dict[str, Any]
) -> None:
    """An entry other modules write (a disposition); the case counts as updated."""
    _event(session, case, kind, actor, at, data)
    case.updated_at = max(case.updated_at, at)
    session.flush()


def list_cases(
    session: Session,
    *,
    status: Sequence[str] = (),
    owner: str | None = None,
    customer_id: int | None = None,
    limit: int | None = 100,
) -> list[tuple[Case, Customer]]:
    """Cases newest first, with their customers."""
    for s in status:
        if s not in CASE_STATUSES:
            raise CrmError(f"status {s!r} is not one of {', '.join(CASE_STATUSES)}")
    query = select(Case, Customer).join(Customer, Customer.id == Case.customer_id)
    if status:
        query = query.where(Case.status.in_(list(status)))
    if owner is not None:
        query = query.where(Case.owner == (names.normalize(owner) or None))
    if customer_id is not None:
        query = query.where(Case.customer_id == customer_id)
    query = query.order_by(Case.created_at.desc(), Case.id.desc())
    if limit is not None:
        query = query.limit(limit)
    return [(c, k) for c, k in session.execute(query)]


def calls_of(session: Session, case_ids: Sequence[int]) -> dict[int, int]:
    """How many calls each case's timeline has."""
    if not case_ids:
        return {}
    rows = session.execute(
        select(CaseEvent.case_id, func.count())
        .where(CaseEvent.case_id.in_(list(case_ids)), CaseEvent.kind == "call")
        .group_by(CaseEvent.case_id)
    ).all()
    return {int(c): int(n) for c, n in rows}


def case_view(
    case: Case, customer: Customer | None = None, calls: int | None = None
) -> dict[str, Any]:
    view: dict[str, Any] = {
        "number": case.number,
        "customer_id": case.customer_id,
    }
    if customer is not None:
        view["customer"] = customer.name
    view.update(
        {
            "category": case.category,
            "priority": case.priority,
            "status": case.status,
            "owner": case.owner,
            "subject": case.subject,
            "due_at": case.due_at,
            "resolution": case.resolution,
            "created_by": case.created_by,
            "created_at": case.created_at,
            "updated_at": case.updated_at,
            "resolved_at": case.resolved_at,
            "closed_at": case.closed_at,
        }
    )
    if calls is not None:
        view["calls"] = calls
    return view


def timeline(session: Session, case: Case) -> list[dict[str, Any]]:
    query = (
        select(CaseEvent).where(CaseEvent.case_id == case.id).order_by(CaseEvent.at, CaseEvent.id)
    )
    return [
        {
            "kind": e.kind,
            "actor": e.actor,
            "at": e.at,
            "node": e.node,
            "uniqueid": e.uniqueid,
            "data": e.data,
        }
        for e in session.scalars(query)
    ]


EXPORT_COLUMNS = (
    "number",
    "customer_id",
    "customer",
    "crm_id",
    "category",
    "priority",
    "status",
    "owner",
    "subject",
    "due_at",
    "created_by",
    "created_at",
    "updated_at",
    "resolved_at",
    "closed_at",
    "resolution",
    "calls",
)


def export_csv(
    session: Session,
    handle: TextIO,
    *,
    status: Sequence[str] = (),
    owner: str | None = None,
    customer_id: int | None = None,
) -> int:
    """Every case (or those the filters keep) as CSV, oldest first: how many."""
    rows = list_cases(session, status=status, owner=owner, customer_id=customer_id, limit=None)
    rows.reverse()
    calls = calls_of(session, [c.id for c, _ in rows])
    writer = csv.writer(handle)
    writer.writerow(EXPORT_COLUMNS)
    for case, customer in rows:
        writer.writerow(
            [
                case.number,
                case.customer_id,
                customer.name,
                customer.crm_id or "",
                case.category,
                case.priority,
                case.status,
                case.owner or "",
                case.subject,
                _iso(case.due_at) or "",
                case.created_by,
                _iso(case.created_at),
                _iso(case.updated_at),
                _iso(case.resolved_at) or "",
                _iso(case.closed_at) or "",
                case.resolution,
                calls.get(case.id, 0),
            ]
        )
    return len(rows)


def case_of_number(session: Session, number: str | None) -> Case | None:
    return None if number in (None, "") else get_case(session, str(number), lock=True)
