"""Customer-lifecycle mails (issue 8, item 8) on SQLite and PostgreSQL: the enterprise
monthly-call preparation (seed 004) for enterprise clients only, on its day, once; and the
exit interview invitation when a case is tagged offboarding (seed 001), once per contact,
never for internal or partner customers."""

from __future__ import annotations

import email
import email.policy
from datetime import datetime, timedelta, timezone

import pytest

from mailproc import cases, db, scheduled, sweep, timers
from mailproc.clock import Clock
from mailproc.config import load
from mailproc.context import load_context
from mailproc.jobs import lifecycle as exit_job
from mailproc.models import Customer, Due, Outbox, TimeEntry, utc

ANA, BRUNO = "ana@agency.example", "bruno@agency.example"
T0 = datetime(2026, 10, 10, 9, tzinfo=timezone.utc)
DEC_1 = datetime(2026, 12, 1, 8, 0, tzinfo=timezone.utc)  # 09:00 in Berlin


def make_ctx(make_config, db_url, lifecycle: str = ""):
    path = make_config(database=db_url, extra={"timezone": "Europe/Berlin"},
                       mailboxes=[dict(name="support", host="127.0.0.1", port=1, username="u", password="p",
                                       address="support@agency.example")],
                       agents={"ana": dict(address=ANA, teams="Support Team", roles="lead"),
                               "bruno": dict(address=BRUNO, teams="Support Team")})
    if lifecycle:
        path.write_text(path.read_text() + "\n[lifecycle]\n" + lifecycle + "\n")
    return load_context(load(path), Clock(T0))


@pytest.fixture
def ctx(db_url, make_config):
    context = make_ctx(make_config, db_url)
    db.open_database(context.config.database)
    yield context
    db.close()


def customer(match, company, **values) -> Customer:
    return Customer.create(match=match, company=company, plan=values.pop("plan", "enterprise"), **values)


def case(who: Customer | None, summary: str, contact: str, at: datetime = T0, **values):
    more = {"customer": who, "company": who.company} if who is not None else {}
    return cases.open_case({"contact": contact, "summary": summary, **more, **values}, decided={}, rules={},
                           actor=contact, now=at)


def sent(kind: str) -> list[tuple[str, email.message.EmailMessage]]:
    rows = Outbox.select().where(Outbox.kind == kind).order_by(Outbox.id)
    return [(r.to_addr, email.message_from_bytes(bytes(r.raw), policy=email.policy.default)) for r in rows]


def body(msg) -> str:
    return msg.get_body(("plain",)).get_content()


# --- the enterprise monthly call ------------------------------------------------------------


@pytest.fixture
def clients(ctx):
    big = customer("big.example", "Big Corp", contact="cto@big.example", owner="bruno", included_hours=8)
    customer("lead.example", "Lead Inc", contact="it@lead.example")  # no owner: the leads prepare
    customer("nocontact.example", "Silent SA")  # enterprise without a contact: nothing
    customer("paid.example", "Paid Ltd", plan="paid", contact="x@paid.example")  # not enterprise
    old = case(big, "Reports are slow", "joe@big.example", at=datetime(2026, 10, 1, 9, tzinfo=timezone.utc))
    nov = case(big, "New SSO setup", "joe@big.example", at=datetime(2026, 11, 12, 9, tzinfo=timezone.utc))
    done = case(big, "Typo on the invoice", "joe@big.example", at=datetime(2026, 11, 20, 9, tzinfo=timezone.utc))
    cases.set_field(done, "status", "closed", actor=BRUNO, now=datetime(2026, 11, 21, tzinfo=timezone.utc))
    case(customer("paid2.example", "Paid Ltd", plan="paid"), "Not in any agenda", "y@paid.example")
    for minutes, tag in ((300, "Development"), (240, None), (60, "Meetings")):
        db.insert(TimeEntry, case=nov, actor=BRUNO, minutes=minutes, tag=tag,
                  logged_at=utc(datetime(2026, 11, 14, 9, tzinfo=timezone.utc)))
    return dict(old=old, nov=nov, done=done)


