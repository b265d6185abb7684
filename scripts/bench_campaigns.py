"""Contact and do-not-call imports at scale: BENCH_CONTACTS (default 1,000,000) contacts
imported into a campaign, checked against as many do-not-call numbers, through the code the
CLI uses (``callcenter dnc import``, ``callcenter contacts import``).

The files are generated (US numbers in three spellings, all distinct, 10% of the contacts on
the DNC list), in a temporary directory; the database is the benchmark's own, dropped
afterwards. Keys: dialer.import_rows_per_s (contact rows read, validated, normalised, checked
against the DNC list and written, per second of the whole import, wall clock) and
dialer.dnc_import_rows_per_s; dialer.import_write_rows_per_s is the part after the last row
was checked (the DNC join and the insert into ``contacts``; the COPY into the temporary table
runs while the file is checked).

The wall-clock figures depend on what else the machine runs. So the CPU an import costs is
measured too, per row: dialer.import_cpu_us_per_row in Python (this process and the workers
it forks) and dialer.import_db_cpu_us_per_row in the PostgreSQL backend serving it (read from
/proc, so only for a server on this machine). Their sum over the number of CPUs is what a
row costs on an idle machine with perfect overlap; the import cannot be faster than that.
"""

from __future__ import annotations

import os
import random
import resource
import secrets
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from callcenter.campaigns import contacts, store
from callcenter.campaigns.numbers import Normaliser
from callcenter.config import DatabaseSettings
from callcenter.db import engine as db
from callcenter.db.models import Queue

SERVER = os.environ.get("CALLCENTER_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")
ROWS = int(os.environ.get("BENCH_CONTACTS", "1000000"))
AREA_CODES = tuple(
    f"{n}" for n in (212, 213, 312, 305, 404, 415, 503, 602, 617, 702, 713, 718, 773, 801)
)


def numbers(count: int, rng: random.Random) -> list[str]:
    """``count`` distinct valid US numbers, national significant digits only."""
    found: set[str] = set()
    while len(found) < count:
        exchange = rng.randint(200, 999)
        if exchange % 100 == 11:
            exchange += 1
        found.add(f"{rng.choice(AREA_CODES)}{exchange}{rng.randint(0, 9999):04d}")
    return list(found)


def spell(digits: str, n: int) -> str:
    if n % 3 == 0:
        return f"({digits[:3]}) {digits[3:6]}-{digits[6:]}"
    if n % 3 == 1:
        return f"{digits[:3]}-{digits[3:6]}-{digits[6:]}"
    return f"+1{digits}"


def write_files(directory: Path, rows: int) -> tuple[Path, Path]:
    rng = random.Random(13)
    pool = numbers(rows * 19 // 10, rng)
    contact_numbers = pool[:rows]
    # 10% of the contacts are on the DNC list; the rest of it is other numbers.
    dnc_numbers = contact_numbers[: rows // 10] + pool[rows : rows + rows - rows // 10]
    rng.shuffle(dnc_numbers)
    dnc = directory / "dnc.txt"
    with dnc.open("w") as out:
        out.writelines(f"{spell(d, i)}\n" for i, d in enumerate(dnc_numbers))
    listing = directory / "contacts.csv"
    with listing.open("w") as out:
        out.write("phone,name,priority,account,notes\n")
        out.writelines(
            f"{spell(d, i)},Customer {i},{i % 10},ACC-{i:07d},renewal due\n"
            for i, d in enumerate(contact_numbers)
        )
    return listing, dnc


def _python_cpu() -> float:
    """CPU seconds of this process and of its children that have ended (forked workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _process_cpu(pid: int) -> float | None:
    """CPU seconds of a process on this machine (the PostgreSQL backend), None if unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run() -> dict[str, float]:
    name = f"cc_bench_{secrets.token_hex(4)}"
    admin = sa.create_engine(f"{SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine = db.make_engine(DatabaseSettings(url=f"{SERVER}/{name}"))
    try:
        db.upgrade(engine)
        with db.session_scope(engine) as s:
            s.add(Queue(name="sales"))
            s.flush()
            store.add_campaign(s, "bench", queue="sales")
        with tempfile.TemporaryDirectory() as tmp:
            listing, dnc = write_files(Path(tmp), ROWS)
            started = time.perf_counter()
            with db.session_scope(engine) as s:
                total, _ = contacts.import_dnc(s, dnc, Normaliser("US"))
            dnc_seconds = time.perf_counter() - started
            load = os.getloadavg()[0]
            python_cpu = _python_cpu()
            started = time.perf_counter()
            with db.session_scope(engine) as s:
                backend = int(s.scalar(sa.text("SELECT pg_backend_pid()")) or 0)
                db_cpu = _process_cpu(backend)
                report = contacts.import_contacts(s, "bench", listing, Normaliser("US"), "UTC")
                db_after = _process_cpu(backend)
            seconds = time.perf_counter() - started
            python_cpu = _python_cpu() - python_cpu
        assert report.rows == ROWS, report
        assert report.on_dnc == ROWS // 10, report
        assert report.imported == ROWS - ROWS // 10, report
        figures = {
            "dialer.import_rows_per_s": ROWS / seconds,
            "dialer.dnc_import_rows_per_s": total / dnc_seconds,
            "dialer.import_write_rows_per_s": ROWS / report.write_seconds,
            "dialer.import_cpu_us_per_row": python_cpu / ROWS * 1e6,
        }
        db_text = "PostgreSQL backend's CPU unknown (not on this machine)"
        if db_cpu is not None and db_after is not None:
            figures["dialer.import_db_cpu_us_per_row"] = (db_after - db_cpu) / ROWS * 1e6
            db_text = f"{db_after - db_cpu:.1f} s CPU in the PostgreSQL backend"
        print(
            f"bench_campaigns: {ROWS} contacts in {seconds:.1f} s, {total} DNC numbers in "
            f"{dnc_seconds:.1f} s, {os.cpu_count()} CPUs, load average {load:.1f} before the "
            f"contacts; contacts: {report.read_seconds:.1f} s reading and validating, "
            f"{report.write_seconds:.1f} s writing; {python_cpu:.1f} s CPU in Python, {db_text}",
            file=sys.stderr,
        )
        return figures
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    print(run())
