"""Contact lists and do-not-call files: read, validated, normalised and written all at once.

An import is all or nothing: the whole file is read and checked first, and the first bad row
stops it with its line number, its column and why, before anything is written. Only then do
the rows go to PostgreSQL, by COPY into a temporary table, and from there into ``contacts``
in one statement that leaves out numbers on the do-not-call list (a join in SQL) and those the
campaign already has. Duplicates within the file are left out too; all of them are counted
in the :class:`ImportReport`.

Speed: a number costs ~80 µs in ``phonenumbers`` (parse, validate, time zone), the rest of a
row a few µs. So each distinct raw string is normalised once (the :class:`Normaliser`'s
cache), and a large file's distinct numbers are normalised first by a pool of processes, one
per CPU, before the single pass that builds the rows.
"""

from __future__ import annotations

import csv
import multiprocessing
import os
import threading
import time
import zoneinfo
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import orjson
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from callcenter.campaigns.numbers import (
    Normaliser,
    Number,
    NumberError,
    _normalise,
    normalise_chunk,
)
from callcenter.campaigns.store import CampaignError, get_campaign
from callcenter.db.models_campaigns import Contact

PHONE = "phone"
NAME = "name"
TIMEZONE_COLUMNS = ("timezone", "time_zone", "tz")
PRIORITY = "priority"
PRIORITY_RANGE = (0, 100)
NAME_MAX = 200
#: Below this many distinct numbers one process is quicker than starting a pool.
PARALLEL_FROM = 50_000
EXAMPLES = 5


@dataclass(slots=True)
class ImportReport:
    rows: int = 0
    imported: int = 0
    duplicates_in_file: int = 0
    duplicates_existing: int = 0
    on_dnc: int = 0
    #: Contacts whose number spans several time zones and whose row named none: the site's.
    site_timezone: int = 0
    examples: list[str] = field(default_factory=list)
    #: Seconds spent reading and validating the file, and writing to the database.
    read_seconds: float = 0.0
    write_seconds: float = 0.0

    def note(self, text: str) -> None:
        if len(self.examples) < EXAMPLES:
            self.examples.append(text)


class RowError(CampaignError):
    def __init__(self, line: int, column: str, reason: str) -> None:
        super().__init__(f"line {line}, column {column!r}: {reason}; nothing was imported")


_ZONES: frozenset[str] | None = None


def _zones() -> frozenset[str]:
    global _ZONES
    if _ZONES is None:
        _ZONES = frozenset(zoneinfo.available_timezones())
    return _ZONES