def test_call_prep_goes_to_enterprise_clients_on_its_day_and_the_agenda_to_the_team(ctx, clients):
    scheduled.run(ctx, DEC_1 - timedelta(minutes=1))
    assert sent("call_prep_client") == []
    done = scheduled.run(ctx, DEC_1)
    assert "callprep:2026-12-01T09:00" in done.slots
    asked = dict(sent("call_prep_client"))
    assert set(asked) == {"cto@big.example", "it@lead.example"}  # not Silent SA (no contact), not Paid Ltd
    assert "challenge you want to discuss this month" in body(asked["cto@big.example"])
    assert asked["cto@big.example"]["Auto-Submitted"] == "auto-generated"
    agendas = sent("call_prep_agenda")
    assert sorted(to for to, _ in agendas) == [ANA, BRUNO]  # Big Corp's owner; Lead Inc's lead
    big = body(dict(agendas)[BRUNO])
    assert "Monthly call with Big Corp (December 2026)" in dict(agendas)[BRUNO]["Subject"]
    assert "Open cases: 2" in big and "P6 New  Reports are slow" in big
    assert f"#{clients['old'].id} " in big and f"#{clients['nov'].id} " in big
    assert "Cases opened in November 2026: 2" in big and "Typo on the invoice" in big
    assert "Reports are slow" not in big.split("Cases opened in")[1]
    assert "Hours in November 2026: 9.00 h of 8.00 h in the plan - OVER by 1.00 h" in big
    assert "Meetings" not in big and "Not in any agenda" not in big
    lead = body(dict(agendas)[ANA])
    assert "Lead Inc" in lead and "Open cases: 0" in lead and "Hours in November 2026: none logged" in lead
    scheduled.run(ctx, DEC_1 + timedelta(hours=2))
    assert len(sent("call_prep_client")) == 2 and len(sent("call_prep_agenda")) == 2  # once


def test_call_prep_day_comes_from_the_config(db_url, make_config):
    ctx = make_ctx(make_config, db_url, "call_prep_day = 3\ntime = 10:30")
    db.open_database(ctx.config.database)
    try:
        customer("big.example", "Big Corp", contact="cto@big.example")
        scheduled.run(ctx, DEC_1 + timedelta(days=1))
        assert sent("call_prep_client") == []
        done = scheduled.run(ctx, datetime(2026, 12, 3, 9, 30, tzinfo=timezone.utc))
        assert "callprep:2026-12-03T10:30" in done.slots and len(sent("call_prep_client")) == 1
    finally:
        db.close()


# --- the exit interview ---------------------------------------------------------------------


def tag(ctx, case_, *tags: str, at: datetime = T0) -> None:
    cases.set_field(case_, "tags", list(case_.tags or []) + list(tags), actor=ANA, now=at)
    timers.replan(ctx, case_, at)


def test_a_case_tagged_offboarding_invites_its_contact_once(ctx):
    shop = customer("shop.example", "Shop", plan="paid")
    first = case(shop, "Cancel our account", "Boss@Shop.example")
    assert exit_job.plan(ctx, first) == []
    tag(ctx, first, "Offboarding")  # case-insensitive
    [item] = exit_job.plan(ctx, first)
    assert (item.kind, item.key) == ("exit_interview", f"exit_interview:{first.id}")
    sweep.sweep(ctx, T0 + timedelta(minutes=1))
    [(to, msg)] = sent("exit_interview")
    assert to == "boss@shop.example"
    assert f"[Case #{first.id}]" in msg["Subject"] and "exit interview" in body(msg)
    # tagged again, and another case of the same contact: no second invitation
    second = case(shop, "Export our data", "boss@shop.example", at=T0 + timedelta(days=1))
    tag(ctx, second, "offboarding", at=T0 + timedelta(days=1))
    tag(ctx, first, "offboarding-again", at=T0 + timedelta(days=1))
    sweep.sweep(ctx, T0 + timedelta(days=2))
    assert len(sent("exit_interview")) == 1
    assert Due.select().where(Due.kind == "exit_interview", Due.done_at.is_null()).count() == 0
    # another contact is invited
    other = case(shop, "Close it", "ops@shop.example", at=T0 + timedelta(days=2))
    tag(ctx, other, "OFFBOARDING", at=T0 + timedelta(days=2))
    sweep.sweep(ctx, T0 + timedelta(days=3))
    assert [to for to, _ in sent("exit_interview")] == ["boss@shop.example", "ops@shop.example"]


