"""Customers: their numbers, the all-or-nothing CSV import, lookup by the caller's number,
and the screen-pop history.

A number is stored in E.164 (:class:`~callcenter.campaigns.numbers.Normaliser`, the site's
region for numbers written without a country code) and belongs to one customer only
(``customer_phones``' primary key), so a caller's number finds its customer by one index hit.

The call log keeps caller numbers as Asterisk gave them (``+12125550100``, ``12125550100``,
``2125550100``, ``0012125550100``...), so a customer's past calls are looked up under every
form a number of theirs may take (:func:`caller_forms`): one backward scan of
``ix_calls_caller_started`` per form, each stopping after ``limit`` rows, merged newest first
(:func:`past_calls`). Its cost does not grow with the size of the call log, nor with how
often the customer called.

The import (:func:`import_customers`) reads and checks the whole file first; the first bad
row stops it with its line, column and why. A row whose ``crm_id`` is a customer's already
updates that customer (name, e-mail and numbers as in the file, fields merged); other rows
are new customers. A number on two rows, or belonging to a customer the file does not
update, is an error: nothing is written.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import orjson
import phonenumbers
import sqlalchemy as sa
from phonenumbers import phonenumberutil as pnu
from sqlalchemy import func, or_, select, tuple_
from sqlalchemy.orm import Session, selectinload

from callcenter.campaigns.contacts import prefill
from callcenter.campaigns.numbers import Normaliser, NumberError
from callcenter.crm import CrmError
from callcenter.db.models_crm import CASE_OPEN, CallDisposition, Case, Customer, CustomerPhone

UTC = dt.UTC
NAME_MAX = 200
EMAIL_MAX = 254
CRM_ID_MAX = 100
PHONES_MAX = 20
FIELD_NAME_MAX = 64
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
#: Header names of number columns: phone, phones, phone2, phone_3...
PHONE_COLUMN_RE = re.compile(r"^phones?(_?[0-9]+)?$")
KNOWN_COLUMNS = ("name", "email", "crm_id")
#: How many past calls a screen-pop shows by default.
HISTORY_CALLS = 20


class RowError(CrmError):
    def __init__(self, line: int, column: str, reason: str) -> None:
        super().__init__(f"line {line}, column {column!r}: {reason}; nothing was imported")


# --- pure: values of a customer ----------------------------------------------------------


def check_name(name: str) -> str:
    name = name.strip()
    if len(name) > NAME_MAX:
        raise CrmError(f"name {name[:20]!r}... is longer than {NAME_MAX} characters")
    return name


def check_email(email: str) -> str:
    email = email.strip()
    if email and (len(email) > EMAIL_MAX or not EMAIL_RE.match(email)):
        raise CrmError(f"e-mail {email[:60]!r} is not an e-mail address (name@domain)")
    return email


def check_crm_id(crm_id: str | None) -> str | None:
    if crm_id is None:
        return None
    crm_id = crm_id.strip()
    if len(crm_id) > CRM_ID_MAX:
        raise CrmError(f"CRM id {crm_id[:20]!r}... is longer than {CRM_ID_MAX} characters")
    return crm_id or None


def normalise_phones(numbers: Normaliser, raws: Sequence[str]) -> list[str]:
    """Each raw number in E.164, in order, each once; :class:`CrmError` naming a bad one."""
    out: dict[str, None] = {}
    for raw in raws:
        if not raw.strip():
            continue
        try:
            out[numbers.e164(raw)] = None
        except NumberError as exc:
            raise CrmError(f"phone: {exc}") from None
    if len(out) > PHONES_MAX:
        raise CrmError(f"a customer has at most {PHONES_MAX} numbers ({len(out)} given)")
    return list(out)


def caller_forms(e164: str) -> list[str]:
    """The forms a number in E.164 may take as a caller ID in the call log: itself, without
    the ``+``, national (significant, and as dialled with the national prefix), and behind the
    two common international prefixes (00, 011). Each once, E.164 first."""
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return [e164]
    cc = str(parsed.country_code)
    nsn = pnu.national_significant_number(parsed)
    national = re.sub(
        r"\D", "", phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
    )
    forms = [e164, cc + nsn, nsn, national, "00" + cc + nsn, "011" + cc + nsn]
    return [f for f in dict.fromkeys(forms) if f]


# --- pure: the CSV file ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CustomerRow:
    line: int
    name: str
    email: str
    crm_id: str | None
    #: (column, E.164) in order.
    phones: tuple[tuple[str, str], ...]
    fields: dict[str, str]


def _open(path: Path) -> TextIO:
    try:
        return path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise CrmError(f"cannot read {path}: {exc.strerror or exc}") from None


def _rows(handle: TextIO, path: Path) -> Iterator[tuple[int, list[str]]]:
    reader = csv.reader(handle)
    try:
        for row in reader:
            if row and any(cell.strip() for cell in row):
                yield reader.line_num, row
    except csv.Error as exc:
        raise CrmError(f"{path}, line {reader.line_num}: {exc}") from None
    except UnicodeDecodeError:
        raise CrmError(f"{path} is not UTF-8 text (line {reader.line_num + 1})") from None


def _header(row: list[str]) -> list[str]:
    names = [c.strip().lower() for c in row]
    for i, name in enumerate(names):
        if not name:
            raise RowError(1, f"#{i + 1}", "a column has no name in the header")
        if names.index(name) != i:
            raise RowError(1, name, "the header names this column twice")
        if len(name) > FIELD_NAME_MAX:
            raise RowError(1, name[:20], f"a column name is longer than {FIELD_NAME_MAX}")
    if not any(PHONE_COLUMN_RE.match(n) for n in names):
        raise RowError(1, "phone", "the header has no phone column")
    return names


def read_customers(
    path: Path, numbers: Normaliser, workers: int | None = None
) -> list[CustomerRow]:
    """Every row of the file, checked (module docstring); :class:`RowError` at the first bad
    one, and for a number or a CRM id on two rows."""
    with _open(path) as handle:
        rows = list(_rows(handle, path))
    if not rows:
        raise CrmError(f"{path} is empty (it needs a header with a phone column)")
    names = _header(rows[0][1])
    width = len(names)
    phone_cols = [(n, i) for i, n in enumerate(names) if PHONE_COLUMN_RE.match(n)]
    index = {n: i for i, n in enumerate(names)}
    known = {i for _, i in phone_cols} | {index[n] for n in KNOWN_COLUMNS if n in index}
    extra = [(n, i) for i, n in enumerate(names) if i not in known]
    if workers != 1:
        raws = {
            part.strip()
            for _, row in rows[1:]
            if len(row) == width
            for _, i in phone_cols
            for part in row[i].split(";")
        }
        prefill(numbers, raws, workers)
    phone_lines: dict[str, int] = {}
    crm_lines: dict[str, int] = {}
    out: list[CustomerRow] = []
    for line, row in rows[1:]:
        if len(row) != width:
            column = names[len(row)] if len(row) < width else f"#{width + 1}"
            raise RowError(line, column, f"{len(row)} columns where the header has {width}")

        def cell(name: str, row: list[str] = row) -> str:
            return row[index[name]] if name in index else ""

        try:
            name = check_name(cell("name"))
        except CrmError as exc:
            raise RowError(line, "name", str(exc)) from None
        try:
            email = check_email(cell("email"))
        except CrmError as exc:
            raise RowError(line, "email", str(exc)) from None
        try:
            crm_id = check_crm_id(cell("crm_id"))
        except CrmError as exc:
            raise RowError(line, "crm_id", str(exc)) from None
        if crm_id is not None:
            first = crm_lines.setdefault(crm_id, line)
            if first != line:
                raise RowError(line, "crm_id", f"{crm_id!r} is also on line {first}")
        phones: dict[str, str] = {}
        for column, i in phone_cols:
            for part in row[i].split(";"):
                if not part.strip():
                    continue
                try:
                    e164 = numbers.e164(part.strip())
                except NumberError as exc:
                    raise RowError(line, column, str(exc)) from None
                if e164 in phones:
                    continue
                first = phone_lines.setdefault(e164, line)
                if first != line:
                    raise RowError(
                        line,
                        column,
                        f"{e164} is also on line {first} (a number belongs to one customer)",
                    )
                phones[e164] = column
        if len(phones) > PHONES_MAX:
            raise RowError(line, phone_cols[0][0], f"more than {PHONES_MAX} numbers")
        if not phones and not name:
            raise RowError(line, "name", "a customer needs a name or a phone number")
        out.append(
            CustomerRow(
                line=line,
                name=name,
                email=email,
                crm_id=crm_id,
                phones=tuple((c, p) for p, c in phones.items()),
                fields={n: row[i].strip() for n, i in extra if row[i].strip()},
            )
        )
    return out


# --- storage: the import -----------------------------------------------------------------


@dataclass(slots=True)
class CustomerImportReport:
    rows: int = 0
    created: int = 0
    updated: int = 0
    phones: int = 0
    #: Campaign contacts whose number is now a customer's and that now point at it.
    contacts_linked: int = 0


def import_customers(
    session: Session, path: Path, numbers: Normaliser, workers: int | None = None
) -> CustomerImportReport:
    """Import a CSV file of customers, all or nothing (module docstring)."""
    rows = read_customers(path, numbers, workers)
    report = CustomerImportReport(rows=len(rows))
    raw: Any = session.connection().connection.driver_connection
    dumps = orjson.dumps
    with raw.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS _customers_in, _customer_phones_in")
        cur.execute(
            "CREATE TEMP TABLE _customers_in (line integer PRIMARY KEY, crm_id text, name text, "
            "email text, fields jsonb, id bigint, existing boolean NOT NULL DEFAULT false) "
            "ON COMMIT DROP"
        )
        cur.execute(
            "CREATE TEMP TABLE _customer_phones_in (line integer, col text, phone text, "
            "position smallint) ON COMMIT DROP"
        )
        with cur.copy("COPY _customers_in (line, crm_id, name, email, fields) FROM STDIN") as cp:
            for r in rows:
                cp.write_row((r.line, r.crm_id, r.name, r.email, dumps(r.fields).decode()))
        with cur.copy("COPY _customer_phones_in FROM STDIN") as cp:
            for r in rows:
                for position, (column, phone) in enumerate(r.phones):
                    cp.write_row((r.line, column, phone, position))
                    report.phones += 1
        cur.execute("ANALYZE _customers_in")
        cur.execute("ANALYZE _customer_phones_in")
        cur.execute(
            "UPDATE _customers_in i SET id = c.id, existing = true FROM customers c "
            "WHERE c.crm_id = i.crm_id"
        )
        report.updated = cur.rowcount
        cur.execute(
            "UPDATE _customers_in SET id = nextval(pg_get_serial_sequence('customers', 'id')) "
            "WHERE id IS NULL"
        )
        report.created = cur.rowcount
        # A number of a customer this file does not update stays theirs: the row is wrong.
        # Materialized, without the LIMIT: hash joins whatever the sizes (the LIMIT alone
        # talks the planner into nested loops over the whole file).
        cur.execute(
            "WITH clash AS MATERIALIZED ("
            " SELECT p.line, p.col, p.phone, cp.customer_id FROM _customer_phones_in p"
            " JOIN customer_phones cp ON cp.phone = p.phone"
            " JOIN _customers_in i ON i.line = p.line"
            " WHERE cp.customer_id <> i.id"
            " AND cp.customer_id NOT IN (SELECT id FROM _customers_in)) "
            "SELECT k.line, k.col, k.phone, c.id, c.name FROM clash k "
            "JOIN customers c ON c.id = k.customer_id ORDER BY k.line LIMIT 1"
        )
        clash = cur.fetchone()
        if clash is not None:
            line, column, phone, owner, owner_name = clash
            who = f"customer {owner}" + (f" ({owner_name})" if owner_name else "")
            raise RowError(line, column, f"{phone} already belongs to {who}")
        cur.execute(
            "INSERT INTO customers (id, name, email, crm_id, fields, created_at, updated_at) "
            "SELECT id, name, email, crm_id, fields, now(), now() FROM _customers_in "
            "ON CONFLICT (id) DO UPDATE SET name = excluded.name, email = excluded.email, "
            "fields = customers.fields || excluded.fields, updated_at = now()"
        )
        cur.execute(
            "DELETE FROM customer_phones WHERE customer_id IN "
            "(SELECT id FROM _customers_in WHERE existing)"
        )
        cur.execute(
            "INSERT INTO customer_phones (phone, customer_id, position) "
            "SELECT p.phone, i.id, p.position FROM _customer_phones_in p "
            "JOIN _customers_in i ON i.line = p.line"
        )
        cur.execute(
            "UPDATE contacts t SET customer_id = p.customer_id FROM customer_phones p "
            "WHERE p.phone = t.phone AND t.customer_id IS DISTINCT FROM p.customer_id "
            "AND p.customer_id IN (SELECT id FROM _customers_in)"
        )
        report.contacts_linked = cur.rowcount
    session.expire_all()
    return report


def link_contacts(session: Session, campaign_id: int | None = None) -> int:
    """Point campaign contacts at the customer their number belongs to (all campaigns', or
    ``campaign_id``'s): how many changed. A contact whose number is no customer's keeps its
    link."""
    where = "" if campaign_id is None else " AND t.campaign_id = :campaign"
    result = session.execute(
        sa.text(
            "UPDATE contacts t SET customer_id = p.customer_id FROM customer_phones p "
            "WHERE p.phone = t.phone AND t.customer_id IS DISTINCT FROM p.customer_id" + where
        ),
        {} if campaign_id is None else {"campaign": campaign_id},
    )
    return int(getattr(result, "rowcount", 0) or 0)


# --- storage: one customer ---------------------------------------------------------------


def _check_phones_free(session: Session, phones: Sequence[str], customer_id: int | None) -> None:
    if not phones:
        return
    query = select(CustomerPhone.phone, CustomerPhone.customer_id).where(
        CustomerPhone.phone.in_(list(phones))
    )
    for phone, owner in session.execute(query):
        if owner != customer_id:
            raise CrmError(f"{phone} already belongs to customer {owner}")


def _check_crm_id_free(session: Session, crm_id: str | None, customer_id: int | None) -> None:
    if crm_id is None:
        return
    owner = session.scalar(select(Customer.id).where(Customer.crm_id == crm_id))
    if owner is not None and owner != customer_id:
        raise CrmError(f"CRM id {crm_id!r} is customer {owner}'s already")


def _check_fields(fields: dict[str, Any]) -> dict[str, Any]:
    for key in fields:
        if not isinstance(key, str) or not key.strip() or len(key) > FIELD_NAME_MAX:
            raise CrmError(f"field name {str(key)[:20]!r} must be 1 to {FIELD_NAME_MAX} characters")
    return dict(fields)


def create_customer(
    session: Session,
    numbers: Normaliser,
    *,
    name: str = "",
    phones: Sequence[str] = (),
    email: str = "",
    crm_id: str | None = None,
    fields: dict[str, Any] | None = None,
) -> Customer:
    """A new customer; :class:`CrmError` for a bad value, a number that is another
    customer's, or a CRM id taken."""
    name = check_name(name)
    email = check_email(email)
    crm_id = check_crm_id(crm_id)
    e164s = normalise_phones(numbers, phones)
    if not name and not e164s:
        raise CrmError("a customer needs a name or a phone number")
    checked = _check_fields(fields or {})
    _check_phones_free(session, e164s, None)
    _check_crm_id_free(session, crm_id, None)
    customer = Customer(name=name, email=email, crm_id=crm_id, fields=checked)
    customer.phones = [CustomerPhone(phone=p, position=i) for i, p in enumerate(e164s)]
    session.add(customer)
    session.flush()
    link_contacts_of(session, customer)
    return customer


def update_customer(
    session: Session,
    numbers: Normaliser,
    customer_id: int,
    *,
    name: str | None = None,
    phones: Sequence[str] | None = None,
    email: str | None = None,
    crm_id: str | None = None,
    fields: dict[str, Any] | None = None,
) -> Customer:
    """Change what is given (None: leave it); ``phones`` replaces the numbers, ``fields`` is
    merged (a key set to None is removed), ``crm_id`` "" clears it."""
    customer = get_customer(session, customer_id)
    if name is not None:
        customer.name = check_name(name)
    if email is not None:
        customer.email = check_email(email)
    if crm_id is not None:
        new_crm = check_crm_id(crm_id)
        _check_crm_id_free(session, new_crm, customer.id)
        customer.crm_id = new_crm
    if fields is not None:
        merged = {**customer.fields, **_check_fields(fields)}
        customer.fields = {k: v for k, v in merged.items() if v is not None}
    if phones is not None:
        e164s = normalise_phones(numbers, phones)
        _check_phones_free(session, e164s, customer.id)
        customer.phones.clear()
        session.flush()
        customer.phones.extend(CustomerPhone(phone=p, position=i) for i, p in enumerate(e164s))
    if not customer.name and not customer.phones:
        raise CrmError("a customer needs a name or a phone number")
    session.flush()
    link_contacts_of(session, customer)
    return customer


def link_contacts_of(session: Session, customer: Customer) -> int:
    phones = [p.phone for p in customer.phones]
    if not phones:
        return 0
    result = session.execute(
        sa.text(
            "UPDATE contacts SET customer_id = :id WHERE phone = ANY(:phones) "
            "AND customer_id IS DISTINCT FROM :id"
        ),
        {"id": customer.id, "phones": phones},
    )
    return int(getattr(result, "rowcount", 0) or 0)


def get_customer(session: Session, customer_id: int) -> Customer:
    customer = session.get(Customer, customer_id, options=[selectinload(Customer.phones)])
    if customer is None:
        raise CrmError(f"no customer with id {customer_id}")
    return customer


def find_by_phone(session: Session, e164: str) -> Customer | None:
    """The customer a number in E.164 belongs to: the primary key of ``customer_phones``."""
    query = (
        select(Customer)
        .join(CustomerPhone, CustomerPhone.customer_id == Customer.id)
        .where(CustomerPhone.phone == e164)
        .options(selectinload(Customer.phones))
    )
    return session.scalar(query)


def lookup_caller(session: Session, numbers: Normaliser, caller_number: str) -> Customer | None:
    """The customer behind a caller ID as Asterisk gives it; None when the number is no
    customer's or cannot be a phone number (anonymous, an extension)."""
    try:
        e164 = numbers.e164(caller_number)
    except NumberError:
        return None
    return find_by_phone(session, e164)


def resolve_customer(session: Session, numbers: Normaliser, text: str) -> Customer:
    """A customer named by an operator: ``crm:ID`` (the CRM id), a phone number, or the
    customer's id. Digits alone are a phone number when they are one and it is a customer's,
    else an id."""
    text = text.strip()
    if text.lower().startswith("crm:"):
        crm_id = text[4:].strip()
        found = session.scalar(
            select(Customer).where(Customer.crm_id == crm_id).options(selectinload(Customer.phones))
        )
        if found is None:
            raise CrmError(f"no customer with CRM id {crm_id!r}")
        return found
    digits = text.lstrip("#")
    if digits.isdigit():
        try:
            e164: str | None = numbers.e164(digits)
        except NumberError:
            e164 = None
        found = find_by_phone(session, e164) if e164 else None
        if found is not None:
            return found
        if len(digits) <= 18:
            customer = session.get(Customer, int(digits), options=[selectinload(Customer.phones)])
            if customer is not None:
                return customer
        also = f" or number {e164}" if e164 else ""
        raise CrmError(f"no customer with id {digits}{also}")
    try:
        e164 = numbers.e164(text)
    except NumberError as exc:
        raise CrmError(f"{exc} (a customer is named by id, phone number or crm:ID)") from None
    found = find_by_phone(session, e164)
    if found is None:
        raise CrmError(f"no customer has the number {e164}")
    return found


def list_customers(
    session: Session, numbers: Normaliser, search: str | None = None, limit: int | None = 50
) -> list[Customer]:
    """Customers by name (then id); ``search``: a phone number (exact), else a part of the
    name, e-mail or CRM id (case-insensitive)."""
    query = select(Customer).options(selectinload(Customer.phones))
    if search:
        text = search.strip()
        try:
            e164: str | None = numbers.e164(text) if re.search(r"\d{3}", text) else None
        except NumberError:
            e164 = None
        like = "%" + re.sub(r"([\\%_])", r"\\\1", text) + "%"
        conditions = [
            Customer.name.ilike(like, escape="\\"),
            Customer.email.ilike(like, escape="\\"),
            Customer.crm_id.ilike(like, escape="\\"),
        ]
        if e164 is not None:
            conditions.append(
                Customer.id.in_(
                    select(CustomerPhone.customer_id).where(CustomerPhone.phone == e164)
                )
            )
        query = query.where(or_(*conditions))
    query = query.order_by(Customer.name, Customer.id)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def count_customers(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(Customer)) or 0)


