"""rules/priority.toml: how urgent a new case is.

`urgent_phrases` are the "huge impact" phrases (seed 004) that mark a mail
urgent; `[[rule]]` tables, tried in order, give the priority; `default` is
for mail no rule matches.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mailproc.models import PRIORITIES
from mailproc.rules.matching import CONDITION_KEYS, Conditions, Facts, Pattern, conditions, pattern
from mailproc.rules.reader import TomlTable, check_names


@dataclass(frozen=True)
class PriorityRule:
    name: str
    priority: str
    when: Conditions


@dataclass(frozen=True)
class PriorityRules:
    urgent: tuple[Pattern, ...]  # seed 004's "huge impact" phrases
    rules: tuple[PriorityRule, ...]
    default: str

    def find_urgent(self, text: str) -> str | None:
        """The urgent pattern found in normalised `text`, or None."""
        return next((p.source for p in self.urgent if p.search(text)), None)

    def match(self, facts: Facts) -> PriorityRule | None:
        return next((r for r in self.rules if r.when.matches(facts)), None)


def load_priority(path: Path) -> PriorityRules:
    root = TomlTable.read(path)
    root.check_keys(("urgent_phrases", "default", "rule"))
    urgent = tuple(pattern(p, root, "urgent_phrases") for p in root.str_list("urgent_phrases"))
    tables = root.tables("rule")
    check_names(tables)
    rules = []
    for t in tables:
        t.check_keys(("name", "priority") + CONDITION_KEYS, required=("name", "priority"))
        rules.append(PriorityRule(t.need_str("name"), t.need_choice("priority", PRIORITIES), conditions(t)))
    return PriorityRules(urgent=urgent, rules=tuple(rules), default=root.choice("default", PRIORITIES, "P6"))
