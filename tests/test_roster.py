"""The roster: working windows (with DST), the choice of assignee, and the roster in the database."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailproc import cases, db, roster
from mailproc.availability import Schedule, parse_hours
from mailproc.businesstime import BusinessCalendar
from mailproc.config import AgentConfig, TeamConfig
from mailproc.models import Case, Person, Team, TeamMember

UTC = timezone.utc
NY = ZoneInfo("America/New_York")
LISBON = ZoneInfo("Europe/Lisbon")
ZONE_UTC = ZoneInfo("UTC")
CALENDAR = BusinessCalendar(tz=UTC, working_days=frozenset(range(5)), windows=((time(9), time(17)),),
                            holidays=frozenset({date(2026, 12, 25)}))


def u(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def agent(name, hours=None, tz=ZONE_UTC, teams=("Support Team",), address=None, **kw) -> roster.Agent:
    config = AgentConfig(name=name, address=address or f"{name}@agents.example", display_name=name.title(),
                         teams=tuple(teams), tier=kw.get("tier"), timezone=tz,
                         hours=None if hours is None else parse_hours(hours), hours_text=hours,
                         roles=tuple(kw.get("roles", ())))
    schedule = (roster.calendar_schedule(CALENDAR) if hours is None
                else Schedule(tz=tz, windows=config.hours, text=hours))
    return roster.Agent(config, schedule)


# --- the hours grammar ------------------------------------------------------------------------------

@pytest.mark.parametrize("text, windows", [
    ("Mon-Fri 07:00-13:00", [({0, 1, 2, 3, 4}, time(7), 360)]),
    ("Mon-Fri 07:00-13:00, Sat 09:00-12:00", [({0, 1, 2, 3, 4}, time(7), 360), ({5}, time(9), 180)]),
    ("mon-fri 09:00-12:30, 13:30-17:00", [({0, 1, 2, 3, 4}, time(9), 210), ({0, 1, 2, 3, 4}, time(13, 30), 210)]),
    ("Mon Wed Fri 17:00-20:00", [({0, 2, 4}, time(17), 180)]),
    ("Fri-Mon 9:00-12:00", [({4, 5, 6, 0}, time(9), 180)]),
    ("Daily 22:00-02:00", [(set(range(7)), time(22), 240)]),
    ("Saturday-Sunday 00:00-24:00", [({5, 6}, time(0), 1440)]),
])
def test_hours_grammar(text, windows):
    assert [(set(w.days), w.start, w.minutes) for w in parse_hours(text)] == windows


@pytest.mark.parametrize("text, words", [
    ("", "no working window"),
    ("07:00-13:00", "names no days"),
    ("Mon-Fri 7am-1pm", "not DAYS HH:MM-HH:MM"),
    ("Mon-Fry 07:00-13:00", "unknown day 'Fry'"),
    ("Mon-Fri 07:00-13:00,", "empty window"),
    ("Mon 25:00-26:00", "not a time of day"),
    ("Mon 09:00-09:00", "ends when it starts"),
    ("Mon 09:00-12:00 extra", "not DAYS HH:MM-HH:MM"),
])
def test_hours_grammar_errors(text, words):
    with pytest.raises(ValueError, match=words):
        parse_hours(text)


# --- availability, DST included -------------------------------------------------------------------

@pytest.mark.parametrize("hours, tz, at, expected", [
    # seed 001's Stephanie, M-F ~7am-1pm, in New York: 07:00 local is 12:00 UTC in winter, 11:00 in summer
    ("Mon-Fri 07:00-13:00", NY, u(2026, 1, 12, 12, 0), True),
    ("Mon-Fri 07:00-13:00", NY, u(2026, 1, 12, 11, 59), False),
    ("Mon-Fri 07:00-13:00", NY, u(2026, 3, 9, 11, 0), True),  # the Monday after clocks went forward
    ("Mon-Fri 07:00-13:00", NY, u(2026, 3, 9, 17, 0), False),  # 13:00 EDT: the end is excluded
    ("Mon-Fri 07:00-13:00", NY, u(2026, 1, 10, 14, 0), False),  # Saturday
    # spring forward, New York 2026-03-08 02:00 -> 03:00: 01:00-03:00 local is one real hour
    ("Sun 01:00-03:00", NY, u(2026, 3, 8, 6, 30), True),
    ("Sun 01:00-03:00", NY, u(2026, 3, 8, 7, 0), False),
    # fall back, 2026-11-01 02:00 -> 01:00: 00:00-02:00 local is three real hours
    ("Sun 00:00-02:00", NY, u(2026, 11, 1, 6, 30), True),
    ("Sun 00:00-02:00", NY, u(2026, 11, 1, 7, 0), False),
    # overnight across Lisbon's spring forward (2026-03-29 01:00 -> 02:00): Sat 22:00 WET to Sun 06:00 WEST
    ("Sat 22:00-06:00", LISBON, u(2026, 3, 28, 22, 0), True),
    ("Sat 22:00-06:00", LISBON, u(2026, 3, 29, 4, 59), True),
    ("Sat 22:00-06:00", LISBON, u(2026, 3, 29, 5, 0), False),
    ("Sat 22:00-06:00", LISBON, u(2026, 3, 29, 21, 59), False),  # Sunday evening: the window is Saturday's
    # a window starting in the skipped hour starts one hour later on the new clock
    ("Sun 01:30-04:00", LISBON, u(2026, 3, 29, 1, 0), False),  # 02:00 WEST
    ("Sun 01:30-04:00", LISBON, u(2026, 3, 29, 1, 30), True),  # 02:30 WEST
])
def test_available_in_the_agents_time_zone(hours, tz, at, expected):
    assert roster.available(agent("stephanie", hours, tz), at) is expected


def test_default_hours_are_the_business_calendar_with_its_holidays():
    ana = agent("ana")
    assert roster.available(ana, u(2026, 12, 24, 9, 0))
    assert not roster.available(ana, u(2026, 12, 25, 10, 0))  # a holiday of the calendar
    assert roster.next_window_start(ana, u(2026, 12, 24, 17, 0)) == u(2026, 12, 28, 9, 0)  # Fri holiday, weekend
    assert ana.schedule.text == "business hours (Mon-Fri 09:00-17:00)"


@pytest.mark.parametrize("hours, tz, after, expected", [
    ("Mon-Fri 07:00-13:00", NY, u(2026, 1, 12, 18, 0), u(2026, 1, 13, 12, 0)),
    ("Mon-Fri 07:00-13:00", NY, u(2026, 1, 9, 18, 0), u(2026, 1, 12, 12, 0)),  # Friday evening -> Monday
    ("Mon-Fri 07:00-13:00", NY, u(2026, 3, 6, 18, 0), u(2026, 3, 9, 11, 0)),  # over the DST weekend
    ("Mon-Fri 07:00-13:00", NY, u(2026, 1, 12, 12, 0), u(2026, 1, 13, 12, 0)),  # strictly after a start
    ("Sat 22:00-06:00", LISBON, u(2026, 3, 28, 12, 0), u(2026, 3, 28, 22, 0)),
    ("Daily 17:00-20:00", ZoneInfo("Asia/Kolkata"), u(2026, 6, 1, 0, 0), u(2026, 6, 1, 11, 30)),
])
def test_next_window_start(hours, tz, after, expected):
    assert roster.next_window_start(agent("x", hours, tz), after) == expected


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError, match="naive"):
        roster.available(agent("x", "Mon 09:00-10:00"), datetime(2026, 1, 5, 9, 30))


_ZONES = st.sampled_from([UTC, NY, LISBON, ZoneInfo("Australia/Lord_Howe"), ZoneInfo("Asia/Kolkata")])
_DAYS = st.sampled_from(["Mon-Fri", "Sat", "Daily", "Sun", "Fri-Mon", "Tue Thu"])
_CLOCK = st.tuples(st.integers(0, 23), st.sampled_from([0, 15, 30, 45]))


@st.composite
def schedules(draw):
    parts = []
    for _ in range(draw(st.integers(1, 3))):
        (h1, m1), (h2, m2) = draw(_CLOCK), draw(_CLOCK)
        if (h1, m1) == (h2, m2):
            h2 = (h2 + 1) % 24
        parts.append(f"{draw(_DAYS)} {h1:02}:{m1:02}-{h2:02}:{m2:02}")
    text = ", ".join(parts)
    return Schedule(tz=draw(_ZONES), windows=parse_hours(text), text=text)


_INSTANTS = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 31),
                         timezones=st.just(UTC))


@settings(max_examples=300, deadline=None)
@given(schedules(), _INSTANTS, st.floats(0, 1))
def test_next_start_is_in_a_window_and_nothing_opens_before_it(schedule, at, fraction):
    start = schedule.next_start(at)
    assert start is not None and start > at
    assert schedule.contains(start)
    if not schedule.contains(at):  # off duty until the next start, at every instant in between
        between = at + (start - at) * fraction
        assert between == start or not schedule.contains(between)


@settings(max_examples=300, deadline=None)
@given(schedules(), _INSTANTS)
def test_contains_agrees_with_the_wall_clock_where_no_clock_changes(schedule, at):
    """Without DST a window is plain wall-clock arithmetic; check against a brute-force reading."""
    plain = Schedule(tz=ZoneInfo("Asia/Tokyo"), windows=schedule.windows, text=schedule.text)
    local = at.astimezone(plain.tz).replace(tzinfo=None)
    expected = False
    for back in (0, 1):
        day = local.date() - timedelta(days=back)
        for w in plain.windows:
            begin = datetime.combine(day, w.start)
            if day.weekday() in w.days and begin <= local < begin + timedelta(minutes=w.minutes):
                expected = True
    assert plain.contains(at) is expected


# --- choosing the assignee -------------------------------------------------------------------------

MONDAY_10 = u(2026, 1, 12, 10, 0)


def test_choose_fewest_open_cases_among_those_at_work():
    team = [agent("ana"), agent("bob"), agent("cleo", "Sat 09:00-12:00")]
    choice = roster.choose(team, MONDAY_10, {"ana": 3, "bob": 1, "cleo": 0}, {})
    assert (choice.agent.name, choice.rule, choice.starts_at) == ("bob", roster.RULE_AVAILABLE, MONDAY_10)


def test_choose_then_longest_since_last_assignment_then_name():
    team = [agent("bob"), agent("ana"), agent("cleo")]
    last = {"ana": u(2026, 1, 12, 9, 0), "bob": u(2026, 1, 12, 8, 0), "cleo": u(2026, 1, 12, 9, 30)}
    assert roster.choose(team, MONDAY_10, {}, last).agent.name == "bob"
    assert roster.choose(team, MONDAY_10, {}, {**last, "cleo": None}).agent.name == "cleo"  # never assigned
    assert roster.choose(team, MONDAY_10, {}, {}).agent.name == "ana"  # everything equal: by name


def test_nobody_off_duty_is_chosen_while_someone_works():
    team = [agent("ana", "Mon 10:30-12:00"), agent("bob", "Mon 09:00-10:01")]
    choice = roster.choose(team, MONDAY_10, {"bob": 50}, {})
    assert choice.agent.name == "bob" and choice.rule == roster.RULE_AVAILABLE


def test_nobody_at_work_goes_to_the_soonest_window():
    saturday = u(2026, 1, 10, 12, 0)
    team = [agent("ana"), agent("bob", "Sun 08:00-12:00"), agent("cleo", "Mon 06:00-08:00", NY)]
    choice = roster.choose(team, saturday, {"bob": 9}, {})
    assert (choice.agent.name, choice.rule, choice.starts_at) == ("bob", roster.RULE_NEXT_WINDOW, u(2026, 1, 11, 8))
    # two windows opening together: the load decides
    team = [agent("ana"), agent("bob")]
    assert roster.choose(team, saturday, {"ana": 2, "bob": 1}, {}).agent.name == "bob"


def test_a_team_without_agents_gets_nobody():
    assert roster.choose([], MONDAY_10, {}, {}) is None


# --- the roster in the database --------------------------------------------------------------------

def _roster(*agents, teams=()):
    base = [TeamConfig(name=n, lead=None, address=None, configured=False) for n in ("Support Team", "Dev Team")]
    return roster.Roster(agents=tuple(agents), teams=tuple(base) + tuple(teams))


def test_sync_is_idempotent_and_keeps_people_who_left_inactive(db_url):
    db.open_database(db_url)
    from mailproc.stages.thread import is_agent
    lead = TeamConfig(name="Billing", lead="ana", address="billing-team@example.com", configured=True)
    first = _roster(agent("ana", teams=("Support Team", "Dev Team"), roles=("lead",), tier="T2"),
                    agent("bob", "Mon-Fri 07:00-13:00", NY), teams=(lead,))
    assert roster.sync(first) == {"added": 2, "updated": 0, "deactivated": 0}
    assert roster.sync(first) == {"added": 0, "updated": 0, "deactivated": 0}
    ana = Person.get(Person.handle == "ana")
    assert (ana.address, ana.name, ana.role, ana.tier, ana.timezone, ana.availability, ana.team.name) == \
        ("ana@agents.example", "Ana", "lead", "T2", "UTC", None, "Support Team")
    teams = sorted(m.team.name for m in TeamMember.select().where(TeamMember.person == ana))
    assert teams == ["Dev Team", "Support Team"]
    billing = Team.get(Team.name == "Billing")
    assert (billing.lead, billing.address) == ("ana", "billing-team@example.com")
    assert Person.get(Person.handle == "bob").availability == "Mon-Fri 07:00-13:00"
    assert is_agent("BOB@agents.example")

    case = Case.create(contact="c@example.com", assignee=Person.get(Person.handle == "bob"), created_at=MONDAY_10,
                       updated_at=MONDAY_10, status_changed_at=MONDAY_10, tier_entered_at=MONDAY_10)
    second = _roster(agent("ana", teams=("Dev Team",)))
    assert roster.sync(second) == {"added": 0, "updated": 1, "deactivated": 1}
    bob = Person.get(Person.handle == "bob")
    assert not bob.active and Case.get_by_id(case.id).assignee_id == bob.id  # kept, with their case
    assert not is_agent("bob@agents.example")
    assert [m.team.name for m in TeamMember.select().where(TeamMember.person == ana)] == ["Dev Team"]
    assert roster.sync(first)["updated"] == 2 and Person.get(Person.handle == "bob").active  # back again


def test_sync_follows_a_renamed_agent_and_swapped_addresses(db_url):
    db.open_database(db_url)
    roster.sync(_roster(agent("ana", address="a@x.example"), agent("bob", address="b@x.example")))
    ana_id = Person.get(Person.handle == "ana").id
    roster.sync(_roster(agent("anna", address="a@x.example"), agent("bob", address="b@x.example")))
    assert Person.get(Person.handle == "anna").id == ana_id  # the same row: their cases stay theirs
    roster.sync(_roster(agent("anna", address="b@x.example"), agent("bob", address="a@x.example")))
    assert Person.get(Person.handle == "anna").address == "b@x.example"
    assert Person.get(Person.handle == "bob").address == "a@x.example"
    assert Person.select().where(Person.active).count() == 2


def test_team_load_counts_open_cases_and_reads_the_last_assignment(db_url):
    db.open_database(db_url)
    roster.sync(_roster(agent("ana"), agent("bob"), agent("cleo")))
    ana, bob = Person.get(Person.handle == "ana"), Person.get(Person.handle == "bob")
    for person, status in ((ana, "new"), (ana, "waiting"), (ana, "resolved"), (ana, "closed"),
                           (ana, "pending_closure"), (bob, "assigned"), (None, "new")):
        Case.create(contact="c@example.com", assignee=person, status=status, created_at=MONDAY_10,
                    updated_at=MONDAY_10, status_changed_at=MONDAY_10, tier_entered_at=MONDAY_10)
    with db.transaction():
        cases.note_assigned(ana.id, u(2026, 1, 12, 9, 15))
    counts, last = roster.team_load(["ana", "bob", "cleo", "nobody"])
    assert counts == {"ana": 2, "bob": 1, "cleo": 0}
    assert last == {"ana": u(2026, 1, 12, 9, 15), "bob": None, "cleo": None}
    assert roster.team_load([]) == ({}, {})
    assert roster.person_id("bob") == bob.id and roster.person_id("nobody") is None


def test_upgrade_from_version_2_adds_the_roster_columns(db_url):
    database = db.open_database(db_url)
    roster.sync(_roster(agent("ana")))
    # make it a version-2 database again: without the columns, table and index of version 3
    database.execute_sql('DROP TABLE "team_member"')
    database.execute_sql('DROP INDEX "cases_assignee_id_status"')
    database.execute_sql('DROP INDEX "person_handle"')
    for table, column in (("person", "handle"), ("person", "timezone"), ("person", "last_assigned_at"),
                          ("team", "lead")):
        database.execute_sql(f'ALTER TABLE "{table}" DROP COLUMN "{column}"')
    database.execute_sql('UPDATE "schema_version" SET "version" = 2')
    db.close()
    database = db.open_database(db_url)
    assert db.current_version(database) == db.SCHEMA_VERSION
    assert Person.get(Person.address == "ana@agents.example").handle is None  # kept; sync names it again
    roster.sync(_roster(agent("ana")))
    assert Person.get(Person.handle == "ana").address == "ana@agents.example"
    assert {i.name for i in database.get_indexes("cases")} >= {"cases_assignee_id_status"}
    assert any(i.unique and i.columns == ["handle"] for i in database.get_indexes("person"))


def test_the_daemon_syncs_the_roster_on_reload(make_config):
    from mailproc import config
    from mailproc.clock import Clock
    from mailproc.daemon import Daemon, checked_context
    from mailproc.stages.thread import is_agent
    path = make_config(mailboxes=[dict(name="support", host="127.0.0.1", port=9, username="u", password="pw",
                                       address="support@example.com")], extra={"secret": "s" * 40})
    path.write_text(path.read_text() + "\n[agent:ana]\naddress = ana@agents.example\n")
    cfg = config.load(path)
    ctx = checked_context(cfg, Clock.from_env(None))
    db.open_database(cfg.database)
    roster.sync(roster.from_context(ctx))
    daemon = Daemon(ctx)
    path.write_text(path.read_text() + "\n[agent:bob]\naddress = bob@agents.example\n")
    try:
        daemon.reload()
        assert is_agent("bob@agents.example") and is_agent("ana@agents.example")
    finally:
        if daemon.sender is not None:
            daemon.sender.finish(5)


def test_pick_spreads_a_teams_cases_by_the_load_in_the_database(db_url):
    db.open_database(db_url)
    team = _roster(agent("ana"), agent("bob"), agent("dev", teams=("Dev Team",)))
    roster.sync(team)
    at = MONDAY_10
    chosen = []
    # what the act stage does for each new Support Team case; each is resolved at once, so the
    # open counts stay equal and the longest wait since the last assignment decides
    for minute in range(4):
        with db.transaction():
            choice = roster.pick(team, "Support Team", at + timedelta(minutes=minute))
            person = roster.person_id(choice.agent.name)
            Case.create(contact="c@example.com", assignee=person, status="resolved", created_at=at,
                        updated_at=at, status_changed_at=at, tier_entered_at=at)
            cases.note_assigned(person, at + timedelta(minutes=minute))
        chosen.append(choice.agent.name)
    assert chosen == ["ana", "bob", "ana", "bob"]
    with db.transaction():  # an open case weighs more than the wait
        Case.create(contact="c@example.com", assignee=roster.person_id("ana"), created_at=at, updated_at=at,
                    status_changed_at=at, tier_entered_at=at)
    assert roster.pick(team, "Support Team", at + timedelta(minutes=5)).agent.name == "bob"
    assert roster.pick(team, "Marketing", at) is None and roster.pick(team, None, at) is None
