"""The `mailproc` command: `check`, configuration errors, the customer directory,
`messages retry` and `cases show`, run in-process with real files and servers.

A configuration error is exit 78 (EX_CONFIG) and a message naming the file and
the key or line; every such case here is a real broken file.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from helpers import mail, run, run_json
from mailproc import config as config_mod
from mailproc import db
from mailproc.clock import Clock
from mailproc.context import load_context
from mailproc.store import store_message
from mailproc.testing import REPO

SUPPORT = "support@example.com"


def run_err(config, capsys, *args, now=None):
    """(exit code, stdout, stderr) of `mailproc --config CONFIG ARGS…`."""
    code, _ = run(config, *args, now=now)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def files(tmp_path):
    """Private copies of the repository's rules/ and templates/, to break."""
    rules, templates = tmp_path / "rules", tmp_path / "templates"
    shutil.copytree(REPO / "rules", rules)
    shutil.copytree(REPO / "templates", templates)
    return rules, templates


@pytest.fixture
def site(make_config, files):
    rules, templates = files
    return make_config(mailboxes=[dict(name="support", host="127.0.0.1", port=9, username="u", password="pw",
                                       address=SUPPORT)],
                       extra={"rules": rules, "templates": templates})


@pytest.fixture
def live(make_config, dovecot, imap_user, smtp):
    """A config with a real (empty) mailbox and the SMTP catcher, for `run --once`."""
    user, password = imap_user
    return make_config(mailboxes=[dict(name="support", host=dovecot.host, port=dovecot.port, username=user,
                                       password=password, address=SUPPORT)],
                       smtp=dict(host=smtp.host, port=smtp.port))


def replace_line(path: Path, old: str, new: str) -> int:
    """Replace the first line starting with `old`; return its 1-based number."""
    lines = path.read_text(encoding="utf-8").splitlines()
    number = next(n for n, line in enumerate(lines) if line.startswith(old))
    lines[number] = new
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return number + 1


def test_check_passes_on_a_good_config(site, capsys):
    code, out, err = run_err(site, capsys, "check")
    assert code == 0, err
    assert out.startswith(f"ok: {site}: 1 mailbox(es)")
    assert "error" not in err


def test_check_names_a_mistyped_config_key(site, capsys):
    replace_line(site, "timezone", "time_zone = UTC")
    code, out, err = run_err(site, capsys, "check")
    assert code == 78 and not out
    assert f"{site}:[mailproc] time_zone: unknown key 'time_zone'; did you mean 'timezone'?" in err


def test_check_names_a_bad_value(site, capsys):
    with open(site, "a", encoding="utf-8") as fh:
        fh.write("batch_size = many\n")  # appended to the [mailbox:support] section
    code, _, err = run_err(site, capsys, "check")
    assert code == 78 and f"{site}:[mailbox:support] batch_size:" in err


def test_check_names_file_and_line_of_a_bad_regex(site, files, capsys):
    path = files[0] / "classification.toml"
    line = replace_line(path, "patterns = ['\\?", "patterns = ['(unclosed']")
    code, _, err = run_err(site, capsys, "check")
    assert code == 78
    assert f"{path}:line {line}: bad regular expression '(unclosed'" in err


def test_check_names_file_and_line_of_a_toml_syntax_error(site, files, capsys):
    path = files[0] / "routing.toml"
    line = replace_line(path, 'name = "', 'name = "close-account')  # the closing quote is missing
    code, _, err = run_err(site, capsys, "check")
    assert code == 78
    assert f"{path}:line {line}: TOML syntax error" in err


def test_check_names_file_and_line_of_a_template_syntax_error(site, files, capsys):
    path = files[1] / "acknowledgement.txt.j2"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[2] += " {% if %}"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, out, err = run_err(site, capsys, "check")
    assert code == 78 and not out
    assert f"{path}:3: " in err


def test_bad_config_stops_every_command_before_it_does_anything(site, capsys, tmp_path):
    replace_line(site, "timezone", "timezone = Mars/Olympus")
    eml = tmp_path / "m.eml"
    eml.write_bytes(mail(message_id="never"))
    for args in (["ingest", eml], ["run", "--once"], ["cases", "list"], ["messages", "list"]):
        code, out, err = run_err(site, capsys, *args)
        assert code == 78 and not out, args
        assert f"{site}:[mailproc] timezone: unknown time zone 'Mars/Olympus'" in err
    assert not (site.parent / "storage").exists()  # no database created, nothing stored


def test_broken_template_stops_commands_that_would_fail_every_message(site, files, capsys, tmp_path):
    path = files[1] / "acknowledgement.html.j2"
    path.write_text(path.read_text(encoding="utf-8") + "{% for x in %}\n", encoding="utf-8")
    eml = tmp_path / "m.eml"
    eml.write_bytes(mail(message_id="would-fail"))
    code, out, err = run_err(site, capsys, "ingest", eml)
    assert code == 78 and not out
    assert str(path) in err
    assert not (site.parent / "storage").exists()


