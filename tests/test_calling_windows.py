"""may_call: the legal 08:00-21:00 in the contact's own time zone, narrowed per campaign,
days of week and holidays, at the edges and across daylight-saving changes."""

from __future__ import annotations

import datetime as dt

import pytest

from callcenter.campaigns.windows import CallingWindows, is_time_zone, may_call

UTC = dt.UTC
NY = "America/New_York"
DEFAULT = CallingWindows()


def at(year: int, month: int, day: int, hour: int, minute: int, second: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, second, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "allowed"),
    [
        (at(2026, 7, 1, 11, 59, 59), False),  # 07:59:59 EDT
        (at(2026, 7, 1, 12, 0), True),  # 08:00 EDT: the first second allowed
        (at(2026, 7, 2, 0, 59, 59), True),  # 20:59:59 EDT
        (at(2026, 7, 2, 1, 0), False),  # 21:00 EDT: the end is not included
    ],
)
def test_default_window_edges(now: dt.datetime, allowed: bool) -> None:
    assert may_call(NY, DEFAULT, now)[0] is allowed


def test_same_instant_differs_by_contact_zone() -> None:
    now = at(2026, 7, 1, 14, 0)  # 10:00 in New York, 07:00 in Los Angeles
    assert may_call(NY, DEFAULT, now) == (True, "")
    ok, reason = may_call("America/Los_Angeles", DEFAULT, now)
    assert not ok
    assert reason == "07:00 in America/Los_Angeles is outside 08:00-21:00"


def test_across_dst_spring_forward() -> None:
    # 2026-03-08: New York moves from EST (UTC-5) to EDT (UTC-4) at 02:00 local.
    assert may_call(NY, DEFAULT, at(2026, 3, 7, 12, 30))[0] is False  # 07:30 EST
    assert may_call(NY, DEFAULT, at(2026, 3, 8, 12, 30))[0] is True  # 08:30 EDT
    assert may_call(NY, DEFAULT, at(2026, 3, 8, 11, 59))[0] is False  # 07:59 EDT
    assert may_call(NY, DEFAULT, at(2026, 3, 9, 0, 59))[0] is True  # 20:59 EDT
    assert may_call(NY, DEFAULT, at(2026, 3, 9, 1, 0))[0] is False  # 21:00 EDT


def test_across_dst_fall_back() -> None:
    # 2026-11-01: back to EST; 13:00 UTC is 08:00 EST, the same UTC was 09:00 EDT a day before.
    assert may_call(NY, DEFAULT, at(2026, 11, 1, 12, 59))[0] is False  # 07:59 EST
    assert may_call(NY, DEFAULT, at(2026, 11, 1, 13, 0))[0] is True
    assert may_call(NY, DEFAULT, at(2026, 11, 2, 1, 59))[0] is True  # 20:59 EST
    assert may_call(NY, DEFAULT, at(2026, 11, 2, 2, 0))[0] is False  # 21:00 EST


def test_campaign_hours_narrow_never_widen() -> None:
    narrow = CallingWindows(start=dt.time(9, 30), end=dt.time(17, 0))
    assert may_call(NY, narrow, at(2026, 7, 1, 13, 29))[0] is False  # 09:29
    assert may_call(NY, narrow, at(2026, 7, 1, 13, 30))[0] is True
    assert may_call(NY, narrow, at(2026, 7, 1, 21, 0))[0] is False  # 17:00
    wide = CallingWindows(start=dt.time(6, 0), end=dt.time(23, 0))
    assert may_call(NY, wide, at(2026, 7, 1, 11, 0))[0] is False  # 07:00: still the law
    assert may_call(NY, wide, at(2026, 7, 2, 1, 30))[0] is False  # 21:30


def test_days_and_holidays_in_the_contacts_calendar() -> None:
    weekdays = CallingWindows(days=(1, 2, 3, 4, 5))
    # Saturday 2026-07-04 10:00 in New York.
    assert may_call(NY, weekdays, at(2026, 7, 4, 14, 0)) == (False, "sat is not a calling day")
    assert may_call(NY, weekdays, at(2026, 7, 3, 14, 0))[0] is True
    # Friday 20:30 in Honolulu is already Saturday in UTC: the contact's day counts.
    assert may_call("Pacific/Honolulu", weekdays, at(2026, 7, 4, 6, 30))[0] is True
    xmas = CallingWindows(holidays=frozenset({dt.date(2026, 12, 25)}))
    assert may_call(NY, xmas, at(2026, 12, 25, 15, 0)) == (False, "2026-12-25 is a holiday")
    # 2026-12-25 00:30 UTC is still the 24th (19:30) in New York: allowed.
    assert may_call(NY, xmas, at(2026, 12, 25, 0, 30)) == (True, "")
    # 2026-12-26 01:00 UTC is the 25th (20:00) in New York: the holiday.
    assert may_call(NY, xmas, at(2026, 12, 26, 1, 0))[0] is False


def test_unknown_zone_and_naive_time() -> None:
    assert may_call("Mars/Olympus", DEFAULT, at(2026, 7, 1, 14, 0)) == (
        False,
        "unknown time zone 'Mars/Olympus'",
    )
    assert may_call("", DEFAULT, at(2026, 7, 1, 14, 0))[0] is False
    assert is_time_zone(NY)
    assert not is_time_zone("Nowhere")
    with pytest.raises(ValueError, match="aware"):
        may_call(NY, DEFAULT, dt.datetime(2026, 7, 1, 14, 0))
