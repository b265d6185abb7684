"""Contact lists and do-not-call files: read, validated, normalised and written all at once.

An import is all or nothing: the file is checked in order, and the first bad row stops it
with its line number, its column and why, and nothing is imported. The checked rows go to
PostgreSQL as they are checked, by COPY into a temporary table of the import's own
transaction (dropped with it), and only when every row has passed do they go from there into
``contacts`` in one statement, less the numbers on the do-not-call list (a join in SQL) and
those the campaign already has. Duplicates within the file are left out too; all of
them are counted in the :class:`ImportReport`.

Speed (``scripts/bench_campaigns.py``, a million rows on two CPUs): a row costs ~25 µs of CPU
in ``phonenumbers`` (parse and validation, which no cache can share between distinct
numbers), ~5 µs more to read and check, and ~15 µs in PostgreSQL, nearly all of it the insert
into ``contacts`` (its four indexes, the foreign key's trigger, ON CONFLICT). So the file is
cut into blocks of whole records that a pool of forked processes, one per CPU, checks in full
(CSV, number, name, time zone, priority and fields, each row turned into its COPY line); this
process only reads the lines, finds the duplicates with set operations and streams the
blocks' COPY text to PostgreSQL in order, so the first bad row is still the one reported.
"""

from __future__ import annotations

import csv
import multiprocessing
import os
import re
import threading
import time
import zoneinfo
from collections import deque
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from itertools import chain, islice
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
#: Below this many rows (or distinct numbers) one process is quicker than starting a pool.
PARALLEL_FROM = 50_000
#: Lines of the file a worker checks at a time.
BLOCK_LINES = 10_000
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
    #: Seconds spent reading and checking the file (while its rows stream to a temporary
    #: table), and then writing them into ``contacts``.
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


def _can_fork(workers: int | None) -> int:
    """How many processes to fork: none (0) where this process has another thread, since
    forking is only safe without one (a CLI command has none)."""
    workers = workers or os.cpu_count() or 1
    return workers if workers >= 2 and threading.active_count() == 1 else 0


def prefill(numbers: Normaliser, raws: set[str], workers: int | None = None) -> None:
    """Normalise many distinct numbers in a pool of processes into ``numbers``' cache."""
    todo = [r for r in raws if r not in numbers._cache]
    workers = _can_fork(workers)
    if not workers or len(todo) < PARALLEL_FROM:
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


@dataclass(frozen=True, slots=True)
class _Layout:
    """The file's columns and what checking a row needs; sent to a worker with each block."""

    path: str
    region: str
    default_tz: str
    names: tuple[str, ...]
    phone: int
    name: int | None
    tz: int | None
    tz_column: str
    priority: int | None
    extra: tuple[tuple[str, int], ...]

    @classmethod
    def of(cls, path: Path, region: str, default_tz: str, names: list[str]) -> _Layout:
        ti = next((names.index(c) for c in TIMEZONE_COLUMNS if c in names), None)
        index = {PHONE: names.index(PHONE)}
        for column in (NAME, PRIORITY):
            if column in names:
                index[column] = names.index(column)
        known = {*index.values(), ti}
        return cls(
            path=str(path),
            region=region,
            default_tz=default_tz,
            names=tuple(names),
            phone=index[PHONE],
            name=index.get(NAME),
            tz=ti,
            tz_column=names[ti] if ti is not None else TIMEZONE_COLUMNS[0],
            priority=index.get(PRIORITY),
            extra=tuple((n, i) for i, n in enumerate(names) if i not in known),
        )


#: (line before the block's first, the block's lines, why reading stopped after it or "").
_Block = tuple[int, list[str], str]


@dataclass(slots=True)
class _Checked:
    """A block, checked: its rows up to the first that stops the import."""

    #: Line and E.164 number of each row whose number is valid, in order.
    lines: list[int] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)
    #: The COPY text line of each of those rows ("\n" alone for a row in ``problems``).
    copy: list[str] = field(default_factory=list)
    #: Rows with a bad name, time zone or priority: (column, reason) by index. They stop the
    #: import unless they turn out to be duplicates, whose other columns are not looked at.
    problems: dict[int, tuple[str, str]] = field(default_factory=dict)
    #: Indexes of the rows that get the site's time zone.
    site_timezone: list[int] = field(default_factory=list)
    #: The row that stops the import (line, column, reason), after the rows above.
    fatal: tuple[int, str, str] | None = None
    #: Or the file cannot be read from there on.
    unreadable: str = ""


_COPY_SPECIAL = re.compile(r"[\\\t\n\r\x00]")
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
NUL_REASON = "holds a NUL character, which PostgreSQL cannot store"