def test_missing_config_file(tmp_path, capsys):
    code, _, err = run_err(tmp_path / "nowhere.ini", capsys, "check")
    assert code == 78 and f"{tmp_path / 'nowhere.ini'}: config file not found" in err


def test_bad_now_is_a_usage_error(site, capsys):
    code, _, err = run_err(site, capsys, "cases", "list", now="next tuesday")
    assert code == 2 and "--now" in err


CSV_HEADER = "match,company,plan,licenses,high_value,partner,internal,google_apps\n"


def ingest_one(config, capsys, tmp_path, raw: bytes, name: str) -> dict:
    path = tmp_path / name
    path.write_bytes(raw)
    code, out = run(config, "ingest", path, capsys=capsys)
    assert code == 0, out
    return run_json(config, capsys, "cases", "list")[-1]


def test_customers_import_feeds_company_and_priority(site, capsys, tmp_path):
    csv = tmp_path / "customers.csv"
    csv.write_text(CSV_HEADER + "acme.example,Acme Inc,paid,25,false,false,false,false\n"
                   "solo.example,Solo,free,1,no,no,no,no\n", encoding="utf-8")
    code, out, err = run_err(site, capsys, "customers", "import", csv)
    assert code == 0, err
    assert out.strip() == f"imported {csv}: 2 added, 0 updated"

    question = mail("How do I export a report?", "Where is the export button?", message_id="acme-q")
    case = ingest_one(site, capsys, tmp_path, question, "acme.eml")
    assert (case["contact"], case["company"], case["type"]) == ("alice@acme.example", "Acme Inc", "request")
    assert case["priority"] == "P4"  # a paid customer with 10+ licenses
    detail = run_json(site, capsys, "cases", "show", case["number"])
    assert detail["decided_by"]["priority"] == "priority:request-paid-10-licenses"

    other = ingest_one(site, capsys, tmp_path, mail("How do I export a report?", "Where?", sender="bo@solo.example",
                                                    message_id="solo-q"), "solo.eml")
    assert (other["company"], other["priority"]) == ("Solo", "P6")

    # Importing again updates the row: the next mail from Acme sees the new plan.
    csv.write_text(CSV_HEADER + "acme.example,Acme Inc,trial,25,false,false,false,false\n", encoding="utf-8")
    assert run_err(site, capsys, "customers", "import", csv)[1].strip() == f"imported {csv}: 0 added, 1 updated"
    again = ingest_one(site, capsys, tmp_path, mail("How do I print a report?", "Where is print?",
                                                    message_id="acme-q2"), "acme2.eml")
    assert (again["company"], again["priority"]) == ("Acme Inc", "P5")


def test_customers_import_with_a_bad_row_imports_nothing(site, capsys, tmp_path):
    csv = tmp_path / "customers.csv"
    csv.write_text(CSV_HEADER + "acme.example,Acme Inc,paid,25,false,false,false,false\n"
                   "beta.example,Beta,gold,3,false,false,false,false\n", encoding="utf-8")
    code, out, err = run_err(site, capsys, "customers", "import", csv)
    assert code != 0 and not out
    assert f"{csv}:line 3: unknown plan 'gold'" in err
    # Acme, on the good line 2, was not imported either: its mail finds no customer.
    case = ingest_one(site, capsys, tmp_path, mail("How do I export a report?", "Where?", message_id="acme-x"),
                      "acme.eml")
    assert (case["company"], case["priority"]) == (None, "P6")


def test_messages_retry_after_a_real_failure(live, capsys):
    config = config_mod.load(live)
    db.open_database(config.database)
    try:
        ctx = load_context(config, Clock())
        raws = [mail(f"Batch question {n}", f"body {n}", sender=f"b{n}@batch.example", message_id=f"batch{n}")
                for n in range(3)]
        rows = [store_message(ctx, raw, source="ingest", mailbox="support") for raw in raws]
        lost = ctx.raw.path(rows[1].raw_sha256)
        lost.unlink()  # the stored bytes of the middle message are gone
    finally:
        db.close()

    assert run(live, "run", "--once", capsys=capsys)[0] == 0
    messages = run_json(live, capsys, "messages", "list")
    assert [m["state"] for m in messages] == ["done", "failed", "done"]  # the rest of the batch went on
    assert [m["disposition"] for m in messages] == ["new_case", "failed", "new_case"]
    assert "FileNotFoundError" in messages[1]["error"] and str(lost) in messages[1]["error"]
    assert [m["id"] for m in run_json(live, capsys, "messages", "list", "--state", "failed")] == [rows[1].id]
    code, out, _ = run_err(live, capsys, "messages", "list")
    assert "ERROR: FileNotFoundError" in out

    lost.write_bytes(raws[1])  # the condition is put right
    code, out, err = run_err(live, capsys, "messages", "retry", rows[1].id)
    assert code == 0, err
    assert json.loads(out) == {"message": rows[1].id, "disposition": "new_case"}
    retried = run_json(live, capsys, "messages", "list")[1]
    assert (retried["state"], retried["error"], retried["case"]) == ("done", None, 3)
    assert [c["contact"] for c in run_json(live, capsys, "cases", "list")] == [
        "b0@batch.example", "b2@batch.example", "b1@batch.example"]

    code, out, err = run_err(live, capsys, "messages", "retry", rows[0].id)
    assert code == 1 and not out
    assert f"message {rows[0].id} was already handled (new_case); nothing to retry" in err
    code, _, err = run_err(live, capsys, "messages", "retry", 999)
    assert code == 1 and "no message 999" in err


