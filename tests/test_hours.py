"""The monthly hours report (issue 8, item 7; seed 004) on SQLite and PostgreSQL: the figures
per company without the excluded tags, the plan's hours and the over flag, the month's
bounds in the installation's zone, the team's confirmation mail and the reports on their
days, exactly once, and the leads told of a company without a contact."""

from __future__ import annotations

import email
import email.policy
import json
from datetime import date, datetime, timedelta, timezone

import pytest

from mailproc import cases, db, scheduled
from mailproc.clock import Clock
from mailproc.config import load
from mailproc.context import load_context
from mailproc.models import Customer, Outbox, TimeEntry, utc
from mailproc.reports import hours

from helpers import run

BERLIN_OCT = datetime(2026, 10, 15, 10, tzinfo=timezone.utc)
ANA, BRUNO, CY = "ana@agency.example", "bruno@agency.example", "cy@agency.example"
# Berlin is UTC+2 until 25 October, UTC+1 after: October runs from 2026-09-30T22:00Z
# to 2026-10-31T23:00Z.
OCT_START, OCT_END = datetime(2026, 9, 30, 22, tzinfo=timezone.utc), datetime(2026, 10, 31, 23, tzinfo=timezone.utc)


def config_path(make_config, db_url, hours_section: str = ""):
    path = make_config(database=db_url, extra={"timezone": "Europe/Berlin"},
                       mailboxes=[dict(name="support", host="127.0.0.1", port=1, username="u", password="p",
                                       address="support@agency.example")],
                       agents={"ana": dict(address=ANA, teams="Support Team", roles="lead", name="Ana Lima"),
                               "bruno": dict(address=BRUNO, teams="Support Team"),
                               "cy": dict(address=CY, teams="Support Team")})
    if hours_section:
        path.write_text(path.read_text() + "\n[hours]\n" + hours_section + "\n")
    return path


@pytest.fixture
def ini(db_url, make_config):
    return config_path(make_config, db_url)


@pytest.fixture
def ctx(ini):
    config = load(ini)
    db.open_database(config.database)
    yield load_context(config, Clock(BERLIN_OCT))
    db.close()


def customer(match, company, **values) -> Customer:
    return Customer.create(match=match, company=company, plan=values.pop("plan", "paid"), **values)


def case(who: Customer | None, summary: str, contact: str = "someone@client.example", **values):
    more = {"customer": who, "company": who.company} if who is not None else {}
    return cases.open_case({"contact": contact, "summary": summary, **more, **values}, decided={}, rules={},
                           actor=contact, now=BERLIN_OCT - timedelta(days=20))


def log(case_, minutes: int, at: datetime, tag: str | None = None, actor: str = BRUNO) -> None:
    db.insert(TimeEntry, case=case_, actor=actor, minutes=minutes, tag=tag, logged_at=utc(at))


