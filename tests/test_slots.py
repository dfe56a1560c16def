"""Slots at local wall times: parsing, DST gaps and repeated hours, and on SQLite and
PostgreSQL: each slot done once, caught up after downtime, never redone when the clock
goes back, and claimed by one of two racing daemons only."""

from __future__ import annotations

import threading
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailproc import db, slots
from mailproc.models import SlotRun

NY, LISBON, UTC = ZoneInfo("America/New_York"), ZoneInfo("Europe/Lisbon"), timezone.utc


def local(tz, *args) -> datetime:
    return datetime(*args, tzinfo=tz)


def run(name, spec, tz, now, catch_up=slots.LATEST) -> list[str]:
    """What a caller does: due -> claim (-> queue the mail), one transaction."""
    with db.transaction():
        return [s.key for s in slots.due(name, spec, tz, now, catch_up) if slots.claim(s.key, s.at, now)]


def outcomes() -> dict[str, str]:
    return {r.key: r.outcome for r in SlotRun.select()}


# --- parsing --------------------------------------------------------------------------


def test_parse_daily_several_weekly_and_ranges():
    assert [a.wall.strftime("%H:%M") for a in slots.parse_slots("09:30, 13:30; 16:30").times] == \
        ["09:30", "13:30", "16:30"]
    weekly = slots.parse_slots("Mon 08:00, friday 7:15")
    assert [(a.weekdays, a.wall.hour, a.wall.minute) for a in weekly.times] == \
        [(frozenset({0}), 8, 0), (frozenset({4}), 7, 15)]
    assert slots.parse_slots("Fri-Mon 07:00").times[0].weekdays == frozenset({4, 5, 6, 0})


@pytest.mark.parametrize("text, says", [
    ("", "no slot time"), ("25:00", "no such time"), ("07:60", "no such time"), ("Mnday 08:00", "unknown day 'Mnday'"),
    ("07:00,,08:00", "empty entry"), ("07:00, 7:00", "given twice"), ("7 o'clock", "expected HH:MM"),
])
def test_parse_errors_say_what_is_wrong(text, says):
    with pytest.raises(slots.SlotError, match=says):
        slots.parse_slots(text)


# --- instants and DST -----------------------------------------------------------------


def test_new_york_spring_forward_gap_fires_at_three():
    spec = slots.parse_slots("02:30")
    found = slots.occurrences(spec, NY, local(NY, 2026, 3, 7), local(NY, 2026, 3, 9, 12))
    assert [(o.day, o.at.astimezone(NY).strftime("%H:%M %z"), o.shifted) for o in found] == [
        (date(2026, 3, 7), "02:30 -0500", False), (date(2026, 3, 8), "03:00 -0400", True),
        (date(2026, 3, 9), "02:30 -0400", False)]
    assert found[1].at == datetime(2026, 3, 8, 7, 0, tzinfo=UTC)


def test_new_york_fall_back_repeated_hour_fires_once_first():
    spec = slots.parse_slots("01:30")
    found = slots.instants(spec, NY, local(NY, 2026, 11, 1), local(NY, 2026, 11, 2))
    assert found == [datetime(2026, 11, 1, 5, 30, tzinfo=UTC)]  # 01:30 EDT, not 01:30 EST an hour later


def test_lisbon_gap_and_repeated_hour():
    spec = slots.parse_slots("01:30")
    spring = slots.occurrences(spec, LISBON, local(LISBON, 2026, 3, 29), local(LISBON, 2026, 3, 30))
    assert [(o.at.astimezone(LISBON).strftime("%H:%M %z"), o.shifted) for o in spring] == [("02:00 +0100", True)]
    autumn = slots.instants(spec, LISBON, local(LISBON, 2026, 10, 25), local(LISBON, 2026, 10, 26))
    assert autumn == [datetime(2026, 10, 25, 0, 30, tzinfo=UTC)]  # 01:30 WEST, the first one