def test_cases_show_of_a_missing_case(site, capsys):
    code, out, err = run_err(site, capsys, "cases", "show", "42", "--json")
    assert code == 1 and not out
    assert "no case #42" in err


# --- the roster: `agents list`, `check`, the people table ------------------------------------------

AGENTS = """
[agent:ana]
address = ana@agents.example
name = Ana Silva
teams = Support Team, Dev Team
tier = T2
timezone = America/New_York
hours = Mon-Fri 07:00-13:00
roles = lead

[agent:bob]
address = bob@agents.example
teams = Support Team

[team:Support Team]
lead = ana
"""
SECRET_LINE = "secret = " + "s" * 40 + "\n"


def with_agents(site: Path, agents: str = AGENTS, secret: str = SECRET_LINE) -> Path:
    text = site.read_text(encoding="utf-8").replace("[mailproc]\n", "[mailproc]\n" + secret, 1)
    site.write_text(text + agents, encoding="utf-8")
    return site


def test_agents_list_shows_teams_window_availability_and_open_cases(site, capsys):
    from mailproc.models import Case, Person
    with_agents(site)
    # Monday 2026-01-12 12:30 UTC: 07:30 in New York (ana at work), business hours in UTC (bob too)
    rows = run_json(site, capsys, "agents", "list", now="2026-01-12T12:30:00Z")
    assert [(r["name"], r["teams"], r["tier"], r["roles"], r["available_now"], r["open_cases"]) for r in rows] == [
        ("ana", ["Support Team", "Dev Team"], "T2", ["lead"], True, 0),
        ("bob", ["Support Team"], None, [], True, 0)]
    assert rows[0]["hours"] == "Mon-Fri 07:00-13:00" and rows[0]["timezone"] == "America/New_York"
    assert rows[1]["hours"] == "business hours (Mon-Fri 09:00-17:00)" and rows[1]["hours_default"]

    db.open_database(config_mod.load(site).database)
    t = Clock.from_env("2026-01-12T12:00:00Z").now()
    for status in ("assigned", "waiting", "resolved"):
        Case.create(contact="c@example.com", assignee=Person.get(Person.handle == "ana"), status=status,
                    created_at=t, updated_at=t, status_changed_at=t, tier_entered_at=t)
    db.close()
    # Monday 19:00 UTC: 14:00 in New York, after ana's window; bob's business day is over too
    rows = run_json(site, capsys, "agents", "list", now="2026-01-12T19:00:00Z")
    assert [(r["available_now"], r["open_cases"], r["next_window_start"]) for r in rows] == [
        (False, 2, "2026-01-13T07:00:00-05:00"), (False, 0, "2026-01-13T09:00:00+00:00")]

    code, out = run(site, "agents", "list", now="2026-01-12T19:00:00Z", capsys=capsys)
    assert code == 0
    assert "ana" in out and "2 open" in out and "off until 2026-01-13T07:00:00-05:00" in out
    assert "Support Team, Dev Team  (T2, lead)" in out


def test_every_command_syncs_the_roster_into_the_database(site, capsys):
    from mailproc.stages.thread import is_agent
    with_agents(site)
    assert run(site, "cases", "list", capsys=capsys)[0] == 0
    db.open_database(config_mod.load(site).database)
    assert is_agent("ana@agents.example") and is_agent("bob@agents.example")
    db.close()
    site.write_text(site.read_text(encoding="utf-8").replace("[agent:bob]\naddress = bob@agents.example\n"
                                                              "teams = Support Team\n", ""), encoding="utf-8")
    assert run(site, "cases", "list", capsys=capsys)[0] == 0
    db.open_database(config_mod.load(site).database)
    assert is_agent("ana@agents.example") and not is_agent("bob@agents.example")


def test_check_refuses_agents_without_a_secret(site, capsys):
    with_agents(site, secret="")
    code, out, err = run_err(site, capsys, "check")
    assert code == 78 and f"{site}:[mailproc] secret: is required when agents are configured" in err


def test_check_names_an_agents_unknown_team(site, capsys):
    with_agents(site, AGENTS.replace("teams = Support Team\n", "teams = Suport Team\n"))
    code, out, err = run_err(site, capsys, "check")
    assert code == 78 and "[agent:bob] teams: unknown team 'Suport Team'; did you mean 'Support Team'?" in err


def test_agents_list_without_agents(site, capsys):
    assert run_json(site, capsys, "agents", "list") == []
    code, out = run(site, "agents", "list", capsys=capsys)
    assert code == 0 and "no agents" in out
