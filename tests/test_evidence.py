"""Classification by weighted evidence (issue 9, item 1): every rule that holds adds its
weight to its type; the most evidence wins; weak or split evidence keeps the default type
and flags the case for triage; the evidence (rule, what it found, weight) is recorded."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest

from mailproc.errors import ConfigError
from mailproc.rules.classification import load_classification
from mailproc.rules.matching import Facts, normalise
from mailproc.testing import REPO

SHIPPED = (REPO / "rules" / "classification.toml").read_text(encoding="utf-8")
TYPES = SHIPPED[:re.search(r"^\[(\[rule\]|evidence)\]", SHIPPED, re.M).start()]  # [types.*] only
NOW = datetime(2026, 11, 26, 10, 0, tzinfo=timezone.utc)

RULES = '''
[[rule]]
name = "bug-word"
type = "bug"
phrases = ["error"]
weight = 1.5

[[rule]]
name = "admin-cancel"
type = "admin"
phrases = ["cancel our subscription", "cancel"]
admin_task_type = "cancel"

[[rule]]
name = "admin-account"
type = "admin"
phrases = ["our account"]

[[rule]]
name = "request-how"
type = "request"
patterns = ['\\bhow (do|can) (i|we)\\b']
'''


def load(tmp_path, rules: str = RULES, evidence: str = ""):
    path = tmp_path / "classification.toml"
    path.write_text(TYPES + evidence + rules, encoding="utf-8")
    return load_classification(path)


def facts(subject: str, body: str = "") -> Facts:
    return Facts(subject=normalise(subject), body=normalise(body), sender="a@b.example", mailbox=None,
                 customer=None)


def test_the_type_with_the_most_evidence_wins_not_the_first_rule(tmp_path):
    c = load(tmp_path)
    d = c.weigh(facts("Please cancel our account", "We got an error once but that is not why."))
    assert d.scores == {"bug": 1.5, "admin": 2.0}
    assert (d.type, d.rule.name, d.why) == ("admin", "admin-cancel", "evidence")
    assert [str(e) for e in d.evidence] == ["bug-word (bug +1.5) 'error'", "admin-cancel (admin +1) 'cancel'",
                                            "admin-account (admin +1) 'our account'"]
    assert c.weigh(facts("An error when I save")).type == "bug"


def test_without_a_margin_equal_scores_go_to_the_earlier_rule(tmp_path):
    c = load(tmp_path, evidence="")
    d = c.weigh(facts("How do I cancel?"))
    assert d.scores == {"admin": 1.0, "request": 1.0} and (d.type, d.why) == ("admin", "evidence")


def test_split_and_weak_evidence_keep_the_default_type_for_triage(tmp_path):
    split = load(tmp_path, evidence="[evidence]\nmargin = 0.5\n\n").weigh(facts("How do I cancel?"))
    assert (split.type, split.rule, split.why) == (None, None, "split")
    c = load(tmp_path, evidence="[evidence]\nmin_score = 1.5\nmargin = 0.5\n\n")
    weak = c.weigh(facts("How can we export?"))
    assert (weak.type, weak.why) == (None, "weak") and weak.scores == {"request": 1.0}
    none = c.weigh(facts("Hello"))
    assert (none.type, none.why, none.evidence) == (None, "none", ())
    assert c.weigh(facts("Error 500, and another error")).type == "bug"  # 1.5: enough


def test_the_classify_stage_records_the_evidence_and_flags_split_mail(tmp_path):
    from dataclasses import replace

    from mailproc.rules import load_rules
    from mailproc.stages.classify import decide

    rules = load_rules()
    split = load(tmp_path, evidence="[evidence]\nmargin = 0.5\n\n")
    rules = replace(rules, classification=split)
    fields, by = decide(rules, facts("How do I cancel?"), NOW, None)
    assert (fields["type"], fields["needs_triage"], by["type"]) == ("request", True, "classification:split")
    assert by["evidence"] == "admin-cancel (admin +1) 'cancel'; request-how (request +1) 'how do i'"
    fields, by = decide(rules, facts("Please cancel our subscription"), NOW, None)
    assert (fields["type"], fields["admin_task_type"], fields["needs_triage"]) == ("admin", "cancel", False)
    assert by["type"] == "classification:admin-cancel"


@pytest.mark.parametrize("rules, evidence, words", [
    (RULES.replace("weight = 1.5", "weight = 0"), "", "weight: must be a number above 0"),
    (RULES.replace("weight = 1.5", 'weight = "heavy"'), "", "weight: must be a number above 0"),
    (RULES, "[evidence]\nmargin = -1\n\n", "margin: must be a number of at least 0"),
    (RULES, "[evidence]\nmargins = 1\n\n", "margins"),
])
def test_bad_weights_and_thresholds_name_the_key(tmp_path, rules, evidence, words):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, rules, evidence)
    assert words.split(":")[0] in str(info.value) and "classification.toml" in str(info.value)
