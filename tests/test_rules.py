"""The shipped rule files load; a mistake in one names the file and the line."""

from __future__ import annotations

import re
import shutil
from datetime import date, timedelta
from pathlib import Path

import pytest

from mailproc.defaults import RULE_FILES
from mailproc.errors import ConfigError
from mailproc.models import CASE_TYPES, PRIORITIES, STATUSES
from mailproc.rules import matching
from mailproc.rules.classification import load_classification
from mailproc.rules.priority import load_priority
from mailproc.rules.routing import load_routing
from mailproc.rules.sla import load_sla
from mailproc.rules.workflow import load_workflow

RULES = Path(__file__).resolve().parents[1] / "rules"
LOADERS = {
    "classification.toml": load_classification,
    "priority.toml": load_priority,
    "routing.toml": load_routing,
    "workflow.toml": load_workflow,
    "sla.toml": lambda path: load_sla(path, None),
}


def edited(tmp_path, name: str, old: str, new: str) -> Path:
    """A copy of a shipped rule file with one edit; the edit must apply."""
    text = (RULES / name).read_text(encoding="utf-8")
    assert old in text, f"test setup: {old!r} not in {name}"
    path = tmp_path / name
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


def appended(tmp_path, name: str, extra: str) -> Path:
    path = tmp_path / name
    shutil.copy(RULES / name, path)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(extra)
    return path


def line_number(path: Path, needle: str) -> str:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if needle in line:
            return f"line {number}"
    raise AssertionError(needle)


