from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from callcenter.timespec import TimeSpecError, interval, parse_time

MADRID = ZoneInfo("Europe/Madrid")
NOW = dt.datetime(2026, 11, 22, 10, 30, tzinfo=dt.UTC)  # 11:30 in Madrid


def test_words_and_relative() -> None:
    assert parse_time("today", MADRID, NOW) == dt.datetime(2026, 11, 21, 23, 0, tzinfo=dt.UTC)
    assert parse_time("yesterday", MADRID, NOW) == dt.datetime(2026, 11, 20, 23, tzinfo=dt.UTC)
    assert parse_time("now", MADRID, NOW) == NOW
    assert parse_time("-2h", MADRID, NOW) == NOW - dt.timedelta(hours=2)
    assert parse_time("-7d", MADRID, NOW) == NOW - dt.timedelta(days=7)


def test_dates_are_in_the_site_zone_unless_offset_given() -> None:
    assert parse_time("2026-07-01", MADRID) == dt.datetime(2026, 6, 30, 22, tzinfo=dt.UTC)
    assert parse_time("2026-07-01T08:00", MADRID) == dt.datetime(2026, 7, 1, 6, tzinfo=dt.UTC)
    assert parse_time("2026-07-01T08:00+00:00", MADRID) == dt.datetime(2026, 7, 1, 8, tzinfo=dt.UTC)


def test_bad_input() -> None:
    with pytest.raises(TimeSpecError, match="cannot read the time 'soon'"):
        parse_time("soon", MADRID)
    with pytest.raises(TimeSpecError, match="must come after"):
        interval("today", "yesterday", MADRID, NOW)


def test_default_interval_is_today_until_now() -> None:
    assert interval(None, None, MADRID, NOW) == (parse_time("today", MADRID, NOW), NOW)