def customer_view(customer: Customer) -> dict[str, Any]:
    return {
        "id": customer.id,
        "name": customer.name,
        "phones": [p.phone for p in customer.phones],
        "email": customer.email,
        "crm_id": customer.crm_id,
        "fields": customer.fields,
        "created_at": customer.created_at,
        "updated_at": customer.updated_at,
    }


# --- the screen-pop history --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PastDisposition:
    visit: int
    agent: str | None
    code: str | None
    effect: str | None
    notes: str
    case: str | None
    at: dt.datetime
    undocumented: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "visit": self.visit,
            "agent": self.agent,
            "code": self.code,
            "effect": self.effect,
            "notes": self.notes,
            "case": self.case,
            "at": self.at.astimezone(UTC).isoformat(),
            "undocumented": self.undocumented,
        }


@dataclass(frozen=True, slots=True)
class PastCall:
    node: str
    uniqueid: str
    started_at: dt.datetime
    direction: str
    caller_number: str
    queue: str | None
    agent: str | None
    outcome: str | None
    wait_seconds: float | None
    talk_seconds: float | None
    ivr_path: str
    survey_score: int | None
    dispositions: tuple[PastDisposition, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "uniqueid": self.uniqueid,
            "started_at": self.started_at.astimezone(UTC).isoformat(),
            "direction": self.direction,
            "caller_number": self.caller_number,
            "queue": self.queue,
            "agent": self.agent,
            "outcome": self.outcome,
            "wait_seconds": self.wait_seconds,
            "talk_seconds": self.talk_seconds,
            "ivr_path": self.ivr_path,
            "survey_score": self.survey_score,
            "dispositions": [d.as_dict() for d in self.dispositions],
        }


