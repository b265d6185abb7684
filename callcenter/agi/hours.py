"""Business hours: weekly opening spans in a time zone, with holidays. Pure.

Configuration (one ``[ivr.<name>.hours]`` table; a day not named is closed)::

    [ivr.main.hours]
    mon-fri = "08:00-12:30, 13:30-18:00"
    sat = "09:00-13:00"
    sun = ""                 # closed (also "closed")

Spans are ``HH:MM-HH:MM`` in the IVR's time zone (the site's unless the IVR names one), start
included, end excluded; ``24:00`` ends at midnight. Holidays are ``YYYY-MM-DD`` dates, closed
all day. Local times come from :mod:`zoneinfo`, so a span that a DST change skips is simply
shorter that day.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SPAN = re.compile(r"(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})")

Span = tuple[int, int]  # minutes since midnight, [start, end)


class HoursError(ValueError):
    """A malformed hours or holidays entry; the message names it."""


@dataclass(frozen=True, slots=True)
class BusinessHours:
    tz: ZoneInfo
    weekly: Mapping[int, tuple[Span, ...]] = field(default_factory=dict)
    holidays: frozenset[dt.date] = frozenset()

    def is_open(self, when: dt.datetime) -> bool:
        """Whether ``when`` (aware; any zone) falls in an opening span and not on a holiday."""
        local = when.astimezone(self.tz)
        if local.date() in self.holidays:
            return False
        minute = local.hour * 60 + local.minute
        return any(start <= minute < end for start, end in self.weekly.get(local.weekday(), ()))


def _day_keys(key: str) -> list[int]:
    name = key.strip().lower()
    if "-" in name:
        first, _, last = name.partition("-")
        if first not in DAYS or last not in DAYS:
            raise HoursError(f"{key!r} is not a day or a range of days such as mon-fri")
        a, b = DAYS.index(first), DAYS.index(last)
        if a > b:
            raise HoursError(f"{key!r}: the range must run forward within a week (mon..sun)")
        return list(range(a, b + 1))
    if name not in DAYS:
        raise HoursError(f"{key!r} is not a day ({', '.join(DAYS)}) or a range such as mon-fri")
    return [DAYS.index(name)]


def parse_spans(value: Any) -> tuple[Span, ...]:
    """``"08:00-12:00, 13:00-17:00"`` (or a list of such strings) as minute spans."""
    items: Iterable[Any] = value if isinstance(value, list) else [value]
    spans: list[Span] = []
    for item in items:
        if not isinstance(item, str):
            raise HoursError(f'{item!r} is not a text such as "08:00-18:00"')
        for part in item.split(","):
            part = part.strip()
            if not part or part.lower() == "closed":
                continue
            m = _SPAN.fullmatch(part)
            if m is None:
                raise HoursError(f"{part!r} is not a span such as 08:00-18:00")
            h1, m1, h2, m2 = (int(g) for g in m.groups())
            if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2):
                raise HoursError(f"{part!r} holds an impossible time")
            start, end = h1 * 60 + m1, h2 * 60 + m2
            if end <= start:
                raise HoursError(f"{part!r} ends before it starts (split spans across midnight)")
            spans.append((start, end))
    return tuple(sorted(spans))


def parse_hours(raw: Any, holidays: Any, tz: ZoneInfo) -> BusinessHours:
    """Build :class:`BusinessHours` from the configuration values; :class:`HoursError`."""
    weekly: dict[int, tuple[Span, ...]] = {}
    if raw is not None:
        if not isinstance(raw, Mapping):
            raise HoursError('hours must be a table such as { mon-fri = "08:00-18:00" }')
        for key, value in raw.items():
            spans = parse_spans(value)
            for day in _day_keys(str(key)):
                if day in weekly:
                    raise HoursError(f"{DAYS[day]} is given twice (in {key!r})")
                weekly[day] = spans
    dates: set[dt.date] = set()
    if holidays is not None:
        if not isinstance(holidays, list):
            raise HoursError('holidays must be a list of dates such as ["2026-12-25"]')
        for item in holidays:
            if isinstance(item, dt.date) and not isinstance(item, dt.datetime):
                dates.add(item)  # TOML's own date type
                continue
            try:
                dates.add(dt.date.fromisoformat(str(item)))
            except ValueError:
                raise HoursError(f"holiday {item!r} is not a date such as 2026-12-25") from None
    return BusinessHours(tz=tz, weekly=weekly, holidays=frozenset(dates))
