"""The labelled set of tests/labelled/ is what its README promises: every mail labelled
once with valid values, a held-out part of at least 150, four languages, the four types
about even, every priority, and a directory that imports."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

from mailproc import directory
from mailproc.models import CASE_TYPES, PRIORITIES
from mailproc.parse import parse

SET = Path(__file__).parent / "labelled"


def rows() -> list[dict]:
    found = []
    for path in sorted(SET.glob("labels-*.csv")):
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            assert reader.fieldnames == ["file", "type", "priority", "language", "why"], path
            found.extend(reader)
    return found


def test_every_mail_is_labelled_once_with_valid_values():
    labelled = [r["file"] for r in rows()]
    on_disk = sorted(str(p.relative_to(SET)) for p in SET.glob("*/*.eml"))
    assert sorted(labelled) == on_disk and len(set(labelled)) == len(labelled)
    for r in rows():
        priorities = r["priority"].split()
        assert r["type"] in CASE_TYPES and priorities and set(priorities) <= set(PRIORITIES), r
        assert r["language"] in ("en", "pt-BR", "pt-PT", "es") and r["why"].strip(), r


def test_the_parts_languages_types_and_priorities_are_as_the_readme_says():
    labels = rows()
    assert len(labels) >= 400
    assert sum(r["file"].startswith("heldout/") for r in labels) >= 150
    languages = Counter(r["language"] for r in labels)
    types = Counter(r["type"] for r in labels)
    assert len(languages) == 4 and min(languages.values()) >= 0.2 * len(labels)
    assert min(types.values()) >= 0.2 * len(labels)
    assert {r["priority"].split()[0] for r in labels} == set(PRIORITIES)


def test_every_mail_parses_with_a_sender_a_subject_and_a_text(tmp_path):
    for path in sorted(SET.glob("*/*.eml")):
        mail = parse(path.read_bytes())
        assert mail.from_addr and mail.subject and (mail.text or "").strip(), path
        assert not [d for d in mail.defects if "parse failed" in d], (path, mail.defects)


def test_the_directory_imports():
    rows = directory.read_csv(SET / "directory.csv")
    assert {r["plan"] for r in rows} == {"free", "trial", "paid", "enterprise"}
    assert any(r["high_value"] for r in rows) and any(r["partner"] for r in rows) and any(r["internal"] for r in rows)


# Floors on the held-out part, just under what mailproc reaches there (bench/README.md),
# as shipped (the rules and the starter model) and with the rules alone. Issue 9's targets
# are 90 % type and 85 % priority. Raise them as classification improves; never tune rules
# or the model on the held-out mails.
FLOORS = {"shipped": (0.93, 0.85), "rules": (0.83, 0.77)}


@pytest.mark.parametrize("how", sorted(FLOORS))
def test_classification_stays_above_the_floors_on_the_held_out_part(database, how):
    from datetime import datetime, timezone

    from mailproc import learned
    from mailproc.config import LearnConfig
    from mailproc.rules import load_rules
    from mailproc.stages.classify import decide, facts_of

    directory.import_csv(SET / "directory.csv")
    rules = load_rules()
    cfg, shipped = LearnConfig(), learned.starter_models()
    models = learned.InUse(shipped["type"], shipped["priority"], cfg.weight, cfg.priority_probability) \
        if how == "shipped" else None
    now = datetime(2026, 11, 26, 10, 0, tzinfo=timezone.utc)
    held = [r for r in rows() if r["file"].startswith("heldout/")]
    types = priorities = 0
    for r in held:
        mail = parse((SET / r["file"]).read_bytes())
        box = "billing" if any("billing@" in a.lower() for a in mail.to) else "support"
        fields, _ = decide(rules, facts_of(mail, box), now, None, models)
        types += fields["type"] == r["type"]
        priorities += fields["priority"] in r["priority"].split()
    type_floor, priority_floor = FLOORS[how]
    assert types / len(held) >= type_floor, f"type {types}/{len(held)}"
    assert priorities / len(held) >= priority_floor, f"priority {priorities}/{len(held)}"
