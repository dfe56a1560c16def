"""The one door for case changes (`mailproc.cases`), on SQLite and on PostgreSQL:
what each function writes (row, timestamps, event), and that it writes nothing
when there is nothing to change."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from mailproc import cases, db
from mailproc.models import Case, CaseLink, Contact, Event, Message, Participant, Person

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=timezone.utc)
NAIVE = T0.replace(tzinfo=None)  # how the database gives times back (naive UTC)


@pytest.fixture
def store(db_url):
    return db.open_database(db_url)


def a_message(at: datetime = T0) -> Message:
    return Message.create(raw_sha256="0" * 64, size=1, source="ingest", arrived_at=at.replace(tzinfo=None),
                          stored_at=at.replace(tzinfo=None))


def a_case(**values) -> Case:
    return cases.open_case({"contact": "ana@shop.example", "summary": "Checkout down", **values}, decided={},
                           rules={}, actor="ana@shop.example", now=T0)


def events(case: Case) -> list[Event]:
    return list(Event.select().where(Event.case == case).order_by(Event.id))


def test_open_case_writes_the_case_its_history_and_its_participants(store):
    message = a_message()
    decided = {"type": "bug", "status": "pending_development", "priority": "P1", "team": "Dev Team",
               "tags": ["outage"], "company": "", "partner": None, "need_by": date(2026, 12, 7)}
    rules = {"type": "classification:checkout", "status": "type-default", "priority": "priority:urgent",
             "team": "routing:bugs", "tags": "classification:checkout", "need_by": "release"}
    opened = T0 - timedelta(minutes=5)
    case = cases.open_case(
        {"contact": "orders@shop.example", "summary": "Checkout down", "type": "bug", "priority": "P1",
         "status": "pending_development", "tags": ["outage"], "last_customer_at": opened.replace(tzinfo=None)},
        decided=decided, rules=rules, actor="ana@shop.example", now=T0, opened_at=opened, message=message,
        detail="from message 1", participants=["ana@shop.example", "bob@shop.example", "", "ana@shop.example",
                                               "orders@shop.example"])
    stored = Case.get_by_id(case.id)
    assert (stored.type, stored.priority, stored.tags, stored.decided_by) == ("bug", "P1", ["outage"], rules)
    assert stored.created_at == stored.status_changed_at == stored.tier_entered_at == NAIVE - timedelta(minutes=5)
    assert stored.updated_at == NAIVE
    history = events(case)
    assert [(e.kind, e.field, e.new, e.rule, e.actor) for e in history] == [
        ("created", None, None, None, "ana@shop.example"),
        ("field", "type", "bug", "classification:checkout", "mailproc"),
        ("field", "status", "pending_development", "type-default", "mailproc"),
        ("field", "priority", "P1", "priority:urgent", "mailproc"),
        ("field", "team", "Dev Team", "routing:bugs", "mailproc"),
        ("field", "need_by", "2026-12-07", "release", "mailproc"),
        ("field", "tags", "['outage']", "classification:checkout", "mailproc")]
    assert {e.message_id for e in history} == {message.id} and history[0].detail == "from message 1"
    assert {e.at for e in history} == {NAIVE}
    assert [(p.address, p.role) for p in Participant.select().where(Participant.case == case)
            .order_by(Participant.id)] == [("orders@shop.example", "contact"), ("ana@shop.example", "cc"),
                                           ("bob@shop.example", "cc")]


def test_set_field_writes_the_field_its_timestamps_and_one_event(store):
    case = a_case(status="pending_input")
    message = a_message()
    later = T0 + timedelta(hours=2)
    assert cases.set_field(case, "status", "assigned", actor="ana@shop.example", now=later,
                           rule="workflow:customer_reply", message=message)
    assert case.status == "assigned" and case.status_changed_at == NAIVE + timedelta(hours=2)
    stored = Case.get_by_id(case.id)
    assert stored.status == "assigned"
    assert stored.status_changed_at == stored.updated_at == NAIVE + timedelta(hours=2)
    assert stored.tier_entered_at == NAIVE and stored.resolved_at is None
    change = events(case)[-1]
    assert (change.kind, change.field, change.old, change.new, change.rule, change.actor, change.message_id,
            change.at) == ("field", "status", "pending_input", "assigned", "workflow:customer_reply",
                           "ana@shop.example", message.id, NAIVE + timedelta(hours=2))


def test_set_field_to_the_value_it_holds_writes_nothing(store):
    case = a_case(priority="P3")
    before = len(events(case))
    assert not cases.set_field(case, "priority", "P3", actor="bob@example.com", now=T0 + timedelta(days=1))
    assert len(events(case)) == before and Case.get_by_id(case.id).updated_at == NAIVE


def test_a_command_outside_the_pipeline_goes_through_the_same_door(store):
    """What an agent's command or a timer will do: no message stage, a command name as the cause."""
    case = a_case()
    later = T0 + timedelta(days=1)
    assert cases.set_field(case, "status", "resolved", actor="bob@example.com", now=later, command="status",
                           detail="fixed in 4.2")
    assert cases.set_field(case, "tier", "T2", actor="bob@example.com", now=later + timedelta(hours=1),
                           command="escalate")
    assert cases.set_field(case, "status", "closed", actor="mailproc", now=later + timedelta(days=7),
                           rule="timer:pending_closure")
    stored = Case.get_by_id(case.id)
    assert stored.resolved_at == NAIVE + timedelta(days=1)
    assert stored.tier_entered_at == NAIVE + timedelta(days=1, hours=1)
    assert stored.closed_at == stored.status_changed_at == stored.updated_at == NAIVE + timedelta(days=8)
    assert [(e.field, e.old, e.new, e.rule, e.actor, e.message_id) for e in events(case)[1:]] == [
        ("status", "new", "resolved", "command:status", "bob@example.com", None),
        ("tier", "triage", "T2", "command:escalate", "bob@example.com", None),
        ("status", "resolved", "closed", "timer:pending_closure", "mailproc", None)]
    assert events(case)[1].detail == "fixed in 4.2"


