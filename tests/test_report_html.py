"""Report mails' HTML in a real browser: the daily and the weekly digest, built over a
database with cases of every kind, are rendered by headless Chromium (started by the test,
network blocked) to a screenshot; each must render without a console error and pass the
static checks of `reports.html.problems`. The browser check itself is shown to catch a
script error, a console.error and an external load."""

from __future__ import annotations

import email
import email.policy
from datetime import datetime, timedelta, timezone

import pytest

from helpers import report_site
from mailproc import cases, db, scheduled
from mailproc.models import (CASE_TYPES, PRIORITIES, Answer, Case, Cluster, ClusterMember, MailboxState, Message,
                             Outbox, utc)
from mailproc.reports import digest, html, weekly
from mailproc.testing import browser

UTC = timezone.utc
NOW = datetime(2026, 11, 30, 14, 30, tzinfo=UTC)  # Monday, after the weekly slot (08:00 in Lisbon, UTC in winter)
DAY = NOW - timedelta(days=1)  # the daily digest's day: Sunday the 29th
AGENTS = {"ana": {"address": "ana@example.com", "roles": "lead"}, "rui": {"address": "rui@example.com"},
          "eva": {"address": "eva@example.com", "roles": "oncall, lead"}}
STATUSES = ("new", "assigned", "pending_input", "waiting", "on_hold", "pending_development", "resolved",
            "pending_closure", "closed")
TIERS = ("triage", "T1", "T2", "T3", "T4", "T5", "oncall")


@pytest.fixture
def ctx(sqlite_url, make_config):
    context = report_site(sqlite_url, make_config, AGENTS, NOW)
    yield context
    db.close()


def every_kind(now: datetime) -> None:
    """Cases of every type, priority, status and tier over the last two weeks, with what the
    digests read beside them: answers to the survey, outcomes, red and yellow SLAs, long holds,
    pages, known issues, review tags, clusters, near-identical answers, messages of every
    disposition, the outbox and the mailboxes' polls."""
    n = 0
    for type_ in CASE_TYPES:
        for priority in PRIORITIES:
            for status in STATUSES:
                n += 1
                created = now - timedelta(hours=3 + 7 * n % 330)
                tier = TIERS[n % len(TIERS)]
                finished = status in ("resolved", "pending_closure", "closed")
                row = dict(type=type_, priority=priority, status=status, tier=tier, contact=f"c{n}@shop.example",
                           summary=f"{type_} {priority} {status}: the <export> of report {n} fails & stops",
                           created_at=utc(created), updated_at=utc(created), status_changed_at=utc(created),
                           tier_entered_at=utc(created + timedelta(hours=1)), tags=[], decided_by={},
                           first_response_at=utc(created + timedelta(minutes=20 * (n % 40))) if n % 5 else None,
                           last_customer_at=utc(created), last_agent_at=utc(created) if n % 3 else None,
                           resolved_at=utc(created + timedelta(hours=n % 50)) if finished else None,
                           closed_at=utc(created + timedelta(hours=n % 50 + 1)) if status == "closed" else None,
                           sla_due=utc(now - timedelta(hours=n % 7)) if not finished and n % 4 == 0 else None,
                           sla_warn_at=utc(now - timedelta(hours=30)) if not finished and n % 4 == 0 else None,
                           long_hold_at=utc(now - timedelta(days=1)) if status == "pending_development" else None,
                           known_issue=f"{100 + n // 6 % 3}-sync-delay" if n % 6 == 0 else None,
                           satisfaction=("extremely_satisfied", "unsatisfied", None)[n % 3] if finished else None,
                           satisfaction_at=utc(created + timedelta(hours=60)) if finished and n % 3 != 2 else None,
                           survey_sent_at=utc(created + timedelta(hours=55)) if finished else None,
                           testimonial_sent_at=utc(now - timedelta(hours=5)) if finished and n % 3 == 0 else None,
                           outcome=str(n % 5 + 1) if status == "closed" and n % 2 else None,
                           paged_at=utc(created + timedelta(minutes=5)) if priority == "P1" else None,
                           page_ack_at=utc(created + timedelta(minutes=25)) if priority == "P1" and n % 2 else None,
                           page_level=1 if priority == "P1" else 0)
                number = db.insert(Case, **row)
                if n % 11 == 0:
                    tags = ["Process-Tweak"] if n % 2 else ["missed-doc-review", "billing"]
                    db.update(Case, number, tags=tags)
                    cases.record(number, "field", now=now - timedelta(days=3), field="tags", old=[], new=tags)
                if priority == "P1":
                    cases.record(number, "paged", now=created + timedelta(minutes=5), rule="oncall:page", new="eva")
    cluster = db.insert(Cluster, type="bug", opened_at=utc(DAY), last_at=utc(DAY + timedelta(hours=2)), size=3,
                        summary="Calendar sync stalls", suggested_at=utc(DAY + timedelta(hours=2)))
    first = [c.id for c in Case.select(Case.id).where(Case.type == "bug").limit(3)]
    for number in first:
        db.insert(ClusterMember, cluster=cluster, case=number, similarity=91.0, added_at=utc(DAY))
        db.insert(Answer, case=number, actor="rui@example.com", at=utc(DAY + timedelta(hours=1)),
                  text="Open Settings, then Calendars, and press Resync to fetch the bookings again.")
    for i, disposition in enumerate(("new_case", "follow_up", "bounce", "auto_reply", "failed", "command")):
        db.insert(Message, raw_sha256=f"{i:064d}", size=1000, source="imap", mailbox="support", subject="s",
                  arrived_at=utc(DAY + timedelta(hours=i)), stored_at=utc(DAY + timedelta(hours=i)),
                  state="failed" if disposition == "failed" else "done", disposition=disposition)
    db.insert(Outbox, kind="acknowledgement", message_id="m1@example.com", mail_from="support@example.com",
              recipients=["c1@shop.example"], to_addr="c1@shop.example", raw=b"x", next_attempt_at=utc(now),
              created_at=utc(now - timedelta(minutes=40)))
    db.insert(MailboxState, mailbox="support", last_poll_at=utc(now), last_ok_at=utc(now - timedelta(minutes=1)))