def test_interval_is_open_at_start_closed_at_end():
    spec = slots.parse_slots("07:00")
    at = datetime(2026, 6, 1, 7, 0, tzinfo=UTC)
    assert slots.instants(spec, UTC, at - timedelta(seconds=1), at) == [at]
    assert slots.instants(spec, UTC, at, at + timedelta(hours=1)) == []


def test_weekly_and_working_days():
    weekly = slots.parse_slots("Mon 08:00")
    found = slots.instants(weekly, LISBON, local(LISBON, 2026, 11, 1), local(LISBON, 2026, 11, 30))
    assert [t.astimezone(LISBON).strftime("%a %d %H:%M") for t in found] == \
        ["Mon 02 08:00", "Mon 09 08:00", "Mon 16 08:00", "Mon 23 08:00"]
    week = (local(LISBON, 2026, 11, 22), local(LISBON, 2026, 11, 29, 23))  # Sunday to Sunday
    workdays = slots.parse_slots("07:00", days=frozenset(range(5)))
    assert len(slots.instants(workdays, LISBON, *week)) == 5
    holiday = slots.parse_slots("07:00", days=lambda d: d.weekday() < 5 and d != date(2026, 11, 25))
    assert date(2026, 11, 25) not in {t.date() for t in slots.instants(holiday, LISBON, *week)}
    assert len(slots.instants(holiday, LISBON, *week)) == 4


# --- the slot_run table, both databases ----------------------------------------------


@pytest.fixture
def database(db_url):
    return db.open_database(db_url)


DAILY = slots.parse_slots("07:00")


def test_exactly_once_under_repeated_calls(database):
    now = local(LISBON, 2026, 11, 30, 7, 0, 30)
    assert run("digest", DAILY, LISBON, now) == ["digest:2026-11-30T07:00"]
    for later in (now, now + timedelta(minutes=1), now + timedelta(hours=10)):
        assert run("digest", DAILY, LISBON, later) == []
    assert run("digest", DAILY, LISBON, local(LISBON, 2026, 12, 1, 7, 0)) == ["digest:2026-12-01T07:00"]
    assert run("digest:ana", DAILY, LISBON, now) == ["digest:ana:2026-11-30T07:00"]  # per agent: its own key
    row = SlotRun.get(SlotRun.key == "digest:2026-11-30T07:00")
    assert (row.slot_at, row.done_at, row.outcome) == (datetime(2026, 11, 30, 7, 0), datetime(2026, 11, 30, 7, 0, 30),
                                                       "done")


def test_a_monthly_job_that_must_not_run_first_starts_with_its_next_slot(database):
    """A monthly client mail (day 8, 09:00) with a month of lookback: a first start on the
    12th sends nothing (the team sent it by hand) and the 8th of next month's goes; after
    that, nine days down over the 8th still catch it up."""
    spec = slots.parse_slots("09:00", days=lambda d: d.day == 8)

    def monthly(now):
        with db.transaction():
            return [s.key for s in slots.due("hours", spec, LISBON, now, lookback=timedelta(days=31),
                                             run_first=False) if slots.claim(s.key, s.at, now)]
    assert monthly(local(LISBON, 2026, 11, 12, 10, 0)) == []
    assert outcomes()["hours:2026-11-08T09:00"] == "skipped"
    assert monthly(local(LISBON, 2026, 12, 8, 9, 0)) == ["hours:2026-12-08T09:00"]
    assert monthly(local(LISBON, 2027, 1, 16, 12, 0)) == ["hours:2027-01-08T09:00"]  # down from the 7th
    assert run("digest", DAILY, LISBON, local(LISBON, 2026, 11, 30, 7, 1)) == ["digest:2026-11-30T07:00"]  # default
    # A first start with no slot in the lookback at all still goes on with the next one.
    week = timedelta(days=7)
    with db.transaction():
        assert slots.due("callprep", spec, LISBON, local(LISBON, 2026, 11, 20), lookback=week, run_first=False) == []
    with db.transaction():
        assert [s.key for s in slots.due("callprep", spec, LISBON, local(LISBON, 2026, 12, 8, 9, 1), lookback=week,
                                         run_first=False)] == ["callprep:2026-12-08T09:00"]