def test_the_tag_is_configurable(db_url, make_config):
    ctx = make_ctx(make_config, db_url, "offboarding_tag = leaving")
    db.open_database(ctx.config.database)
    try:
        c = case(None, "Bye", "a@somewhere.example")
        tag(ctx, c, "offboarding")
        assert exit_job.plan(ctx, c) == []
        tag(ctx, c, "Leaving")
        assert [p.kind for p in exit_job.plan(ctx, c)] == ["exit_interview"]
    finally:
        db.close()


@pytest.mark.parametrize("flags", [dict(case_internal=True), dict(case_partner=True), dict(internal=True),
                                   dict(partner=True)])
def test_internal_and_partner_cases_are_never_invited(ctx, flags):
    who = customer("p.example", "P", plan="paid", internal=flags.get("internal", False),
                   partner=flags.get("partner", False))
    c = case(who, "We are leaving", "x@p.example", internal=flags.get("case_internal", False),
             partner=flags.get("case_partner", False))
    tag(ctx, c, "offboarding")
    assert exit_job.plan(ctx, c) == []
    sweep.sweep(ctx, T0 + timedelta(hours=1))
    assert sent("exit_interview") == []


def test_an_agent_as_contact_is_not_invited(ctx):
    from mailproc import roster
    from mailproc.context import roster_of
    roster.sync(roster_of(ctx))
    c = case(None, "Testing offboarding", BRUNO)
    tag(ctx, c, "offboarding")
    sweep.sweep(ctx, T0 + timedelta(hours=1))
    assert sent("exit_interview") == []


def exit_rows() -> dict[int, str | None]:
    return {d.__data__["case"]: d.outcome for d in Due.select().where(Due.kind == "exit_interview")}


def test_a_case_untagged_before_the_sweep_does_not_block_another_case_of_the_contact(ctx):
    shop = customer("shop.example", "Shop", plan="paid")
    first = case(shop, "Cancel our account", "boss@shop.example")
    tag(ctx, first, "offboarding")
    cases.set_field(first, "tags", [], actor=ANA, now=T0 + timedelta(seconds=10))  # the wrong case
    timers.replan(ctx, first, T0 + timedelta(seconds=10))
    second = case(shop, "Export our data", "boss@shop.example", at=T0 + timedelta(minutes=1))
    tag(ctx, second, "offboarding", at=T0 + timedelta(minutes=1))
    sweep.sweep(ctx, T0 + timedelta(minutes=2))
    [(to, msg)] = sent("exit_interview")
    assert to == "boss@shop.example" and f"[Case #{second.id}]" in msg["Subject"]
    assert exit_rows() == {first.id: "cancelled", second.id: "done"}
    # the first case tagged again, the second changed: still one invitation
    tag(ctx, first, "offboarding", at=T0 + timedelta(hours=1))
    tag(ctx, second, "other", at=T0 + timedelta(hours=1))
    sweep.sweep(ctx, T0 + timedelta(hours=2))
    assert len(sent("exit_interview")) == 1
    assert exit_rows() == {first.id: "done", second.id: "done"}


