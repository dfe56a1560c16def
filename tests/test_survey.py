"""The satisfaction question after a case closes, its answer, and the testimonial request
(SPEC §4; rules/survey.toml): planning and reading answers on SQLite and PostgreSQL, and
the whole round end to end through Dovecot and aiosmtpd."""

from __future__ import annotations

import email
import email.policy

from datetime import timedelta
from urllib.parse import unquote

import pytest

from mailproc import cases, db, due, sweep, timers
from mailproc.clock import Clock
from mailproc.config import load
from mailproc.context import load_context
from mailproc.jobs import survey
from mailproc.models import Case, CaseLink, Customer, Due, Event, Message, Outbox, Person, aware
from mailproc.rules import load_rules, rule_files

from helpers import T0, mail, run_once
from test_agent_mail import ANA, PASS, Desk, text_of

CUS = "cus@shop.example"
RULES = load_rules()


# --- reading an answer (no database) ----------------------------------------------------


@pytest.mark.parametrize("text, name", [
    ("2", "satisfied"), ("Satisfeito", "satisfied"), ("satisfeita!", "satisfied"),
    ("1 - thanks a lot", "extremely_satisfied"), ("I am EXTREMELY satisfied, thank you", "extremely_satisfied"),
    ("Muito satisfeito", "extremely_satisfied"), ("(3)", "unsatisfied"), ("Not satisfied at all", "unsatisfied"),
    ("Não satisfeita", "unsatisfied"), ("nao satisfeito", "unsatisfied"), ("Insatisfeito", "unsatisfied"),
    ("4.", "extremely_unsatisfied"), ("Extremamente insatisfeito", "extremely_unsatisfied"),
    ("Dissatisfied, very", "unsatisfied"),
    ("hello, who is this?", None), ("satisfied with the fix, unsatisfied with the wait", None),
    ("2.5 stars", None), ("", None), ("2 but extremely unsatisfied", None),
])
def test_an_answer_is_a_number_or_the_words_of_one_answer(text, name):
    found = RULES.survey.read(text)
    assert (found.name if found else None) == name


def test_the_answer_links_subject_carries_the_answer():
    rules = RULES.survey
    assert rules.read_subject("Re: [Case #12] Satisfaction: Extremely Unsatisfied").name == "extremely_unsatisfied"
    assert rules.read_subject("RE: [Case #12] satisfaction: Satisfied").name == "satisfied"
    assert rules.read_subject("Re: [Case #12] Satisfaction: how did we do?") is None  # a plain reply: the body says
    assert rules.read_subject("Re: [Case #12] Unsatisfied with the export") is None  # no marker, no answer


def test_rule_file_errors_name_the_line(tmp_path):
    from mailproc.errors import ConfigError
    from mailproc.rules.survey import load_survey
    shipped = rule_files(None)["survey.toml"].read_text(encoding="utf-8")
    bad = tmp_path / "survey.toml"
    bad.write_text(shipped.replace('words = ["satisfied"', 'words = ["extremely satisfied", "satisfied"'))
    with pytest.raises(ConfigError, match="also a word of 'extremely_satisfied'") as err:
        load_survey(bad)
    assert "line" in str(err.value)
    bad.write_text(shipped.replace('once_per = "30d"', 'once_pr = "30d"'))
    with pytest.raises(ConfigError, match="did you mean 'once_per'"):
        load_survey(bad)


# --- planning (both databases) ------------------------------------------------------------


@pytest.fixture
def ctx(db_url, make_config):
    config = load(make_config(database=db_url, mailboxes=[dict(name="support", host="127.0.0.1", port=1,
                                                                  username="u", password="p",
                                                                  address="support@example.com")]))
    db.open_database(config.database)
    yield load_context(config, Clock(T0))
    db.close()


def _case(contact=CUS, **values) -> Case:
    return cases.open_case({"contact": contact, "summary": "Cannot log in", **values}, decided={}, rules={},
                           actor=contact, now=T0)


def _close(ctx, case, at):
    cases.set_field(case, "status", "closed", actor=ANA, now=at)
    timers.replan(ctx, case, at)


def _pending(case) -> dict[str, object]:
    rows = Due.select().where((Due.case == case.id) & Due.done_at.is_null())
    return {row.kind: row for row in rows}


def test_closing_plans_the_question_a_minute_after_the_closure_mail(ctx):
    case = _case()
    closed = T0 + timedelta(days=2)
    _close(ctx, case, closed)
    [item] = survey.plan(ctx, case)
    assert (item.kind, item.due_at) == ("survey", closed + timedelta(minutes=1))
    assert closed.isoformat(timespec="seconds").replace("+00:00", "") in item.key
    assert "survey" in _pending(case) and "closure" in _pending(case)