def test_before_the_slot_nothing_is_due(database):
    assert run("digest", DAILY, LISBON, local(LISBON, 2026, 11, 30, 6, 59)) == ["digest:2026-11-29T07:00"]
    assert run("digest", DAILY, LISBON, local(LISBON, 2026, 11, 30, 6, 59, 59)) == []


def test_catch_up_after_three_days_down_sends_the_latest_once(database):
    run("digest", DAILY, LISBON, local(LISBON, 2026, 11, 20, 7, 1))
    assert run("digest", DAILY, LISBON, local(LISBON, 2026, 11, 23, 10, 0)) == ["digest:2026-11-23T07:00"]
    assert {k: v for k, v in outcomes().items() if k >= "digest:2026-11-20"} == {
        "digest:2026-11-20T07:00": "done", "digest:2026-11-21T07:00": "skipped",
                          "digest:2026-11-22T07:00": "skipped", "digest:2026-11-23T07:00": "done"}
    # the clock goes back into the outage: the skipped slots stay skipped
    assert outcomes()["digest:2026-11-19T07:00"] == "skipped"  # before the first run: never to be done
    assert run("digest", DAILY, LISBON, local(LISBON, 2026, 11, 21, 8, 0)) == []
    assert run("digest", DAILY, LISBON, local(LISBON, 2026, 11, 22, 8, 0)) == []


def test_catch_up_all_does_each_missed_slot_in_order(database):
    run("report", DAILY, LISBON, local(LISBON, 2026, 11, 20, 7, 1), slots.ALL)
    assert run("report", DAILY, LISBON, local(LISBON, 2026, 11, 23, 10, 0), slots.ALL) == [
        "report:2026-11-21T07:00", "report:2026-11-22T07:00", "report:2026-11-23T07:00"]


def test_a_new_name_and_a_long_outage_start_with_the_latest_slot(database):
    assert run("report", DAILY, LISBON, local(LISBON, 2026, 11, 23, 10, 0), slots.ALL) == ["report:2026-11-23T07:00"]
    # down 20 days: only the last week is looked at, and only its latest slot is done
    assert run("report", DAILY, LISBON, local(LISBON, 2026, 12, 13, 10, 0), slots.ALL) == ["report:2026-12-13T07:00"]
    assert SlotRun.select().where(SlotRun.outcome == "skipped").count() == 12


def test_several_a_day_after_a_morning_outage(database):
    spec = slots.parse_slots("09:30, 13:30, 16:30")
    assert run("checkin:ana", spec, LISBON, local(LISBON, 2026, 11, 30, 9, 31)) == ["checkin:ana:2026-11-30T09:30"]
    assert run("checkin:ana", spec, LISBON, local(LISBON, 2026, 11, 30, 17, 0)) == ["checkin:ana:2026-11-30T16:30"]
    assert outcomes()["checkin:ana:2026-11-30T13:30"] == "skipped"


def test_dst_gap_slot_is_done_once_with_the_wall_time_in_its_key(database):
    spec = slots.parse_slots("02:30")
    assert run("digest", spec, NY, local(NY, 2026, 3, 8, 1, 0)) == ["digest:2026-03-07T02:30"]
    assert run("digest", spec, NY, datetime(2026, 3, 8, 6, 59, tzinfo=UTC)) == []  # 01:59 EST
    assert run("digest", spec, NY, datetime(2026, 3, 8, 7, 0, tzinfo=UTC)) == ["digest:2026-03-08T02:30"]  # 03:00 EDT
    assert run("digest", spec, NY, local(NY, 2026, 3, 8, 23, 0)) == []


