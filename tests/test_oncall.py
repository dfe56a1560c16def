"""On-call paging (seed 002): who is on call at an instant, what a case plans, and the
whole chain end to end through Dovecot and SMTP on SQLite and PostgreSQL — a P1 mail
pages the agent on call at once, an agent's escalate=oncall pages, no [ack] within the
hour wakes the escalation list, half an hour later the next person of the rotation is
paged, an [ack] reply to the page stops the chain, and pages go out however full the
automatic-mail limit is."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from mailproc import db, oncall, outbox
from mailproc.clock import Clock
from mailproc.config import OncallConfig, load
from mailproc.context import load_context
from mailproc.errors import ConfigError
from mailproc.jobs import oncall as job
from mailproc.models import Case, Event, Outbox

from helpers import T0, mail, run, run_once

CHICAGO = ZoneInfo("America/Chicago")
UTC = timezone.utc
ROTA = OncallConfig(rotation=("ana", "bob", "cy"), handover_day=0, handover_time=time(9, 0),
                    start=date(2026, 11, 23), wakeup=("pager@ops.example",), ack_within=timedelta(hours=1),
                    next_after=timedelta(minutes=30))
ALWAYS = "Mon-Sun 00:00-24:00"
PASS = "mx.example.com; dmarc=pass header.from=agents.example"
ONCALL_SECTION = ("\n[oncall]\nrotation = ana, bob, cy\nhandover = Mon 09:00\nstart = 2026-11-23\n"
                  "wakeup = pager@ops.example, rex@agents.example\n")


def at(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- who is on call -----------------------------------------------------------------------


def test_the_rotation_turns_at_the_local_handover():
    # Mon 2026-11-23 09:00 in Chicago (CST, UTC-6) is 15:00 UTC: ana's first week.
    assert oncall.on_call(ROTA, CHICAGO, at(2026, 11, 23, 15, 0)) == "ana"
    assert oncall.on_call(ROTA, CHICAGO, at(2026, 11, 23, 14, 59)) == "cy"  # the week before, round the list
    assert oncall.on_call(ROTA, CHICAGO, at(2026, 11, 29, 23, 0)) == "ana"
    assert oncall.on_call(ROTA, CHICAGO, at(2026, 11, 30, 15, 0)) == "bob"
    assert oncall.on_call(ROTA, CHICAGO, at(2026, 12, 7, 15, 0)) == "cy"
    assert oncall.on_call(ROTA, CHICAGO, at(2026, 12, 14, 15, 0)) == "ana"
    assert oncall.handover_after(ROTA, CHICAGO, at(2026, 11, 26, 9, 0)) == at(2026, 11, 30, 15, 0)


def test_a_dst_week_is_167_or_169_hours_and_the_handover_stays_at_nine_local():
    # US clocks go forward on Sun 2027-03-14: Mon 03-08 09:00 CST = 15:00 UTC, Mon 03-15 09:00 CDT = 14:00 UTC.
    before = at(2027, 3, 8, 15, 0)
    who = oncall.on_call(ROTA, CHICAGO, before)
    after = oncall.handover_after(ROTA, CHICAGO, before)
    assert after == at(2027, 3, 15, 14, 0) and after - before == timedelta(hours=167)
    assert oncall.on_call(ROTA, CHICAGO, at(2027, 3, 15, 13, 59)) == who
    assert oncall.on_call(ROTA, CHICAGO, at(2027, 3, 15, 14, 0)) != who  # a count of 168 h would say not yet
    # ... and back on Sun 2026-11-01: Mon 10-26 09:00 CDT = 14:00 UTC, Mon 11-02 09:00 CST = 15:00 UTC.
    fall = oncall.handover_after(ROTA, CHICAGO, at(2026, 10, 26, 14, 0))
    assert fall == at(2026, 11, 2, 15, 0) and fall - at(2026, 10, 26, 14, 0) == timedelta(hours=169)
    assert oncall.on_call(ROTA, CHICAGO, at(2026, 11, 2, 14, 30)) == oncall.on_call(ROTA, CHICAGO,
                                                                                     at(2026, 10, 26, 14, 0))
    # the weeks keep their order across the change: ana from 11-23, so ana 3 weeks before, bob 2 weeks before
    assert oncall.on_call(ROTA, CHICAGO, at(2026, 11, 2, 15, 0)) == "ana"
    assert oncall.on_call(ROTA, CHICAGO, at(2026, 11, 9, 15, 0)) == "bob"


def test_a_handover_inside_the_spring_gap_is_the_same_wall_time_before_the_change():
    gap = OncallConfig(**{**ROTA.__dict__, "handover_day": 6, "handover_time": time(2, 30)})  # Sun 02:30
    # 2027-03-14 02:30 does not exist in Chicago: taken as 02:30 CST = 08:30 UTC (03:30 CDT).
    assert oncall.handover_before(gap, CHICAGO, at(2027, 3, 14, 12, 0)) == at(2027, 3, 14, 8, 30)
    assert oncall.handover_after(gap, CHICAGO, at(2027, 3, 14, 12, 0)) == at(2027, 3, 21, 7, 30)


def test_the_next_person_skips_whoever_was_paged_first():
    thursday = at(2026, 11, 26, 9, 0)  # ana's week
    assert oncall.next_person(ROTA, CHICAGO, thursday) == "bob"
    assert oncall.next_person(ROTA, CHICAGO, thursday, besides="cy") == "ana"  # cy paged before the handover
    alone = OncallConfig(**{**ROTA.__dict__, "rotation": ("ana",)})
    assert oncall.next_person(alone, CHICAGO, thursday) is None


# --- configuration ------------------------------------------------------------------------


def agents_ini(make_config, oncall_text: str, roles=("oncall", "oncall", "oncall", "")):
    path = make_config(extra={"secret": "k" * 40, "timezone": "America/Chicago"})
    path.write_text(path.read_text() + "".join(
        f"\n[agent:{name}]\naddress = {name}@agents.example\nteams = Support Team\nhours = {ALWAYS}\n"
        + (f"roles = {role}\n" if role else "") for name, role in zip(("ana", "bob", "cy", "rex"), roles))
        + oncall_text)
    return path


def test_the_oncall_section_is_parsed(make_config):
    config = load(agents_ini(make_config, ONCALL_SECTION + "ack_within = 45m\nnext_after = 15m\n"))
    oc = config.oncall
    assert oc.rotation == ("ana", "bob", "cy") and (oc.handover_day, oc.handover_time) == (0, time(9, 0))
    assert oc.start == date(2026, 11, 23) and oc.wakeup == ("pager@ops.example", "rex@agents.example")
    assert (oc.ack_within, oc.next_after) == (timedelta(minutes=45), timedelta(minutes=15))
    assert oncall.settings(config) is oc


def test_without_the_section_the_oncall_agents_take_turns_with_the_defaults(make_config):
    config = load(agents_ini(make_config, "", roles=("", "oncall", "", "oncall")))
    oc = oncall.settings(config)
    assert config.oncall is None and oc.rotation == ("bob", "rex") and not oc.configured
    assert (oc.handover_day, oc.handover_time, oc.wakeup) == (0, time(9, 0), ())
    assert (oc.ack_within, oc.next_after) == (timedelta(hours=1), timedelta(minutes=30))
    assert oncall.settings(load(agents_ini(make_config, "", roles=("", "", "", "")))) is None


@pytest.mark.parametrize("section, where, words", [
    ("rotation = ana, bobb", "[oncall] rotation", "no agent named 'bobb'; did you mean 'bob'?"),
    ("rotation = ana, rex", "[oncall] rotation", "rex has no role oncall"),
    ("rotation = ana\nhandover = Monday 9", "[oncall] handover", "not a weekday and a time"),
    ("rotation = ana\nhandover = Mun 09:00", "[oncall] handover", "not a weekday and a time"),
    ("rotation = ana\nwakeup = rex at example", "[oncall] wakeup", "not an email address"),
    ("rotation = ana\nwakeup = support@example.com", "[oncall] wakeup", "is a mailbox's address"),
    ("rotation = ana\nack_within = soon", "[oncall] ack_within", "not a duration"),
    ("rotation = ana\nstart = next week", "[oncall] start", "Invalid isoformat"),
    ("rotaton = ana", "[oncall] rotaton", "did you mean 'rotation'?"),
])
def test_bad_oncall_settings_name_the_key(make_config, section, where, words):
    path = agents_ini(make_config, "\n[oncall]\n" + section + "\n")
    path.write_text(path.read_text() + "\n[mailbox:support]\nhost = localhost\nusername = u\npassword = p\n"
                    "address = support@example.com\n")
    with pytest.raises(ConfigError) as err:
        load(path)
    assert where in str(err.value) and words in str(err.value)


# --- planning -----------------------------------------------------------------------------


@pytest.fixture
def ctx(make_config):
    config = load(agents_ini(make_config, ONCALL_SECTION))
    return load_context(config, Clock())


def case(**values) -> Case:
    row = dict(id=7, status="assigned", priority="P3", tier="T2", created_at=T0, tier_entered_at=T0,
               paged_at=None, page_level=0, page_ack_at=None)
    return Case(**{**row, **values})


def kinds(planned) -> list[tuple[str, datetime]]:
    return [(p.kind, p.due_at) for p in planned]


def test_a_p1_case_pages_at_its_creation_then_wakes_the_list_then_the_next(ctx):
    assert kinds(job.plan(ctx, case(priority="P1"))) == [("oncall_page", T0)]
    paged = T0 + timedelta(minutes=2)
    assert kinds(job.plan(ctx, case(priority="P1", paged_at=paged, page_level=1))) == [
        ("oncall_wakeup", paged + timedelta(hours=1)), ("oncall_next", paged + timedelta(minutes=90))]
    assert kinds(job.plan(ctx, case(priority="P1", paged_at=paged, page_level=2))) == [
        ("oncall_next", paged + timedelta(minutes=90))]
    assert job.plan(ctx, case(priority="P1", paged_at=paged, page_level=3)) == []


def test_an_ack_since_the_basis_ends_the_chain_an_older_one_does_not(ctx):
    paged = T0 + timedelta(minutes=2)
    assert job.plan(ctx, case(priority="P1", paged_at=paged, page_level=1, page_ack_at=paged)) == []
    escalated = T0 + timedelta(days=1)
    old_ack = case(tier="oncall", tier_entered_at=escalated, page_ack_at=T0 + timedelta(hours=3))
    assert kinds(job.plan(ctx, old_ack)) == [("oncall_page", escalated)]


def test_escalation_pages_from_the_tier_entry_and_again_on_a_new_escalation(ctx):
    first = T0 + timedelta(hours=2)
    [page] = job.plan(ctx, case(tier="oncall", tier_entered_at=first))
    assert (page.kind, page.due_at) == ("oncall_page", first)
    again = T0 + timedelta(days=2)  # back down and up again: paged for the first escalation, not this one
    [page2] = job.plan(ctx, case(tier="oncall", tier_entered_at=again, paged_at=first, page_level=3))
    assert (page2.kind, page2.due_at) == ("oncall_page", again) and page2.key != page.key


@pytest.mark.parametrize("values", [dict(priority="P2"), dict(priority="P1", status="resolved"),
                                    dict(tier="oncall", status="pending_closure"),
                                    dict(priority="P1", status="closed")])
def test_nothing_is_paged_for_other_priorities_or_finished_cases(ctx, values):
    assert job.plan(ctx, case(**values)) == []


def test_nothing_is_paged_without_anyone_on_call(make_config):
    config = load(agents_ini(make_config, "", roles=("", "", "", "")))
    assert job.plan(load_context(config, Clock()), case(priority="P1")) == []


# --- end to end ---------------------------------------------------------------------------


class Pager:
    """A support mailbox in Chicago with agents ana, bob, cy (on call in that order, ana this
    week) and rex (on the wake-up list with pager@ops.example); a paid customer, shop.example."""

    def __init__(self, dovecot, imap_user, smtp, make_config, db_url, tmp_path, capsys, extra=None):
        self.dovecot, self.user, self.smtp = dovecot, imap_user[0], smtp
        box = dict(name="support", host=dovecot.host, port=dovecot.port, username=imap_user[0],
                   password=imap_user[1], address="support@example.com")
        self.config = make_config(database=db_url, mailboxes=[box], smtp=dict(host=smtp.host, port=smtp.port),
                                  extra={"secret": "k" * 40, "timezone": "America/Chicago", **(extra or {})})
        self.config.write_text(self.config.read_text() + "".join(
            f"\n[agent:{name}]\naddress = {name}@agents.example\nteams = Support Team\nhours = {ALWAYS}\n"
            + ("roles = oncall\n" if name != "rex" else "") for name in ("ana", "bob", "cy", "rex"))
            + "\n[auth]\nauthserv_id = mx.example.com\n" + ONCALL_SECTION)
        customers = tmp_path / "customers.csv"
        customers.write_text("match,company,plan,licenses,high_value,partner,internal,google_apps\n"
                             "shop.example,Shop Inc,paid,5,false,false,false,false\n", encoding="utf-8")
        assert run(self.config, "customers", "import", customers, capsys=capsys)[0] == 0
        self.now = T0

    def deliver(self, raw: bytes) -> None:
        self.now += timedelta(minutes=5)
        self.dovecot.append(self.user, raw, internaldate=self.now)
        self.at(self.now + timedelta(minutes=1))

    def at(self, now: datetime) -> None:
        """`mailproc run --once` at `now`: intake, the sweep of due work, sending."""
        self.now = now
        run_once(self.config, now)

    def open(self) -> None:
        db.open_database(load(self.config).database)

    def case(self, number=1) -> Case:
        self.open()
        return Case.get_by_id(number)

    def pages(self, kind: str) -> list[Outbox]:
        self.open()
        return list(Outbox.select().where(Outbox.kind == kind).order_by(Outbox.id))

    def delivered(self, row: Outbox):
        got = [m for m in self.smtp.messages if m.message["Message-ID"].strip("<>") == row.message_id]
        assert len(got) == 1, f"{row.kind} to {row.recipients} not delivered once"
        return got[0]

    def paged_events(self) -> list[tuple[str, str | None]]:
        self.open()
        rows = Event.select().where((Event.case == 1) & (Event.kind == "paged")).order_by(Event.id)
        return [(e.rule, e.new) for e in rows]


@pytest.fixture
def pager(dovecot, imap_user, smtp, make_config, db_url, tmp_path, capsys):
    return Pager(dovecot, imap_user, smtp, make_config, db_url, tmp_path, capsys)


def text_of(received) -> str:
    return received.message.get_body(("plain",)).get_content()


def outage(pager: Pager) -> None:
    pager.deliver(mail("Our checkout is broken", "Customers cannot check out since this morning!",
                       sender="Sam <sam@shop.example>", message_id="outage-1"))


def test_a_p1_mail_pages_on_call_then_the_wakeup_list_then_the_next_person(pager):
    outage(pager)
    case = pager.case()
    assert case.priority == "P1" and case.page_level == 1
    [page] = pager.pages("oncall_page")
    assert page.recipients == ["ana@agents.example"] and not page.automatic
    paged_at = case.paged_at.replace(tzinfo=UTC)
    assert paged_at - case.created_at.replace(tzinfo=UTC) < timedelta(minutes=2)  # at once
    text = text_of(pager.delivered(page))
    assert "you are on call" in text and "[ack]" in text and "Shop Inc" in text and "P1 – Emergency" in text
    wake = paged_at + timedelta(hours=1)
    local = wake.astimezone(CHICAGO)
    assert f"{local:%H:%M} CST" in text  # when the wake-up follows, in ana's (the site's) zone
    assert page.__data__["case"] == 1 and pager.delivered(page).message["Reply-To"].startswith("support+")

    pager.at(wake - timedelta(minutes=1))
    assert pager.pages("wakeup_page") == []
    pager.at(wake + timedelta(minutes=1))
    woken = pager.pages("wakeup_page")
    assert sorted(r.recipients[0] for r in woken) == ["pager@ops.example", "rex@agents.example"]
    for row in woken:
        got = pager.delivered(row)
        body = text_of(got)
        # rex, an agent, may [ack] by replying (a reply token); the pager address gets no token
        assert (got.message["Reply-To"] or "").startswith("support+") == (row.recipients == ["rex@agents.example"])
        assert "ana <ana@agents.example> has not acknowledged" in body and "[ack]" in body
        assert f"{(paged_at + timedelta(minutes=90)).astimezone(CHICAGO):%H:%M} CST" in body
    assert pager.pages("oncall_page") == [page]

    pager.at(paged_at + timedelta(minutes=91))
    pages = pager.pages("oncall_page")
    assert [p.recipients for p in pages] == [["ana@agents.example"], ["bob@agents.example"]]
    assert "ana was paged at" in text_of(pager.delivered(pages[1]))
    assert pager.case().page_level == 3
    assert pager.paged_events() == [("oncall:page", "ana"),
                                    ("oncall:wakeup", "pager@ops.example, rex@agents.example"),
                                    ("oncall:next", "bob")]
    pager.at(paged_at + timedelta(hours=5))  # the chain is over: nothing more
    assert len(pager.pages("oncall_page")) == 2 and len(pager.pages("wakeup_page")) == 2


def test_an_ack_reply_to_the_page_stops_the_wakeup_and_the_next_page(pager):
    outage(pager)
    [page] = pager.pages("oncall_page")
    paged_at = pager.case().paged_at.replace(tzinfo=UTC)
    pager.deliver(mail("Re: [Case #1] On-call page: Our checkout is broken [ack note]", "On it.",
                       sender="ana@agents.example", message_id="ana-ack",
                       headers={"In-Reply-To": f"<{page.message_id}>"}))
    case = pager.case()
    assert case.page_ack_at is not None and case.page_ack_at.replace(tzinfo=UTC) > paged_at
    ack = Event.get((Event.case == 1) & (Event.kind == "acknowledged"))
    assert ack.actor == "ana@agents.example"
    pager.at(paged_at + timedelta(hours=3))
    assert pager.pages("wakeup_page") == [] and len(pager.pages("oncall_page")) == 1
    assert pager.paged_events() == [("oncall:page", "ana")]


def test_an_agent_escalating_to_oncall_pages_the_agent_on_call(pager):
    pager.deliver(mail("Cannot log in", "The login page says my password is wrong.",
                       sender="Sam <sam@shop.example>", message_id="login-1"))
    assert pager.case().priority != "P1" and pager.pages("oncall_page") == []
    pager.deliver(mail("Re: [Case #1] Cannot log in [escalate=oncall note]", "Looks like an outage.",
                       sender="bob@agents.example", message_id="bob-esc", headers={"Authentication-Results": PASS}))
    case = pager.case()
    assert case.tier == "oncall" and case.page_level == 1
    [page] = pager.pages("oncall_page")
    assert page.recipients == ["ana@agents.example"]
    assert "escalated to on-call" in text_of(pager.delivered(page))


@pytest.fixture
def limited(dovecot, imap_user, smtp, make_config, sqlite_url, tmp_path, capsys):
    return Pager(dovecot, imap_user, smtp, make_config, sqlite_url, tmp_path, capsys,
                 extra={"autoreply_limit": 2, "autoreply_window": "1d"})


def test_pages_are_never_held_by_the_automatic_mail_limit(limited):
    config = load(limited.config)
    limited.open()
    ctx = load_context(config, Clock())
    for address in ("ana@agents.example", "pager@ops.example", "bob@agents.example"):
        for n in range(3):  # the limit is 2: the third is held
            row = outbox.queue(ctx, kind="test", case=None, to=address, mail_from="support@example.com",
                               subject=f"robot {n}", text="x", html="<p>x</p>", in_reply_to=None, references=[],
                               now=T0 + timedelta(minutes=n))
            assert (row is None) == (n == 2)
    db.close()
    outage(limited)
    paged_at = limited.case().paged_at.replace(tzinfo=UTC)
    limited.at(paged_at + timedelta(minutes=91))
    assert [p.recipients for p in limited.pages("oncall_page")] == [["ana@agents.example"], ["bob@agents.example"]]
    assert {r.recipients[0] for r in limited.pages("wakeup_page")} == {"pager@ops.example", "rex@agents.example"}
    for row in limited.pages("oncall_page") + limited.pages("wakeup_page"):
        assert row.state == "sent"
        limited.delivered(row)
    suppressed = Event.select().where((Event.case == 1) & (Event.kind == "mail_suppressed")
                                      & Event.new.in_(["oncall_page", "wakeup_page"]))
    assert not suppressed.exists()


def test_a_chain_ends_with_its_case_and_an_upgrade_pages_nobody_for_old_cases(ctx, db_url):
    """A P1 resolved within the hour without [ack], reopened weeks later: no wake-up page for
    an hour long past. An open P1 from before due work existed (an upgrade): no page."""
    from mailproc import cases, timers
    db.open_database(db_url)
    with db.transaction():
        p1 = cases.open_case({"contact": "c@shop.example", "priority": "P1", "status": "assigned"},
                             decided={}, rules={}, actor="c@shop.example", now=T0)
        cases.touch(p1, T0, paged_at=T0, page_level=job.PAGED)
        cases.set_field(p1, "status", "resolved", actor="ana@agents.example", now=T0 + timedelta(minutes=20),
                        command="resolve")
        timers.replan(ctx, p1, T0 + timedelta(minutes=20))
        later = T0 + timedelta(days=20)
        cases.set_field(p1, "status", "assigned", actor="c@shop.example", now=later, rule="workflow:customer_reply")
        timers.replan(ctx, p1, later)
    assert [p for p in timers.plan(ctx, p1) if p.kind.startswith("oncall")] == []

    old = Case.create(contact="o@shop.example", priority="P1", status="assigned", created_at=T0, updated_at=T0,
                      status_changed_at=T0, tier_entered_at=T0)
    assert job.plan(ctx, old)  # as it stands, it would page at once
    timers.backfill(ctx, T0 + timedelta(days=30))
    assert [p for p in timers.plan(ctx, Case.get_by_id(old.id)) if p.kind.startswith("oncall")] == []
