"""Agents' corrections of type and priority: kept with the mail's text and the rule they
override (by mail, end to end, and by command), and counted per field, value and rule over
the last 30 days by `mailproc classify --report`; on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from mailproc import cases, classify_report, commands, corrections, db
from mailproc.commands import Origin
from mailproc.config import load
from mailproc.models import Case, Correction, Message

from helpers import run, run_json
from test_agent_mail import ANA, BOB, PASS, Desk

NOW = datetime(2027, 1, 5, 9, 0, tzinfo=timezone.utc)


# --- by mail, end to end ------------------------------------------------------------------


@pytest.fixture
def desk(dovecot, imap_user, smtp, make_config, db_url):
    return Desk(dovecot, imap_user, smtp, make_config, db_url)


def _corrections(desk) -> list[Correction]:
    db.open_database(load(desk.config).database)
    return list(Correction.select().order_by(Correction.id))


def test_an_agents_type_correction_is_kept_with_the_text_and_the_rule(desk, capsys):
    db.open_database(load(desk.config).database)
    opened = Case.get_by_id(1)
    rules_type, rules_rule = opened.type, opened.decided_by["type"]
    assert rules_rule.startswith("classification:")
    wanted = "bug" if rules_type != "bug" else "request"
    desk.agent_mail(f"[type={wanted}]", headers={"Authentication-Results": PASS})
    [kept] = _corrections(desk)
    message = Message.get(Message.message_id.startswith("agent-"))
    assert (kept.case_id, kept.field, kept.old, kept.new, kept.actor) == (1, "type", rules_type, wanted, ANA)
    assert (kept.rule, kept.classifier, kept.message_id) == (rules_rule, True, message.id)
    assert kept.text.startswith("Cannot log in\n\n") and "The login page says my password is wrong." in kept.text
    assert Case.get_by_id(1).type == wanted

    desk.agent_mail(f"[type={wanted}]", headers={"Authentication-Results": PASS})  # the same value: no change
    assert len(_corrections(desk)) == 1

    desk.agent_mail("[type=enhancement]", sender=BOB, headers={"Authentication-Results": PASS})
    first, second = _corrections(desk)
    assert first.id == kept.id
    assert (second.old, second.new, second.actor, second.rule, second.classifier) == (
        wanted, "enhancement", BOB, "command:type", False)

    later = (desk.now + timedelta(minutes=2)).isoformat()  # the last mail was processed a minute (and more) after
    data = run_json(desk.config, capsys, "classify", "--report", now=later)
    assert data["days"] == 30
    types = data["fields"]["type"]
    assert (types["corrections"], types["of_rules"]) == (2, 1)
    assert {(c["old"], c["new"], c["count"]) for c in types["changes"]} == {
        (rules_type, wanted, 1), (wanted, "enhancement", 1)}
    assert [r for r in data["rules"] if r["rule"] == rules_rule] == [
        {"field": "type", "rule": rules_rule, "decided": 1, "corrected": 1, "rate": 1.0, "corrections": 1}]
    assert data["fields"]["priority"]["corrections"] == 0

    code, out = run(desk.config, "classify", "--report", now=later, capsys=capsys)
    assert code == 0 and "type: 2 correction(s), 1 of the rules' value" in out and rules_rule in out


# --- by command, and the report's windows -----------------------------------------------


def _open(at: datetime, type_: str, type_rule: str, priority: str, priority_rule: str, text: str = "") -> Case:
    return cases.open_case({"contact": "cus@shop.example", "summary": f"{type_} mail", "description": text,
                            "type": type_, "priority": priority},
                           decided={"type": type_, "priority": priority},
                           rules={"type": type_rule, "priority": priority_rule}, actor="cus@shop.example", now=at)


def _command(case: Case, verb: str, value: str, at: datetime, actor: str = ANA):
    row = Message.create(raw_sha256="0" * 64, size=1, source="ingest", arrived_at=at.replace(tzinfo=None),
                         stored_at=at.replace(tzinfo=None))
    with db.proxy.obj.atomic():
        return commands.REGISTRY[verb].run(None, case, value, actor=actor, now=at, message=Origin(row, ""))


def test_text_is_subject_and_the_start_of_a_long_description(db_url):
    db.open_database(db_url)
    case = _open(NOW, "request", "classification:how-to", "P5", "priority:default", "x" * 5000)
    change = _command(case, "priority", "2", NOW)
    assert change.field == "priority"
    [kept] = Correction.select()
    assert kept.text == "request mail\n\n" + "x" * corrections.TEXT_LIMIT
    assert (kept.old, kept.new, kept.rule, kept.classifier) == ("P5", "P2", "priority:default", True)
    assert _command(case, "priority", "P2", NOW).field is None and Correction.select().count() == 1


def test_report_counts_per_field_value_and_rule_over_the_window(db_url):
    db.open_database(db_url)
    day = timedelta(days=1)
    old = _open(NOW - 35 * day, "request", "classification:how-to", "P5", "priority:default")
    _command(old, "type", "bug", NOW - 31 * day)  # 31 days old: out of the window
    b = _open(NOW - 10 * day, "request", "classification:how-to", "P5", "priority:default")
    _command(b, "type", "bug", NOW - 9 * day)
    _command(b, "type", "admin", NOW - 8 * day)  # an agent's value corrected: not the rules'
    _open(NOW - 5 * day, "request", "classification:how-to", "P5", "priority:default")
    d = _open(NOW - 3 * day, "bug", "classification:bug-error", "P4", "priority:bug-urgent-vip")
    _command(d, "priority", "P2", NOW - 2 * day)
    e = _open(NOW - 40 * day, "bug", "classification:bug-error", "P6", "priority:default")
    _command(e, "type", "enhancement", NOW - day)  # in the window, its case opened before it

    data = classify_report.report(NOW)
    types, priorities = data["fields"]["type"], data["fields"]["priority"]
    assert (types["corrections"], types["of_rules"]) == (3, 2)
    assert sorted((c["old"], c["new"], c["count"], c["of_rules"]) for c in types["changes"]) == [
        ("bug", "admin", 1, 0), ("bug", "enhancement", 1, 1), ("request", "bug", 1, 1)]
    assert types["values"] == [{"value": "bug", "decided": 1, "corrected": 0, "rate": 0.0},
                               {"value": "request", "decided": 2, "corrected": 1, "rate": 0.5}]
    assert (priorities["corrections"], priorities["of_rules"]) == (1, 1)
    assert priorities["values"] == [{"value": "P4", "decided": 1, "corrected": 1, "rate": 1.0},
                                    {"value": "P5", "decided": 2, "corrected": 0, "rate": 0.0}]
    rules = {(r["field"], r["rule"]): (r["decided"], r["corrected"], r["rate"], r["corrections"])
             for r in data["rules"]}
    assert rules == {("type", "classification:how-to"): (2, 1, 0.5, 1),
                     ("type", "classification:bug-error"): (1, 0, 0.0, 1),
                     ("priority", "priority:bug-urgent-vip"): (1, 1, 1.0, 1),
                     ("priority", "priority:default"): (2, 0, 0.0, 0)}
    # a longer window takes in the old case and its correction
    wider = classify_report.report(NOW, days=45)["fields"]["type"]
    assert (wider["corrections"], wider["of_rules"]) == (4, 3)
    text = classify_report.render(data)
    assert "type: 3 correction(s), 2 of the rules' value" in text and "classification:how-to" in text
    with pytest.raises(ValueError):
        classify_report.report(NOW, days=0)