@dataclass(frozen=True, slots=True)
class OpenCase:
    number: str
    category: str
    priority: str
    status: str
    owner: str | None
    subject: str
    due_at: dt.datetime | None
    created_at: dt.datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "category": self.category,
            "priority": self.priority,
            "status": self.status,
            "owner": self.owner,
            "subject": self.subject,
            "due_at": self.due_at.astimezone(UTC).isoformat() if self.due_at else None,
            "created_at": self.created_at.astimezone(UTC).isoformat(),
        }


@dataclass(frozen=True, slots=True)
class History:
    """What a screen-pop shows of a caller: the customer (None for a number nobody has), the
    numbers searched, past calls newest first with their dispositions and notes, the open
    cases, and the survey scores of those calls."""

    customer: dict[str, Any] | None
    numbers: tuple[str, ...]
    calls: tuple[PastCall, ...] = ()
    open_cases: tuple[OpenCase, ...] = field(default=())

    @property
    def survey_scores(self) -> list[int]:
        return [c.survey_score for c in self.calls if c.survey_score is not None]

    def as_dict(self) -> dict[str, Any]:
        scores = self.survey_scores
        return {
            "customer": self.customer,
            "numbers": list(self.numbers),
            "calls": [c.as_dict() for c in self.calls],
            "open_cases": [c.as_dict() for c in self.open_cases],
            "survey_scores": scores,
            "survey_mean": round(sum(scores) / len(scores), 2) if scores else None,
        }