def test_fall_back_slot_is_done_once_across_both_hours(database):
    spec = slots.parse_slots("01:30")
    first = datetime(2026, 11, 1, 5, 30, tzinfo=UTC)  # 01:30 EDT
    assert run("digest", spec, NY, first) == ["digest:2026-11-01T01:30"]
    assert run("digest", spec, NY, first + timedelta(hours=1)) == []  # 01:30 EST, the repeated hour
    assert run("digest", spec, NY, first + timedelta(hours=2)) == []


def test_weekly_slot_is_due_on_its_day_only(database):
    weekly = slots.parse_slots("Mon 08:00")
    assert run("weekly", weekly, LISBON, local(LISBON, 2026, 11, 30, 7, 59)) == ["weekly:2026-11-23T08:00"]
    assert run("weekly", weekly, LISBON, local(LISBON, 2026, 12, 4, 12, 0)) == ["weekly:2026-11-30T08:00"]
    assert run("weekly", weekly, LISBON, local(LISBON, 2026, 12, 6, 12, 0)) == []


def test_claim_is_true_once_and_rolls_back_with_its_transaction(database):
    at, now = datetime(2026, 11, 30, 7, 0, tzinfo=UTC), datetime(2026, 11, 30, 7, 1, tzinfo=UTC)
    with pytest.raises(RuntimeError):
        with db.transaction():
            assert slots.claim("digest:x", at, now)
            raise RuntimeError("queueing the mail failed")
    assert not SlotRun.select().exists()
    with db.transaction():
        assert slots.claim("digest:x", at, now)
        assert not slots.claim("digest:x", at, now)
    assert not slots.claim("digest:x", at, now + timedelta(days=1))


def test_two_daemons_racing_on_postgresql_one_gets_the_slot(database, db_url):
    if isinstance(database, db.pw.SqliteDatabase):
        pytest.skip("SQLite serializes writers with its write lock")
    import psycopg2

    at, now = datetime(2026, 11, 30, 7, 0, tzinfo=UTC), datetime(2026, 11, 30, 7, 1, tzinfo=UTC)
    other = psycopg2.connect(db_url)
    result: dict[str, int] = {}

    def second_daemon() -> None:
        with other, other.cursor() as cursor:
            cursor.execute('INSERT INTO "slot_run" ("key", "slot_at", "done_at", "outcome") VALUES (%s, %s, %s, %s)'
                           ' ON CONFLICT ("key") DO NOTHING', ("digest:x", at.replace(tzinfo=None),
                                                                 now.replace(tzinfo=None), "done"))
            result["rows"] = cursor.rowcount

    try:
        with db.transaction():
            assert slots.claim("digest:x", at, now)
            racer = threading.Thread(target=second_daemon)
            racer.start()
            racer.join(0.5)
            assert racer.is_alive()  # waits for our transaction to decide
        racer.join(10)
        assert result == {"rows": 0}
    finally:
        other.close()


# --- property: whatever the clock does, a key is claimed at most once --------------------

NOWS = st.lists(st.integers(min_value=0, max_value=20 * 24 * 60), min_size=1, max_size=12)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(minutes=NOWS, monotone=st.booleans(), catch_up=st.sampled_from([slots.LATEST, slots.ALL]))
def test_each_key_is_claimed_at_most_once(database, minutes, monotone, catch_up):
    SlotRun.delete().execute()
    spec = slots.parse_slots("01:30, 02:30, Sun 09:00")
    base = local(NY, 2026, 10, 25)  # the window holds the fall-back night of November 1
    claimed: list[str] = []
    for m in sorted(minutes) if monotone else minutes:
        now = base + timedelta(minutes=m)
        with db.transaction():
            for s in slots.due("p", spec, NY, now, catch_up):
                assert s.at <= now
                if slots.claim(s.key, s.at, now):
                    claimed.append(s.key)
    assert len(claimed) == len(set(claimed))
    last = base + timedelta(minutes=max(minutes))
    latest = slots.occurrences(spec, NY, last - slots.LOOKBACK, last)
    if monotone and latest:  # the most recent slot by the last call has been done
        assert outcomes()[slots.slot_key("p", latest[-1])] == "done"
