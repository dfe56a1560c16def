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
    contact, owner an address), Nocontact Ltd without a contact, an internal case."""
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
    log(case(ours, "Internal clean-up", contact=CY, internal=True), 240, datetime(2026, 10, 6, 9, tzinfo=timezone.utc))
    return dict(acme=acme, shop=shop, login=login, export=export, cart=cart)


def by_company(data) -> dict[str, dict]:
    return {c["company"]: c for c in data["companies"]}


# --- the figures ----------------------------------------------------------------------------


def test_figures_per_company_without_excluded_tags_and_with_the_over_flag(ctx, month_of_work):
    report = hours.build(ctx, day=date(2026, 10, 1), now=BERLIN_OCT)
    data = report.data
    assert data["month"] == "2026-10" and data["start"] == OCT_START.isoformat()
    companies = by_company(data)
    assert set(companies) == {"Acme", "Shop", "Nocontact Ltd"}  # not the internal case's company
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
    assert not [s for s in scheduled.run(ctx, at_berlin(4, 23)).slots if s.startswith("hours")]
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
    assert "13.25 h of 10.00 h in the plan - OVER the plan by 3.25 h" in text
    assert "Development" in text and "Bugfix" in text
    for hidden in ("Meetings", "ProjectManagement", "projectmanagement", "Shop", "Nocontact", "contact:"):
        assert hidden not in text and hidden not in client.get_body(("html",)).get_content()
    copy = dict(sent)[ANA]
    assert copy["Subject"].startswith("Copy: ") and "they must be invoiced" in body(copy)
    assert "must be invoiced" not in body(dict(sent)["fabio@agency.example"])  # Shop is within its plan
    scheduled.run(ctx, at_berlin(8, 9, 30))
    scheduled.run(ctx, at_berlin(9, 9, 30))
    assert len(outbox("hours_report")) == 4  # exactly once


def test_a_company_without_a_contact_is_listed_to_the_leads(ctx, month_of_work):
    scheduled.run(ctx, at_berlin(8, 10))
    [(to, msg)] = outbox("hours_missing_contact")
    assert to == ANA  # the lead
    text = body(msg)
    assert "Nocontact Ltd: 0.50 h of 5.00 h in the plan" in text and "no contact in the directory" in text
    assert "Where is my invoice?" in text and "Acme" not in text


def test_the_client_report_is_not_held_by_the_automatic_mail_limit(ctx, month_of_work):
    limit = ctx.config.autoreply_limit
    for n in range(limit + 2):  # a busy week of automatic mail to the contact
        db.insert(Outbox, kind="acknowledgement", message_id=f"<a{n}@x>", mail_from="support@agency.example",
                  recipients=["it@acme.example"], to_addr="it@acme.example", raw=b"x", automatic=True,
                  state="sent", next_attempt_at=utc(at_berlin(7)), created_at=utc(at_berlin(7)))
    scheduled.run(ctx, at_berlin(8, 10))
    assert "it@acme.example" in [to for to, _ in outbox("hours_report")]
    assert outbox("hours_missing_contact")[0][0] == ANA


def test_a_caught_up_slot_still_reports_last_month(ctx, month_of_work):
    done = scheduled.run(ctx, at_berlin(11, 12))  # down from the 7th to the 11th
    assert "hours:send:2026-11-08T09:00" in done.slots
    assert "13.25 h" in body(dict(outbox("hours_report"))["it@acme.example"])


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