def _copy_text(text: str) -> str:
    """``text`` as a field of COPY's text format; "" if it holds a NUL (PostgreSQL's text
    cannot), which the caller reports."""
    if _COPY_SPECIAL.search(text) is None:
        return text
    if "\x00" in text:
        return ""
    return text.translate(_COPY_ESCAPES)


def _check_block(task: tuple[_Layout, _Block]) -> _Checked:
    """Check a block of whole records (in a worker process, or in this one)."""
    layout, (before, lines, unreadable) = task
    out = _Checked(unreadable=unreadable)
    width = len(layout.names)
    pi, ni, ti, ri = layout.phone, layout.name, layout.tz, layout.priority
    extra = layout.extra
    zones = _zones()
    low, high = PRIORITY_RANGE
    region = layout.region
    numbers: dict[str, Number | str] = {}
    dumps = orjson.dumps
    reader = csv.reader(lines)
    try:
        for row in reader:
            if not row:
                continue
            line = before + reader.line_num
            if len(row) != width:
                column = layout.names[len(row)] if len(row) < width else f"#{width + 1}"
                out.fatal = (line, column, f"{len(row)} columns where the header has {width}")
                break
            raw = row[pi]
            found = numbers.get(raw)
            if found is None:
                found = numbers[raw] = _normalise(raw, region)
            if isinstance(found, str):
                out.fatal = (line, PHONE, found)
                break
            index = len(out.phones)
            phone = found.e164
            out.lines.append(line)
            out.phones.append(phone)
            problem: tuple[str, str] | None = None
            fields = "{}"
            name = row[ni].strip() if ni is not None else ""
            tz = row[ti].strip() if ti is not None else ""
            priority = 0
            if len(name) > NAME_MAX:
                problem = (NAME, f"longer than {NAME_MAX} characters")
            elif tz and tz not in zones:
                problem = (layout.tz_column, f"{tz!r} is not a time zone name")
            elif ri is not None and row[ri].strip():
                try:
                    priority = int(row[ri])
                except ValueError:
                    problem = (PRIORITY, f"{row[ri]!r} is not a whole number")
                else:
                    if not low <= priority <= high:
                        problem = (PRIORITY, f"{priority} is not between {low} and {high}")
            if problem is None:
                name = _copy_text(name)
                if extra:
                    fields = _copy_text(dumps({k: row[i] for k, i in extra}).decode())
                if name == "" and ni is not None and "\x00" in row[ni]:
                    problem = (NAME, NUL_REASON)
                elif "\\u0000" in fields:
                    problem = next(((k, NUL_REASON) for k, i in extra if "\x00" in row[i]), None)
            if problem is not None:
                out.problems[index] = problem
                out.copy.append("\n")
                continue
            if not tz:
                if found.timezone:
                    tz = found.timezone
                else:
                    tz = layout.default_tz
                    out.site_timezone.append(index)
            out.copy.append(f"{line}\t{phone}\t{name}\t{tz}\t{priority}\t{fields}\n")
    except csv.Error as exc:
        out.unreadable = f"{layout.path}, line {before + reader.line_num}: {exc}"
    return out


def _blocks(lines: Iterator[str], before: int, path: Path) -> Iterator[_Block]:
    """The lines after line ``before`` in blocks of about :data:`BLOCK_LINES` that end where a
    record does; the last one says why reading stopped early, if it did."""
    while True:
        block: list[str] = []
        stop = ""
        try:
            block.extend(islice(lines, BLOCK_LINES))
            if '"' in "".join(block):
                stop = _to_record_end(block, lines, before, path)
        except UnicodeDecodeError:
            stop = f"{path} is not UTF-8 text (line {before + len(block) + 1})"
        if not block and not stop:
            return
        yield before, block, stop
        if stop:
            return
        before += len(block)


def _to_record_end(block: list[str], lines: Iterator[str], before: int, path: Path) -> str:
    """Extend ``block`` with the lines of a record that a quoted field carries past its end.
    "" or why reading must stop."""
    size, spill = len(block), list[str]()
    reader = csv.reader(chain(block, _recording(lines, spill)))
    try:
        for _ in reader:
            if reader.line_num >= size:
                break
    except csv.Error as exc:  # the block's check stops there too, with the same words
        return f"{path}, line {before + reader.line_num}: {exc}"
    finally:
        block.extend(spill)
    return ""


def _recording(lines: Iterator[str], into: list[str]) -> Iterator[str]:
    for line in lines:
        into.append(line)
        yield line