@pytest.fixture
def month_of_work(ctx):
    """October 2026 in Berlin: Acme (10 h plan, contact, owner ana) and Shop (20 h plan,
    contact, owner an address), Nocontact Ltd without a contact; an internal customer's
    case (not flagged itself) and a case flagged internal of a client customer, apart, so
    each of the two filters has a case only it keeps out."""
    acme = customer("acme.example", "Acme", contact="it@acme.example", included_hours=10, owner="ana",
                    plan="enterprise")
    customer("boss@acme.example", "Acme")  # a second row of the same company, without the columns
    shop = customer("shop.example", "Shop", contact="owner@shop.example", included_hours=20,
                    owner="fabio@agency.example")
    lonely = customer("nocontact.example", "Nocontact Ltd", included_hours=5)
    ours = customer("agency.example", "Agency", internal=True)
    login, export = case(acme, "Login fails"), case(acme, "Export to CSV")
    cart = case(shop, "Cart is empty")
    log(login, 6 * 60, OCT_START + timedelta(minutes=30))  # 1 Oct 00:30 Berlin; UTC still says September
    log(login, 90, datetime(2026, 10, 12, 9, tzinfo=timezone.utc), tag="Bugfix", actor=ANA)
    log(export, 5 * 60, datetime(2026, 10, 20, 9, tzinfo=timezone.utc), tag="Development")
    log(export, 120, datetime(2026, 10, 20, 11, tzinfo=timezone.utc), tag="projectmanagement")  # excluded
    log(login, 60, datetime(2026, 10, 21, 11, tzinfo=timezone.utc), tag="Meetings")  # excluded
    log(login, 45, OCT_END - timedelta(minutes=30))  # 31 Oct 23:30 Berlin: still October
    log(login, 600, OCT_END + timedelta(minutes=30))  # 1 Nov 00:30 Berlin: November, though UTC says October
    log(login, 600, OCT_START - timedelta(minutes=30))  # 30 Sep 23:30 Berlin: September
    log(cart, 150, datetime(2026, 10, 3, 9, tzinfo=timezone.utc), tag="Support")
    log(case(lonely, "Where is my invoice?"), 30, datetime(2026, 10, 5, 9, tzinfo=timezone.utc))
    of_ours = case(ours, "Internal clean-up", contact=CY)
    flagged = case(customer("tools.example", "Toolshop"), "Our own tooling", contact=CY, internal=True)
    assert (of_ours.internal, flagged.internal) == (False, True)
    log(of_ours, 240, datetime(2026, 10, 6, 9, tzinfo=timezone.utc))
    log(flagged, 180, datetime(2026, 10, 6, 10, tzinfo=timezone.utc))
    return dict(acme=acme, shop=shop, login=login, export=export, cart=cart)


def by_company(data) -> dict[str, dict]:
    return {c["company"]: c for c in data["companies"]}


# --- the figures ----------------------------------------------------------------------------


def test_figures_per_company_without_excluded_tags_and_with_the_over_flag(ctx, month_of_work):
    report = hours.build(ctx, day=date(2026, 10, 1), now=BERLIN_OCT)
    data = report.data
    assert data["month"] == "2026-10" and data["start"] == OCT_START.isoformat()
    companies = by_company(data)
    assert set(companies) == {"Acme", "Shop", "Nocontact Ltd"}  # not Agency (internal), not Toolshop's internal case
    acme = companies["Acme"]
    assert acme["minutes"] == 360 + 90 + 300 + 45 and acme["hours"] == 13.25
    assert {t["tag"]: t["minutes"] for t in acme["tags"]} == {"": 405, "Development": 300, "Bugfix": 90}
    assert [(c["case"], c["minutes"]) for c in acme["cases"]] == [(month_of_work["login"].id, 495),
                                                                  (month_of_work["export"].id, 300)]
    assert (acme["included_hours"], acme["over"], acme["over_hours"]) == (10.0, True, 3.25)
    assert (acme["contact"], acme["owner"], acme["plan"]) == ("it@acme.example", "ana", "enterprise")
    shop = companies["Shop"]
    assert (shop["hours"], shop["over"], shop["over_hours"]) == (2.5, False, 0.0)
    assert companies["Nocontact Ltd"]["contact"] is None
    assert data["total_minutes"] == 795 + 150 + 30
    assert [c["company"] for c in data["companies"]] == ["Acme", "Shop", "Nocontact Ltd"]  # largest first
    text = report.text
    assert "Acme: 13.25 h of 10.00 h in the plan - OVER the plan by 3.25 h" in text
    assert "projectmanagement" not in text and "Meetings " not in text


def test_excluded_tags_come_from_the_config_case_insensitively(db_url, make_config, month_of_work):
    path = config_path(make_config, db_url, "exclude_tags = DEVELOPMENT, meetings")
    ctx2 = load_context(load(path), Clock(BERLIN_OCT))
    acme = by_company(hours.build(ctx2, day=date(2026, 10, 9), now=BERLIN_OCT).data)["Acme"]
    assert {t["tag"]: t["minutes"] for t in acme["tags"]} == {"": 405, "Bugfix": 90, "projectmanagement": 120}


