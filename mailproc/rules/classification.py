"""rules/classification.toml: what type a new case is, and what each type starts with.

`[types.NAME]` gives each case type its label, first status, team and need-by
date. `[[rule]]` tables are evidence (the conditions are
`mailproc.rules.matching`'s): every rule that holds adds its `weight` to its
type, and the type with the most evidence wins — not the first rule that
holds, so one stray word cannot outvote what the rest of the mail says. A
mail whose best type has less than `[evidence] min_score`, or leads the next
by less than `[evidence] margin` (a split decision), keeps the default type
and is flagged for triage. Equal scores with no margin asked go to the type
whose rule comes first. The classify stage applies it and records the
evidence (rule, what it found, weight) on the case.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from mailproc.models import CASE_TYPES, PRIORITIES, STATUSES
from mailproc.rules.matching import CONDITION_KEYS, Conditions, Facts, TextIndex, conditions
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
    weight: float = 1.0


@dataclass(frozen=True)
class Evidence:
    rule: TypeRule
    found: str  # the phrase or pattern match; "" for a rule without text conditions

    def __str__(self) -> str:
        seen = f" {self.found!r}" if self.found else ""
        return f"{self.rule.name} ({self.rule.type} +{self.rule.weight:g}){seen}"


@dataclass(frozen=True)
class Decision:
    """The type the evidence gives (None: weak or split, or no evidence at all), the rule
    that speaks for it (the first of that type: its flags go on the case), every piece of
    evidence in rule order, and the score of each type that had any."""
    type: str | None
    rule: TypeRule | None
    evidence: tuple[Evidence, ...]
    scores: dict[str, float]
    why: str  # "evidence", "none", "weak" or "split"


@dataclass(frozen=True)
class Classification:
    types: dict[str, TypeDefaults]
    rules: tuple[TypeRule, ...]
    default_type: str
    min_score: float = 0.0
    margin: float = 0.0

    def match(self, facts: Facts) -> TypeRule | None:
        """The rule that speaks for the decided type (None: no type decided)."""
        return self.weigh(facts).rule

    @cached_property
    def index(self) -> TextIndex:
        return TextIndex([r.when.keys() for r in self.rules])

    def weigh(self, facts: Facts, extra: tuple[Evidence, ...] = (), alone: tuple[Evidence, ...] = ()) -> Decision:
        """`extra`: evidence from outside the rules (the model learnt from corrections);
        `alone`: evidence that counts only when no rule found any (a less sure guess)."""
        rules = self.rules
        evidence = tuple(Evidence(r, hit) for i in self.index.candidates(facts.both)
                         if (hit := (r := rules[i]).when.found(facts)) is not None)
        evidence = evidence + extra if evidence else extra or alone
        if not evidence:
            return Decision(None, None, evidence, {}, "none")
        scores: dict[str, float] = {}
        for e in evidence:  # insertion order: a type's first evidence
            scores[e.rule.type] = scores.get(e.rule.type, 0.0) + e.rule.weight
        ranked = sorted(scores, key=lambda t: -scores[t])  # stable: equal scores keep rule order
        best = ranked[0]
        runner_up = scores[ranked[1]] if len(ranked) > 1 else 0.0
        if scores[best] < self.min_score:
            return Decision(None, None, evidence, scores, "weak")
        if len(ranked) > 1 and scores[best] - runner_up < self.margin:
            return Decision(None, None, evidence, scores, "split")
        rule = next(e.rule for e in evidence if e.rule.type == best)
        return Decision(best, rule, evidence, scores, "evidence")


TYPE_KEYS = ("label", "status", "team", "need_by_days", "need_by_release_for")
CLASSIFICATION_RULE_KEYS = ("name", "type", "needs_triage", "admin_task_type", "weight")
EVIDENCE_KEYS = ("min_score", "margin")


def load_classification(path: Path) -> Classification:
    root = TomlTable.read(path)
    root.check_keys(("default_type", "types", "rule", "evidence"), required=("types",))
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
                              admin_task_type=t.str("admin_task_type"),
                              weight=t.number("weight", 1.0, above=True)))
    evidence = root.table("evidence") if "evidence" in root.data else None
    if evidence is not None:
        evidence.check_keys(EVIDENCE_KEYS)
    return Classification(types=types, rules=tuple(rules),
                          default_type=root.choice("default_type", CASE_TYPES, "request"),
                          min_score=evidence.number("min_score", 0.0) if evidence else 0.0,
                          margin=evidence.number("margin", 0.0) if evidence else 0.0)