def _checked_blocks(
    layout: _Layout, blocks: Iterator[_Block], workers: int | None
) -> Generator[_Checked, None, None]:
    """Each block checked, in order: here, or by a pool of forked processes, a few blocks
    ahead, when the file has more than :data:`PARALLEL_FROM` lines."""
    _zones()  # once, before any fork
    head = list(islice(blocks, -(-PARALLEL_FROM // BLOCK_LINES) + 1))
    forks = _can_fork(workers)
    if not forks or len(head) * BLOCK_LINES <= PARALLEL_FROM:
        for block in chain(head, blocks):
            yield _check_block((layout, block))
        return
    pool = ProcessPoolExecutor(forks, mp_context=multiprocessing.get_context("fork"))
    pending: deque[Future[_Checked]] = deque()
    try:
        for block in chain(head, blocks):
            pending.append(pool.submit(_check_block, (layout, block)))
            if len(pending) > 2 * forks:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(cancel_futures=True)


def _accept(checked: _Checked, seen: dict[str, int], report: ImportReport) -> str:
    """The COPY text of a checked block's rows that are not duplicates; :class:`RowError`
    (or :class:`CampaignError`) where the block has the import's first bad row."""
    phones, lines = checked.phones, checked.lines
    first = dict(zip(reversed(phones), reversed(lines), strict=True))
    report.rows += len(phones)
    if len(first) == len(phones) and not checked.problems and seen.keys().isdisjoint(first):
        seen.update(first)
        report.site_timezone += len(checked.site_timezone)
        text = "".join(checked.copy)
    else:
        site_timezone = set(checked.site_timezone)
        kept: list[str] = []
        for i, phone in enumerate(phones):
            line = lines[i]
            earlier = seen.get(phone)
            if earlier is not None:
                report.duplicates_in_file += 1
                report.note(f"line {line}: {phone} is also on line {earlier}")
                continue
            problem = checked.problems.get(i)
            if problem is not None:
                raise RowError(line, *problem)
            seen[phone] = line
            kept.append(checked.copy[i])
            report.site_timezone += i in site_timezone
        text = "".join(kept)
    if checked.fatal is not None:
        raise RowError(*checked.fatal)
    if checked.unreadable:
        raise CampaignError(checked.unreadable)
    return text


def check_contacts(
    path: Path,
    numbers: Normaliser,
    default_tz: str,
    report: ImportReport,
    write: Callable[[str], Any],
    workers: int | None = None,
) -> None:
    """Check every row of a contact file, in order, passing the rows to ``write`` as COPY
    text (line, E.164, name, time zone, priority, fields JSON), a block at a time.

    Duplicates within the file are counted and left out (the first stays). Raises
    :class:`RowError` at the first bad row, :class:`CampaignError` for a file that cannot be
    read; ``write`` has then had some rows, which the caller must throw away.
    """
    with _open(path) as handle:
        lines = iter(handle)
        reader = csv.reader(lines)
        try:
            first = next((row for row in reader if row), None)
        except csv.Error as exc:
            raise CampaignError(f"{path}, line {reader.line_num}: {exc}") from None
        except UnicodeDecodeError:
            raise CampaignError(f"{path} is not UTF-8 text (line {reader.line_num + 1})") from None
        if first is None:
            raise CampaignError(f"{path} is empty (it needs a header with a phone column)")
        if "\x00" in default_tz:
            raise CampaignError(f"the site's time zone {default_tz!r} {NUL_REASON}")
        layout = _Layout.of(path, numbers.region, _copy_text(default_tz), _header(first))
        seen: dict[str, int] = {}
        blocks = _blocks(lines, reader.line_num, path)
        with closing(_checked_blocks(layout, blocks, workers)) as checked_blocks:
            for checked in checked_blocks:
                text = _accept(checked, seen, report)
                if text:
                    write(text)


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
    raw: Any = session.connection().connection.driver_connection
    with raw.cursor() as cur:
        cur.execute(
            "CREATE TEMP TABLE _contacts_in (line integer, phone text, name text, "
            "timezone text, priority smallint, fields jsonb) ON COMMIT DROP"
        )
        with cur.copy("COPY _contacts_in FROM STDIN") as copy:
            check_contacts(path, numbers, default_tz, report, copy.write, workers)
        report.read_seconds = round(time.perf_counter() - started, 3)
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
        # One join with the do-not-call list, which counts and leaves out its numbers.
        cur.execute("DELETE FROM _contacts_in i USING do_not_call d WHERE d.phone = i.phone")
        report.on_dnc = cur.rowcount
        # In the file's order, so that contacts of equal priority are dialled in that order.
        cur.execute(
            "INSERT INTO contacts (campaign_id, phone, name, timezone, priority, fields, "
            "status, attempts) "
            "SELECT %s, i.phone, i.name, i.timezone, i.priority, i.fields, 'new', 0 "
            "FROM _contacts_in i ORDER BY i.line "
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
