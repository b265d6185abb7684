"""When a contact may be called: pure, with no clock of its own.

The law (US FTC TSR, most others) allows 08:00-21:00 in the *called person's* local time; a
campaign may narrow that (its hours), and leave out days of the week and holidays. Everything
is judged on the contact's wall clock, so daylight-saving changes are the time zone
database's business: 08:30 in New York is 12:30 UTC in summer and 13:30 UTC in winter.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass, field
from functools import lru_cache

LEGAL_START = dt.time(8, 0)
LEGAL_END = dt.time(21, 0)
ALL_DAYS = (1, 2, 3, 4, 5, 6, 7)
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, slots=True)
class CallingWindows:
    """A campaign's calling hours (contact's local time, ``start`` included, ``end`` not),
    ISO weekdays (1 Monday .. 7 Sunday) and holidays (contact's local dates)."""

    start: dt.time = LEGAL_START
    end: dt.time = LEGAL_END
    days: tuple[int, ...] = ALL_DAYS
    holidays: frozenset[dt.date] = field(default_factory=frozenset)


@lru_cache(maxsize=4096)
def _zone(name: str) -> zoneinfo.ZoneInfo | None:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None


def is_time_zone(name: str) -> bool:
    return bool(name) and _zone(name) is not None


def may_call(contact_tz: str, windows: CallingWindows, now: dt.datetime) -> tuple[bool, str]:
    """Whether a contact in ``contact_tz`` may be called at ``now`` (aware), and why not.

    The campaign's hours only narrow the legal 08:00-21:00, never widen it.
    """
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    zone = _zone(contact_tz) if contact_tz else None
    if zone is None:
        return False, f"unknown time zone {contact_tz!r}"
    local = now.astimezone(zone)
    if local.isoweekday() not in windows.days:
        return False, f"{DAY_NAMES[local.isoweekday() - 1]} is not a calling day"
    if local.date() in windows.holidays:
        return False, f"{local.date().isoformat()} is a holiday"
    start = max(windows.start, LEGAL_START)
    end = min(windows.end, LEGAL_END)
    clock = local.time().replace(tzinfo=None)
    if not start <= clock < end:
        return False, (
            f"{clock.strftime('%H:%M')} in {contact_tz} is outside "
            f"{start.strftime('%H:%M')}-{end.strftime('%H:%M')}"
        )
    return True, ""
