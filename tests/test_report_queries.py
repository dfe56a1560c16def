"""Every report is a handful of indexed, aggregate queries, never a Python loop over all
cases (issue 8, "Bad input and scale"): the SQL statements each report's build runs are
counted (the database's own `execute_sql`, wrapped, nothing mocked) at 10 cases and again at
2,000, and the count must not grow; on SQLite the daily digest's statements at 2,000 cases
are run through EXPLAIN QUERY PLAN, and none may read the whole cases table (a `SCAN` of it, or
of an alias of it, without an index; reading an index range, or all open cases through the
status index, is what the reports are meant to do). The other reports are held to the same."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

import peewee as pw
import pytest

from helpers import report_site
from mailproc import db
from mailproc.models import Case, Cluster, ClusterMember, Customer, Person, TimeEntry, utc
from mailproc.reports import build

UTC = timezone.utc
DAY = date(2026, 7, 14)  # Lisbon is UTC+1 in July
START = datetime(2026, 7, 13, 23, 0, tzinfo=UTC)
NOW = datetime(2026, 7, 15, 6, 30, tzinfo=UTC)
AGENTS = {"ana": {"address": "ana@example.com", "roles": "lead"}, "rui": {"address": "rui@example.com"}}
STATUSES = ("new", "assigned", "waiting", "pending_input", "pending_development", "resolved", "closed")
TYPES = ("request", "admin", "enhancement", "bug")
# (report, day, agent): the hours report covers June, the weekly digest the week of 6-12 July
REPORTS = (("digest", DAY, None), ("weekly", DAY, None), ("outcomes", DAY, None), ("clusters", DAY, None),
           ("hours", date(2026, 6, 15), None), ("checkin", None, "rui"))


def open_site(url: str, make_config):
    context = report_site(url, make_config, AGENTS, NOW)
    return context


@pytest.fixture
def ctx(db_url, make_config):
    yield open_site(db_url, make_config)
    db.close()


@pytest.fixture
def sqlite_ctx(sqlite_url, make_config):
    yield open_site(sqlite_url, make_config)
    db.close()


def add_cases(first: int, count: int) -> None:
    """Cases `first`..`first + count - 1`, bulk inserted: the first ten and a quarter of the rest
    made in the digest's day (so the 10 already take every branch a query runs on, e.g. the
    median of the day's resolutions), the others over the 60 days before; every status, type and
    SLA colour, assigned to rui with the customer speaking last (his check-in list), known
    issues, pages, satisfaction answers and testimonials, and 30 minutes of logged time each in
    June for one of two client companies."""
    rui = Person.get(Person.handle == "rui").id
    companies = [c.id for c in Customer.select(Customer.id).order_by(Customer.id)] or [
        Customer.create(match=f"client{k}.example", company=f"Client {k}", contact=f"boss@client{k}.example",
                        included_hours=10.0).id for k in range(2)]
    rows = []
    for i in range(first, first + count):
        created = START + timedelta(minutes=i % 1380) if i % 4 == 0 or i < 10 else NOW - timedelta(minutes=43 * i + 60)
        status = STATUSES[i % len(STATUSES)]
        done = status in ("resolved", "closed")
        rows.append({
            "type": TYPES[i % 4], "status": status, "priority": f"P{i % 6 + 1}", "tier": ("T1", "T2", "T3")[i % 3],
            "contact": f"c{i}@client{i % 2}.example", "summary": f"case {i}", "customer": companies[i % 2],
            "company": f"Client {i % 2}", "created_at": utc(created), "updated_at": utc(created),
            "status_changed_at": utc(created), "tier_entered_at": utc(created), "tags": [], "decided_by": {},
            "assignee": rui, "last_customer_at": utc(created + timedelta(minutes=5)),
            "waiting_since": utc(created + timedelta(minutes=5)) if not done else None,
            "first_response_at": utc(created + timedelta(minutes=30 * (i % 60))) if i % 5 else None,
            "resolved_at": utc(created + timedelta(hours=i % 40)) if done else None,
            "closed_at": utc(created + timedelta(hours=i % 40 + 1)) if status == "closed" else None,
            "sla_warn_at": utc(NOW - timedelta(hours=i % 9 - 4)) if not done else None,
            "sla_due": utc(NOW - timedelta(hours=i % 9 - 6)) if not done else None,
            "long_hold_at": utc(NOW - timedelta(days=1)) if status == "pending_development" else None,
            "known_issue": f"{100 + i % 3}-issue" if i % 7 == 0 else None,
            "satisfaction": ("satisfied", "unsatisfied")[i % 2] if status == "closed" else None,
            "satisfaction_at": utc(created + timedelta(hours=i % 40 + 2)) if status == "closed" else None,
            "testimonial_sent_at": utc(created + timedelta(hours=i % 40 + 3)) if status == "closed" else None,
            "paged_at": utc(created + timedelta(minutes=2)) if i % 6 == 0 else None,
            "page_ack_at": utc(created + timedelta(minutes=12)) if i % 12 == 0 else None,
        })
    for chunk in range(0, len(rows), 500):
        db.insert_many(Case, rows[chunk:chunk + 500])
    ids = [c.id for c in Case.select(Case.id).order_by(Case.id.desc()).limit(count)]
    db.insert_many(TimeEntry, [{"case": number, "person": rui, "actor": "rui@example.com", "minutes": 30,
                                "tag": ("Support", "Meetings", None)[number % 3],
                                "logged_at": utc(datetime(2026, 6, 1 + number % 29, 10, tzinfo=UTC))}
                               for number in ids])


def add_clusters() -> None:
    """Two clusters of three cases of the day (the same two at 10 and at 2,000 cases)."""
    day_cases = [c.id for c in Case.select(Case.id).where(Case.created_at >= utc(START)).order_by(Case.id).limit(6)]
    for k in range(2):
        cluster = db.insert(Cluster, type="bug", opened_at=utc(START), last_at=utc(START + timedelta(hours=1)),
                            size=3, summary=f"cluster {k}", suggested_at=utc(START + timedelta(hours=1)))
        for number in day_cases[3 * k:3 * k + 3]:
            db.insert(ClusterMember, cluster=cluster, case=number, similarity=90.0, added_at=utc(START))


@dataclass
class Counted:
    statements: list[tuple[str, tuple]] = field(default_factory=list)


def count_statements(ctx, monkeypatch, name: str, day, agent) -> tuple[Counted, object]:
    """The statements `name`'s build runs, with their parameters, and the report."""
    database = db.proxy.obj
    original = database.execute_sql
    counted = Counted()

    def counting(sql, params=None, *args, **kwargs):
        counted.statements.append((sql, tuple(params or ())))
        return original(sql, params, *args, **kwargs)
    monkeypatch.setattr(database, "execute_sql", counting)
    try:
        report = build(ctx, name, day=day, now=NOW, agent=agent)
    finally:
        monkeypatch.setattr(database, "execute_sql", original)
    return counted, report