def test_a_happy_answer_or_a_possible_testimonial_plans_the_request_a_week_after_closing(ctx):
    case = _case()
    closed = T0 + timedelta(days=2)
    _close(ctx, case, closed)
    assert [p.kind for p in survey.plan(ctx, case)] == ["survey"]
    cases.touch(case, closed, survey_sent_at=closed)
    cases.set_field(case, "satisfaction", "satisfied", actor=CUS, now=closed)
    [item] = survey.plan(ctx, case)
    assert (item.kind, item.due_at) == ("testimonial", closed + timedelta(days=7))
    cases.set_field(case, "possible_testimonial", True, actor=ANA, now=closed)
    cases.set_field(case, "satisfaction", "unsatisfied", actor=CUS, now=closed)
    assert survey.plan(ctx, case) == []  # never after an unhappy answer
    cases.set_field(case, "satisfaction", None, actor=CUS, now=closed)
    assert [p.kind for p in survey.plan(ctx, case)] == ["testimonial"]  # marked by an agent
    cases.touch(case, closed, testimonial_sent_at=closed)
    assert survey.plan(ctx, case) == []


def test_internal_partner_and_merged_cases_are_not_asked(ctx):
    flagged = [_case(internal=True), _case(partner=True)]
    for flags in (dict(internal=True), dict(partner=True)):
        row = Customer.create(match=f"{'-'.join(flags)}.example", company="X", **flags)
        flagged.append(_case(contact=f"a@{row.match}", customer=row))
    merged, survivor = _case(), _case()
    cases.link(merged, survivor, "merged_into", actor=ANA, now=T0)
    for case in [*flagged, merged]:
        cases.set_field(case, "possible_testimonial", True, actor=ANA, now=T0)
        _close(ctx, case, T0 + timedelta(hours=1))
        assert survey.plan(ctx, case) == [], case.contact
    _close(ctx, survivor, T0)
    assert [p.kind for p in survey.plan(ctx, survivor)] == ["survey"]


def test_the_question_waits_for_an_away_customer(ctx):
    case = _case()
    back = T0 + timedelta(days=9)
    cases.touch(case, T0, away_until=back)
    _close(ctx, case, T0 + timedelta(days=1))
    assert [p.due_at for p in survey.plan(ctx, case)] == [back]


def test_a_reopen_cancels_the_pending_question_and_a_new_close_plans_afresh(ctx):
    case = _case()
    first = T0 + timedelta(days=1)
    _close(ctx, case, first)
    old = _pending(case)["survey"]
    cases.set_field(case, "status", "assigned", actor=ANA, now=first + timedelta(seconds=30))
    timers.replan(ctx, case, first + timedelta(seconds=30))
    assert "survey" not in _pending(case)
    assert Due.get_by_id(old.id).outcome == due.CANCELLED
    again = first + timedelta(days=3)
    _close(ctx, case, again)
    new = _pending(case)["survey"]
    assert new.id != old.id and new.key != old.key
    swept = sweep.sweep(ctx, again + timedelta(minutes=1))
    assert swept.done["survey"] == 1
    assert Outbox.select().where(Outbox.kind == "satisfaction").count() == 1


def test_one_question_per_contact_within_thirty_days(ctx):
    first, second, third = _case(), _case(), _case()
    _close(ctx, first, T0)
    sweep.sweep(ctx, T0 + timedelta(minutes=1))
    assert Case.get_by_id(first.id).survey_sent_at is not None
    _close(ctx, second, T0 + timedelta(days=10))
    sweep.sweep(ctx, T0 + timedelta(days=10, minutes=1))
    assert Case.get_by_id(second.id).survey_sent_at is None  # not asked: it says so, and is not asked later
    skipped = Event.get((Event.case == second.id) & (Event.kind == "survey_skipped"))
    assert "at most one question within 30 days" in skipped.detail and skipped.rule == "survey:once_per"
    assert survey.plan(ctx, Case.get_by_id(second.id)) != []  # still planned by state, but its item is done
    assert sweep.sweep(ctx, T0 + timedelta(days=20)).done["survey"] == 0
    _close(ctx, third, T0 + timedelta(days=31))
    sweep.sweep(ctx, T0 + timedelta(days=31, minutes=1))
    assert Case.get_by_id(third.id).survey_sent_at is not None
    assert [o.case_id for o in Outbox.select().where(Outbox.kind == "satisfaction").order_by(Outbox.id)] == [
        first.id, third.id]