def test_the_default_month_is_last_month_in_the_installations_zone(ctx, month_of_work):
    # 1 Nov 00:30 Berlin is still 31 October in UTC: last month is October all the same
    data = hours.build(ctx, day=None, now=OCT_END + timedelta(minutes=30)).data
    assert data["month"] == "2026-10"
    november = hours.build(ctx, day=date(2026, 11, 30), now=BERLIN_OCT).data
    assert by_company(november)["Acme"]["minutes"] == 600


def test_one_agents_hours_and_an_empty_month(ctx, month_of_work):
    mine = hours.build(ctx, day=date(2026, 10, 1), now=BERLIN_OCT, agent="ana").data
    assert [(c["company"], c["minutes"]) for c in mine["companies"]] == [("Acme", 90)]
    empty = hours.build(ctx, day=date(2025, 1, 1), now=BERLIN_OCT)
    assert empty.data["companies"] == [] and "No hours were logged" in empty.text


# --- the monthly slots ----------------------------------------------------------------------


def outbox(kind: str) -> list[tuple[str, email.message.EmailMessage]]:
    rows = Outbox.select().where(Outbox.kind == kind).order_by(Outbox.id)
    return [(r.to_addr, email.message_from_bytes(bytes(r.raw), policy=email.policy.default)) for r in rows]


def body(msg) -> str:
    return msg.get_body(("plain",)).get_content()


def at_berlin(day: int, hour: int = 9, minute: int = 0) -> datetime:
    """A November 2026 instant, Berlin local (UTC+1)."""
    return datetime(2026, 11, day, hour - 1, minute, tzinfo=timezone.utc)


def test_the_team_is_asked_to_confirm_on_day_five_each_agent_with_their_figure(ctx, month_of_work):
    early = scheduled.run(ctx, at_berlin(4, 23)).slots  # October's slot, a month back, is done and moot
    assert not [s for s in early if s.startswith("hours") and "2026-11" in s]
    assert outbox("hours_confirm") == []
    done = scheduled.run(ctx, at_berlin(5, 9, 1))
    assert "hours:confirm:2026-11-05T09:00" in done.slots
    sent = dict(outbox("hours_confirm"))
    assert set(sent) == {ANA, BRUNO, CY}
    assert "So far you logged 1.50 h on 1 case(s) in October 2026" in body(sent[ANA])
    assert "go to the clients on Sunday 8 November" in body(sent[BRUNO])
    assert "So far you logged 0.00 h on 0 case(s)" in body(sent[CY])
    assert sent[ANA]["Auto-Submitted"] == "auto-generated"
    scheduled.run(ctx, at_berlin(5, 12))
    assert len(outbox("hours_confirm")) == 3  # once


def test_on_day_eight_each_client_gets_its_report_and_the_owner_a_copy_once(ctx, month_of_work):
    scheduled.run(ctx, at_berlin(8, 8, 59))
    assert outbox("hours_report") == []
    done = scheduled.run(ctx, at_berlin(8, 9, 0))
    assert "hours:send:2026-11-08T09:00" in done.slots
    sent = outbox("hours_report")
    assert [to for to, _ in sent] == ["it@acme.example", ANA, "owner@shop.example", "fabio@agency.example"]
    client = dict(sent)["it@acme.example"]
    assert client["Subject"] == "Hours report, October 2026 - Acme"
    text = body(client)
    assert "== Acme: 13.25 h of 10.00 h in the plan\r\n" in text  # factual: the flag is the owner's
    assert "Development" in text and "Bugfix" in text
    for hidden in ("Meetings", "ProjectManagement", "projectmanagement", "Shop", "Nocontact", "contact:", "OVER",
                   "Over the plan", "invoiced"):
        assert hidden not in text and hidden not in client.get_body(("html",)).get_content()
    copy = dict(sent)[ANA]
    assert copy["Subject"].startswith("Copy: ") and "they must be invoiced" in body(copy)
    assert "OVER the plan by 3.25 h" in body(copy) and "Over the plan by" in copy.get_body(("html",)).get_content()
    assert "must be invoiced" not in body(dict(sent)["fabio@agency.example"])  # Shop is within its plan
    scheduled.run(ctx, at_berlin(8, 9, 30))
    scheduled.run(ctx, at_berlin(9, 9, 30))
    assert len(outbox("hours_report")) == 4  # exactly once


