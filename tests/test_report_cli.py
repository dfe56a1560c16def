"""`mailproc report KIND`: printing, mailing (--to) and previewing (--dry-run) one report,
and the daemon's tick mailing the digest at its slot — on both databases."""

from __future__ import annotations

import email
import email.policy
from datetime import datetime, timedelta, timezone

import pytest

from mailproc import db, roster
from mailproc.clock import Clock
from mailproc.config import load
from mailproc.context import load_context
from mailproc.daemon import Daemon
from mailproc.models import Case, Outbox, SlotRun
from helpers import run

NOW = datetime(2026, 11, 30, 7, 0, 30, tzinfo=timezone.utc)  # Lisbon is on UTC in winter: just after 07:00
AGENTS = {"ana": {"address": "ana@example.com", "roles": "lead"},
          "rui": {"address": "rui@example.com", "timezone": "Europe/Lisbon"}}


@pytest.fixture
def site(db_url, make_config):
    path = make_config(database=db_url, agents=AGENTS, extra={"timezone": "Europe/Lisbon"},
                       mailboxes=[dict(name="support", host="127.0.0.1", port=1, username="u", password="p",
                                       address="support@example.com")])
    config = load(path)
    db.open_database(config.database)
    ctx = load_context(config, Clock(NOW))
    roster.sync(ctx.roster)
    at = NOW - timedelta(hours=20)  # yesterday, local
    Case.create(contact="c@shop.example", summary="Export is empty", type="bug", priority="P3", created_at=at,
                updated_at=at, status_changed_at=at, tier_entered_at=at)
    db.close()
    return path


def now_arg() -> str:
    return NOW.isoformat()


def outbox_rows(path) -> list[tuple[str, str]]:
    db.open_database(load(path).database)
    try:
        return [(o.kind, o.to_addr) for o in Outbox.select().order_by(Outbox.id)]
    finally:
        db.close()