def test_an_agent_as_contact_is_not_asked(ctx):
    Person.create(address="ana@agents.example", handle="ana")
    case = _case(contact="ana@agents.example")
    _close(ctx, case, T0)
    assert sweep.sweep(ctx, T0 + timedelta(minutes=1)).done["survey"] == 1
    assert Event.get((Event.case == case.id) & (Event.kind == "survey_skipped")).detail == "the contact is an agent"
    assert not Outbox.select().where(Outbox.kind == "satisfaction").exists()


def test_the_question_has_one_mailto_link_per_answer(ctx):
    case = _case()
    _close(ctx, case, T0)
    sweep.sweep(ctx, T0 + timedelta(minutes=1))
    row = Outbox.get(Outbox.kind == "satisfaction")
    sent = email.message_from_bytes(bytes(row.raw), policy=email.policy.default)
    assert "[Case #1] Satisfaction:" in sent["Subject"]
    text, html = (sent.get_body((kind,)).get_content() for kind in ("plain", "html"))
    links = survey.answer_links(ctx, case, "support@example.com")
    for link in links:  # each answer's link is in both parts of the mail as sent
        assert link["mailto"] in text and f'href="{link["mailto"]}"' in html
    assert [unquote(link["mailto"].partition("subject=")[2]) for link in links] == [
        f"Re: [Case #{case.id}] Satisfaction: {label}"
        for label in ("Extremely Satisfied", "Satisfied", "Unsatisfied", "Extremely Unsatisfied")]
    assert all(" " not in link["mailto"] for link in links)


# --- end to end: Dovecot in, aiosmtpd out ---------------------------------------------------


class SurveyDesk(Desk):
    def sweep(self, at) -> None:
        config = load(self.config)
        db.open_database(config.database)
        try:
            sweep.sweep(load_context(config, Clock(at)), at)
        finally:
            db.close()
        self.now = at

    def close_case(self):
        self.agent_mail("[assign=ana close]", headers={"Authentication-Results": PASS})
        db.open_database(load(self.config).database)
        case = Case.get_by_id(self.case)
        assert case.status == "closed"
        return case.closed_at

    def asked(self):
        """The question, as delivered to the customer (the sweep queued it; a run sends it)."""
        closed = self.close_case()
        self.sweep(self.now + timedelta(minutes=3))
        run_once(self.config, self.now)
        return self.received(CUS, "satisfaction"), closed

    def answer(self, body, *, subject="Re: [Case #1] Satisfaction: how did we do?", in_reply_to=None):
        headers = {"In-Reply-To": f"<{in_reply_to}>"} if in_reply_to else None
        self.deliver(mail(subject, body, sender=f"Cus <{CUS}>", headers=headers,
                          message_id=f"answer-{self.now:%d%H%M%S}"))
        db.open_database(load(self.config).database)
        latest = Message.select().where(Message.message_id.startswith("answer-")).order_by(Message.id.desc())
        return Case.get_by_id(self.case), latest.get()


@pytest.fixture
def survey_desk(dovecot, imap_user, smtp, make_config, db_url):
    return SurveyDesk(dovecot, imap_user, smtp, make_config, db_url)


def test_question_reply_and_testimonial_end_to_end(survey_desk):
    desk = survey_desk
    question, closed = desk.asked()
    text = text_of(question)
    links = [line.strip() for line in text.splitlines() if line.strip().startswith("mailto:")]
    assert len(links) == 4 and all(link.startswith("mailto:support@example.com?subject=") for link in links)
    html = question.message.get_body(("html",)).get_content()
    assert html.count('href="mailto:support@example.com?subject=') == 4
    assert question.message["Subject"] == "[Case #1] Satisfaction: how did we do?"
    [row] = desk.outgoing("satisfaction")
    case, message = desk.answer("Satisfeito, obrigado!\n\n> How satisfied are you?", in_reply_to=row.message_id)
    assert (case.satisfaction, message.disposition, message.case_id) == ("satisfied", "satisfaction", 1)
    assert case.satisfaction_at is not None and Case.select().count() == 1  # no new linked case
    assert not CaseLink.select().exists()
    assert not desk.outgoing("unhappy_customer")
    # a week after closing: the testimonial request (standard: no directory row says Google Apps)
    desk.sweep(aware(closed) + timedelta(days=7, minutes=1))
    run_once(desk.config, desk.now)
    request = desk.received(CUS, "testimonial")
    assert "few words about your experience" in text_of(request)
    assert "satisfied" in text_of(request) and not desk.outgoing("testimonial_google")


def test_google_apps_customers_get_the_marketplace_request(survey_desk):
    desk = survey_desk
    db.open_database(load(desk.config).database)
    row = Customer.create(match="shop.example", company="Shop", google_apps=True)
    Case.update(customer=row).where(Case.id == 1).execute()
    db.close()
    _, closed = desk.asked()
    desk.answer("1")
    desk.sweep(aware(closed) + timedelta(days=7, minutes=1))
    run_once(desk.config, desk.now)
    request = desk.received(CUS, "testimonial_google")
    assert "review on the Google Apps Marketplace" in " ".join(text_of(request).split())
    assert "https://workspace.google.com/marketplace" in text_of(request)


