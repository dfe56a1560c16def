"""The leads' daily digest (issue 8, item 1): each figure group built from cases inserted
with an injected clock on SQLite and PostgreSQL, the text part line by line, the HTML part
checked statically, the CLI, and the slot job that mails it once per slot."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone

import pytest

from mailproc import db, reports, roster, scheduled
from mailproc.clock import Clock
from mailproc.config import load
from mailproc.context import load_context
from mailproc.models import Case, CaseLink, Message, Outbox, Person, utc
from mailproc.reports import digest, html, queries

from helpers import run

LISBON_DAY = date(2026, 7, 14)  # Lisbon is UTC+1 in July: the day is [13 Jul 23:00, 14 Jul 23:00) UTC
START = datetime(2026, 7, 13, 23, 0, tzinfo=timezone.utc)
END = datetime(2026, 7, 14, 23, 0, tzinfo=timezone.utc)
NOW = datetime(2026, 7, 15, 6, 30, tzinfo=timezone.utc)
AGENTS = {"ana": {"address": "ana@example.com", "roles": "lead"},
          "rui": {"address": "rui@example.com"},
          "eva": {"address": "eva@example.com", "roles": "oncall, lead"}}


def _config(make_config, db_url, digest_keys=None, agents=AGENTS):
    path = make_config(database=db_url, agents=agents,
                       mailboxes=[dict(name="support", host="127.0.0.1", port=1, username="u", password="p",
                                       address="support@example.com")])
    keys = {"timezone": "Europe/Lisbon", **(digest_keys or {})}
    with path.open("a", encoding="utf-8") as f:
        f.write("\n[digest]\n" + "".join(f"{k} = {v}\n" for k, v in keys.items()))
    return path


@pytest.fixture
def site(db_url, make_config):
    path = _config(make_config, db_url)
    config = load(path)
    db.open_database(config.database)
    ctx = load_context(config, Clock(NOW))
    roster.sync(ctx.roster)
    yield path, ctx
    db.close()


@pytest.fixture
def ctx(site):
    return site[1]


_n = iter(range(1, 10**9))


def case(created, **values) -> int:
    """A case inserted directly (figures read columns, not history): times are aware UTC."""
    row = {"type": "request", "status": "new", "priority": "P5", "tier": "T1", "contact": "c@shop.example",
           "summary": f"case {next(_n)}", "created_at": created, "updated_at": created,
           "status_changed_at": created, "tier_entered_at": created, "tags": [], "decided_by": {}, **values}
    row = {k: utc(v) if isinstance(v, datetime) else v for k, v in row.items()}
    return db.insert(Case, **row)


def _build(ctx, day=LISBON_DAY, now=NOW):
    report = digest.build(ctx, day=day, now=now)
    assert html.problems(report.html) == [], html.problems(report.html)
    json.dumps(report.data)
    return report


def lines(report) -> list[str]:
    return report.text.splitlines()


def test_an_empty_database_and_a_day_without_cases_render(ctx):
    report = _build(ctx)
    assert report.subject == "Daily digest 2026-07-14: 0 new, 0 closed, net +0, 0 red"
    assert report.data["volumes"]["new"]["total"] == 0
    assert report.data["resolution"] == {"count": 0, "average_hours": None, "median_hours": None, "within_goal": 0,
                                         "goal_hours": 24.0, "average_met": None, "median_met": None}
    assert [t["day"] for t in report.data["trend"]] == [f"2026-07-{d:02d}" for d in range(1, 15)]
    text = lines(report)
    for line in ("New: 0", "Closed: 0", "Open now: 0", "Net growth: +0 (goal 0)", "Resolved: 0", "Average: -",
                 "No open cases.", "Red: 0", "Messages stored: 0", "Mailbox support: never polled successfully"):
        assert line in text
    case(START - timedelta(days=30))  # a case of long ago, with no events: not in the day, still open
    assert _build(ctx).data["volumes"]["open"]["total"] == 1


def test_new_closed_and_open_by_type_and_priority_in_the_digest_zones_day(ctx):
    case(START, type="bug", priority="P2")  # 00:00 in Lisbon: the day's first instant
    case(START + timedelta(minutes=30), type="bug", priority="P3", status="assigned")
    case(END - timedelta(seconds=1), type="enhancement", status="closed", closed_at=END - timedelta(seconds=1))
    case(START - timedelta(seconds=1))  # 23:59:59 the day before, in Lisbon (but 14 July in UTC)
    case(END)  # the next day in Lisbon (still 14 July in UTC)
    case(START - timedelta(days=3), type="admin", priority="P4", status="closed", closed_at=START + timedelta(hours=5))
    case(START - timedelta(days=3), type="admin", status="closed", closed_at=START - timedelta(seconds=1))
    case(START - timedelta(days=3), type="request", status="pending_closure")
    v = _build(ctx).data["volumes"]
    assert v["new"]["total"] == 3
    assert v["new"]["by_type"] == {"request": 0, "admin": 0, "enhancement": 1, "bug": 2}
    assert v["new"]["by_priority"]["P2"] == 1 and v["new"]["by_priority"]["P3"] == 1
    assert v["closed"]["total"] == 2
    assert v["closed"]["by_type"] == {"request": 0, "admin": 1, "enhancement": 1, "bug": 0}
    assert v["closed"]["by_priority"]["P4"] == 1
    assert v["open"]["total"] == 4  # the two bugs and the two outside the day; not closed or pending closure
    assert v["open"]["by_type"] == {"request": 2, "admin": 0, "enhancement": 0, "bug": 2}
    assert v["net"] == 1
    text = lines(_build(ctx))
    assert "New: 3" in text and "Closed: 2" in text and "Net growth: +1 (goal 0)" in text
    assert "%-28s %6d %6d %6d" % ("Bug / Report a Problem", 2, 0, 2) in text


def test_the_trend_counts_fourteen_local_days(ctx):
    case(START - timedelta(days=13))  # the first day of the trend
    case(START - timedelta(days=13, seconds=1))  # the day before it: not in the trend
    case(START - timedelta(days=20), status="closed", closed_at=START - timedelta(days=2, hours=-1))
    case(START + timedelta(hours=1))
    case(START + timedelta(hours=2))
    trend = _build(ctx).data["trend"]
    assert len(trend) == 14
    assert trend[0] == {"day": "2026-07-01", "new": 1, "closed": 0, "merged": 0, "net": 1}
    assert trend[11] == {"day": "2026-07-12", "new": 0, "closed": 1, "merged": 0, "net": -1}
    assert trend[13] == {"day": "2026-07-14", "new": 2, "closed": 0, "merged": 0, "net": 2}
    assert sum(t["new"] for t in trend) == 3
    assert "2026-07-12  new    0  closed    1  net    -1" in lines(_build(ctx))


def test_resolution_average_and_median_against_the_goal(ctx):
    for h in (10, 20, 40):  # resolved in the day, after 10, 20 and 40 hours
        resolved = START + timedelta(hours=2)
        case(resolved - timedelta(hours=h), status="resolved", resolved_at=resolved)
    closed = START + timedelta(hours=3)  # closed without being resolved: counts by closed_at
    case(closed - timedelta(hours=30), status="closed", closed_at=closed)
    case(START - timedelta(hours=50), status="resolved", resolved_at=START - timedelta(minutes=1))  # the day before
    case(START - timedelta(hours=99), status="closed", resolved_at=START - timedelta(days=2), closed_at=START)
    r = _build(ctx).data["resolution"]
    assert r["count"] == 4
    assert r["average_hours"] == 25.0
    assert r["median_hours"] == 25.0  # (20 + 30) / 2
    assert r["within_goal"] == 2 and r["average_met"] is False and r["median_met"] is False
    case(closed - timedelta(hours=1), status="closed", closed_at=closed)  # a fifth: the median is the middle one
    r = _build(ctx).data["resolution"]
    assert r["count"] == 5 and r["median_hours"] == 20.0 and r["average_hours"] == 20.2 and r["median_met"] is True
    text = lines(_build(ctx))
    assert "Average: 20.2 h (goal met)" in text and "Median: 20.0 h (goal met)" in text
    assert "Within 24 h: 3 of 5" in text


def test_first_response_buckets_of_the_days_new_cases(ctx):
    for minutes in (30, 60, 5 * 60, 7 * 60, 24 * 60, 25 * 60):
        case(START, first_response_at=START + timedelta(minutes=minutes))
    case(START + timedelta(hours=1))  # no answer, 29.5 h old at NOW: overdue
    case(END - timedelta(hours=1))  # no answer, 8.5 h old at NOW: waiting, not late yet
    case(START - timedelta(hours=1), first_response_at=START)  # the day before: not counted
    fr = _build(ctx).data["first_response"]
    assert fr["buckets"] == {"under_1h": 1, "1_6h": 2, "6_12h": 1, "12_24h": 1, "overdue": 2, "waiting": 1}
    assert fr["total"] == 8
    text = lines(_build(ctx))
    assert "< 1 h: 1" in text and "overdue (> 24 h): 2" in text and "waiting (< 24 h old, no answer yet): 1" in text


def test_sla_colours_per_tier_and_the_red_cases(ctx):
    old = START - timedelta(days=5)
    red = case(old, tier="T1", priority="P2", sla_warn_at=NOW - timedelta(hours=5), sla_due=NOW - timedelta(hours=2),
               summary="Checkout broken", status="assigned")
    case(old, tier="T1", sla_warn_at=NOW - timedelta(hours=1), sla_due=NOW + timedelta(hours=1))  # yellow
    case(old, tier="T2", sla_warn_at=NOW + timedelta(hours=1), sla_due=NOW + timedelta(hours=3))  # green
    case(old, tier="T2", sla_warn_at=NOW, sla_due=NOW)  # red at the instant itself
    case(old, tier="T2", status="pending_input", sla_paused_at=NOW - timedelta(hours=3))  # paused
    case(old, tier="triage")  # no limits
    case(old, tier="T1", status="closed", closed_at=old, sla_due=NOW - timedelta(days=1))  # closed: not counted
    s = _build(ctx).data["sla"]
    assert s["tiers"]["T1"] == {"red": 1, "yellow": 1, "green": 0, "paused": 0, "none": 0}
    assert s["tiers"]["T2"] == {"red": 1, "yellow": 0, "green": 1, "paused": 1, "none": 0}
    assert s["tiers"]["triage"] == {"red": 0, "yellow": 0, "green": 0, "paused": 0, "none": 1}
    assert s["totals"]["red"] == 2
    assert s["red"]["count"] == 2
    assert s["red"]["cases"][0]["number"] == red and s["red"]["cases"][0]["hours_overdue"] == 2.0
    assert f"#{red} P2 T1 unassigned, 2.0 h over: Checkout broken" in lines(_build(ctx))


def test_the_red_list_is_capped_with_the_full_count(ctx):
    for _ in range(queries.LIST_LIMIT + 3):
        case(START, sla_due=NOW - timedelta(hours=1))
    report = _build(ctx)
    assert report.data["sla"]["red"]["count"] == queries.LIST_LIMIT + 3
    assert len(report.data["sla"]["red"]["cases"]) == queries.LIST_LIMIT
    assert "... and 3 more" in lines(report)


def test_stuck_cases_and_long_engineering_holds(ctx):
    stuck = case(START - timedelta(days=6), status="assigned", waiting_since=NOW - timedelta(days=6),
                 summary="Still nobody answered")
    case(START, status="new", waiting_since=NOW - timedelta(hours=1))  # waiting, but not for long
    case(START - timedelta(days=9), status="pending_input", waiting_since=NOW - timedelta(days=6))  # not on us
    hold = case(START - timedelta(days=40), status="pending_development", long_hold_at=NOW - timedelta(days=2),
                status_changed_at=NOW - timedelta(days=20), summary="Export needs a fix")
    case(START - timedelta(days=40), status="assigned", long_hold_at=NOW - timedelta(days=2))  # the hold ended
    case(START - timedelta(days=40), status="pending_release")  # held, not flagged
    st = _build(ctx).data["stuck"]
    assert [c["number"] for c in st["waiting"]["cases"]] == [stuck] and st["waiting"]["count"] == 1
    assert [c["number"] for c in st["holds"]["cases"]] == [hold] and st["holds"]["count"] == 1
    assert st["holds"]["cases"][0]["days_held"] == 20.0
    # the cutoff is the business-time nudge threshold counted back from now
    cutoff = datetime.fromisoformat(st["cutoff"])
    calendar, target = ctx.rules.sla.calendar, ctx.rules.workflow.still_looking.nudge_after
    assert calendar.deadline(target, cutoff) <= NOW < calendar.deadline(target, cutoff + timedelta(minutes=2))
    text = lines(_build(ctx))
    assert "Waiting on us past the nudge threshold: 1" in text and "Long engineering holds: 1" in text
    assert f"#{hold} pending_development, unassigned, held 20.0 days: Export needs a fix" in text


def test_satisfaction_answers_and_the_testimonial_pipeline(ctx):
    closed = START - timedelta(days=2)
    for answer in ("satisfied", "satisfied", "extremely_satisfied"):
        case(closed, status="closed", closed_at=closed, satisfaction=answer, satisfaction_at=START + timedelta(hours=4))
    sad = case(closed, status="closed", closed_at=closed, satisfaction="unsatisfied",
               satisfaction_at=START + timedelta(hours=9), summary="Refund took weeks")
    case(closed, status="closed", closed_at=closed, satisfaction="extremely_unsatisfied", satisfaction_at=END)
    # testimonials: asked in the day; asked 10 days ago and answered by a reply (a linked case); asked 20 days
    # ago and answered on the case; asked 40 days ago (outside the 30 days)
    case(closed, status="closed", closed_at=closed, testimonial_sent_at=START + timedelta(hours=1))
    asked = START - timedelta(days=10)
    old = case(closed - timedelta(days=10), status="closed", closed_at=asked, testimonial_sent_at=asked)
    reply = case(asked + timedelta(days=1))
    db.insert(CaseLink, case=reply, other=old, kind="reopened_from", created_at=utc(asked + timedelta(days=1)))
    case(closed - timedelta(days=20), status="closed", closed_at=closed, testimonial_sent_at=START - timedelta(days=20),
         last_customer_at=START - timedelta(days=19))
    case(closed - timedelta(days=40), status="closed", closed_at=closed, testimonial_sent_at=START - timedelta(days=40),
         last_customer_at=START - timedelta(days=39))
    data = _build(ctx).data
    sat = data["satisfaction"]
    assert sat["answers"] == {"extremely_satisfied": 1, "satisfied": 2, "unsatisfied": 1, "extremely_unsatisfied": 0}
    assert sat["unhappy"]["count"] == 1 and [c["number"] for c in sat["unhappy"]["cases"]] == [sad]
    assert data["testimonials"] == {"asked_day": 1, "asked_30d": 3, "answered_30d": 2}
    text = lines(_build(ctx))
    assert "Satisfied: 2" in text and "Unhappy: 1" in text
    assert f"#{sad} Unsatisfied (unassigned): Refund took weeks" in text
    assert "Testimonials asked in 30 days: 3, answered: 2" in text


def test_the_outcome_of_each_case_closed_that_day_is_its_most_severe(ctx):
    at, made = START + timedelta(hours=6), START - timedelta(days=1)
    closed = dict(status="closed", closed_at=at)
    case(made, type="request", **closed)  # 1
    sad = case(made, type="request", satisfaction="unsatisfied", summary="Asked about limits", **closed)  # 2
    case(made, type="enhancement", **closed)  # 3
    case(made, type="bug", priority="P2", **closed)  # 4: P2 blocks but has a workaround
    case(made, type="bug", priority="P3", tags=["billing", "Workaround"], **closed)  # 4
    case(made, type="bug", priority="P3", **closed)  # 5
    case(made, type="bug", priority="P1", outcome="answered_happy", **closed)  # 1: the agent said so
    case(made, type="request", outcome="4", **closed)  # 4: the agent said so, by number
    survivor = case(made, type="request", **closed)  # 5, by the bug merged into it
    merged = case(made, type="bug", priority="P3", **closed)  # counted in its survivor, not on its own
    db.insert(CaseLink, case=merged, other=survivor, kind="merged_into", created_at=utc(at))
    case(made, type="bug", status="closed", closed_at=START - timedelta(seconds=1))  # the day before
    case(made, type="bug")  # open
    o = _build(ctx).data["outcomes"]
    assert o["counts"] == {"answered_happy": 2, "answered_unhappy": 1, "feature_request": 1,
                           "problem_workaround": 3, "problem_no_workaround": 2}
    assert o["total"] == 9
    assert [c["number"] for c in o["unhappy"]["cases"]] == [sad]
    text = lines(_build(ctx))
    assert "OUTCOMES (cases closed that day: 9)" in text
    assert "4. Reported a problem – workaround: 3" in text and "5. Reported a problem – no workaround: 2" in text
    assert f"Unhappy: #{sad} (unassigned): Asked about limits" in text


def test_the_outcomes_report_is_the_digests_query(site, capsys):
    path, ctx = site
    case(START - timedelta(days=1), type="bug", status="closed", closed_at=START + timedelta(hours=1))
    code, out = run(path, "report", "outcomes", "--for", "2026-07-14", "--format", "json", now=NOW.isoformat(),
                    capsys=capsys)
    assert code == 0
    data = json.loads(out)
    assert data["outcomes"] == _build(ctx).data["outcomes"]
    assert data["outcomes"]["counts"]["problem_no_workaround"] == 1


def _message(stored, state="done", disposition="new_case", error=None) -> None:
    db.insert(Message, raw_sha256="0" * 64, size=100, source="imap", mailbox="support", arrived_at=utc(stored),
              stored_at=utc(stored), state=state, disposition=disposition, error=error, trace=[])


def _outbox(created, state) -> None:
    db.insert(Outbox, kind="acknowledgement", message_id=f"<{next(_n)}@x>", mail_from="support@example.com",
              recipients=["c@shop.example"], to_addr="c@shop.example", raw=b"x", state=state,
              next_attempt_at=utc(created), created_at=utc(created))


def test_pipeline_health(ctx):
    from mailproc import status
    for disposition in ("new_case", "new_case", "follow_up", "bounce", "auto_reply"):
        _message(START + timedelta(hours=2), disposition=disposition)
    _message(START + timedelta(hours=3), state="failed", disposition=None, error="parked after 3 attempts")
    _message(START + timedelta(hours=3), state="failed", disposition=None, error="boom")
    _message(START + timedelta(hours=3), state="pending", disposition=None)
    _message(START - timedelta(seconds=1))  # the day before
    _outbox(NOW - timedelta(hours=2), "queued")
    _outbox(NOW - timedelta(hours=1), "queued")
    _outbox(NOW - timedelta(minutes=1), "sending")
    _outbox(NOW - timedelta(days=3), "sent")
    status.record_poll("support", NOW - timedelta(hours=1), None)
    p = _build(ctx).data["pipeline"]
    assert p["messages"] == {"stored": 8, "dispositions": {"auto_reply": 1, "bounce": 1, "follow_up": 1,
                                                           "new_case": 2}, "failed": 2, "parked": 1, "pending": 1}
    assert p["outbox"]["queued"] == 2 and p["outbox"]["sending"] == 1 and p["outbox"]["oldest_hours"] == 2.0
    assert p["mailboxes"] == [{"name": "support", "last_ok_at": (NOW - timedelta(hours=1)).isoformat(),
                               "hours_since_ok": 1.0, "failing": False, "last_error": None}]
    text = lines(_build(ctx))
    assert "Messages stored: 8" in text and "  bounce: 1" in text and "Failed: 2 (parked: 1)" in text
    assert any(line.startswith("Outbox: 2 queued, 1 sending, oldest ") and line.endswith("(2.0 h)") for line in text)
    assert any(line.startswith("Mailbox support: last good poll ") and line.endswith("(1.0 h ago)") for line in text)


def test_ten_thousand_cases_in_a_day_render(ctx):
    rows = []
    for i in range(10_000):
        created = utc(START + timedelta(seconds=8 * i))
        closed = i % 2 == 0
        rows.append({"type": queries.CASE_TYPES[i % 4], "status": "closed" if closed else "assigned",
                     "priority": f"P{i % 6 + 1}", "tier": "T1", "contact": "c@shop.example", "summary": f"case {i}",
                     "created_at": created, "updated_at": created, "status_changed_at": created,
                     "tier_entered_at": created, "closed_at": created if closed else None,
                     "sla_due": utc(NOW - timedelta(hours=1)) if not closed else None,
                     "first_response_at": created, "tags": [], "decided_by": {}})
    for chunk in range(0, len(rows), 1000):
        db.insert_many(Case, rows[chunk:chunk + 1000])
    report = _build(ctx)
    assert report.data["volumes"]["new"]["total"] == 10_000
    assert report.data["volumes"]["closed"]["total"] == 5_000
    assert report.data["sla"]["red"]["count"] == 5_000
    assert report.data["first_response"]["buckets"]["under_1h"] == 10_000
    assert len(report.html.encode()) < html.LIMIT


def test_the_html_part_is_tables_with_inlined_styles(ctx):
    case(START, sla_due=NOW - timedelta(hours=1), summary="<script>alert(1)</script> broken")
    report = _build(ctx)
    assert "<style" not in report.html and "class=\"bar\"" in report.html
    assert 'style="' in report.html and "&lt;script&gt;" in report.html
    assert report.html.count("<table") > 10


def test_cli_prints_the_same_report_in_each_format(site, capsys):
    path, ctx = site
    case(START + timedelta(hours=1), type="bug")
    out = {}
    for fmt in ("json", "text", "html"):
        code, out[fmt] = run(path, "report", "digest", "--for", "2026-07-14", "--format", fmt, now=NOW.isoformat(),
                             capsys=capsys)
        assert code == 0
    assert json.loads(out["json"])["volumes"]["new"]["by_type"]["bug"] == 1
    assert "New: 1" in out["text"].splitlines()
    assert html.problems(out["html"]) == [] and "Support digest for 2026-07-14" in out["html"]
    code, out_default = run(path, "report", "digest", "--format", "json", now=NOW.isoformat(), capsys=capsys)
    assert json.loads(out_default)["day"] == "2026-07-14"  # yesterday in Lisbon


def test_the_slot_mails_the_digest_to_each_lead_once(ctx):
    case(START + timedelta(hours=1))
    scheduled.run(ctx, NOW)
    rows = list(Outbox.select().where(Outbox.kind == "digest").order_by(Outbox.to_addr))
    assert [r.to_addr for r in rows] == ["ana@example.com", "eva@example.com"]  # the leads, not rui
    assert all(b"Subject: Daily digest 2026-07-14: 1 new" in bytes(r.raw) for r in rows)
    scheduled.run(ctx, NOW + timedelta(minutes=5))
    assert Outbox.select().where(Outbox.kind == "digest").count() == 2
    scheduled.run(ctx, NOW + timedelta(days=1, minutes=-31))  # 06:59 in Lisbon the next morning: not yet
    assert Outbox.select().where(Outbox.kind == "digest").count() == 2
    scheduled.run(ctx, NOW + timedelta(days=1))  # the next morning's slot: the digest of 15 July
    assert Outbox.select().where(Outbox.kind == "digest").count() == 4
    assert sum(b"Subject: Daily digest 2026-07-15: " in bytes(r.raw) for r in Outbox.select()) == 2


def test_configured_recipients_replace_the_leads(db_url, make_config):
    config = load(_config(make_config, db_url, {"recipients": "boss@example.com, ops@example.com"}))
    db.open_database(config.database)
    ctx = load_context(config, Clock(NOW))
    roster.sync(ctx.roster)
    digest_job = digest.slot_jobs(ctx)
    assert [j.name for j in digest_job] == ["digest"]
    scheduled.Scheduler(ctx, _jobs=digest_job).run(NOW)
    assert sorted(r.to_addr for r in Outbox.select().where(Outbox.kind == "digest")) == [
        "boss@example.com", "ops@example.com"]


def test_without_recipients_the_slot_passes_with_a_warning(db_url, make_config, caplog):
    config = load(_config(make_config, db_url, agents={"rui": {"address": "rui@example.com"}}))
    db.open_database(config.database)
    ctx = load_context(config, Clock(NOW))
    roster.sync(ctx.roster)
    done = scheduled.Scheduler(ctx, _jobs=digest.slot_jobs(ctx)).run(NOW)
    assert done.slots == ["digest:2026-07-15T07:00"] and done.mails == 0
    assert Outbox.select().where(Outbox.kind == "digest").count() == 0
    assert "no active agent with the lead role" in caplog.text
    Person.update(role="lead").where(Person.address == "rui@example.com").execute()
    assert scheduled.Scheduler(ctx, _jobs=digest.slot_jobs(ctx)).run(NOW + timedelta(minutes=1)).mails == 0


def test_known_issue_clusters_and_missing_docs_are_listed(ctx):
    from mailproc import missingdocs
    from mailproc.models import Cluster, ClusterMember
    members = [case(START + timedelta(hours=h), type="bug", summary=f"Sync fails with error 502 ({h})")
               for h in (1, 2, 3)]
    cluster = db.insert(Cluster, type="bug", opened_at=utc(START + timedelta(hours=1)),
                        last_at=utc(START + timedelta(hours=3)), size=3, summary="Sync fails with error 502 (1)")
    for number in members:
        db.insert(ClusterMember, cluster=cluster, case=number, similarity=95.0, added_at=utc(START))
    answer = "To reset the sync token, open Settings, then Accounts, and press Reconnect twice."
    for i, number in enumerate(members):  # as the relay records them: grouped when recorded
        missingdocs.record(ctx, Case.get_by_id(number), actor="ana@example.com", text=answer,
                           now=START + timedelta(hours=4 + i))
    report = _build(ctx)
    k = report.data["knowledge"]
    assert [c["size"] for c in k["clusters"]] == [3]
    assert [m["case"] for m in k["clusters"][0]["members"]] == members
    assert len(k["missing_docs"]) == 1 and k["missing_docs"][0]["cases"] == 3
    text = lines(report)
    assert "KNOWN-ISSUE CLUSTERS: 1" in text and '3 bug cases like "Sync fails with error 502 (1)"' in text
    assert f"  #{members[0]}: Sync fails with error 502 (1)" in text
    assert "MISSING DOCS: 1" in text
    assert any(line.startswith("3 answers on 3 cases: ") for line in text)
    assert "Sync fails with error 502 (2)" in report.html


@pytest.mark.parametrize("part, problem", [
    ('<svg width="10"></svg>', "svg"), ("<script>x()</script>", "script"),
    ('<img src="data:image/png;base64,AAAA">', "data: URI"), ('<img src="https://cdn.example/x.png">', "external"),
    ('<link rel="stylesheet" href="//cdn.example/x.css">', "external"),
    ("<style>@import url(x.css);</style>", "@import"),
    ('<td style="background:url(http://x.example/a.png)">', "url()"), ('<img src="cid:logo">', "cid:logo"),
])
def test_the_static_check_finds_what_mail_clients_block(part, problem):
    found = html.problems(f"<html><body>{part}</body></html>")
    assert len(found) == 1 and problem in found[0]


def test_the_static_check_passes_links_cids_with_parts_and_counts_bytes():
    page = '<a href="https://help.example/sync">help</a><img src="cid:logo@x" alt="">'
    assert html.problems(page, parts=["<logo@x>"]) == []
    assert html.problems("<p>" + "é" * 60_000 + "</p>")[0].endswith("Gmail clips a part of 102400 bytes or more")


def test_finish_inlines_the_style_block():
    done = html.finish('<html><head></head><body><style>td.n { text-align:right }</style>'
                       '<table><tr><td class="n">1</td></tr></table></body></html>')
    assert "<style" not in done and 'style="text-align: right' in done


def test_a_dst_day_has_23_or_25_hours():
    from zoneinfo import ZoneInfo
    lisbon = ZoneInfo("Europe/Lisbon")
    start, end = digest.bounds(date(2026, 3, 29), lisbon)  # clocks go forward at 01:00
    assert (start.isoformat(), end - start) == ("2026-03-29T00:00:00+00:00", timedelta(hours=23))
    start, end = digest.bounds(date(2026, 10, 25), lisbon)  # and back at 02:00
    assert (start.isoformat(), end - start) == ("2026-10-24T23:00:00+00:00", timedelta(hours=25))


def test_the_outcomes_report_text_line_by_line(site, capsys):
    path, ctx = site
    sad = case(START - timedelta(days=1), satisfaction="extremely_unsatisfied", status="closed",
               closed_at=START + timedelta(hours=1), summary="Export question")
    case(START - timedelta(days=1), type="enhancement", status="closed", closed_at=START + timedelta(hours=2))
    code, out = run(path, "report", "outcomes", "--for", "2026-07-14", now=NOW.isoformat(), capsys=capsys)
    assert code == 0
    assert out.splitlines()[:11] == [
        "Outcome report for 2026-07-14 (Europe/Lisbon)",
        "Cases closed that day: 2, each counted once under its most severe outcome.", "",
        "1. Answered question – happy: 0", "2. Answered question – unhappy: 1", "3. Added feature request: 1",
        "4. Reported a problem – workaround: 0", "5. Reported a problem – no workaround: 0", "",
        "Unhappy:", f"#{sad} (unassigned): Export question"]
    report = reports.build(ctx, "outcomes", day=LISBON_DAY, now=NOW)
    assert report.subject == "Outcomes 2026-07-14: 2 case(s) closed" and html.problems(report.html) == []


def test_a_merged_duplicate_is_apart_from_closed_resolution_and_first_response(ctx):
    survivor = case(START - timedelta(days=2), status="closed", closed_at=START + timedelta(hours=5),
                    first_response_at=START - timedelta(days=2) + timedelta(minutes=30))
    dup = case(START + timedelta(hours=1), status="closed", closed_at=START + timedelta(hours=1, minutes=5))
    db.insert(CaseLink, case=dup, other=survivor, kind="merged_into", created_at=utc(START + timedelta(hours=1,
                                                                                                       minutes=5)))
    report = _build(ctx)
    d = report.data
    v = d["volumes"]
    assert (v["new"]["total"], v["closed"]["total"], v["merged"], v["net"]) == (1, 1, 1, -1)
    assert v["closed"]["total"] == d["outcomes"]["total"] == 1  # "Closed" and "Outcomes" agree
    # the merge's 5 minutes are no resolution
    assert (d["resolution"]["count"], d["resolution"]["average_hours"]) == (1, 53.0)
    assert d["first_response"]["total"] == 0 and d["first_response"]["buckets"]["overdue"] == 0
    assert d["trend"][-1] == {"day": "2026-07-14", "new": 1, "closed": 1, "merged": 1, "net": -1}
    text = lines(report)
    assert "Closed: 1 (and 1 merged into other cases)" in text and "Net growth: -1 (goal 0)" in text
    assert "2026-07-14  new    1  closed    1  net    -1  (1 merged)" in text
    assert "closed (+1 merged)" in report.html


LONG = ("Não consigo exportar as faturas mensais para o sistema de contabilidade — ошибка экспорта, "
        "東京オフィスの請求書 — the export fails every time with error E-4012 after the upload step finishes ")[:240]


def _fill_every_list(ctx, n: int = 60) -> None:
    """n red + stuck, n long holds, n closed unhappy (satisfaction and outcomes), 25 clusters of 20,
    12 missing docs: every list of the digest full, each summary 240 characters of mixed scripts."""
    from mailproc import missingdocs
    from mailproc.models import Cluster, ClusterMember
    import random
    for _ in range(n):
        case(START - timedelta(days=6), status="assigned", sla_due=NOW - timedelta(hours=1),
             waiting_since=NOW - timedelta(days=6), summary=LONG)
        case(START - timedelta(days=40), status="pending_development", long_hold_at=NOW - timedelta(days=2),
             summary=LONG)
        case(START - timedelta(days=3), status="closed", closed_at=START + timedelta(hours=1),
             satisfaction="unsatisfied", satisfaction_at=START + timedelta(hours=2), summary=LONG)
    for k in range(25):
        ids = [case(START + timedelta(hours=1), type="bug", summary=f"{k} {LONG}") for _ in range(20)]
        cluster = db.insert(Cluster, type="bug", opened_at=utc(START), last_at=utc(START + timedelta(hours=1)),
                            size=20, summary=f"{k} {LONG}")
        for number in ids:
            db.insert(ClusterMember, cluster=cluster, case=number, similarity=90.0, added_at=utc(START))
    words = LONG.split() + [f"w{i}" for i in range(300)]
    rng = random.Random(8)
    for k in range(12):
        answer = " ".join(rng.choice(words) for _ in range(60))
        for i in range(3):
            missingdocs.record(ctx, Case.get_by_id(case(START)), actor="ana@example.com", text=answer,
                               now=START + timedelta(hours=k, minutes=i))


def test_every_list_full_with_long_summaries_stays_under_gmails_clip(ctx, monkeypatch):
    _fill_every_list(ctx)
    report = _build(ctx)  # asserts html.problems(report.html) == []
    d = report.data
    assert (d["sla"]["red"]["count"], d["stuck"]["waiting"]["count"], d["stuck"]["holds"]["count"]) == (60, 60, 60)
    assert (d["satisfaction"]["unhappy"]["count"], d["outcomes"]["unhappy"]["count"]) == (60, 60)
    assert len(d["knowledge"]["clusters"]) == 25 and len(d["knowledge"]["missing_docs"]) == 12
    size = len(report.html.encode("utf-8"))
    assert size < html.LIMIT
    # the HTML lists a part, says how many more and where the rest is; the text part has the full lists
    assert "Red: 60" in report.html and "… and 48 more" in report.html
    assert "mailproc report digest --for 2026-07-14" in report.html and "… and 15 more clusters" in report.html
    text = report.text.splitlines()
    assert sum(1 for line in text if line.startswith("#") and " h over: " in line) == queries.LIST_LIMIT
    assert "KNOWN-ISSUE CLUSTERS: 25" in text
    # when the rows still do not fit, fewer are listed until the part passes
    monkeypatch.setattr(digest, "LIMIT", size - 1)
    smaller = digest.build(ctx, day=LISBON_DAY, now=NOW)
    assert len(smaller.html.encode("utf-8")) < size - 1 and "Red: 60" in smaller.html
    assert "… and 52 more" in smaller.html and smaller.text == report.text