def check_in_browser(report, tmp_path, name: str) -> browser.Rendered:
    assert html.problems(report.html) == [], html.problems(report.html)
    shot = browser.render_html(report.html, tmp_path, name)
    assert shot.errors == [], shot.errors
    assert shot.png.exists() and shot.png.stat().st_size > 20_000  # a page of tables, not a blank one
    assert shot.width == browser.WIDTH and shot.height >= browser.HEIGHT
    return shot


def test_the_daily_digest_renders_in_chromium_without_errors(ctx, tmp_path):
    every_kind(NOW)
    report = digest.build(ctx, day=DAY.date(), now=NOW)
    assert report.data["volumes"]["new"]["total"] > 0 and report.data["sla"]  # a digest with something in it
    check_in_browser(report, tmp_path, "digest")


def test_the_weekly_digest_renders_in_chromium_without_errors(ctx, tmp_path):
    every_kind(NOW)
    report = weekly.build(ctx, day=None, now=NOW)
    data = report.data
    assert data["volumes"]["new"] > 0 and data["open_loops"]["count"] > 0 and data["known_issues"]["count"] > 0
    assert data["pages"]["count"] > 0 and data["review"]["count"] > 0
    check_in_browser(report, tmp_path, "weekly")


def test_an_empty_weekly_digest_renders_too(ctx, tmp_path):
    check_in_browser(weekly.build(ctx, day=None, now=NOW), tmp_path, "empty")


# --- the check itself ---------------------------------------------------------------------------------------------


def test_the_browser_reports_script_errors_console_errors_and_external_loads(tmp_path):
    page = ("<html><body><p>hello</p><img src=\"https://images.example.com/logo.png\">"
            "<script>console.log('fine'); console.error('deliberate failure'); missingFunction();</script>"
            "</body></html>")
    shot = browser.render_html(page, tmp_path, "broken")
    joined = "\n".join(shot.errors)
    assert "console.error: deliberate failure" in joined
    assert "missingFunction is not defined" in joined
    assert "ERR_NAME_NOT_RESOLVED" in joined and "images.example.com" in joined  # blocked, never fetched
    assert "console.log: fine" in shot.messages and "console.log: fine" not in shot.errors
    assert shot.png.exists() and browser.png_size(shot.png.read_bytes()) == (shot.width, shot.height)