#: Calls from the number (its caller ID in any form), and the dialer's calls to it: those
#: carry the campaign's caller ID, so they are found through the attempt that dialled the
#: number (``campaign_attempts.phone``, E.164; the attempt's channel is the call's uniqueid).
PAST_CALLS_SQL = """
SELECT c.node, c.uniqueid, c.started_at, c.direction, c.caller_number, c.queue, c.agent,
       c.outcome, c.wait_seconds, c.talk_seconds, c.ivr_path, c.survey_score
  FROM (SELECT x.* FROM unnest(CAST(:forms AS text[])) AS f(number)
         CROSS JOIN LATERAL (
                SELECT * FROM calls
                 WHERE caller_number = f.number AND uniqueid <> :exclude
                 ORDER BY started_at DESC
                 LIMIT :limit) x
        UNION ALL
        SELECT calls.* FROM unnest(CAST(:forms AS text[])) AS g(number)
         CROSS JOIN LATERAL (
                SELECT channel_id FROM campaign_attempts
                 WHERE phone = g.number AND channel_id IS NOT NULL
                 ORDER BY id DESC
                 LIMIT :limit) a
          JOIN calls ON calls.linkedid = a.channel_id AND calls.uniqueid = a.channel_id
         WHERE calls.uniqueid <> :exclude
           AND calls.caller_number <> ALL(CAST(:forms AS text[]))) c
 ORDER BY c.started_at DESC, c.id DESC
 LIMIT :limit
"""


