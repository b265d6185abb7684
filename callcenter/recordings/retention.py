"""Retention: ``callcenter recordings purge --older-than 90d`` deletes old files, keeps rows.

The rule (:func:`purgeable`, and the same in SQL in :func:`callcenter.recordings.store.
purgeable`): a recording started before the cut-off, complete (``done``, or ``missing``: its
row is purged too, there is nothing to delete) and not on legal hold. A recording still being
written is never touched. The row stays with state ``purged`` and ``purged_at``: who was
recorded, and who listened, outlive the audio.

:func:`purge` deletes in batches of rows locked for their transaction (two purges at once
share the work). The file goes first, then the row is marked: a crash between the two leaves a
row whose file is gone, which the next purge marks (deleting a file that is not there is
not an error).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from callcenter.recordings import paths, store

_AGE = re.compile(r"^(\d{1,6})([dhwm]?)$")
_UNIT = {"d": 86400, "h": 3600, "w": 7 * 86400, "m": 60, "": 86400}


class RetentionError(ValueError):
    """An age that cannot be read; the message says how to write one."""


def parse_age(text: str) -> dt.timedelta:
    """``90d`` (days; a bare number is days too), ``12h``, ``30m`` (minutes), ``2w``."""
    m = _AGE.match(text.strip().lower())
    if m is None or int(m.group(1)) <= 0:
        raise RetentionError(
            f"cannot read the age {text!r}: use days (90d), weeks (2w), hours (12h) or "
            "minutes (30m), above 0"
        )
    return dt.timedelta(seconds=int(m.group(1)) * _UNIT[m.group(2)])


def purgeable(state: str, legal_hold: bool, started_at: dt.datetime, cutoff: dt.datetime) -> bool:
    """Whether a purge at ``cutoff`` deletes this recording."""
    return state in ("done", "missing") and not legal_hold and started_at < cutoff


@dataclass(frozen=True, slots=True)
class PurgeReport:
    """What a purge did (or, dry, would do)."""

    cutoff: dt.datetime
    dry_run: bool
    recordings: int  # rows marked purged
    files: int  # files deleted
    bytes: int  # their size
    absent: int  # rows whose file was already gone
    held: int  # older recordings kept for their legal hold

    def as_dict(self) -> dict[str, object]:
        return {
            "cutoff": self.cutoff.isoformat(),
            "dry_run": self.dry_run,
            "recordings": self.recordings,
            "files": self.files,
            "bytes": self.bytes,
            "absent": self.absent,
            "held": self.held,
        }


def purge(
    engine: Engine,
    root: Path,
    cutoff: dt.datetime,
    *,
    dry_run: bool = False,
    now: dt.datetime | None = None,
    batch: int = 500,
) -> PurgeReport:
    """Delete the files of every purgeable recording and mark its row purged; with
    ``dry_run`` only count (nothing is deleted or written)."""
    now = now or dt.datetime.now(dt.UTC)
    count = files = size = absent = 0
    with Session(engine) as session:
        held = store.held_before(session, cutoff)
    after: store.Cursor | None = None  # a dry run marks nothing: it pages on instead
    while True:
        with Session(engine) as session, session.begin():
            rows = store.purgeable(session, cutoff, batch, after if dry_run else None)
            for rec in rows:
                found = _file_size(root, rec.path) if rec.state == "done" else None
                if found is None:
                    absent += 1
                else:
                    files += 1
                    size += found
                    if not dry_run:
                        _delete(root, rec.path)
                if not dry_run:
                    rec.state, rec.purged_at = "purged", now
                count += 1
            if rows:
                after = store.Cursor(rows[-1].started_at, rows[-1].id)
        if len(rows) < batch:
            break
    return PurgeReport(cutoff, dry_run, count, files, size, absent, held)


def _file_size(root: Path, relative: str) -> int | None:
    try:
        return paths.resolve(root, relative).stat().st_size
    except (paths.PathError, FileNotFoundError):
        return None


def _delete(root: Path, relative: str) -> None:
    try:
        paths.resolve(root, relative).unlink(missing_ok=True)
    except paths.PathError:
        return