def test_two_tagged_cases_of_a_contact_one_untagged_invite_once(ctx):
    shop = customer("shop.example", "Shop", plan="paid")
    a = case(shop, "Cancel our account", "boss@shop.example")
    b = case(shop, "Export our data", "Boss <boss@shop.example>", at=T0 + timedelta(seconds=5))
    tag(ctx, a, "offboarding", at=T0 + timedelta(seconds=10))
    tag(ctx, b, "offboarding", at=T0 + timedelta(seconds=10))
    cases.set_field(a, "tags", [], actor=ANA, now=T0 + timedelta(seconds=20))
    timers.replan(ctx, a, T0 + timedelta(seconds=20))  # A's sync cancels A's row only
    assert exit_rows() == {a.id: "cancelled", b.id: None}
    sweep.sweep(ctx, T0 + timedelta(minutes=1))
    assert [to for to, _ in sent("exit_interview")] == ["boss@shop.example"]
    # both tagged in one sweep: one invitation
    c = case(shop, "Bye", "it@shop.example", at=T0 + timedelta(minutes=2))
    d = case(shop, "Bye again", "IT@shop.example", at=T0 + timedelta(minutes=2))
    tag(ctx, c, "offboarding", at=T0 + timedelta(minutes=2))
    tag(ctx, d, "offboarding", at=T0 + timedelta(minutes=2))
    sweep.sweep(ctx, T0 + timedelta(minutes=3))
    assert [to for to, _ in sent("exit_interview")] == ["boss@shop.example", "it@shop.example"]
    assert exit_rows()[c.id] == exit_rows()[d.id] == "done"


def test_the_invitation_is_not_held_by_the_autoreply_limit(ctx):
    shop = customer("shop.example", "Shop", plan="paid")
    first = case(shop, "Cancel our account", "boss@shop.example")
    for n in range(ctx.config.autoreply_limit):
        db.insert(Outbox, kind="acknowledgement", message_id=f"<a{n}@agency.example>",
                  mail_from="support@agency.example", recipients=["boss@shop.example"], to_addr="boss@shop.example",
                  raw=b"x", automatic=True, state="sent", next_attempt_at=utc(T0), created_at=utc(T0))
    tag(ctx, first, "offboarding")
    sweep.sweep(ctx, T0 + timedelta(minutes=1))
    [(to, msg)] = sent("exit_interview")
    assert to == "boss@shop.example" and msg["Auto-Submitted"] == "auto-generated"
    row = Outbox.get(Outbox.kind == "exit_interview")
    assert not row.automatic  # not counted toward the limit either


def test_call_prep_is_caught_up_after_a_long_outage_and_not_sent_on_a_first_start(ctx, clients):
    scheduled.run(ctx, datetime(2026, 11, 12, 9, tzinfo=timezone.utc))  # installed on the 12th
    assert sent("call_prep_client") == [] and sent("call_prep_agenda") == []  # November's went by hand
    scheduled.run(ctx, datetime(2026, 11, 28, 9, tzinfo=timezone.utc))
    done = scheduled.run(ctx, DEC_1 + timedelta(days=9))  # down from 28 November to 10 December
    assert "callprep:2026-12-01T09:00" in done.slots
    assert {to for to, _ in sent("call_prep_client")} == {"cto@big.example", "it@lead.example"}


def test_the_agenda_reads_the_clients_cases_by_their_directory_rows(ctx, clients):
    from mailproc import lifecycle
    sales = customer("sales@big.example", "Big Corp", plan="paid")  # a row of the company, another plan
    loose = case(None, "No directory row", "zed@big.example", company="Big Corp")
    case(sales, "Quote please", "sales@big.example")
    [big] = [a for a in lifecycle.agenda(ctx, DEC_1, lifecycle.enterprise_clients()) if a["company"] == "Big Corp"]
    listed = {k["case"] for k in big["open_cases"]}
    assert listed == {clients["old"].id, clients["nov"].id} and loose.id not in listed
    if db.proxy.obj.__class__.__name__ == "SqliteDatabase":
        marks = ", ".join("?" * len(lifecycle.OPEN))
        plan = db.query_all("EXPLAIN QUERY PLAN " + lifecycle._OPEN_SQL.format(opens=marks, names="?"),
                            [*lifecycle.OPEN, "Big Corp"])
        steps = [str(row[-1]) for row in plan]
        assert "SEARCH c USING INDEX cases_customer_id (customer_id=?)" in steps, steps
        assert not [s for s in steps if s.startswith("SCAN c") and not s.startswith("SCAN customer")], steps