def test_an_unhappy_answer_by_link_tells_the_assignee_and_brings_no_testimonial(survey_desk):
    desk = survey_desk
    _, closed = desk.asked()
    # marked as a possible testimonial: only the unhappy answer keeps the request back
    Case.update(possible_testimonial=True).where(Case.id == 1).execute()
    case, message = desk.answer("", subject="Re: [Case #1] Satisfaction: Extremely Unsatisfied")
    assert (case.satisfaction, message.disposition) == ("extremely_unsatisfied", "satisfaction")
    assert Case.select().count() == 1
    run_once(desk.config, desk.now)
    assignee = case.assignee.address
    told = desk.received(assignee, "unhappy_customer")
    assert "Extremely Unsatisfied" in told.message["Subject"] and "[Case #1]" in told.message["Subject"]
    desk.sweep(aware(closed) + timedelta(days=8))
    assert not desk.outgoing("testimonial")


def test_the_latest_answer_stands_and_an_unhappy_one_is_told_once(survey_desk):
    desk = survey_desk
    _, closed = desk.asked()
    unhappy = "Re: [Case #1] Satisfaction: Unsatisfied"
    desk.answer("", subject=unhappy)
    case, _ = desk.answer("", subject=unhappy)  # the same link clicked twice
    assert case.satisfaction == "unsatisfied" and len(desk.outgoing("unhappy_customer")) == 1
    case, _ = desk.answer("1 - sorry, I clicked the wrong one")
    assert case.satisfaction == "extremely_satisfied" and len(desk.outgoing("unhappy_customer")) == 1
    changes = Event.select().where((Event.case == 1) & (Event.field == "satisfaction")).order_by(Event.id)
    assert [(e.old, e.new) for e in changes] == [(None, "unsatisfied"), ("unsatisfied", "extremely_satisfied")]
    desk.sweep(aware(closed) + timedelta(days=7, minutes=1))
    assert len(desk.outgoing("testimonial")) == 1  # happy in the end: the request is planned again


def test_an_auto_reply_to_the_question_is_no_answer(survey_desk):
    desk = survey_desk
    desk.asked()
    [row] = desk.outgoing("satisfaction")
    desk.deliver(mail("Out of office: Re: [Case #1] Satisfaction: how did we do?", "I am away until Monday.",
                      sender=f"Cus <{CUS}>", message_id="ooo-1",
                      headers={"In-Reply-To": f"<{row.message_id}>", "Auto-Submitted": "auto-replied"}))
    db.open_database(load(desk.config).database)
    assert Message.get(Message.message_id.startswith("ooo-1")).disposition == "auto_reply"
    assert Case.get_by_id(1).satisfaction is None and Case.select().count() == 1


def test_an_unreadable_answer_is_kept_as_a_comment(survey_desk):
    desk = survey_desk
    desk.asked()
    [row] = desk.outgoing("satisfaction")
    case, message = desk.answer("Who are you and why do you write to me?", in_reply_to=row.message_id)
    assert (case.satisfaction, message.disposition) == (None, "satisfaction")
    comment = Event.get((Event.case == 1) & (Event.kind == "comment"))
    assert comment.detail == "Who are you and why do you write to me?" and comment.rule == "survey:unreadable"
    assert Case.select().count() == 1 and len(desk.outgoing("satisfaction")) == 1


def test_a_plain_reply_to_a_closed_case_still_opens_a_linked_case(survey_desk):
    desk = survey_desk
    desk.asked()
    desk.deliver(mail("Re: [Case #1] Cannot log in", "It broke again.", sender=f"Cus <{CUS}>",
                      message_id="again-1"))
    db.open_database(load(desk.config).database)
    assert Message.get(Message.message_id.startswith("again-1")).disposition == "new_case"
    assert CaseLink.get().kind == "reopened_from"


def test_after_a_reopen_a_mail_in_the_surveys_thread_is_about_the_case_again(survey_desk):
    desk = survey_desk
    desk.asked()
    case, _ = desk.answer("", subject="Re: [Case #1] Satisfaction: Unsatisfied")
    desk.agent_mail("[reopen]", headers={"Authentication-Results": PASS})
    assert Case.get_by_id(1).status != "closed"
    case, message = desk.answer("Here is the screenshot you asked for.")  # same thread, marker in the subject
    assert message.disposition == "follow_up" and message.case_id == 1
    assert case.last_customer_at is not None and case.satisfaction == "unsatisfied"
