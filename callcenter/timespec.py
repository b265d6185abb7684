"""Reading the times an operator types: ``today``, ``yesterday``, ``now``, ``-2h``, ``-30m``,
``-7d``, ``2026-11-22`` or ``2026-11-22T08:30`` (with or without an offset).

Times without an offset are in the site's time zone; the results are aware datetimes in UTC.
"""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

_RELATIVE = re.compile(r"^-(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


class TimeSpecError(ValueError):
    pass


def start_of_day(day: dt.date, tz: ZoneInfo) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=tz).astimezone(dt.UTC)


def parse_time(text: str, tz: ZoneInfo, now: dt.datetime | None = None) -> dt.datetime:
    """Turn ``text`` into an aware UTC datetime; raises :class:`TimeSpecError`."""
    now = (now or dt.datetime.now(dt.UTC)).astimezone(tz)
    word = text.strip().lower()
    if word == "now":
        return now.astimezone(dt.UTC)
    if word == "today":
        return start_of_day(now.date(), tz)
    if word == "yesterday":
        return start_of_day(now.date() - dt.timedelta(days=1), tz)
    if word == "tomorrow":
        return start_of_day(now.date() + dt.timedelta(days=1), tz)
    rel = _RELATIVE.match(word)
    if rel:
        delta = dt.timedelta(**{_UNITS[rel.group(2)]: int(rel.group(1))})
        return (now - delta).astimezone(dt.UTC)
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", word):
            return start_of_day(dt.date.fromisoformat(word), tz)
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        value = None
    if value is None:
        raise TimeSpecError(
            f"cannot read the time {text!r}: use today, yesterday, now, -2h, -30m, -7d, "
            "2026-11-22 or 2026-11-22T08:30"
        )
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    return value.astimezone(dt.UTC)


def interval(
    since: str | None, until: str | None, tz: ZoneInfo, now: dt.datetime | None = None
) -> tuple[dt.datetime, dt.datetime]:
    """The interval [since, until); by default from the start of today until now."""
    now = now or dt.datetime.now(dt.UTC)
    start = parse_time(since, tz, now) if since else parse_time("today", tz, now)
    end = parse_time(until, tz, now) if until else now.astimezone(dt.UTC)
    if end <= start:
        raise TimeSpecError(
            f"--until ({end.isoformat()}) must come after --since ({start.isoformat()})"
        )
    return start, end