def test_a_company_without_a_contact_is_listed_to_the_leads(ctx, month_of_work):
    seen_before(ctx)
    scheduled.run(ctx, at_berlin(8, 10))
    [(to, msg)] = outbox("hours_missing_contact")
    assert to == ANA  # the lead
    text = body(msg)
    assert "Nocontact Ltd: 0.50 h of 5.00 h in the plan" in text and "no contact in the directory" in text
    assert "the report did not go out: please send it by hand" in text
    assert "Where is my invoice?" in text and "Acme" not in text


def test_an_owner_not_on_the_roster_is_listed_as_sent_not_as_to_send_by_hand(ctx):
    gone = customer("gone.example", "Gone Owner", contact="it@gone.example", included_hours=1, owner="zed")
    log(case(gone, "Big job"), 300, datetime(2026, 10, 10, 9, tzinfo=timezone.utc), tag="Development")
    seen_before(ctx)
    scheduled.run(ctx, at_berlin(8, 10))
    assert [to for to, _ in outbox("hours_report")] == ["it@gone.example"]
    [(to, msg)] = outbox("hours_missing_contact")
    text = body(msg)
    assert to == ANA and "not mailed" not in msg["Subject"]
    assert "the owner 'zed' is no agent of the roster" in text and "send it by hand" not in text
    assert "the client got its report; the owner's copy went to nobody: see that the hours past the plan" in text


def test_without_an_owner_the_copy_goes_to_the_leads(ctx):
    solo = customer("solo.example", "Solo", contact="it@solo.example", included_hours=1)
    log(case(solo, "Big job"), 300, datetime(2026, 10, 10, 9, tzinfo=timezone.utc), tag="Development")
    seen_before(ctx)
    scheduled.run(ctx, at_berlin(8, 9, 30))
    sent = outbox("hours_report")
    assert [to for to, _ in sent] == ["it@solo.example", ANA]  # ana is the one lead
    copy = body(sent[1][1])
    assert "OVER the plan by 4.00 h" in copy and "must be invoiced" in copy
    assert "Solo has no owner in the customer directory, so the leads get this copy" in copy
    assert outbox("hours_missing_contact") == []


def test_the_client_report_is_not_held_by_the_automatic_mail_limit(ctx, month_of_work):
    seen_before(ctx)
    limit = ctx.config.autoreply_limit
    for n in range(limit + 2):  # a busy week of automatic mail to the contact
        db.insert(Outbox, kind="acknowledgement", message_id=f"<a{n}@x>", mail_from="support@agency.example",
                  recipients=["it@acme.example"], to_addr="it@acme.example", raw=b"x", automatic=True,
                  state="sent", next_attempt_at=utc(at_berlin(7)), created_at=utc(at_berlin(7)))
    scheduled.run(ctx, at_berlin(8, 10))
    assert "it@acme.example" in [to for to, _ in outbox("hours_report")]
    assert outbox("hours_missing_contact")[0][0] == ANA


def seen_before(ctx) -> None:
    """The daemon ran in October (it has a slot record, so a missed slot is caught up, not
    passed over as on a first start)."""
    scheduled.run(ctx, datetime(2026, 10, 20, 10, tzinfo=timezone.utc))


def test_a_caught_up_slot_still_reports_last_month(ctx, month_of_work):
    seen_before(ctx)
    done = scheduled.run(ctx, at_berlin(11, 12))  # down from the 7th to the 11th
    assert "hours:send:2026-11-08T09:00" in done.slots
    assert "13.25 h" in body(dict(outbox("hours_report"))["it@acme.example"])