def test_set_field_writes_the_times_that_ride_along(store):
    case = a_case(status="waiting")
    arrived = T0 + timedelta(minutes=30)
    assert cases.set_field(case, "status", "assigned", actor="ana@shop.example", now=T0 + timedelta(hours=1),
                           also={"last_customer_at": arrived})
    stored = Case.get_by_id(case.id)
    assert stored.last_customer_at == case.last_customer_at == NAIVE + timedelta(minutes=30)
    assert stored.status_changed_at == NAIVE + timedelta(hours=1)


def test_set_field_of_a_foreign_key_compares_and_records_ids(store):
    bob = Person.create(address="bob@example.com", name="Bob")
    case = a_case()
    assert cases.set_field(case, "assignee", bob, actor="lead@example.com", now=T0)
    assert not cases.set_field(case, "assignee", bob.id, actor="lead@example.com", now=T0)
    assert Case.get_by_id(case.id).assignee_id == bob.id
    assert Person.get_by_id(bob.id).last_assigned_at == NAIVE  # assignment spreads load by it
    change = events(case)[-1]
    assert (change.field, change.old, change.new) == ("assignee", None, str(bob.id))


def test_a_case_opened_with_an_assignee_moves_their_last_assignment(store):
    bob = Person.create(address="bob@example.com", name="Bob")
    case = a_case(assignee=bob)
    assert Case.get_by_id(case.id).assignee_id == bob.id
    assert Person.get_by_id(bob.id).last_assigned_at == NAIVE


@pytest.mark.parametrize("field, kw", [("colour", {}), ("created_at", {}), ("id", {}),
                                       ("status", {"rule": "r", "command": "status"})])
def test_set_field_refuses_what_is_not_a_change_of_a_field(store, field, kw):
    case = a_case()
    with pytest.raises(ValueError):
        cases.set_field(case, field, "x", actor="bob@example.com", now=T0, **kw)
    assert len(events(case)) == 1