def fails(name: str, path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as err:
        LOADERS[name](path)
    assert err.value.file == str(path)
    return err.value


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_shipped_file_loads(name):
    assert LOADERS[name](RULES / name) is not None


def test_shipped_files_cover_every_type_priority_and_status():
    classification = load_classification(RULES / "classification.toml")
    assert set(classification.types) == set(CASE_TYPES)
    assert {r.type for r in classification.rules} == set(CASE_TYPES)
    priority = load_priority(RULES / "priority.toml")
    for case_type in CASE_TYPES:  # every type ends in a catch-all rule: no case falls to the default
        assert any(r.when.types == {case_type} and not r.when.text and r.when.paid is None
                   and r.when.known_customer is None and r.when.plans is None for r in priority.rules)
    workflow = load_workflow(RULES / "workflow.toml")
    assert set(workflow.labels) == set(STATUSES)
    assert load_sla(RULES / "sla.toml").response.keys() == set(PRIORITIES)


def test_workflow_transitions_timers_and_releases():
    workflow = load_workflow(RULES / "workflow.toml")
    assert workflow.label("pending_input") == "Pending Input"
    for status in ("pending_input", "waiting", "pending_closure"):
        assert workflow.on_customer_reply(status) == "assigned"
    assert workflow.on_customer_reply("pending_development") is None
    reminder = workflow.timer("pending_input")
    assert (reminder.remind, reminder.after, reminder.to) == (timedelta(days=3), timedelta(days=3), "resolved")
    assert workflow.timer("waiting").after == timedelta(days=10)
    assert workflow.timer("pending_closure").to == "closed"
    assert workflow.timer("on_hold").after is None and workflow.timer("on_hold").note
    assert workflow.next_release(date(2026, 3, 1)) == date(2026, 3, 2)
    assert workflow.next_release(date(2026, 3, 2)) == date(2026, 6, 1)  # release day itself is too late
    assert workflow.next_release(date(2030, 1, 1)) is None


def test_bad_regex_in_urgent_phrases_names_its_line(tmp_path):
    path = edited(tmp_path, "priority.toml", "urgent_phrases = [", "urgent_phrases = [\n  'checkout (broken',")
    err = fails("priority.toml", path)
    assert err.where == line_number(path, "checkout (broken")
    assert "bad regular expression" in str(err)


def test_bad_regex_in_a_rule_names_its_line(tmp_path):
    path = appended(tmp_path, "classification.toml",
                    '\n[[rule]]\nname = "broken"\ntype = "bug"\npatterns = [\'fail[ure\']\n')
    err = fails("classification.toml", path)
    assert err.where == line_number(path, "fail[ure")


def test_a_phrase_that_is_nothing_once_normalised_names_its_line(tmp_path):
    """An apostrophe alone normalises to "" and would be found in every mail."""
    path = appended(tmp_path, "classification.toml",
                    '\n[[rule]]\nname = "nothing"\ntype = "bug"\nphrases = ["it broke", "\u2019"]\n')
    err = fails("classification.toml", path)
    assert "match every mail" in str(err) and err.where is not None


def test_unknown_priority_names_its_line(tmp_path):
    path = edited(tmp_path, "priority.toml", 'name = "bug-urgent-vip"\npriority = "P1"',
                  'name = "bug-urgent-vip"\npriority = "P9"')
    err = fails("priority.toml", path)
    assert err.where == line_number(path, 'priority = "P9"')
    assert "P9" in str(err) and "P1, P2" in str(err)


def test_unknown_key_names_its_line_and_suggests(tmp_path):
    path = edited(tmp_path, "priority.toml", "high_value = true", "hi_value = true")
    err = fails("priority.toml", path)
    assert err.where == line_number(path, "hi_value")
    assert "did you mean 'high_value'" in str(err)


def test_toml_syntax_error_names_its_line(tmp_path):
    path = appended(tmp_path, "routing.toml", '\n[[rule]]\nname = "oops\n')
    err = fails("routing.toml", path)
    assert err.where == line_number(path, 'name = "oops')


@pytest.mark.parametrize("name, old, new, needle, message", [
    ("classification.toml", 'type = "admin"', 'type = "chore"', 'type = "chore"', "chore"),
    ("classification.toml", 'status = "new"', 'status = "open"', 'status = "open"', "open"),
    ("classification.toml", 'need_by_days = 2', 'need_by_days = "two"', 'need_by_days = "two"', "whole number"),
    ("classification.toml", 'name = "admin-plan"', 'name = "admin-cancel"', None, "two rules are named"),
    ("priority.toml", 'plan = ["free"]', 'plan = ["gratis"]', 'plan = ["gratis"]', "gratis"),
    ("priority.toml", 'types = ["enhancement"]', 'types = ["feature"]', 'types = ["feature"]', "feature"),
    ("routing.toml", 'team = "Marketing"\ntags = ["merch"]', 'tags = ["merch"]', None, "'team' is required"),
    ("routing.toml", 'types = ["enhancement"]', 'in = "body"', 'in = "body"', "only means something"),
    ("workflow.toml", 'closed = "Closed"\n', '', None, "'closed' is required"),
    ("workflow.toml", 'to = "closed"', 'to = "done"', 'to = "done"', "done"),
    ("workflow.toml", 'after = "10d"', 'after = "ten days"', 'after = "ten days"', "not a duration"),
    ("workflow.toml", "2026-06-01,", '"June",', '"June"', "not a date"),
    ("sla.toml", 'P3 = "4 business hours"', 'P3 = "4 business hours"\nP7 = "1h"', 'P7 =', "unknown key"),
    ("sla.toml", 'P4 = "1 business day"\n', '', None, "'P4' is required"),
    ("sla.toml", 'P2 = "2 business hours"', 'P2 = "soon"', 'P2 = "soon"', "not a duration"),
    ("sla.toml", 'hours = "09:00-17:00"', 'hours = "17:00-09:00"', 'hours = "17:00', "ends before"),
    ("sla.toml", '"Fri"]\nhours', '"Fry"]\nhours', '"Fry"', "unknown day"),
    ("sla.toml", "T5 = {", "T9 = {", "T9 = {", "unknown key"),
    ("sla.toml", 'T2 = { green = "1 business day", yellow = "2 business days" }',
     'T2 = { green = "3 business days", yellow = "2 business days" }', "T2 = {", "yellow limit"),
])
def test_validation_errors_name_file_and_line(tmp_path, name, old, new, needle, message):
    path = edited(tmp_path, name, old, new)
    err = fails(name, path)
    assert re.search(re.escape(message), str(err)), str(err)
    assert err.where is not None and err.where.startswith("line ")
    if needle:
        assert err.where == line_number(path, needle)


def test_pattern_with_an_apostrophe_class_is_refused_clearly(tmp_path):
    path = appended(tmp_path, "classification.toml",
                    "\n[[rule]]\nname = \"apostrophe\"\ntype = \"bug\"\npatterns = [\"can[']t\"]\n")
    err = fails("classification.toml", path)
    assert "apostrophes are removed" in str(err)
    assert err.where == line_number(path, "can[']t")


def test_sender_and_mailbox_conditions(tmp_path):
    path = tmp_path / "routing.toml"
    path.write_text('[[rule]]\nname = "vip-domain"\nteam = "VIP"\nfrom = ["*.bigcorp.example", "bigcorp.example"]\n'
                    '\n[[rule]]\nname = "ceo"\nteam = "Exec"\nfrom = ["ceo@*"]\n'
                    '\n[[rule]]\nname = "billing-box"\nteam = "Billing"\nmailbox = ["billing"]\n'
                    'phrases = ["invoice"]\nin = "subject"\n', encoding="utf-8")
    routing = load_routing(path)

    def team(sender, mailbox=None, subject="", body=""):
        facts = matching.Facts(subject=subject, body=body, sender=sender, mailbox=mailbox, customer=None)
        route = routing.match(facts)
        return route.name if route else None

    assert team("ann@bigcorp.example") == "vip-domain"
    assert team("ann@eu.bigcorp.example") == "vip-domain"
    assert team("ann@notbigcorp.example") is None
    assert team("ceo@small.example") == "ceo"
    assert team("ann@small.example", "billing", subject="your invoice") == "billing-box"
    assert team("ann@small.example", "billing", body="your invoice") is None
    assert team("ann@small.example", "support", subject="your invoice") is None


# --- shipped rules and a site's overrides -------------------------------------------------------

def test_without_a_directory_the_shipped_rules_are_read_from_the_package():
    from mailproc.rules import load_rules, rule_files
    files = rule_files(None)
    assert set(files) == set(RULE_FILES)
    assert all(path == (RULES / name).resolve() for name, path in files.items())
    assert load_rules(None).priority.default == "P6"


def test_a_site_file_replaces_only_the_shipped_file_of_its_name(tmp_path):
    from mailproc.rules import load_rules, rule_files
    edited(tmp_path, "priority.toml", 'default = "P6"', 'default = "P5"')
    (tmp_path / "README.md").write_text("notes of the site, not a rule file\n")
    files = rule_files(tmp_path)
    assert files["priority.toml"] == tmp_path / "priority.toml"
    assert {name for name, path in files.items() if path.parent != tmp_path} == set(RULE_FILES) - {"priority.toml"}
    rules = load_rules(tmp_path)
    assert rules.priority.default == "P5"
    assert rules.workflow.label("pending_input") == "Pending Input"  # the shipped workflow.toml


def test_a_misnamed_site_file_is_an_error_not_silently_ignored(tmp_path):
    from mailproc.rules import load_rules
    (tmp_path / "prioirty.toml").write_text('default = "P5"\n')
    with pytest.raises(ConfigError) as err:
        load_rules(tmp_path)
    assert err.value.file == str(tmp_path / "prioirty.toml")
    assert "not a rule file mailproc reads; did you mean 'priority.toml'?" in str(err.value)


def test_an_error_in_a_site_file_names_that_file(tmp_path):
    from mailproc.rules import load_rules
    path = appended(tmp_path, "routing.toml", '\n[[rule]]\nname = "oops\n')
    with pytest.raises(ConfigError) as err:
        load_rules(tmp_path)
    assert err.value.file == str(path) and err.value.where == line_number(path, 'name = "oops')
