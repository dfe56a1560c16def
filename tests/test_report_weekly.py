"""The weekly hand-over digest (seed 002's "Changing of the Guard") on SQLite and PostgreSQL:
each figure built from cases and events with known times around the week's local edges,
the text part read line by line, the HTML part checked statically, the Monday slot mailed
once to the leads, and an empty database."""

from __future__ import annotations

import email
import email.policy
import json
from datetime import date, datetime, timedelta, timezone

import pytest

from mailproc import cases, db, roster, scheduled
from mailproc.clock import Clock
from mailproc.config import load
from mailproc.context import load_context, roster_of
from mailproc.models import Case, Outbox, Person
from mailproc.reports import html, weekly

from helpers import run

UTC = timezone.utc
# The digest's zone is Chicago (UTC-6 in November): the week of Mon 2026-11-23 runs from
# 06:00 UTC on the 23rd to 06:00 UTC on the 30th; the weekly slot is Mon 08:00 CST = 14:00 UTC.
NOW = datetime(2026, 11, 30, 14, 30, tzinfo=UTC)
START = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
END = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)


def at(month: int, day: int, hour: int = 12, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


@pytest.fixture
def ctx(db_url, make_config):
    box = dict(name="support", host="localhost", port=143, username="u", password="p",
               address="support@example.com")
    agents = {"ana": {"address": "ana@agents.example", "roles": "lead"},
              "bob": {"address": "bob@agents.example"},
              "rex": {"address": "rex@agents.example", "roles": "oncall, lead"}}
    path = make_config(database=db_url, mailboxes=[box], extra={"timezone": "Europe/Lisbon"}, agents=agents)
    path.write_text(path.read_text() + "\n[digest]\ntimezone = America/Chicago\n", encoding="utf-8")
    config = load(path)
    db.open_database(config.database)
    ctx = load_context(config, Clock(NOW))
    roster.sync(roster_of(ctx))
    # A lead who left the config: kept inactive in the database, never mailed.
    Person.create(address="old@agents.example", handle="old", name="Old", role="lead", active=False)
    yield ctx
    db.close()



def case(created: datetime, **values) -> Case:
    row = dict(contact="c@shop.example", summary=f"case made at {created:%d %H:%M}", type="request",
               priority="P5", status="assigned", tier="T1", created_at=created, updated_at=created,
               status_changed_at=created, tier_entered_at=created)
    return Case.create(**{**row, **values})


def build(ctx, day=None, now=NOW):
    return weekly.build(ctx, day=day, now=now)


def lines(report) -> list[str]:
    return [line.rstrip() for line in report.text.splitlines()]


# --- the week -----------------------------------------------------------------------------------------------------


def test_the_default_week_is_the_one_before_the_latest_monday_slot(ctx):
    assert build(ctx).data["week"] == {"monday": "2026-11-23", "sunday": "2026-11-29",
                                       "timezone": "America/Chicago", "start": START.isoformat(),
                                       "end": END.isoformat()}
    # before this Monday's 08:00 slot the latest slot is last Monday's: the week before that
    assert build(ctx, now=at(11, 30, 13, 59)).data["week"]["monday"] == "2026-11-16"
    # --for DATE: the week holding DATE
    assert build(ctx, day=date(2026, 11, 26)).data["week"]["monday"] == "2026-11-23"
    assert build(ctx, day=date(2026, 11, 29)).data["week"]["monday"] == "2026-11-23"
    assert build(ctx, day=date(2026, 11, 30)).data["week"]["monday"] == "2026-11-30"


def test_a_week_with_the_autumn_clock_change_has_169_hours(ctx):
    # Chicago leaves daylight time on Sun 2026-11-01: the week starts at 00:00 CDT (05:00 UTC)
    # on Mon 26 Oct and ends at 00:00 CST (06:00 UTC) on Mon 2 Nov.
    case(datetime(2026, 11, 2, 5, 30, tzinfo=UTC))  # Sun 1 Nov 23:30 CST: in the week
    case(datetime(2026, 10, 26, 4, 59, tzinfo=UTC))  # Sun 25 Oct 23:59 CDT: the week before
    data = build(ctx, day=date(2026, 10, 28)).data
    assert (data["week"]["start"], data["week"]["end"]) == ("2026-10-26T05:00:00+00:00", "2026-11-02T06:00:00+00:00")
    assert (data["volumes"]["new"], data["volumes"]["previous"]["new"]) == (1, 1)


# --- volumes ------------------------------------------------------------------------------------------------------


def test_volumes_count_new_and_closed_in_the_local_week_beside_the_week_before(ctx):
    case(at(11, 24, 10), type="bug", priority="P2")
    case(at(11, 25, 10), type="bug", priority="P2", status="closed", closed_at=at(11, 27))
    case(END - timedelta(minutes=1), type="request", priority="P4")  # Sun 23:59 in Chicago: this week
    case(START - timedelta(minutes=1), type="request", priority="P4")  # Sun 22nd 23:59: the week before
    case(at(11, 17), type="admin", priority="P6", status="closed", closed_at=at(11, 24))
    case(END, type="request", priority="P5")  # next week
    case(at(11, 10), type="bug", priority="P3", status="closed", closed_at=at(11, 20))

    v = build(ctx).data["volumes"]
    assert (v["new"], v["closed"], v["net"]) == (3, 2, 1)
    assert v["previous"] == {"new": 2, "closed": 1, "net": 1}
    assert v["change"] == {"new": 1, "closed": 1}
    by_type = {r["key"]: (r["new"], r["closed"], r["previous_new"], r["previous_closed"]) for r in v["by_type"]}
    assert by_type == {"request": (1, 0, 1, 0), "admin": (0, 1, 1, 0), "enhancement": (0, 0, 0, 0),
                       "bug": (2, 1, 0, 1)}
    by_priority = {r["key"]: (r["new"], r["closed"]) for r in v["by_priority"]}
    assert by_priority == {"P1": (0, 0), "P2": (2, 1), "P3": (0, 0), "P4": (1, 0), "P5": (0, 0), "P6": (0, 1)}
    assert [r["label"] for r in v["by_type"]][3] == "Bug / Report a Problem"

    text = lines(build(ctx))
    assert "New cases:    3 (week before 2, +1)" in text
    assert "Closed cases: 2 (week before 1, +1)" in text
    assert "Net growth:   +1 (week before +1; the goal is 0 or less)" in text
    assert "Bug / Report a Problem            2       1  0/1" in text
    assert "P2 – Blocker                      2       1  0/0" in text


# --- open loops ---------------------------------------------------------------------------------------------------


def test_open_loops_are_open_cases_at_t3_or_higher_unanswered_since_they_entered_the_tier(ctx):
    first = case(at(11, 20), tier="T3", tier_entered_at=at(11, 25, 9), summary="Invoice totals wrong")
    second = case(at(11, 20), tier="T4", status="waiting", tier_entered_at=at(11, 25, 8),
                  last_agent_at=at(11, 24), summary="Calendar sync stalls")  # answered before the escalation
    case(at(11, 20), tier="oncall", tier_entered_at=at(11, 26), last_agent_at=at(11, 26, 13))  # answered since
    case(at(11, 20), tier="T5", status="resolved", tier_entered_at=at(11, 26))  # not open
    case(at(11, 20), tier="T2", tier_entered_at=at(11, 26))  # below T3
    case(at(11, 20), tier="oncall", status="pending_closure", tier_entered_at=at(11, 26))  # not open

    loops = build(ctx).data["open_loops"]
    assert loops["count"] == 2
    assert [c["number"] for c in loops["cases"]] == [second.id, first.id]  # longest waiting first
    assert loops["cases"][0]["waiting_hours"] == round((NOW - at(11, 25, 8)).total_seconds() / 3600, 1)
    assert loops["cases"][1]["last_agent_at"] is None
    text = lines(build(ctx))
    assert "OPEN LOOPS: 2 open cases escalated to T3 or higher with no answer since" in text
    assert f"#{second.id} T4 P5 waiting, waiting 126.5 h: Calendar sync stalls" in text


# --- known issues -------------------------------------------------------------------------------------------------


def test_known_issues_are_grouped_with_cases_opened_closed_and_still_open(ctx):
    case(at(11, 24), known_issue="101-sync-delay")
    case(at(11, 18), known_issue="101-sync-delay", status="closed", closed_at=at(11, 25))
    case(at(11, 10), known_issue="101-sync-delay", status="closed", closed_at=at(11, 12))
    case(at(11, 24), known_issue="102-login-loop", status="closed", closed_at=at(11, 26))
    case(at(11, 25), known_issue="102-login-loop", status="resolved", resolved_at=at(11, 26))
    case(at(10, 1), known_issue="99-old", status="closed", closed_at=at(10, 5))  # nothing this week: left out
    case(at(11, 24))  # no known issue

    known = build(ctx).data["known_issues"]
    assert (known["count"], known["new"], known["done"]) == (2, 1, 1)
    got = {k["known_issue"]: (k["cases"], k["opened"], k["closed"], k["open"], k["new"], k["done"])
           for k in known["issues"]}
    assert got == {"101-sync-delay": (3, 1, 1, 1, False, False), "102-login-loop": (2, 2, 1, 0, True, True)}
    assert [k["known_issue"] for k in known["issues"]] == ["101-sync-delay", "102-login-loop"]  # open first
    text = lines(build(ctx))
    assert "KNOWN ISSUES: 2 active, 1 new, 1 done this week" in text
    assert "102-login-loop: 2 cases, 2 opened, 1 closed, 0 still open (new) (done)" in text


def test_a_known_issue_that_began_after_an_earlier_week_is_not_new_in_it(ctx):
    case(at(11, 25), known_issue="103-export-empty")  # still open, so listed in any week's digest
    earlier = weekly.build(ctx, day=date(2026, 11, 17), now=NOW).data["known_issues"]["issues"]
    assert [(k["known_issue"], k["new"]) for k in earlier] == [("103-export-empty", False)]
    this_week = build(ctx).data["known_issues"]["issues"]
    assert [(k["known_issue"], k["new"]) for k in this_week] == [("103-export-empty", True)]


# --- on-call pages ------------------------------------------------------------------------------------------------


def test_pages_of_the_week_with_their_acknowledgement_times(ctx):
    fast = case(at(11, 24, 9), priority="P1", paged_at=at(11, 24, 10), page_ack_at=at(11, 24, 10, 20))
    slow = case(at(11, 26), tier="oncall", paged_at=at(11, 26, 3), page_ack_at=at(11, 26, 5))
    never = case(at(11, 27), priority="P1", paged_at=at(11, 27, 12), summary="Checkout down")
    stale_ack = case(at(11, 28), tier="oncall", paged_at=at(11, 28, 12), page_ack_at=at(11, 20))
    earlier = case(at(11, 20), priority="P1", paged_at=at(11, 20, 1), page_ack_at=at(11, 20, 2))
    for c, rule, who, when in ((fast, "oncall:page", "ana", at(11, 24, 10)),
                               (never, "oncall:page", "ana", at(11, 27, 12)),
                               (never, "oncall:wakeup", "pager@ops.example", at(11, 27, 13)),
                               (never, "oncall:next", "bob", at(11, 27, 13, 30)),
                               (earlier, "oncall:page", "cy", at(11, 20, 1))):
        cases.record(c, "paged", now=when, rule=rule, new=who)

    pages = build(ctx).data["pages"]
    assert (pages["count"], pages["acknowledged"], pages["unacknowledged"]) == (4, 2, 2)
    assert (pages["acknowledged_in_time"], pages["ack_within_minutes"]) == (1, 60)
    assert (pages["average_ack_minutes"], pages["longest_ack_minutes"]) == (70, 120)
    assert (pages["wakeup_pages"], pages["next_in_rotation_pages"]) == (1, 1)
    assert pages["paged"] == [{"who": "ana", "pages": 2}, {"who": "bob", "pages": 1}]
    listed = [(c["number"], c["ack_minutes"]) for c in pages["cases"]]
    assert listed == [(fast.id, 20), (slow.id, 120), (never.id, None), (stale_ack.id, None)]
    text = lines(build(ctx))
    assert ("ON-CALL PAGES: 4 cases paged, 2 acknowledged (1 within 60 min), 2 never acknowledged") in text
    assert "Acknowledged after 70 min on average, 120 min at the longest." in text
    assert f"#{never.id} P1 T1, paged Fri 27 Nov 06:00: NOT ACKNOWLEDGED - Checkout down" in text


def test_an_acknowledgement_at_exactly_the_limit_is_in_time_on_both_databases(ctx):
    """SQLite's julianday is a float of days: an hour computed from it can be 3600.0000001 s."""
    for n in range(40):
        paged = at(11, 24, 1) + timedelta(minutes=n * 7, seconds=n * 13, microseconds=n * 12345)
        case(at(11, 24), priority="P1", paged_at=paged, page_ack_at=paged + timedelta(hours=1))
    pages = build(ctx).data["pages"]
    assert (pages["acknowledged"], pages["acknowledged_in_time"]) == (40, 40)


# --- tagged for review --------------------------------------------------------------------------------------------


def test_cases_tagged_for_review_in_the_week_whatever_the_case_and_separators(ctx):
    tagged = case(at(11, 20), tags=["Process-Tweak", "missed_doc_review"], summary="No transition comment")
    cases.record(tagged, "field", now=at(11, 24), field="tags", old=[], new=["Process-Tweak"])
    cases.record(tagged, "field", now=at(11, 25), field="tags", old=["Process-Tweak"],
                 new=["Process-Tweak", "missed_doc_review"])
    already = case(at(11, 20), tags=["missed-doc-review", "x"])  # had it before the week
    cases.record(already, "field", now=at(11, 24), field="tags", old=["missed-doc-review"],
                 new=["missed-doc-review", "x"])
    lookalike = case(at(11, 20), tags=["processtweaks"])  # another tag
    cases.record(lookalike, "field", now=at(11, 24), field="tags", old=[], new=["processtweaks"])
    last_week = case(at(11, 10), tags=["ProcessTweak"])
    cases.record(last_week, "field", now=at(11, 17), field="tags", old=[], new=["ProcessTweak"])
    second = case(at(11, 10), tags=["ProcessTweak", "MissedDocReview"])
    cases.record(second, "field", now=at(11, 17), field="tags", old=[], new=["ProcessTweak"])
    cases.record(second, "field", now=at(11, 28), field="tags", old=["ProcessTweak"],
                 new=["ProcessTweak", "MissedDocReview"])

    review = build(ctx).data["review"]
    assert review["tags"] == list(weekly.REVIEW_TAGS)
    assert review["count"] == 2
    assert [(c["number"], c["tags"]) for c in review["cases"]] == [
        (tagged.id, ["Process Tweak", "Missed Doc Review"]), (second.id, ["Process Tweak", "Missed Doc Review"])]
    text = lines(build(ctx))
    assert "TAGGED FOR REVIEW (Process Tweak, Missed Doc Review): 2" in text
    assert f"#{tagged.id} [Process Tweak, Missed Doc Review] assigned: No transition comment" in text


# --- rendering, the slot, an empty database -----------------------------------------------------------------------


def test_an_empty_database_renders_every_section_with_zeros(ctx):
    report = build(ctx)
    data = report.data
    assert data["volumes"]["new"] == data["volumes"]["closed"] == 0
    assert data["open_loops"] == {"count": 0, "cases": []}
    assert data["known_issues"] == {"count": 0, "new": 0, "done": 0, "issues": []}
    assert data["pages"]["count"] == 0 and data["pages"]["average_ack_minutes"] is None
    assert data["review"]["count"] == 0
    assert report.subject == "Weekly hand-over 23 Nov–29 Nov 2026: 0 new, 0 closed, 0 open loops"
    assert lines(report).count("None.") == 3
    assert html.problems(report.html) == []


def test_the_html_part_is_inlined_static_and_small_with_every_list_full(ctx):
    long = ("Escalated <b>problem</b> with a very long summary line " * 10)[:480]
    for n in range(60):  # more than a list holds, in every list, with the longest summaries
        c = case(at(11, 24), tier="T3", summary=f"{n} {long}", known_issue=f"{n}-" + "x" * 200,
                 paged_at=at(11, 24, 1), page_ack_at=at(11, 24, 1, n), tags=["Process-Tweak"])
        cases.record(c, "field", now=at(11, 24), field="tags", old=[], new=["Process-Tweak"])
    report = build(ctx)
    assert html.problems(report.html) == []
    assert len(report.html.encode()) < 90 * 1024
    assert "<style" not in report.html and 'style="' in report.html and 'class="new"' in report.html
    assert "Escalated &lt;b&gt;problem&lt;/b&gt;" in report.html  # customer text is escaped
    for section in ("open_loops", "pages", "review"):
        assert report.data[section]["count"] == 60 and len(report.data[section]["cases"]) == weekly.LIST_LIMIT
    assert lines(report).count(f"... and {60 - weekly.LIST_LIMIT} more") == 3


def test_the_monday_slot_mails_the_leads_once(ctx):
    case(at(11, 24), type="bug")
    jobs = weekly.slot_jobs(ctx)
    assert [(j.name, j.spec.text) for j in jobs] == [("weekly", "Mon 08:00")]
    done = scheduled.Scheduler(ctx, _jobs=jobs).run(NOW)
    assert (done.mails, done.slots) == (2, ["weekly:2026-11-30T08:00"])
    sent = list(Outbox.select().where(Outbox.kind == "weekly").order_by(Outbox.to_addr))
    assert [o.to_addr for o in sent] == ["ana@agents.example", "rex@agents.example"]  # active leads only
    mail = email.message_from_bytes(bytes(sent[0].raw), policy=email.policy.default)
    assert mail["Subject"] == "Weekly hand-over 23 Nov–29 Nov 2026: 1 new, 0 closed, 0 open loops"
    assert mail["Auto-Submitted"] == "auto-generated"
    assert "New cases:    1 (week before 0, +1)" in mail.get_body(("plain",)).get_content()
    assert scheduled.Scheduler(ctx, _jobs=weekly.slot_jobs(ctx)).run(NOW + timedelta(minutes=5)).mails == 0


def test_mailproc_report_weekly_prints_the_same_figures(ctx, capsys):
    case(at(11, 24), type="bug", priority="P2", tier="T4", summary="Sync stalls")
    expected = build(ctx, day=date(2026, 11, 25)).data
    code, out = run(ctx.config.path, "report", "weekly", "--for", "2026-11-25", "--format", "json",
                    now=NOW.isoformat(), capsys=capsys)
    assert code == 0
    printed = json.loads(out)
    assert printed["week"] == expected["week"] and printed["volumes"] == expected["volumes"]
    assert printed["open_loops"]["count"] == 1 and printed["open_loops"]["cases"][0]["summary"] == "Sync stalls"
    code, out = run(ctx.config.path, "report", "weekly", "--for", "2026-11-25", now=NOW.isoformat(), capsys=capsys)
    assert code == 0 and "New cases:    1 (week before 0, +1)" in out.splitlines()


def test_configured_recipients_replace_the_leads(db_url, make_config):
    box = dict(name="support", host="localhost", port=143, username="u", password="p",
               address="support@example.com")
    path = make_config(database=db_url, mailboxes=[box])
    path.write_text(path.read_text() + "\n[digest]\nrecipients = guard@example.org, cto@example.org\n"
                    "weekly = Fri 16:00\n", encoding="utf-8")
    config = load(path)
    db.open_database(config.database)
    context = load_context(config, Clock(NOW))
    Person.create(address="ana@agents.example", handle="ana", name="Ana", role="lead")
    assert weekly.build(context, day=None, now=NOW).to == ["guard@example.org", "cto@example.org"]
    # the latest Friday 16:00 slot was on the 27th: the week before it is Mon 16 to Sun 22 November
    assert weekly.build(context, day=None, now=NOW).data["week"]["monday"] == "2026-11-16"
    assert [(j.name, j.spec.text) for j in weekly.slot_jobs(context)] == [("weekly", "Fri 16:00")]
