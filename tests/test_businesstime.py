"""The business calendar: weekends, holidays, DST, starts outside hours; sla.toml targets."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from mailproc.businesstime import BusinessCalendar, parse_target
from mailproc.rules.sla import load_sla

RULES = Path(__file__).resolve().parents[1] / "rules"
LISBON = ZoneInfo("Europe/Lisbon")
NEW_YORK = ZoneInfo("America/New_York")
UTC = timezone.utc


def calendar(tz=UTC, holidays=(), windows=((time(9), time(17)),)) -> BusinessCalendar:
    return BusinessCalendar(tz=tz, working_days=frozenset(range(5)), windows=tuple(windows),
                            holidays=frozenset(holidays))


def at(y, m, d, hh=0, mm=0, tz=UTC) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=tz)


# 2026-05-08 is a Friday.

def test_friday_afternoon_plus_two_business_hours_is_monday_morning():
    assert calendar().add_business_hours(at(2026, 5, 8, 16, 30), 2) == at(2026, 5, 11, 10, 30)


def test_result_is_utc_aware_and_input_zone_is_respected():
    cal = calendar(LISBON)
    # 16:30 Lisbon (summer, UTC+1) on Friday + 2h -> Monday 10:30 Lisbon = 09:30 UTC
    result = cal.add_business_hours(at(2026, 5, 8, 15, 30), 2)
    assert result == at(2026, 5, 11, 9, 30)
    assert result.utcoffset() == timedelta(0)


@pytest.mark.parametrize("start, hours, expected", [
    (at(2026, 5, 9, 12), 1, at(2026, 5, 11, 10)),       # Saturday: starts Monday 09:00
    (at(2026, 5, 11, 7), 1, at(2026, 5, 11, 10)),       # before hours
    (at(2026, 5, 11, 20), 1, at(2026, 5, 12, 10)),      # after hours
    (at(2026, 5, 8, 16, 30), 0.5, at(2026, 5, 8, 17)),  # lands exactly on closing time
    (at(2026, 5, 11, 10), 8, at(2026, 5, 12, 10)),      # one full business day
    (at(2026, 5, 11, 10), 0, at(2026, 5, 11, 10)),
])
def test_add_business_hours(start, hours, expected):
    assert calendar().add_business_hours(start, hours) == expected


def test_holidays_are_skipped():
    cal = calendar(holidays=[date(2026, 5, 11)])  # Monday off
    assert cal.add_business_hours(at(2026, 5, 8, 16, 30), 2) == at(2026, 5, 12, 10, 30)
    assert cal.add_business_days(at(2026, 5, 8, 12), 1) == date(2026, 5, 12)
    assert not cal.is_business_time(at(2026, 5, 11, 12))


def test_lunch_break_windows():
    cal = calendar(windows=[(time(9), time(12, 30)), (time(13, 30), time(17))])
    assert cal.day_hours == 7
    assert cal.add_business_hours(at(2026, 5, 11, 12), 1) == at(2026, 5, 11, 14)
    assert not cal.is_business_time(at(2026, 5, 11, 13))


def test_across_spring_forward_dst():
    # US DST starts Sunday 2026-03-08; Friday 16:00 EST (21:00 UTC) + 2h -> Monday 10:00 EDT (14:00 UTC)
    cal = calendar(NEW_YORK)
    assert cal.add_business_hours(at(2026, 3, 6, 21), 2) == at(2026, 3, 9, 14)
    assert cal.business_hours_between(at(2026, 3, 6, 21), at(2026, 3, 9, 14)) == pytest.approx(2)


def test_window_containing_the_dst_change_counts_real_hours():
    # An all-night window on the night Europe/Lisbon springs forward (2026-03-29 01:00 -> 02:00)
    cal = BusinessCalendar(tz=LISBON, working_days=frozenset(range(7)), windows=((time(0), time(6)),),
                           holidays=frozenset())
    assert cal.business_hours_between(at(2026, 3, 29, 0, tz=LISBON), at(2026, 3, 29, 6, tz=LISBON)) == 5


def test_need_by_business_days():
    cal = calendar()
    assert cal.add_business_days(at(2026, 5, 6, 12), 1) == date(2026, 5, 7)   # Wed -> Thu
    assert cal.add_business_days(at(2026, 5, 8, 12), 1) == date(2026, 5, 11)  # Fri -> Mon
    assert cal.add_business_days(at(2026, 5, 9, 12), 1) == date(2026, 5, 11)  # Sat -> Mon
    assert cal.add_business_days(at(2026, 5, 8, 12), 2) == date(2026, 5, 12)
    # the local date counts: Friday 23:30 UTC is already Saturday in Tokyo
    tokyo = calendar(ZoneInfo("Asia/Tokyo"))
    assert tokyo.add_business_days(at(2026, 5, 7, 23, 30), 1) == date(2026, 5, 11)


def test_business_hours_between_over_a_weekend_and_backwards():
    cal = calendar()
    assert cal.business_hours_between(at(2026, 5, 8, 16), at(2026, 5, 11, 10)) == 2
    assert cal.business_hours_between(at(2026, 5, 11, 10), at(2026, 5, 8, 16)) == -2
    assert cal.business_hours_between(at(2026, 5, 9, 1), at(2026, 5, 10, 23)) == 0


def test_is_business_time_edges():
    cal = calendar()
    assert cal.is_business_time(at(2026, 5, 8, 9))
    assert not cal.is_business_time(at(2026, 5, 8, 17))
    assert not cal.is_business_time(at(2026, 5, 9, 12))


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError, match="naive"):
        calendar().add_business_hours(datetime(2026, 5, 8, 12), 1)


@pytest.mark.parametrize("text, business, unit, phrase", [
    ("1h", False, "hour", "within 1 hour"),
    ("2 business hours", True, "hour", "within 2 business hours"),
    ("1 business day", True, "day", "within 1 business day"),
    ("30m", False, "minute", "within 30 minutes"),
    ("1.5 business hours", True, "hour", "within 1.5 business hours"),
])
def test_parse_target(text, business, unit, phrase):
    target = parse_target(text)
    assert (target.business, target.unit, target.phrase) == (business, unit, phrase)


def test_parse_target_refuses_nonsense():
    with pytest.raises(ValueError):
        parse_target("soon")


def test_shipped_sla_response_targets():
    sla = load_sla(RULES / "sla.toml", LISBON)
    assert sla.calendar.tz is LISBON
    assert sla.response_target("P2").phrase == "within 2 business hours"
    assert sla.response_target("P6").phrase == "within 2 business days"
    saturday = at(2026, 5, 9, 12, tz=LISBON)
    assert sla.expected_response("P1", saturday) == at(2026, 5, 9, 13, tz=LISBON)  # clock hour
    assert sla.expected_response("P2", saturday) == at(2026, 5, 11, 11, tz=LISBON)
    assert sla.expected_response("P4", at(2026, 5, 11, 10, tz=LISBON)) == at(2026, 5, 12, 10, tz=LISBON)
    # 2026-12-25 is a shipped holiday (Friday): P3 from Thursday 15:00 -> Monday 11:00
    assert sla.expected_response("P3", at(2026, 12, 24, 15, tz=LISBON)) == at(2026, 12, 28, 11, tz=LISBON)


def test_tier_colours_follow_spec_table():
    sla = load_sla(RULES / "sla.toml", None)
    entered = at(2026, 5, 11, 9)
    assert sla.colour("triage", entered, at(2026, 5, 11, 10, 59)) == "green"
    assert sla.colour("T1", entered, at(2026, 5, 11, 12)) == "yellow"
    assert sla.colour("T1", entered, at(2026, 5, 12, 10)) == "red"
    assert sla.colour("T2", entered, at(2026, 5, 12, 10)) == "yellow"
    assert sla.colour("T4", entered, at(2026, 5, 12, 16)) == "green"   # 15 of 16 business hours
    assert sla.colour("T4", entered, at(2026, 5, 13, 10)) == "yellow"
    assert sla.colour("T4", entered, at(2026, 5, 14, 10)) == "red"     # 25 > 3 business days
    assert sla.colour("oncall", entered, at(2026, 6, 1)) is None


def test_tier_limits_must_be_business_time(tmp_path):
    """SPEC §7 counts tier SLAs in business time, and the clock's pauses are counted so:
    a clock-time limit would mix the two."""
    from mailproc.errors import ConfigError
    path = tmp_path / "sla.toml"
    path.write_text((RULES / "sla.toml").read_text().replace('T2 = { green = "1 business day"', 'T2 = { green = "8h"'))
    with pytest.raises(ConfigError, match=r"\[tiers.T2\] green: tier SLAs count business time, not '8h'"):
        load_sla(path, None)
