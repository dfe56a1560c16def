"""The subject-line commands, one by one, on SQLite and PostgreSQL: what each changes
(and its event: the agent, the command, the mail), what each refuses and how it says
so, and that the commands of one mail apply together or not at all."""

from __future__ import annotations

from datetime import date, datetime, timezone
from types import SimpleNamespace

import pytest

from mailproc import cases, commands, db, roster, subject
from mailproc.availability import Schedule
from mailproc.commands import CommandError, Origin
from mailproc.config import AgentConfig, LifecycleConfig, TeamConfig
from mailproc.models import Case, CaseLink, Event, Message, Person, TimeEntry
from mailproc.rules import load_rules
from mailproc.subject import Command
from zoneinfo import ZoneInfo

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=timezone.utc)
ANA = "ana@agents.example"


def _agent(name: str) -> roster.Agent:
    config = AgentConfig(name=name, address=f"{name}@agents.example", display_name=name.title(),
                         teams=("Support Team",), tier="T1", timezone=ZoneInfo("UTC"), hours=None, hours_text=None,
                         roles=())
    return roster.Agent(config, Schedule(tz=ZoneInfo("UTC"), windows=(), text="never"))


ROSTER = roster.Roster(agents=(_agent("ana"), _agent("bob")),
                       teams=tuple(TeamConfig(name=n, lead=None, address=None, configured=False)
                                   for n in ("Support Team", "Dev Team", "Product Team")))
# rules and config: a split case plans its timers (config: no one on call, as in no [oncall] section)
CTX = SimpleNamespace(roster=ROSTER, rules=load_rules(),
                      config=SimpleNamespace(oncall=None, agents=(), lifecycle=LifecycleConfig()))


@pytest.fixture
def case(db_url):
    db.open_database(db_url)
    roster.sync(ROSTER)
    return cases.open_case({"contact": "cus@shop.example", "summary": "Cannot log in", "tags": ["vip"]},
                           decided={}, rules={}, actor="cus@shop.example", now=T0)


@pytest.fixture
def origin(case):
    row = Message.create(raw_sha256="0" * 64, size=1, source="ingest", arrived_at=T0.replace(tzinfo=None),
                         stored_at=T0.replace(tzinfo=None))
    return Origin(row, "Customer called; the password reset mail never arrives.\n")


def run(case, origin, name, value=None):
    return commands.REGISTRY[name].run(CTX, case, value, actor=ANA, now=T0, message=origin)


def last_event(case) -> Event:
    return Event.select().where(Event.case == case).order_by(Event.id.desc()).get()


def stored(case) -> Case:
    return Case.get_by_id(case.id)


# --- the registry ---------------------------------------------------------------------


def test_registry_names_are_the_verbs_of_the_grammar():
    assert set(commands.REGISTRY) | set(commands.NOT_YET) == set(subject.VERBS)
    assert not set(commands.REGISTRY) & set(commands.NOT_YET)
    for module in commands.REGISTRY.values():
        assert module.syntax.startswith(module.name) and module.help and callable(module.run)


def test_reference_lists_every_verb_once():
    text = commands.reference_text()
    assert [line.split()[0].split("=")[0].split("[")[0] for line in text.splitlines()] == list(commands.REGISTRY)


# --- fields ---------------------------------------------------------------------------


@pytest.mark.parametrize("name, value, field, expected", [
    ("status", "pending-input", "status", "pending_input"),
    ("status", "RESOLVED", "status", "resolved"),
    ("priority", "p2", "priority", "P2"),
    ("priority", "1", "priority", "P1"),
    ("type", "bug", "type", "bug"),
    ("team", "dev", "team", "Dev Team"),
    ("team", "product-team", "team", "Product Team"),
    ("tier", "T3", "tier", "T3"),
    ("tier", "on-call", "tier", "oncall"),
    ("escalate", "T2", "tier", "T2"),
    ("escalate", None, "tier", "T1"),
    ("wait", None, "status", "waiting"),
    ("pending", None, "status", "pending_input"),
    ("resolve", None, "status", "resolved"),
    ("close", None, "status", "closed"),
    ("known", "123-calendar-sync", "known_issue", "123-calendar-sync"),
    ("needby", "2026-12-24", "need_by", date(2026, 12, 24)),
    ("tag", "billing,urgent", "tags", ["vip", "billing", "urgent"]),
    ("untag", "vip", "tags", []),
    ("untag", "", "tags", []),
])
def test_field_commands_set_the_field_with_an_event(case, origin, name, value, field, expected):
    old = case.__data__.get(field)
    change = run(case, origin, name, value)
    assert change.field == field and change.new == expected and "\u2192" in change.text
    assert getattr(stored(case), field) == expected
    event = last_event(case)
    assert (event.kind, event.field, event.actor, event.rule, event.message_id) == (
        "field", field, ANA, f"command:{name}", origin.row.id)
    assert event.old == (None if old in (None, "") else str(old))


def test_status_moves_its_timestamps(case, origin):
    run(case, origin, "resolve")
    assert stored(case).resolved_at == T0.replace(tzinfo=None)


def test_assign_by_roster_name_or_me(case, origin):
    change = run(case, origin, "assign", "bob")
    assert stored(case).assignee.handle == "bob" and change.text == "assignee: (none) \u2192 bob"
    assert last_event(case).new == str(Person.get(Person.handle == "bob").id)
    assert run(case, origin, "assign", "me").text == "assignee: bob \u2192 ana"


def test_the_same_value_again_changes_nothing(case, origin):
    run(case, origin, "priority", "P3")
    count = Event.select().count()
    change = run(case, origin, "priority", "P3")
    assert change.field is None and change.text == "priority already P3" and Event.select().count() == count