def prefill(numbers: Normaliser, raws: set[str], workers: int | None = None) -> None:
    """Normalise many distinct numbers in a pool of processes into ``numbers``' cache."""
    todo = [r for r in raws if r not in numbers._cache]
    workers = workers or os.cpu_count() or 1
    # Forked workers start at once and import nothing; forking is only safe while this
    # process has no other thread (a CLI command has none), so otherwise it runs here.
    if workers < 2 or len(todo) < PARALLEL_FROM or threading.active_count() > 1:
        return
    size = max(1, -(-len(todo) // (workers * 4)))
    chunks = [(todo[i : i + size], numbers.region) for i in range(0, len(todo), size)]
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        for (chunk, _), results in zip(chunks, pool.map(normalise_chunk, chunks), strict=True):
            for raw, found in zip(chunk, results, strict=True):
                numbers._cache[raw] = found if isinstance(found, str) else Number(*found)


def _open(path: Path) -> TextIO:
    try:
        return path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise CampaignError(f"cannot read {path}: {exc.strerror or exc}") from None


def _rows(handle: TextIO, path: Path) -> Iterator[tuple[int, list[str]]]:
    reader = csv.reader(handle)
    try:
        for row in reader:
            if row:
                yield reader.line_num, row
    except csv.Error as exc:
        raise CampaignError(f"{path}, line {reader.line_num}: {exc}") from None
    except UnicodeDecodeError:
        raise CampaignError(f"{path} is not UTF-8 text (line {reader.line_num + 1})") from None


def _header(row: list[str]) -> list[str]:
    names = [c.strip().lower() for c in row]
    for i, name in enumerate(names):
        if not name:
            raise RowError(1, f"#{i + 1}", "a column has no name in the header")
        if names.index(name) != i:
            raise RowError(1, name, "the header names this column twice")
    if PHONE not in names:
        raise RowError(1, PHONE, "the header has no phone column")
    return names


def read_contacts(
    path: Path,
    numbers: Normaliser,
    default_tz: str,
    report: ImportReport,
    workers: int | None = None,
) -> list[tuple[int, str, str, str, int, str]]:
    """Every row of the file, checked: (line, E.164, name, time zone, priority, fields JSON).

    Duplicates within the file are counted and left out (the first stays). Raises
    :class:`RowError` at the first bad row.
    """
    with _open(path) as handle:
        rows = _rows(handle, path)
        first = next(rows, None)
        if first is None:
            raise CampaignError(f"{path} is empty (it needs a header with a phone column)")
        names = _header(first[1])
        width = len(names)
        pi = names.index(PHONE)
        if workers != 1:
            distinct = {row[pi] for _, row in rows if len(row) == width}
            prefill(numbers, distinct, workers)
    cache = numbers._cache
    region = numbers.region
    ni = names.index(NAME) if NAME in names else None
    ti = next((names.index(c) for c in TIMEZONE_COLUMNS if c in names), None)
    tz_column = names[ti] if ti is not None else TIMEZONE_COLUMNS[0]
    ri = names.index(PRIORITY) if PRIORITY in names else None
    known = {pi, ni, ti, ri}
    extra = [(name, i) for i, name in enumerate(names) if i not in known]
    zones = _zones()
    low, high = PRIORITY_RANGE
    seen: dict[str, int] = {}
    out: list[tuple[int, str, str, str, int, str]] = []
    dumps = orjson.dumps
    with _open(path) as handle:
        rows = _rows(handle, path)
        next(rows)
        for line, row in rows:
            if len(row) != width:
                column = names[len(row)] if len(row) < width else f"#{width + 1}"
                raise RowError(line, column, f"{len(row)} columns where the header has {width}")
            raw = row[pi]
            found = cache.get(raw)
            if found is None:
                found = cache[raw] = _normalise(raw, region)
            if isinstance(found, str):
                raise RowError(line, PHONE, found)
            phone = found.e164
            report.rows += 1
            first_line = seen.get(phone)
            if first_line is not None:
                report.duplicates_in_file += 1
                report.note(f"line {line}: {phone} is also on line {first_line}")
                continue
            seen[phone] = line
            name = row[ni].strip() if ni is not None else ""
            if len(name) > NAME_MAX:
                raise RowError(line, NAME, f"longer than {NAME_MAX} characters")
            tz = row[ti].strip() if ti is not None else ""
            if tz:
                if tz not in zones:
                    raise RowError(line, tz_column, f"{tz!r} is not a time zone name")
            elif found.timezone:
                tz = found.timezone
            else:
                tz = default_tz
                report.site_timezone += 1
            priority = 0
            if ri is not None and row[ri].strip():
                try:
                    priority = int(row[ri])
                except ValueError:
                    raise RowError(line, PRIORITY, f"{row[ri]!r} is not a whole number") from None
                if not low <= priority <= high:
                    raise RowError(line, PRIORITY, f"{priority} is not between {low} and {high}")
            fields = dumps({k: row[i] for k, i in extra}).decode() if extra else "{}"
            out.append((line, phone, name, tz, priority, fields))
    return out


def import_contacts(
    session: Session,
    campaign_name: str,
    path: Path,
    numbers: Normaliser,
    default_tz: str,
    workers: int | None = None,
) -> ImportReport:
    """Import a CSV file of contacts into a campaign, all or nothing (module docstring)."""
    campaign = get_campaign(session, campaign_name)
    report = ImportReport()
    started = time.perf_counter()
    rows = read_contacts(path, numbers, default_tz, report, workers)
    report.read_seconds = round(time.perf_counter() - started, 3)
    raw: Any = session.connection().connection.driver_connection
    with raw.cursor() as cur:
        cur.execute(
            "CREATE TEMP TABLE _contacts_in (line integer, phone text, name text, "
            "timezone text, priority smallint, fields jsonb) ON COMMIT DROP"
        )
        with cur.copy("COPY _contacts_in FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cur.execute("ANALYZE _contacts_in")
        cur.execute(
            "SELECT i.line, i.phone FROM _contacts_in i JOIN contacts c "
            "ON c.campaign_id = %s AND c.phone = i.phone ORDER BY i.line",
            (campaign.id,),
        )
        existing = cur.fetchall()
        report.duplicates_existing = len(existing)
        for line, phone in existing[:EXAMPLES]:
            report.note(f"line {line}: {phone} is already in campaign {campaign.name}")
        cur.execute("SELECT count(*) FROM _contacts_in i JOIN do_not_call d ON d.phone = i.phone")
        report.on_dnc = int(cur.fetchone()[0])
        cur.execute(
            "INSERT INTO contacts (campaign_id, phone, name, timezone, priority, fields, "
            "status, attempts) "
            "SELECT %s, i.phone, i.name, i.timezone, i.priority, i.fields, 'new', 0 "
            "FROM _contacts_in i "
            "WHERE NOT EXISTS (SELECT 1 FROM do_not_call d WHERE d.phone = i.phone) "
            "ON CONFLICT (campaign_id, phone) DO NOTHING",
            (campaign.id,),
        )
        report.imported = cur.rowcount
    report.write_seconds = round(time.perf_counter() - started - report.read_seconds, 3)
    return report


def read_numbers(path: Path, numbers: Normaliser, workers: int | None = None) -> list[str]:
    """A do-not-call file: one number a line, or a CSV whose header has a phone column.
    Every number valid or :class:`RowError`; returned in E.164, each once."""
    with _open(path) as handle:
        rows = list(_rows(handle, path))
    column = 0
    if rows:
        header = [c.strip().lower() for c in rows[0][1]]
        if PHONE in header:
            column = header.index(PHONE)
            rows = rows[1:]
    if workers != 1:
        prefill(numbers, {row[column] for _, row in rows if len(row) > column}, workers)
    out: dict[str, None] = {}
    for line, row in rows:
        if len(row) <= column:
            raise RowError(line, PHONE, "the row has no number")
        try:
            out[numbers.e164(row[column])] = None
        except NumberError as exc:
            raise RowError(line, PHONE, str(exc)) from None
    return list(out)


def import_dnc(
    session: Session, path: Path, numbers: Normaliser, workers: int | None = None
) -> tuple[int, int]:
    """Add a file of numbers to the do-not-call list, all or nothing: (numbers, new)."""
    phones = read_numbers(path, numbers, workers)
    raw: Any = session.connection().connection.driver_connection
    with raw.cursor() as cur:
        cur.execute("CREATE TEMP TABLE _dnc_in (phone text) ON COMMIT DROP")
        with cur.copy("COPY _dnc_in FROM STDIN") as copy:
            for phone in phones:
                copy.write_row((phone,))
        cur.execute(
            "INSERT INTO do_not_call (phone, source) SELECT phone, %s FROM _dnc_in "
            "ON CONFLICT (phone) DO NOTHING",
            (path.name[:200],),
        )
        return len(phones), cur.rowcount


def list_contacts(session: Session, campaign_name: str, limit: int | None) -> list[Contact]:
    campaign = get_campaign(session, campaign_name)
    query = (
        select(Contact)
        .where(Contact.campaign_id == campaign.id)
        .order_by(Contact.priority.desc(), Contact.id)
    )
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def count_contacts(session: Session, campaign_name: str) -> int:
    campaign = get_campaign(session, campaign_name)
    query = select(func.count()).select_from(Contact).where(Contact.campaign_id == campaign.id)
    return int(session.scalar(query) or 0)


def contact_view(contact: Contact) -> dict[str, Any]:
    return {
        "phone": contact.phone,
        "name": contact.name,
        "timezone": contact.timezone,
        "priority": contact.priority,
        "status": contact.status,
        "attempts": contact.attempts,
        "fields": contact.fields,
    }
