"""The daily and the weekly digest's text parts, whole and line by line (issue 8, "How it is
tested"): a small fixed set of cases, inserted directly with fixed times on SQLite and on
PostgreSQL, gives every section at least one figure that is not zero, and the text part
`digest.build` / `weekly.build` renders is compared with the text written out below. With a
fixed `now` nothing in it may vary (case numbers start at 1 in a fresh database); a mismatch
shows a unified diff."""

from __future__ import annotations

import difflib
from datetime import date, datetime, timedelta, timezone

import pytest

from helpers import report_site
from mailproc import cases, db, missingdocs, status
from mailproc.models import Case, CaseLink, Cluster, ClusterMember, Message, Outbox, utc
from mailproc.reports import digest, weekly

UTC = timezone.utc
DAY = date(2026, 7, 14)  # a Tuesday; Lisbon is UTC+1 in July: [13 Jul 23:00, 14 Jul 23:00) UTC
START = datetime(2026, 7, 13, 23, 0, tzinfo=UTC)
NOW = datetime(2026, 7, 15, 6, 30, tzinfo=UTC)
WEEK_DAY = date(2026, 7, 8)  # the week of Mon 6 to Sun 12 July: [5 Jul 23:00, 12 Jul 23:00) UTC
AGENTS = {"ana": {"address": "ana@example.com", "roles": "lead"}, "rui": {"address": "rui@example.com"},
          "eva": {"address": "eva@example.com", "roles": "oncall, lead"}}


@pytest.fixture
def ctx(db_url, make_config):
    context = report_site(db_url, make_config, AGENTS, NOW)
    yield context
    db.close()


def case(created: datetime, **values) -> int:
    """A case inserted directly, as the figures read it (columns, not history)."""
    row = {"type": "request", "status": "new", "priority": "P5", "tier": "T1", "contact": "c@shop.example",
           "summary": "a case", "created_at": created, "updated_at": created, "status_changed_at": created,
           "tier_entered_at": created, "tags": [], "decided_by": {}, **values}
    return db.insert(Case, **{k: utc(v) if isinstance(v, datetime) else v for k, v in row.items()})


def same_text(got: str, expected: str) -> None:
    """`got` equals `expected` line by line; else fail with a unified diff."""
    if got.splitlines() != expected.splitlines():
        diff = "\n".join(difflib.unified_diff(expected.splitlines(), got.splitlines(), "expected", "built",
                                              lineterm=""))
        pytest.fail(f"the text part differs:\n{diff}", pytrace=False)