def test_hold_sets_on_hold_until_a_day(case, origin):
    change = run(case, origin, "hold", "3d")
    assert stored(case).status == "on_hold" and "until 2026-11-29" in change.text
    assert "until 2026-11-29" in last_event(case).detail


def test_reopen_only_a_done_case(case, origin):
    with pytest.raises(CommandError, match="not resolved or closed"):
        run(case, origin, "reopen")
    run(case, origin, "close")
    run(case, origin, "reopen")
    assert stored(case).status == "new"


def test_note_keeps_the_text_as_an_internal_event(case, origin):
    change = run(case, origin, "note")
    event = last_event(case)
    assert (event.kind, event.actor, event.rule) == ("note", ANA, "command:note")
    assert event.detail.startswith("Customer called") and "note" in change.text
    with pytest.raises(CommandError, match="no text"):
        run(case, Origin(origin.row, "  \n"), "note")


def test_ack_is_an_event(case, origin):
    run(case, origin, "ack")
    assert (last_event(case).kind, last_event(case).actor) == ("acknowledged", ANA)


def test_time_is_logged_with_its_tag(case, origin):
    change = commands.time.run(CTX, case, "1.5h", actor=ANA, now=T0, message=origin, tag="Meetings")
    entry = TimeEntry.get()
    assert (entry.minutes, entry.tag, entry.actor, entry.person.handle) == (90, "Meetings", ANA, "ana")
    assert change.text == "time logged: 1h30m tagged Meetings"
    assert commands.time.minutes("1h30m") == commands.time.minutes("90m") == 90


# --- refusals, with their hints ----------------------------------------------------------


@pytest.mark.parametrize("name, value, words", [
    ("status", "resolvd", "did you mean 'resolved'"),
    ("status", None, "needs a value"),
    ("priority", "P9", "unknown priority 'P9'"),
    ("type", "bugg", "did you mean 'bug'"),
    ("assign", "bbo", "did you mean 'bob'"),
    ("assign", "carol", "unknown agent 'carol'"),
    ("team", "suport", "did you mean 'Support-Team'"),
    ("tier", "T7", "unknown tier 'T7'"),
    ("hold", "forever", "not a number of days"),
    ("hold", "0d", "from 1 to 365"),
    ("resolve", "now", "takes no value"),
    ("known", "calendar-sync", "NUMBER-short-name"),
    ("needby", "2026-13-01", "not a date"),
    ("needby", "tomorrow", "YYYY-MM-DD"),
    ("time", "lots", "not a duration"),
    ("time", "30h", "between 1 minute and 24 hours"),
    ("tag", "a b", "not a tag"),
    ("untag", "nope", "has no tag 'nope'"),
])
def test_bad_values_are_refused_with_a_reason_and_change_nothing(case, origin, name, value, words):
    before = (stored(case).__data__, Event.select().count())
    with pytest.raises(CommandError, match=words.replace("(", r"\(")):
        run(case, origin, name, value)
    assert (stored(case).__data__, Event.select().count()) == before


# --- all or nothing ----------------------------------------------------------------------


def test_commands_of_a_mail_apply_together(case, origin):
    results, applied = commands.apply(CTX, case, [Command.of("status", "resolved"), Command.of("priority", "P2"),
                                                  Command.of("assign", "bob")], actor=ANA, now=T0, message=origin)
    assert applied and [r.change.text for r in results] == [
        "status: new \u2192 resolved", "priority: P6 \u2192 P2", "assignee: (none) \u2192 bob"]
    assert (stored(case).status, stored(case).priority) == ("resolved", "P2")


def test_one_refused_command_rolls_back_the_others(case, origin):
    before = (stored(case).__data__, Event.select().count())
    with db.transaction():  # the message's transaction: the commands' savepoint is inside it
        results, applied = commands.apply(
            CTX, case, [Command.of("status", "resolved"), Command.of("priority", "P9"), Command.of("tag", "x"),
                        Command.of("merge", "7")], actor=ANA, now=T0, message=origin)
    assert not applied
    assert [(r.skipped, bool(r.error)) for r in results] == [(True, False), (False, True), (True, False),
                                                             (False, True)]
    assert "there is no case #7" in results[3].error
    assert (stored(case).__data__, Event.select().count()) == before


def test_time_takes_the_tag_of_its_mail_and_the_tag_is_not_a_case_tag(case, origin):
    results, applied = commands.apply(CTX, case, [Command.of("time", "2h"), Command.of("tag", "Meetings")],
                                      actor=ANA, now=T0, message=origin)
    assert applied and TimeEntry.get().tag == "Meetings" and stored(case).tags == ["vip"]
    assert results[1].change.text == "tag 'Meetings' labels the time logged"


def test_split_opens_a_linked_case_from_the_mails_text(case, origin):
    change = run(case, origin, "split")
    new = Case.get_by_id(change.new)
    assert (new.contact, new.summary, new.status) == (
        "cus@shop.example", "Customer called; the password reset mail never arrives.", "new")
    link = CaseLink.get()
    assert (link.case_id, link.other_id, link.kind) == (new.id, case.id, "split_from")
    assert Event.get((Event.case == case) & (Event.kind == "linked")).detail == f"case #{new.id} split from this one"
    with pytest.raises(CommandError, match="no text"):
        run(case, Origin(origin.row, ""), "split")


def test_the_readme_lists_every_command_of_the_registry():
    from pathlib import Path
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    missing = [syntax for syntax, _help in commands.reference() if f"`{syntax.split('=')[0]}" not in readme]
    assert not missing, f"README's command reference lacks {missing}"
