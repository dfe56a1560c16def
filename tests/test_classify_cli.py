"""`mailproc classify FILE.eml…`: the decision a new case would get and the rule behind
each field, for writing and testing rules — read from the real parser, rules and
directory, and nothing stored."""

from __future__ import annotations

import json

import pytest

from helpers import mail, run
from mailproc import db
from mailproc.config import load
from mailproc.models import Case, Message

CSV = ("match,company,plan,licenses,high_value,partner,internal,google_apps\n"
       "acme.example,Acme Corp,paid,25,true,false,false,false\n")


@pytest.fixture
def site(db_url, make_config, tmp_path):
    path = make_config(database=db_url, mailboxes=[
        dict(name="support", host="127.0.0.1", port=1, username="u", password="p", address="support@example.com"),
        dict(name="billing", host="127.0.0.1", port=1, username="u", password="p", address="billing@example.com",
             team="Admin Task Team")])
    (tmp_path / "customers.csv").write_text(CSV)
    assert run(path, "customers", "import", tmp_path / "customers.csv")[0] == 0
    return path


def eml(tmp_path, name: str, **kw) -> str:
    path = tmp_path / name
    path.write_bytes(mail(**kw))
    return str(path)


def test_json_gives_each_fields_value_and_rule_and_stores_nothing(site, tmp_path, capsys):
    urgent = eml(tmp_path, "urgent.eml", subject="Checkout not working!", sender="ops@acme.example",
                 body="Customers cannot pay, the checkout is not working since 9am.")
    question = eml(tmp_path, "question.eml", subject="How do I export a report?", sender="someone@else.example",
                   body="Where is the export button?", to="billing@example.com")
    code, out = run(site, "classify", urgent, question, "--json", capsys=capsys)
    assert code == 0
    first, second = json.loads(out)
    assert first["file"] == urgent and first["fields"]["type"] == "bug" and first["fields"]["urgent"] is True
    assert first["fields"]["priority"] in ("P1", "P2") and first["decided_by"]["priority"].startswith("priority:")
    assert first["customer"]["company"] == "Acme Corp" and first["customer"]["high_value"] is True
    assert first["decided_by"]["type"].startswith("classification:")
    assert second["customer"] is None and second["mailbox"] == "billing"  # the mailbox it is addressed to
    assert second["fields"]["type"] == "request"
    db.open_database(load(site).database)
    try:
        assert Case.select().count() == 0 and Message.select().count() == 0
    finally:
        db.close()


def test_text_lists_each_field_with_its_rule(site, tmp_path, capsys):
    path = eml(tmp_path, "q.eml", subject="How do I export a report?", body="Where is the export button?")
    code, out = run(site, "classify", path, "--mailbox", "support", capsys=capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith(f"{path}: 'How do I export a report?' from alice@acme.example, Acme Corp (paid)")
    assert any(line.split()[:2] == ["type", "request"] and "classification:" in line for line in lines)
    assert any(line.split()[0] == "priority" and "priority:" in line for line in lines)


def test_a_missing_file_is_an_error_and_the_others_still_print(site, tmp_path, capsys):
    path = eml(tmp_path, "q.eml")
    code, _ = run(site, "classify", tmp_path / "nope.eml", path, "--json")
    captured = capsys.readouterr()
    assert code == 1 and "nope.eml" in captured.err
    assert [r["file"] for r in json.loads(captured.out)] == [path]
    code, _ = run(site, "classify")
    assert code == 2 and "name one or more" in capsys.readouterr().err