def past_calls(
    session: Session,
    phones: Sequence[str],
    *,
    limit: int = HISTORY_CALLS,
    exclude_uniqueid: str = "",
) -> list[PastCall]:
    """The last ``limit`` calls from any of ``phones`` (E.164, or a raw caller ID that is no
    phone number), newest first, each with its dispositions (module docstring: the query)."""
    forms: list[str] = []
    for phone in phones:
        forms.extend(caller_forms(phone) if phone.startswith("+") else [phone])
    forms = [f for f in dict.fromkeys(forms) if f]
    if not forms or limit <= 0:
        return []
    rows = session.execute(
        sa.text(PAST_CALLS_SQL),
        {"forms": forms, "limit": limit, "exclude": exclude_uniqueid},
    ).all()
    if not rows:
        return []
    keys = [(r.node, r.uniqueid) for r in rows]
    found: dict[tuple[str, str], list[PastDisposition]] = {}
    query = (
        select(CallDisposition, Case.number)
        .outerjoin(Case, Case.id == CallDisposition.case_id)
        .where(tuple_(CallDisposition.node, CallDisposition.uniqueid).in_(keys))
        .order_by(CallDisposition.visit)
    )
    for d, case_number in session.execute(query):
        found.setdefault((d.node, d.uniqueid), []).append(
            PastDisposition(
                visit=d.visit,
                agent=d.agent,
                code=d.code,
                effect=d.effect,
                notes=d.notes,
                case=case_number,
                at=d.at,
                undocumented=d.code is None,
            )
        )
    return [
        PastCall(
            node=r.node,
            uniqueid=r.uniqueid,
            started_at=r.started_at,
            direction=r.direction,
            caller_number=r.caller_number,
            queue=r.queue,
            agent=r.agent,
            outcome=r.outcome,
            wait_seconds=r.wait_seconds,
            talk_seconds=r.talk_seconds,
            ivr_path=r.ivr_path,
            survey_score=r.survey_score,
            dispositions=tuple(found.get((r.node, r.uniqueid), ())),
        )
        for r in rows
    ]