def test_the_statements_a_report_runs_do_not_grow_with_the_cases(ctx, monkeypatch):
    add_cases(0, 10)
    add_clusters()
    small = {name: count_statements(ctx, monkeypatch, name, day, agent) for name, day, agent in REPORTS}
    add_cases(10, 1990)
    large = {name: count_statements(ctx, monkeypatch, name, day, agent) for name, day, agent in REPORTS}
    assert Case.select().count() == 2000
    counts = {name: (len(small[name][0].statements), len(large[name][0].statements)) for name in small}
    for name, (at_10, at_2000) in counts.items():
        assert at_2000 <= at_10, (name, counts, [s for s, _ in large[name][0].statements])
        assert at_10 <= 40, (name, counts)  # a handful, not a loop
    # the builds read something at both sizes (a count over nothing would prove little)
    assert large["digest"][1].data["volumes"]["new"]["total"] > small["digest"][1].data["volumes"]["new"]["total"] > 0
    assert large["checkin"][1].data["total"] > small["checkin"][1].data["total"] > 0
    assert large["hours"][1].data["total_minutes"] > small["hours"][1].data["total_minutes"] > 0
    assert large["weekly"][1].data["volumes"]["new"] > small["weekly"][1].data["volumes"]["new"]
    assert large["outcomes"][1].data["outcomes"]["total"] > small["outcomes"][1].data["outcomes"]["total"]
    assert len(large["clusters"][1].data["clusters"]) == 2


# A table of the statement read in full: "SCAN <table or alias>", without an index to walk.
_SCAN = re.compile(r"^SCAN (?:TABLE )?(\w+)(?: AS (\w+))?")


def aliases_of_cases(sql: str) -> set[str]:
    """The names the cases table goes by in `sql` ("cases", and c, m, t1 ... as aliased)."""
    names = {"cases"}
    for m in re.finditer(r'"?cases"?\s+(?:AS\s+)?"?(\w+)"?', sql, re.I):
        if m.group(1).upper() not in {"WHERE", "ON", "JOIN", "LEFT", "GROUP", "ORDER", "LIMIT", "INNER", "USING"}:
            names.add(m.group(1))
    return names


def full_scans_of_cases(sql: str, params: tuple) -> list[str]:
    """The EXPLAIN QUERY PLAN lines of `sql` that read every row of the cases table."""
    plan = db.proxy.obj.execute_sql("EXPLAIN QUERY PLAN " + sql, params).fetchall()
    names = aliases_of_cases(sql)
    found = []
    for row in plan:
        detail = row[-1]
        m = _SCAN.match(detail)
        if m and (m.group(1) in names or m.group(2) in names) and "USING INDEX" not in detail \
                and "USING COVERING INDEX" not in detail:
            found.append(detail)
    return found


@pytest.mark.parametrize("name, day, agent", REPORTS, ids=[r[0] for r in REPORTS])
def test_no_statement_of_a_report_scans_all_cases_on_sqlite(sqlite_ctx, monkeypatch, name, day, agent):
    """Asked of the daily digest above all (the largest report); every report passes it, so each is held to it."""
    ctx = sqlite_ctx
    assert isinstance(db.proxy.obj, pw.SqliteDatabase)
    add_cases(0, 2000)
    add_clusters()
    counted, report = count_statements(ctx, monkeypatch, name, day, agent)
    scans = {sql: found for sql, params in counted.statements if sql.lstrip().upper().startswith(("SELECT", "WITH"))
             for found in [full_scans_of_cases(sql, params)] if found}
    assert scans == {}, "\n\n".join(f"{sql}\n  -> {found}" for sql, found in scans.items())
    # and the check itself finds a full scan
    assert full_scans_of_cases('SELECT COUNT(*) FROM "cases" c WHERE c."summary" LIKE ?', ("%x%",)) != []
