"""rules/priority.toml: how urgent a new case is.

`urgent_phrases` are the "huge impact" phrases (seed 004) that mark a mail
urgent; `[[rule]]` tables, tried in order, give the priority; `default` is
for mail no rule matches.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from mailproc.models import PRIORITIES
from mailproc.rules.matching import CONDITION_KEYS, Conditions, Facts, Pattern, TextIndex, conditions, pattern
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

    @cached_property
    def urgent_index(self) -> TextIndex:
        return TextIndex([p.keys() for p in self.urgent])

    @cached_property
    def index(self) -> TextIndex:
        return TextIndex([r.when.keys() for r in self.rules])

    def find_urgent(self, text: str) -> str | None:
        """The urgent pattern found in normalised `text`, or None."""
        urgent = self.urgent
        return next((urgent[i].source for i in self.urgent_index.candidates(text) if urgent[i].search(text)), None)

    def match(self, facts: Facts) -> PriorityRule | None:
        rules = self.rules
        return next((rules[i] for i in self.index.candidates(facts.both) if rules[i].when.matches(facts)), None)


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