def open_cases(session: Session, customer_id: int) -> list[OpenCase]:
    query = (
        select(Case)
        .where(Case.customer_id == customer_id, Case.status.in_(CASE_OPEN))
        .order_by(Case.created_at.desc(), Case.id.desc())
    )
    return [
        OpenCase(
            number=c.number,
            category=c.category,
            priority=c.priority,
            status=c.status,
            owner=c.owner,
            subject=c.subject,
            due_at=c.due_at,
            created_at=c.created_at,
        )
        for c in session.scalars(query)
    ]


def customer_history(
    session: Session,
    customer: Customer,
    *,
    limit: int = HISTORY_CALLS,
    exclude_uniqueid: str = "",
) -> History:
    """The screen-pop history of a customer: their calls from any of their numbers."""
    phones = tuple(p.phone for p in customer.phones)
    return History(
        customer=customer_view(customer),
        numbers=phones,
        calls=tuple(past_calls(session, phones, limit=limit, exclude_uniqueid=exclude_uniqueid)),
        open_cases=tuple(open_cases(session, customer.id)),
    )


def caller_history(
    session: Session,
    numbers: Normaliser,
    caller_number: str,
    *,
    limit: int = HISTORY_CALLS,
    exclude_uniqueid: str = "",
) -> History:
    """The screen-pop for a caller ID as Asterisk gives it: the customer's history when the
    number is a customer's, else the calls from that number alone (in every form it takes
    when it is a phone number, as given when it is digits; none for an anonymous caller)."""
    customer = lookup_caller(session, numbers, caller_number)
    if customer is not None:
        return customer_history(session, customer, limit=limit, exclude_uniqueid=exclude_uniqueid)
    try:
        phone = numbers.e164(caller_number)
    except NumberError:
        # Not a phone number: an extension's calls are its own; "anonymous", "" and the
        # like are nobody's, so they have no history.
        phone = caller_number.strip()
        if not re.fullmatch(r"\+?[0-9]{2,}", phone):
            return History(customer=None, numbers=())
    calls = past_calls(session, [phone], limit=limit, exclude_uniqueid=exclude_uniqueid)
    return History(customer=None, numbers=(phone,), calls=tuple(calls))