def test_a_clean_page_has_no_errors(tmp_path):
    shot = browser.render_html("<html><body><table><tr><td style=\"background:#2f80ed\">&nbsp;</td></tr></table>"
                               "</body></html>", tmp_path, "clean")
    assert shot.errors == [] and shot.messages == []


# --- the mails as the daemon queues them --------------------------------------------------------------------------


def queued_parts(row: Outbox) -> tuple[str, str, str, list[str], str]:
    """The queued mail's text/html content, that part's encoded (wire) body, the text/plain
    content, every MIME part's Content-ID and the Subject."""
    mail = email.message_from_bytes(bytes(row.raw), policy=email.policy.default)
    cids = [str(part["Content-ID"]) for part in mail.walk() if part["Content-ID"] is not None]
    html_parts = [p for p in mail.walk() if p.get_content_type() == "text/html"]
    text_parts = [p for p in mail.walk() if p.get_content_type() == "text/plain"]
    assert len(html_parts) == 1 and len(text_parts) == 1, [p.get_content_type() for p in mail.walk()]
    wire = html_parts[0].get_payload(decode=False)
    assert isinstance(wire, str)
    return html_parts[0].get_content(), wire, text_parts[0].get_content(), cids, str(mail["Subject"])


@pytest.mark.parametrize("kind", ["digest", "weekly"])
def test_the_queued_digest_mails_pass_the_checks_and_render(ctx, tmp_path, kind):
    every_kind(NOW)
    # built before the slots queue anything: the digest's outbox backlog is the one its slot saw
    built = (digest.build(ctx, day=DAY.date(), now=NOW) if kind == "digest" else weekly.build(ctx, day=None, now=NOW))
    done = scheduled.run(ctx, NOW)
    assert done.failed == [], done.failed
    rows = list(Outbox.select().where(Outbox.kind == kind).order_by(Outbox.to_addr))
    assert [r.to_addr for r in rows] == ["ana@example.com", "eva@example.com"]  # the leads
    for row in rows:
        page, wire, text, cids, subject = queued_parts(row)
        assert html.problems(page, cids) == [], html.problems(page, cids)
        assert len(wire.encode("ascii")) < html.LIMIT and len(page.encode("utf-8")) < html.LIMIT
        lines = text.splitlines()
        d = built.data
        if kind == "digest":
            v = d["volumes"]
            assert v["new"]["total"] > 0 and v["closed"]["total"] > 0 and d["sla"]["totals"]["red"] > 0
            for line in (f"New: {v['new']['total']}", f"Open now: {v['open']['total']}",
                         f"Red: {d['sla']['totals']['red']}", f"Resolved: {d['resolution']['count']}"):
                assert line in lines, line
            assert any(line.startswith(f"Closed: {v['closed']['total']}") for line in lines)
            assert any(line.startswith(f"Net growth: {v['net']:+d} (goal 0)") for line in lines)
            assert f"{v['new']['total']} new" in subject and f"{d['sla']['totals']['red']} red" in subject
        else:
            v = d["volumes"]
            assert v["new"] > 0 and d["open_loops"]["count"] > 0
            assert any(line.startswith(f"New cases:    {v['new']} ") for line in lines)
            assert any(line.startswith(f"Closed cases: {v['closed']} ") for line in lines)
            assert any(line.startswith(f"OPEN LOOPS: {d['open_loops']['count']} ") for line in lines)
            assert f"{d['open_loops']['count']} open loops" in subject
        assert lines == built.text.splitlines()  # the report as built, line for line (CRLF ends on the wire)
    page = queued_parts(rows[0])[0]
    shot = browser.render_html(page, tmp_path, f"queued-{kind}")
    assert shot.errors == [], shot.errors
    assert shot.png.exists() and shot.png.stat().st_size > 20_000


def test_an_empty_daily_digest_renders_too(ctx, tmp_path):
    report = digest.build(ctx, day=None, now=NOW)
    assert report.data["volumes"]["new"]["total"] == 0 and report.data["sla"]["totals"]["red"] == 0
    check_in_browser(report, tmp_path, "empty-digest")