def at(month: int, day: int, hour: int = 12, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def fixed_cases(ctx) -> None:
    """The cases both digests read (numbers 1-15 in a fresh database), each commented with what it shows."""
    h = timedelta(hours=1)
    d = timedelta(days=1)
    # 1: new in the day, answered in 30 min, red (2 h over its SLA)
    case(START + h, type="bug", priority="P2", status="assigned", first_response_at=START + 1.5 * h,
         sla_warn_at=NOW - 5 * h, sla_due=NOW - 2 * h, summary="Checkout broken")
    # 2: new and closed in the day: resolved after 7 h, answered after 3 h, unhappy (outcome 2)
    case(START + 2 * h, priority="P4", status="closed", first_response_at=START + 5 * h, resolved_at=START + 9 * h,
         closed_at=START + 10 * h, satisfaction="unsatisfied", satisfaction_at=START + 12 * h,
         summary="Export question")
    # 3: an enhancement closed in the day without being resolved (78 h; outcome 3)
    case(START - 3 * d, type="enhancement", status="closed", closed_at=START + 6 * h, summary="Dark mode")
    # 4: a bug with a workaround, resolved after 55 h and closed in the day (outcome 4); a known issue
    case(START - 2 * d, type="bug", priority="P3", status="closed", resolved_at=START + 7 * h,
         closed_at=START + 8 * h, tags=["Workaround"], known_issue="102-export-empty", summary="Empty export")
    # 5: waiting on us for six days: stuck
    case(START - 10 * d, status="assigned", tier="T2", waiting_since=NOW - 6 * d, summary="Still nobody answered")
    # 6: a long engineering hold at T3 (20 days, SLA paused), never answered there: an open loop
    case(START - 40 * d, status="pending_development", tier="T3", long_hold_at=NOW - 2 * d,
         status_changed_at=NOW - 20 * d, tier_entered_at=NOW - 20 * d, sla_paused_at=NOW - 20 * d,
         summary="Export needs a fix")
    # 7: yellow
    case(START - d, tier="T2", status="waiting", sla_warn_at=NOW - h, sla_due=NOW + h, summary="Slow search")
    # 8: new an hour before the day's end, not answered yet: waiting, not overdue
    case(START + 23 * h, tier="triage", summary="Password reset")
    # 9: closed three days ago, answered satisfied and asked for a testimonial in the day
    case(START - 5 * d, status="closed", closed_at=START - 3 * d, satisfaction="extremely_satisfied",
         satisfaction_at=START + 4 * h, testimonial_sent_at=START + 5 * h, summary="Thanks")
    # 10: asked for a testimonial ten days ago, and the customer replied
    case(START - 20 * d, status="closed", closed_at=START - 10 * d, testimonial_sent_at=START - 10 * d,
         last_customer_at=START - 9 * d, summary="Happy client")
    # 11: a duplicate of 4, merged into it in the day
    dup = case(START + 3 * h, status="closed", closed_at=START + 3 * h + timedelta(minutes=5), summary="Empty export?")
    db.insert(CaseLink, case=dup, other=4, kind="merged_into", created_at=utc(START + 3 * h + timedelta(minutes=5)))
    # 12-14: three alike bugs in the day: a cluster, a known issue, and the same answer three times
    members = [case(START + n * h, type="bug", known_issue="101-sync-delay", summary=f"Sync fails with error 502 ({n})")
               for n in (4, 5, 6)]
    cluster = db.insert(Cluster, type="bug", opened_at=utc(START + 4 * h), last_at=utc(START + 6 * h), size=3,
                        summary="Sync fails with error 502 (4)", suggested_at=utc(START + 6 * h))
    for number in members:
        db.insert(ClusterMember, cluster=cluster, case=number, similarity=95.0, added_at=utc(START + 6 * h))
    answer = "To reset the sync token, open Settings, then Accounts, and press Reconnect twice."
    for i, number in enumerate(members):
        missingdocs.record(ctx, Case.get_by_id(number), actor="rui@example.com", text=answer,
                           now=START + (8 + i) * h)
    # 15: paged on 7 July, acknowledged after 20 min, tagged for review the next day
    paged = case(at(7, 7, 10), priority="P1", tier="oncall", status="resolved", resolved_at=at(7, 7, 12),
                 paged_at=at(7, 7, 10, 5), page_ack_at=at(7, 7, 10, 25), page_level=1, tags=["Process-Tweak"],
                 summary="Site down")
    cases.record(paged, "paged", now=at(7, 7, 10, 5), rule="oncall:page", new="eva")
    cases.record(paged, "field", now=at(7, 8, 9), field="tags", old=[], new=["Process-Tweak"])
    # the pipeline: four messages stored in the day, one parked; an outbox mail queued 2 h ago; a poll 1 h ago
    for i, (state, disposition, error) in enumerate((("done", "new_case", None), ("done", "new_case", None),
                                                     ("done", "follow_up", None),
                                                     ("failed", None, "parked after 3 attempts"))):
        db.insert(Message, raw_sha256=f"{i:064d}", size=100, source="imap", mailbox="support",
                  arrived_at=utc(START + (i + 1) * h), stored_at=utc(START + (i + 1) * h), state=state,
                  disposition=disposition, error=error, trace=[])
    db.insert(Outbox, kind="acknowledgement", message_id="<q1@x>", mail_from="support@example.com",
              recipients=["c@shop.example"], to_addr="c@shop.example", raw=b"x", state="queued",
              next_attempt_at=utc(NOW - 2 * h), created_at=utc(NOW - 2 * h))
    status.record_poll("support", NOW - h, None)


# Every figure below was counted by hand from the comments of `fixed_cases` (e.g. resolution: cases 2, 3
# and 4 after 7, 78 and 55 hours; case 11, merged into 4, is apart from closed, resolution and first response).
DIGEST = """\
Support digest for 2026-07-14 (Europe/Lisbon)

CASES
New: 7
Closed: 3 (and 1 merged into other cases)
Open now: 8
Net growth: +3 (goal 0)
By type                         new closed   open
Request for Service               3      1      4
Admin Task                        0      0      0
Enhancement Request               0      1      0
Bug / Report a Problem            4      1      4
By priority                     new closed   open
P1 – Emergency                    0      0      0
P2 – Blocker                      1      0      1
P3 – Very High                    0      1      0
P4 – High                         1      1      0
P5 – Medium                       5      1      7
P6 – Low                          0      0      0

TREND, LAST 14 DAYS (goal: net 0)
2026-07-01  new    0  closed    0  net    +0
2026-07-02  new    0  closed    0  net    +0
2026-07-03  new    0  closed    0  net    +0
2026-07-04  new    1  closed    1  net    +0
2026-07-05  new    0  closed    0  net    +0
2026-07-06  new    0  closed    0  net    +0
2026-07-07  new    1  closed    0  net    +1
2026-07-08  new    0  closed    0  net    +0
2026-07-09  new    1  closed    0  net    +1
2026-07-10  new    0  closed    0  net    +0
2026-07-11  new    1  closed    1  net    +0
2026-07-12  new    1  closed    0  net    +1
2026-07-13  new    1  closed    0  net    +1
2026-07-14  new    7  closed    3  net    +3  (1 merged)

RESOLUTION TIME (goal 24 h)
Resolved: 3
Average: 46.7 h (over the goal)
Median: 55.0 h (over the goal)
Within 24 h: 1 of 3

FIRST RESPONSE (cases created that day: 6)
< 1 h: 1
1–6 h: 1
6–12 h: 0
12–24 h: 0
overdue (> 24 h): 3
waiting (< 24 h old, no answer yet): 1

SLA OF OPEN CASES, NOW
Tier          red yellow  green paused no limit
T1              1      0      0      0        3
T2              0      1      0      0        1
T3              0      0      0      1        0
triage          0      0      0      0        1
Red: 1
#1 P2 T1 unassigned, 2.0 h over: Checkout broken

STUCK CASES
Waiting on us past the nudge threshold: 1
#5 assigned, unassigned, waiting 144.0 h: Still nobody answered
Long engineering holds: 1
#6 pending_development, unassigned, held 20.0 days: Export needs a fix

SATISFACTION (answers that day: 2)
Extremely Satisfied: 1
Satisfied: 0
Unsatisfied: 1
Extremely Unsatisfied: 0
Unhappy: 1
#2 Unsatisfied (unassigned): Export question
Testimonials asked that day: 1
Testimonials asked in 30 days: 2, answered: 1

OUTCOMES (cases closed that day: 3)
1. Answered question – happy: 0
2. Answered question – unhappy: 1
3. Added feature request: 1
4. Reported a problem – workaround: 1
5. Reported a problem – no workaround: 0
Unhappy: #2 (unassigned): Export question

KNOWN-ISSUE CLUSTERS: 1
3 bug cases like "Sync fails with error 502 (4)"
  #12 [101-sync-delay]: Sync fails with error 502 (4)
  #13 [101-sync-delay]: Sync fails with error 502 (5)
  #14 [101-sync-delay]: Sync fails with error 502 (6)
MISSING DOCS: 1
3 answers on 3 cases: "To reset the sync token, open Settings, then Accounts, and press Reconnect twice."
  #12 rui@example.com: To reset the sync token, open Settings, then Accounts, and press Re...
  #13 rui@example.com: To reset the sync token, open Settings, then Accounts, and press Re...
  #14 rui@example.com: To reset the sync token, open Settings, then Accounts, and press Re...

PIPELINE
Messages stored: 4
  follow_up: 1
  new_case: 2
Failed: 1 (parked: 1)
Pending: 0
Outbox: 1 queued, 0 sending, oldest 2026-07-15T04:30:00+00:00 (2.0 h)
Mailbox support: last good poll 2026-07-15T05:30:00+00:00 (1.0 h ago)
"""

# The week of 6-12 July: cases 15, 9, 3 and 4 came in it, case 5 the week before; 9 closed in it, 10 before.
WEEKLY = """\
Changing of the Guard: the week of Monday 2026-07-06 to Sunday 2026-07-12 (Europe/Lisbon).

VOLUMES
New cases:    4 (week before 1, +3)
Closed cases: 1 (week before 1, 0)
Net growth:   +3 (week before 0; the goal is 0 or less)

By type                         new  closed  week before (new/closed)
Request for Service               2       1  1/1
Admin Task                        0       0  0/0
Enhancement Request               1       0  0/0
Bug / Report a Problem            1       0  0/0

By priority                     new  closed  week before (new/closed)
P1 – Emergency                    1       0  0/0
P2 – Blocker                      0       0  0/0
P3 – Very High                    1       0  0/0
P4 – High                         0       0  0/0
P5 – Medium                       2       1  1/1
P6 – Low                          0       0  0/0

OPEN LOOPS: 1 open case escalated to T3 or higher with no answer since
#6 T3 P5 pending_development, waiting 480.0 h: Export needs a fix

KNOWN ISSUES: 2 active, 1 new, 0 done this week
101-sync-delay: 3 cases, 0 opened, 0 closed, 3 still open
102-export-empty: 1 case, 1 opened, 0 closed, 0 still open (new)

ON-CALL PAGES: 1 case paged, 1 acknowledged (1 within 60 min), 0 never acknowledged
Acknowledged after 20 min on average, 20 min at the longest.
Paged: eva 1
#15 P1 oncall, paged Tue 07 Jul 11:05: acknowledged after 20 min - Site down

TAGGED FOR REVIEW (Process Tweak, Missed Doc Review): 1
#15 [Process Tweak] resolved: Site down
"""


def test_the_daily_digest_text_line_by_line(ctx):
    fixed_cases(ctx)
    report = digest.build(ctx, day=DAY, now=NOW)
    same_text(report.text, DIGEST)


def test_the_weekly_digest_text_line_by_line(ctx):
    fixed_cases(ctx)
    report = weekly.build(ctx, day=WEEK_DAY, now=NOW)
    same_text(report.text, WEEKLY)


def test_a_changed_line_fails_with_a_diff():
    with pytest.raises(pytest.fail.Exception) as failed:
        same_text("a\nNew: 7\nc\n", "a\nNew: 8\nc\n")
    assert "-New: 8\n+New: 7" in str(failed.value)