def test_report_prints_the_text_part_by_default(site, capsys):
    code, out = run(site, "report", "digest", "--for", "2026-11-29", now=now_arg(), capsys=capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "Support digest for 2026-11-29 (Europe/Lisbon)"  # the text part, not JSON or HTML
    assert "New: 1" in lines and "Net growth: +1 (goal 0)" in lines
    code, out = run(site, "report", "digest", "--for", "2026-11-28", now=now_arg(), capsys=capsys)
    assert "New: 0" in out.splitlines()  # --for picks the day
    assert outbox_rows(site) == []


def test_to_queues_the_report_as_generated_mail_for_the_sender(site, capsys):
    code, _ = run(site, "report", "digest", "--for", "2026-11-29", "--to", "boss@example.org", "--to",
                  "ana@example.com", now=now_arg(), capsys=capsys)
    assert code == 0
    assert outbox_rows(site) == [("digest", "boss@example.org"), ("digest", "ana@example.com")]
    db.open_database(load(site).database)
    try:
        raw = bytes(Outbox.select().order_by(Outbox.id).first().raw)
    finally:
        db.close()
    mail = email.message_from_bytes(raw, policy=email.policy.default)
    assert mail["Auto-Submitted"] == "auto-generated" and mail["From"] == "support@example.com"
    assert {p.get_content_type() for p in mail.walk()} >= {"text/plain", "text/html"}


def test_dry_run_prints_the_mails_to_the_usual_recipients_and_changes_nothing(site, capsys):
    code, out = run(site, "report", "digest", "--dry-run", now=now_arg(), capsys=capsys)
    assert code == 0
    assert out.count("=== would send: digest to ") == 1 and "=== would send: digest to ana@example.com" in out
    assert "Auto-Submitted: auto-generated" in out
    code, out = run(site, "report", "weekly", "--dry-run", "--to", "x@example.org", now=now_arg(), capsys=capsys)
    assert code == 0 and "=== would send: weekly to x@example.org" in out
    assert outbox_rows(site) == []


def test_a_report_without_recipients_asks_for_to(db_url, make_config, capsys):
    path = make_config(database=db_url, agents={"rui": {"address": "rui@example.com"}},  # no lead
                       mailboxes=[dict(name="support", host="127.0.0.1", port=1, username="u", password="p",
                                       address="support@example.com")])
    code, _ = run(path, "report", "clusters", "--dry-run", now=now_arg())
    assert code == 1
    assert "no recipients" in capsys.readouterr().err
    code, out = run(path, "report", "clusters", "--dry-run", "--to", "x@example.org", now=now_arg(), capsys=capsys)
    assert code == 0 and "=== would send: clusters to x@example.org" in out


def test_dry_run_shows_what_the_slots_would_send(site, capsys):
    """hours: the clients' reports and the owner's copy, not the team's overview; checkin:
    nothing for an empty list; clusters: the leads."""
    from mailproc.models import Customer, Person, TimeEntry
    db.open_database(load(site).database)
    try:
        acme = Customer.create(match="acme.example", company="Acme", plan="paid", contact="billing@acme.example",
                               included_hours=10, owner="ana")
        at = datetime(2026, 10, 14, 12, 0)
        case = Case.create(contact="it@acme.example", customer=acme, company="Acme", summary="Setup", created_at=at,
                           updated_at=at, status_changed_at=at, tier_entered_at=at)
        rui = Person.get(Person.handle == "rui")
        TimeEntry.create(case=case, person=rui, actor=rui.address, minutes=90, logged_at=at)
    finally:
        db.close()
    code, out = run(site, "report", "hours", "--for", "2026-10", "--dry-run", now=now_arg(), capsys=capsys)
    assert code == 0
    sent = [line for line in out.splitlines() if line.startswith("=== would send:")]
    assert sent == ["=== would send: hours_report to billing@acme.example (case None) ===",
                    "=== would send: hours_report to ana@example.com (case None) ==="]
    code, out = run(site, "report", "checkin", "--agent", "rui", "--dry-run", now=now_arg(), capsys=capsys)
    assert code == 0 and "=== would send" not in out  # rui holds no case: no check-in
    code, out = run(site, "report", "clusters", "--dry-run", now=now_arg(), capsys=capsys)
    assert code == 0 and "=== would send: clusters to ana@example.com" in out
    assert outbox_rows(site) == []


def test_checkin_names_the_agent_and_a_bad_date_is_a_usage_error(site, capsys):
    code, _ = run(site, "report", "checkin", now=now_arg())
    assert code == 1 and "ana" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        run(site, "report", "digest", "--for", "yesterday", now=now_arg())
    assert exit_.value.code == 2


def test_the_daemons_tick_mails_the_digest_at_its_slot_once(site):
    """A first start catches up yesterday's digest; today's goes at 07:00, once."""
    config = load(site)
    db.open_database(config.database)
    try:
        daemon = Daemon(load_context(config, Clock(NOW)), start_sender=False)
        daemon.last_poll = NOW - timedelta(minutes=5)  # no poll in these ticks (the mailbox is unreachable)
        before = daemon.tick(NOW - timedelta(minutes=5))
        assert before.slotted is not None and "digest:2026-11-29T07:00" in before.slotted.slots
        assert "digest:2026-11-30T07:00" not in before.slotted.slots
        tick = daemon.tick(NOW)
        assert tick.slotted is not None and "digest:2026-11-30T07:00" in tick.slotted.slots
        assert daemon.tick(NOW + timedelta(seconds=5)).slotted.slots == []
        assert [(o.kind, o.to_addr) for o in Outbox.select().where(Outbox.kind == "digest")] == [
            ("digest", "ana@example.com"), ("digest", "ana@example.com")]
        assert SlotRun.get(SlotRun.key == "digest:2026-11-30T07:00").outcome == "done"
    finally:
        db.close()