def test_the_report_is_caught_up_after_more_than_a_week_down(ctx, month_of_work):
    seen_before(ctx)
    scheduled.run(ctx, at_berlin(7, 12))
    done = scheduled.run(ctx, at_berlin(16, 12))  # down from the 7th to the 16th
    assert "hours:send:2026-11-08T09:00" in done.slots
    assert "it@acme.example" in [to for to, _ in outbox("hours_report")]
    scheduled.run(ctx, at_berlin(20, 12))
    assert len(outbox("hours_report")) == 4  # once


def test_a_first_start_after_the_day_sends_no_client_mail_until_next_month(ctx, month_of_work):
    done = scheduled.run(ctx, at_berlin(12, 12))  # installed on the 12th: November's went by hand
    assert "hours:send:2026-11-08T09:00" not in done.slots
    assert outbox("hours_report") == [] and outbox("hours_missing_contact") == []
    assert outbox("hours_confirm") == []  # the 5th's question is moot after the 8th
    scheduled.run(ctx, datetime(2026, 12, 5, 8, 0, tzinfo=timezone.utc))
    assert len(outbox("hours_confirm")) == 3
    done = scheduled.run(ctx, datetime(2026, 12, 8, 8, 0, tzinfo=timezone.utc))
    assert "hours:send:2026-12-08T09:00" in done.slots
    assert "it@acme.example" in [to for to, _ in outbox("hours_report")]  # November's hours


def test_no_confirmation_after_downtime_over_the_reports_day(ctx, month_of_work):
    seen_before(ctx)
    scheduled.run(ctx, at_berlin(4, 12))
    done = scheduled.run(ctx, at_berlin(11, 12))  # down from the 4th to the 11th
    assert "hours:confirm:2026-11-05T09:00" in done.slots  # claimed, so never sent later
    assert outbox("hours_confirm") == []
    assert "it@acme.example" in [to for to, _ in outbox("hours_report")]


def test_no_confirmation_in_the_tick_that_sends_the_reports(ctx, month_of_work):
    seen_before(ctx)
    scheduled.run(ctx, at_berlin(4, 12))
    done = scheduled.run(ctx, at_berlin(8, 9, 30))  # down from the 4th to the 8th 09:30
    assert {"hours:confirm:2026-11-05T09:00", "hours:send:2026-11-08T09:00"} <= set(done.slots)
    assert outbox("hours_confirm") == [] and len(outbox("hours_report")) == 4


def test_the_confirmation_is_caught_up_before_the_reports_day(ctx, month_of_work):
    seen_before(ctx)
    scheduled.run(ctx, at_berlin(4, 12))
    done = scheduled.run(ctx, at_berlin(7, 12))  # down from the 4th to the 7th: still a day to log hours
    assert "hours:confirm:2026-11-05T09:00" in done.slots and len(outbox("hours_confirm")) == 3
    assert "go to the clients on Sunday 8 November" in body(outbox("hours_confirm")[0][1])


def test_the_cli_prints_the_months_figures(ini, ctx, month_of_work, capsys):
    db.close()
    code, out = run(ini, "report", "hours", "--for", "2026-10", now="2026-11-20T10:00:00+00:00", capsys=capsys)
    assert code == 0, capsys.readouterr().err
    assert "Hours logged in October 2026 per client, without the tags ProjectManagement, Meetings" in out
    assert "Acme: 13.25 h of 10.00 h in the plan - OVER the plan by 3.25 h" in out
    assert "Shop: 2.50 h of 20.00 h in the plan" in out and "Nocontact Ltd: 0.50 h" in out
    code, out = run(ini, "report", "hours", "--for", "2026-10", "--format", "json", capsys=capsys)
    data = json.loads(out)
    assert by_company(data)["Acme"]["over_hours"] == 3.25 and data["total_minutes"] == 975