def test_touch_writes_times_only(store):
    case = a_case()
    cases.touch(case, T0 + timedelta(hours=3), last_agent_at=T0 + timedelta(hours=2))
    stored = Case.get_by_id(case.id)
    assert stored.last_agent_at == NAIVE + timedelta(hours=2) and stored.updated_at == NAIVE + timedelta(hours=3)
    assert len(events(case)) == 1  # no history for a time
    with pytest.raises(ValueError, match="set_field"):
        cases.touch(case, T0, status="closed")


def test_record_takes_a_case_or_its_number(store):
    case = a_case()
    first = cases.record(case.id, "mail_sent", now=T0, new="acknowledgement", detail="<x@y>")
    second = cases.record(case, "bounce", now=T0, actor="mailproc", detail="550")
    assert second > first
    assert [(e.kind, e.new, e.actor, e.detail) for e in events(case)[-2:]] == [
        ("mail_sent", "acknowledgement", "mailproc", "<x@y>"), ("bounce", None, "mailproc", "550")]


def test_link_records_the_link_and_an_event_on_each_case(store):
    old, new = a_case(status="closed"), a_case()
    cases.link(new, old, "reopened_from", actor="ana@shop.example", now=T0, rule="thread:closed-case",
               detail="reply to closed case", other_detail="customer replied after closing")
    link = CaseLink.get()
    assert (link.case_id, link.other_id, link.kind, link.created_at) == (new.id, old.id, "reopened_from", NAIVE)
    assert (events(new)[-1].kind, events(new)[-1].detail) == ("linked", "reply to closed case")
    assert (events(old)[-1].kind, events(old)[-1].detail) == ("linked", "customer replied after closing")
    with pytest.raises(ValueError, match="unknown kind"):
        cases.link(new, old, "cousin_of", actor="x", now=T0)


def test_add_participants_skips_those_already_on_the_case(store):
    case = a_case()
    added = cases.add_participants(case, ["ana@shop.example", "bob@shop.example", "bob@shop.example", ""])
    assert added == ["bob@shop.example"]
    assert cases.add_participants(case.id, ["bob@shop.example", "carol@shop.example"], role="agent") == [
        "carol@shop.example"]
    assert [(p.address, p.role) for p in Participant.select().where(Participant.case == case)
            .order_by(Participant.id)] == [("ana@shop.example", "contact"), ("bob@shop.example", "cc"),
                                           ("carol@shop.example", "agent")]


def test_contacts_are_upserted(store):
    cases.contact_seen("Ana@Shop.example", T0, name="Ana")
    cases.contact_seen("ana@shop.example", T0 + timedelta(days=1), name="Someone else")
    cases.contact_undeliverable("ana@shop.example", "550 gone", T0 + timedelta(days=2))
    cases.contact_undeliverable("NEW@shop.example", "550 never", T0 + timedelta(days=3))
    ana = Contact.get(Contact.address == "ana@shop.example")
    assert (ana.name, ana.first_seen, ana.last_seen) == ("Ana", NAIVE, NAIVE + timedelta(days=1))
    assert (ana.undeliverable, ana.undeliverable_reason, ana.undeliverable_at) == (
        True, "550 gone", NAIVE + timedelta(days=2))
    new = Contact.get(Contact.address == "new@shop.example")
    assert new.undeliverable and new.first_seen == NAIVE + timedelta(days=3)
    assert Contact.select().count() == 2


def test_file_message_puts_the_message_on_its_case(store):
    case, message = a_case(), a_message()
    message.subject, message.from_addr, message.message_id = "Hello", "ana@shop.example", "<m@x>"
    cases.file_message(message, case, disposition="follow_up", trace=["thread:token"], now=T0)
    stored = Message.get_by_id(message.id)
    assert (stored.case_id, stored.state, stored.disposition, stored.trace, stored.processed_at) == (
        case.id, "done", "follow_up", ["thread:token"], NAIVE)
    assert (stored.subject, stored.from_addr, stored.message_id) == ("Hello", "ana@shop.example", "<m@x>")
