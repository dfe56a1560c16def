"""The workflow runs itself, end to end: cases nobody touches get their reminder, their move,
their resolution and closure mails, "still looking" notes and SLA warnings on the right day,
with the clock set by `run --once --now` and mail going through the real Dovecot and aiosmtpd,
on SQLite and PostgreSQL. The calendar is Lisbon's (Portugal's public holidays from the
`holidays` package), so business time crosses weekends, holidays and a DST change."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from mailproc import db
from mailproc.config import load
from mailproc.models import Case, Due, Event, Outbox
from mailproc.testing import REPO

from helpers import mail, run, run_json, run_once

UTC = timezone.utc
SECRET = "k" * 40
ANA = "ana@agents.example"
ALWAYS = "Mon-Sun 00:00-24:00"
TRUSTED = "mx.example.com"
PASS = f"{TRUSTED}; dmarc=pass header.from=agents.example"
# Dates lie in the past: the IMAP server keeps no INTERNALDATE later than its own clock.
MONDAY = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)  # 11:00 in Lisbon (WEST, UTC+1)
HOLIDAY_EVE = datetime(2026, 6, 9, 15, 0, tzinfo=UTC)  # Tuesday 16:00 in Lisbon; Wednesday 10 June is a holiday


class Desk:
    """A support mailbox in Lisbon, agent ana (always on duty) and lead lea; cases opened by mail."""

    def __init__(self, dovecot, imap_user, smtp, make_config, db_url, tmp_path):
        self.dovecot, self.user, self.smtp = dovecot, imap_user[0], smtp
        rules = tmp_path / "rules"
        rules.mkdir()
        sla = (REPO / "rules" / "sla.toml").read_text(encoding="utf-8")
        (rules / "sla.toml").write_text(sla.replace('# country = "PT"', 'country = "PT"'), encoding="utf-8")
        box = dict(name="support", host=dovecot.host, port=dovecot.port, username=imap_user[0],
                   password=imap_user[1], address="support@example.com")
        self.config = make_config(database=db_url, mailboxes=[box], smtp=dict(host=smtp.host, port=smtp.port),
                                  extra={"secret": SECRET, "timezone": "Europe/Lisbon", "rules": str(rules)},
                                  agents={"ana": dict(address=ANA, teams="Support Team", hours=ALWAYS),
                                          "lea": dict(address="lea@agents.example", teams="Support Team",
                                                      roles="lead", hours="Mon-Fri 00:00-00:01")})
        self.config.write_text(self.config.read_text() + f"\n[auth]\nauthserv_id = {TRUSTED}\n")
        self.messages = 0

    def customer(self, at: datetime, subject="Question about exports", body="How do I export my data to a spreadsheet?",
                 sender="Cus <cus@shop.example>", headers=None) -> None:
        self.messages += 1
        self.dovecot.append(self.user, mail(subject, body, sender=sender, date=at, headers=headers,
                                            message_id=f"m{self.messages}"), internaldate=at)
        run_once(self.config, at)

    def agent(self, at: datetime, case: int, commands: str) -> None:
        self.messages += 1
        self.dovecot.append(self.user, mail(f"Re: [Case #{case}] Cannot log in {commands}", "Done.", sender=ANA,
                                            date=at, message_id=f"m{self.messages}",
                                            headers={"Authentication-Results": PASS}), internaldate=at)
        run_once(self.config, at)

    def at(self, now: datetime) -> None:
        run_once(self.config, now)

    def open(self) -> None:
        db.open_database(load(self.config).database)

    def case(self, number: int) -> Case:
        self.open()
        return Case.get_by_id(number)

    def mails(self, kind: str, case: int | None = None) -> list[Outbox]:
        self.open()
        query = Outbox.select().where(Outbox.kind == kind)
        if case is not None:
            query = query.where(Outbox.case == case)
        return list(query.order_by(Outbox.id))

    def delivered(self, row: Outbox):
        """The mail of outbox `row` as the SMTP server got it (the sender has sent it)."""
        for count in range(1, 40):
            got = [m for m in self.smtp.wait_for(count) if m.message["Message-ID"].strip("<>") == row.message_id]
            if got:
                return got[0]
        raise AssertionError(f"{row.kind} {row.message_id} was not delivered")

    def pending(self, case: int, kind: str) -> list[Due]:
        self.open()
        return list(Due.select().where(Due.case == case, Due.kind == kind, Due.done_at.is_null()))


@pytest.fixture
def desk(dovecot, imap_user, smtp, make_config, db_url, tmp_path):
    return Desk(dovecot, imap_user, smtp, make_config, db_url, tmp_path)


def _body(received) -> str:
    return received.message.get_body(("plain",)).get_content()


def test_pending_input_reminds_then_resolves_then_closes_day_by_day(desk):
    desk.customer(MONDAY)
    desk.agent(MONDAY + timedelta(minutes=30), 1, "[pending]")
    assert desk.case(1).status == "pending_input"

    desk.at(MONDAY + timedelta(days=3))  # 3 days after the agent asked: not yet
    assert desk.mails("reminder") == []
    desk.at(MONDAY + timedelta(days=3, minutes=45))
    [reminder] = desk.mails("reminder", 1)
    got = desk.delivered(reminder)
    assert got.rcpt_tos == ["cus@shop.example"] and "[Case #1]" in got.message["Subject"]
    assert got.message["Auto-Submitted"] == "auto-generated"
    assert got.message["In-Reply-To"]  # threads onto the case's mail
    assert "we asked you for some information" in _body(got)
    assert desk.case(1).status == "pending_input"

    desk.at(MONDAY + timedelta(days=6, minutes=30))  # 3 days after the reminder: not yet
    assert desk.case(1).status == "pending_input"
    desk.at(MONDAY + timedelta(days=6, minutes=60))
    case = desk.case(1)
    assert case.status == "pending_closure" and case.resolved_at is not None  # resolved, told, pending closure
    [resolution] = desk.mails("resolution", 1)
    assert "We have resolved case #1" in _body(desk.delivered(resolution))

    desk.at(MONDAY + timedelta(days=13, minutes=59))
    assert desk.case(1).status == "pending_closure"
    desk.at(MONDAY + timedelta(days=13, minutes=90))
    assert desk.case(1).status == "closed"
    [closure] = desk.mails("closure", 1)
    assert "is now closed" in _body(desk.delivered(closure))
    # The clock set back a day and forward again: the closure (still planned: the case stays
    # closed) is done, and stays done.
    desk.at(MONDAY + timedelta(days=12))
    desk.at(MONDAY + timedelta(days=14))
    assert len(desk.mails("closure", 1)) == 1 and len(desk.mails("reminder")) == 1
    rules = [e.rule for e in Event.select().where(Event.case == 1, Event.field == "status").order_by(Event.id)]
    assert rules[-3:] == ["workflow:timers.pending_input", "workflow:resolved", "workflow:timers.pending_closure"]


def test_a_customer_reply_cancels_the_reminder_and_a_clock_set_back_never_resends(desk):
    desk.customer(MONDAY)
    desk.agent(MONDAY + timedelta(minutes=30), 1, "[pending]")
    assert len(desk.pending(1, "remind")) == 1
    desk.customer(MONDAY + timedelta(days=1), subject="Re: [Case #1] Question about exports", body="Here is the log.",
                  sender="cus@shop.example")
    assert desk.case(1).status == "assigned"
    assert desk.pending(1, "remind") == []
    desk.open()
    assert Due.get(Due.case == 1, Due.kind == "remind").outcome == "cancelled"
    desk.at(MONDAY + timedelta(days=7))
    assert desk.mails("reminder") == [] and desk.case(1).status == "assigned"

    # A second case: its reminder goes once, even when the clock is set back and forward again.
    desk.customer(MONDAY + timedelta(days=7, hours=1), subject="Export fails", sender="other@shop.example")
    desk.agent(MONDAY + timedelta(days=7, hours=2), 2, "[pending]")
    for day in (11, 9, 11, 12):
        desk.at(MONDAY + timedelta(days=day))
    assert len(desk.mails("reminder", 2)) == 1


def test_waiting_hold_and_confirmation(desk):
    desk.customer(MONDAY)                                          # case 1: waiting on customer
    desk.customer(MONDAY, subject="Invoice question", sender="b@shop.example")  # case 2: on hold
    desk.customer(MONDAY, subject="Report broken", sender="c@shop.example")     # case 3: fixed
    desk.customer(MONDAY, subject="Import broken", sender="d@shop.example")     # case 4: still broken
    later = MONDAY + timedelta(hours=1)
    desk.agent(later, 1, "[wait]")
    desk.agent(later, 2, "[hold=2d]")
    desk.agent(later, 3, "[resolve]")
    desk.agent(later, 4, "[resolve]")
    assert desk.case(3).status == desk.case(4).status == "pending_closure"  # resolution mailed at once
    assert len(desk.mails("resolution")) == 2

    desk.customer(later + timedelta(hours=1), subject="Re: [Case #3] Report broken",
                  body="Thanks, it works now!", sender="c@shop.example")
    desk.customer(later + timedelta(hours=1), subject="Re: [Case #4] Import broken",
                  body="Sorry, it is still broken: same error.", sender="d@shop.example")
    assert desk.case(3).status == "closed" and desk.case(4).status == "assigned"
    desk.open()
    assert Event.get(Event.case == 3, Event.field == "status", Event.new == "closed").rule == "workflow:confirmation"

    desk.at(later + timedelta(days=2, minutes=-5))
    assert desk.case(2).status == "on_hold"
    desk.at(later + timedelta(days=2, minutes=5))
    assert desk.case(2).status == "assigned"
    desk.open()
    assert Event.select().where(Event.case == 2, Event.kind == "note", Event.rule == "workflow:timers.on_hold").count()
    [expired] = desk.mails("hold_expired", 2)
    got = desk.delivered(expired)
    assert got.rcpt_tos == [ANA] and "The hold has ended" in _body(got)

    desk.at(later + timedelta(days=10, minutes=-5))
    assert desk.case(1).status == "waiting"
    desk.at(later + timedelta(days=10, minutes=5))
    assert desk.case(1).status == "assigned"
    assert desk.mails("reminder", 1) == []  # Waiting on Customer has no reminder


def test_still_looking_counts_business_days_across_a_dst_weekend(desk):
    # Friday 23 October 2026, 16:00 in Lisbon (WEST, UTC+1); the clocks go back on Sunday.
    friday = datetime(2026, 10, 23, 15, 0, tzinfo=UTC)
    desk.customer(friday)
    [nudge] = desk.pending(1, "nudge")
    [note] = desk.pending(1, "still_looking")
    # 1 business day = 8 h: Friday 16-17 and Monday 09-16 (WET, UTC+0) -> Monday 16:00 UTC.
    assert nudge.due_at == datetime(2026, 10, 26, 16, 0)
    # 2 business days: + Tuesday 09-16 -> Tuesday 16:00 UTC.
    assert note.due_at == datetime(2026, 10, 27, 16, 0)

    desk.at(datetime(2026, 10, 26, 15, 55, tzinfo=UTC))
    assert desk.mails("nudge") == []
    desk.at(datetime(2026, 10, 26, 16, 5, tzinfo=UTC))
    [nudged] = desk.mails("nudge", 1)
    assert desk.delivered(nudged).rcpt_tos == [ANA]
    desk.at(datetime(2026, 10, 27, 16, 5, tzinfo=UTC))
    [looking] = desk.mails("still_looking", 1)
    got = desk.delivered(looking)
    assert got.rcpt_tos == ["cus@shop.example"] and "still looking into it" in _body(got)

    # The customer asks again in the same wait: no second note.
    desk.customer(datetime(2026, 10, 28, 9, 0, tzinfo=UTC), subject="Re: [Case #1] Question about exports",
                  body="Any news?", sender="cus@shop.example")
    desk.at(datetime(2026, 11, 5, 9, 0, tzinfo=UTC))
    assert len(desk.mails("still_looking", 1)) == 1


def test_sla_colours_cross_a_public_holiday_and_warn_assignee_then_lead(desk, capsys):
    desk.customer(HOLIDAY_EVE)
    [shown] = run_json(desk.config, capsys, "cases", "list", now=(HOLIDAY_EVE + timedelta(hours=20)).isoformat())
    # Triage: yellow after 2 business hours (Tuesday 16-17, Thursday 09-10 in Lisbon), red after 8.
    assert shown["sla"] == "green" and shown["sla_due"] == "2026-06-11T15:00:00+00:00"
    assert desk.case(1).sla_warn_at == datetime(2026, 6, 11, 9, 0)

    thursday = datetime(2026, 6, 11, 9, 30, tzinfo=UTC)
    desk.at(thursday)
    assert run_json(desk.config, capsys, "cases", "show", "1", now=thursday.isoformat())["sla"] == "yellow"
    [warning] = desk.mails("sla_warning", 1)
    got = desk.delivered(warning)
    assert got.rcpt_tos == [ANA] and "YELLOW" in _body(got)

    desk.at(thursday + timedelta(hours=6))
    assert run_json(desk.config, capsys, "cases", "show", "1",
                    now=(thursday + timedelta(hours=6)).isoformat())["sla"] == "red"
    red = desk.mails("sla_warning", 1)[1]
    assert desk.delivered(red).rcpt_tos == ["lea@agents.example"]


def test_waiting_on_the_customer_pauses_the_sla_clock(desk, capsys):
    desk.customer(HOLIDAY_EVE)
    desk.agent(HOLIDAY_EVE + timedelta(minutes=30), 1, "[pending]")  # paused after 0.5 business hours
    assert desk.case(1).sla_due is None
    shown = run_json(desk.config, capsys, "cases", "show", "1", now=(HOLIDAY_EVE + timedelta(days=1)).isoformat())
    assert shown["sla"] == "green" and shown["sla_due"] is None  # waiting costs nothing
    # The customer answers on Thursday 11 June at 09:00 in Lisbon: 7.5 business hours are left.
    desk.customer(datetime(2026, 6, 11, 8, 0, tzinfo=UTC), subject="Re: [Case #1] Question about exports",
                  body="Here it is.", sender="cus@shop.example")
    case = desk.case(1)
    assert case.status == "assigned"
    # (the command's clock ran a few seconds past HOLIDAY_EVE + 30 min while the mail was processed)
    assert abs(case.sla_warn_at - datetime(2026, 6, 11, 9, 30)) < timedelta(minutes=1)
    assert abs(case.sla_due - datetime(2026, 6, 11, 15, 30)) < timedelta(minutes=1)


def test_dry_run_prints_what_the_due_work_would_send_and_changes_nothing(desk, capsys):
    desk.customer(MONDAY)
    desk.agent(MONDAY + timedelta(minutes=30), 1, "[pending]")
    capsys.readouterr()
    before = len(desk.mails("reminder"))
    code, out = run(desk.config, "run", "--once", "--dry-run", now=(MONDAY + timedelta(days=3, hours=1))
                    .isoformat(), capsys=capsys)
    assert code == 0
    assert "=== would send: reminder to cus@shop.example (case 1) ===" in out
    assert "Subject: Re: Question about exports [Case #1]" in out
    assert len(desk.mails("reminder")) == before == 0
    assert len(desk.pending(1, "remind")) == 1 and desk.case(1).reminded_at is None


def test_the_unit_of_business_time_in_mails_is_the_recipients(desk):
    """The nudge to an agent in New York shows New York time."""
    desk.config.write_text(desk.config.read_text().replace(f"address = {ANA}\n",
                                                           f"address = {ANA}\ntimezone = America/New_York\n"))
    desk.customer(MONDAY)
    desk.at(MONDAY + timedelta(days=1, hours=1))  # nudge due one business day after the mail
    [nudge] = desk.mails("nudge", 1)
    assert "06:00 EDT" in _body(desk.delivered(nudge))  # waiting since 10:00 UTC = 06:00 in New York


def test_the_sla_clock_runs_only_while_the_case_waits_on_us(desk, capsys):
    """SPEC §4: the clock runs in New and Assigned. A bug goes to engineering (Pending
    Development) at once: its tier clock waits, it is watched as a long hold instead, and no
    lead is told it is red; a reopened case goes on from where its clock stood."""
    desk.customer(HOLIDAY_EVE, subject="Cannot log in", body="The login page shows an error 500 since today.")
    case = desk.case(1)
    assert case.status == "pending_development" and case.sla_due is None
    assert desk.pending(1, "long_hold") and not desk.pending(1, "sla_red")
    week = (HOLIDAY_EVE + timedelta(days=7)).isoformat()
    assert run_json(desk.config, capsys, "cases", "show", "1", now=week)["sla"] == "green"

    desk.agent(HOLIDAY_EVE + timedelta(days=7), 1, "[status=assigned]")
    running = desk.case(1)
    # paused from the mail's arrival: the full 8 business hours to red start on Tuesday 16 June
    # at 16:00 in Lisbon (1 h that day, 7 h on Wednesday): red on Wednesday at 16:00 (15:00 UTC)
    assert abs(running.sla_due - datetime(2026, 6, 17, 15, 0)) < timedelta(minutes=1)


@pytest.mark.parametrize("text, reading", [
    ("Thanks, it works now!", "fixed"), ("That fixed it, you can close the case", "fixed"),
    ("Obrigado, já funciona", "fixed"), ("Funcionou, obrigado!", "fixed"), ("Resolvido, obrigado", "fixed"),
    ("It is still broken", "broken"), ("It didn't work", "broken"), ("I don't think it is fixed", "broken"),
    ("Isn't working yet", "broken"), ("Ainda não funciona", "broken"), ("não funcionou", "broken"),
    ("Has it been fixed yet?", None), ("Is it working now?", None), ("Funciona?", None),
    ("What does this mean?", None), ("Can you tell me if this is resolved?", None)])
def test_a_reply_to_a_pending_closure_case_is_read_on_the_safe_side(text, reading):
    """Closing on a reply that did not say it is fixed costs a customer; reopening on one that
    did costs an agent a look: a question or a negation never closes."""
    from mailproc.rules import load_rules
    workflow = load_rules().workflow
    assert workflow.confirmation.reading(text) == reading
    assert workflow.reply_status("pending_closure", text)[0] == ("closed" if reading == "fixed" else "assigned")


def test_a_red_sla_goes_to_the_tiers_lead_and_an_unhappy_customer_to_the_teams(make_config):
    from mailproc.clock import Clock
    from mailproc.context import load_context
    from mailproc.jobs import _mail
    from mailproc.models import Case
    config = make_config(agents={"lea": dict(address="lea@agents.example", teams="Support Team", roles="lead",
                                             tier="T1"),
                                 "tom": dict(address="tom@agents.example", teams="Support Team", roles="lead"),
                                 "ana": dict(address=ANA, teams="Support Team", tier="T1")},
                         teams={"Support Team": dict(lead="tom")})
    ctx = load_context(load(config), Clock())
    case = Case(id=1, tier="T1", team="Support Team")
    assert [a.name for a in _mail.leads(ctx, case)] == ["lea"]
    assert [a.name for a in _mail.leads(ctx, case, first="team")] == ["tom"]
    other = Case(id=2, tier="T3", team="Dev Team")  # no lead of its own: every lead
    assert sorted(a.name for a in _mail.leads(ctx, other)) == ["lea", "tom"]
