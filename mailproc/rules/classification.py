"""rules/classification.toml: what type a new case is, and what each type starts with.

`[types.NAME]` gives each case type its label, first status, team and need-by
date; `[[rule]]` tables, tried in order, pick the type from the mail (the
conditions are `mailproc.rules.matching`'s). The classify stage applies them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mailproc.models import CASE_TYPES, PRIORITIES, STATUSES
from mailproc.rules.matching import CONDITION_KEYS, Conditions, Facts, conditions
from mailproc.rules.reader import TomlTable, check_names


@dataclass(frozen=True)
class TypeDefaults:
    """What a new case of one type starts with (seed 000's case creation guidelines)."""
    name: str
    label: str
    status: str
    team: str
    need_by_days: int | None  # business days from arrival
    need_by_release_for: frozenset[str]  # priorities whose need-by is the next release


@dataclass(frozen=True)
class TypeRule:
    name: str
    type: str
    when: Conditions
    needs_triage: bool = False
    admin_task_type: str | None = None


@dataclass(frozen=True)
class Classification:
    types: dict[str, TypeDefaults]
    rules: tuple[TypeRule, ...]
    default_type: str

    def match(self, facts: Facts) -> TypeRule | None:
        return next((r for r in self.rules if r.when.matches(facts)), None)


TYPE_KEYS = ("label", "status", "team", "need_by_days", "need_by_release_for")
CLASSIFICATION_RULE_KEYS = ("name", "type", "needs_triage", "admin_task_type")


def load_classification(path: Path) -> Classification:
    root = TomlTable.read(path)
    root.check_keys(("default_type", "types", "rule"), required=("types",))
    types_table = root.table("types")
    types_table.check_keys(CASE_TYPES, required=CASE_TYPES)
    types = {}
    for name in CASE_TYPES:
        t = types_table.table(name)
        t.check_keys(TYPE_KEYS, required=("status", "team"))
        types[name] = TypeDefaults(
            name=name, label=t.str("label", name), status=t.need_choice("status", STATUSES),
            team=t.need_str("team"), need_by_days=t.int("need_by_days"),
            need_by_release_for=frozenset(t.choice_list("need_by_release_for", PRIORITIES)))
    allowed = tuple(k for k in CONDITION_KEYS if k != "types")  # the type is what is being decided
    tables = root.tables("rule")
    check_names(tables)
    rules = []
    for t in tables:
        t.check_keys(CLASSIFICATION_RULE_KEYS + allowed, required=("name", "type"))
        rules.append(TypeRule(name=t.need_str("name"), type=t.need_choice("type", CASE_TYPES),
                              when=conditions(t, allowed), needs_triage=bool(t.bool("needs_triage")),
                              admin_task_type=t.str("admin_task_type")))
    return Classification(types=types, rules=tuple(rules),
                          default_type=root.choice("default_type", CASE_TYPES, "request"))
