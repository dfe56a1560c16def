"""Classify: what a new case is, how urgent, and whose.

For mail that opens a case, this stage looks the sender up in the customer
directory and decides type, status, priority, team, need-by date and the
customer fields, from four rule files in `rules/` that the team edits
(classification.toml, priority.toml, routing.toml, workflow.toml; their
comments are the manual). Every field records the rule that set it in
`work.decided_by`, so "why is this P2?" always has an answer.

How the rules' conditions match a mail (one normalised text, phrases,
patterns) is `mailproc.matching`; reading the files with errors that name
the line is `mailproc.rules`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from mailproc import directory
from mailproc.config import MailboxConfig
from mailproc.matching import CONDITION_KEYS, Conditions, Facts, Pattern, body_text, conditions, normalise, pattern
from mailproc.models import CASE_TYPES, PRIORITIES, STATUSES
from mailproc.rules import TomlTable, check_names

# --- classification.toml ------------------------------------------------------------------------

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
            name=name, label=t.str("label", name), status=t.choice("status", STATUSES),
            team=t.str("team"), need_by_days=t.int("need_by_days"),
            need_by_release_for=frozenset(t.choice_list("need_by_release_for", PRIORITIES)))
    allowed = tuple(k for k in CONDITION_KEYS if k != "types")  # the type is what is being decided
    tables = root.tables("rule")
    check_names(tables)
    rules = []
    for t in tables:
        t.check_keys(CLASSIFICATION_RULE_KEYS + allowed, required=("name", "type"))
        rules.append(TypeRule(name=t.str("name"), type=t.choice("type", CASE_TYPES),
                              when=conditions(t, allowed), needs_triage=bool(t.bool("needs_triage")),
                              admin_task_type=t.str("admin_task_type")))
    return Classification(types=types, rules=tuple(rules),
                          default_type=root.choice("default_type", CASE_TYPES, "request"))


# --- priority.toml ------------------------------------------------------------------------------

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
        rules.append(PriorityRule(t.str("name"), t.choice("priority", PRIORITIES), conditions(t)))
    return PriorityRules(urgent=urgent, rules=tuple(rules), default=root.choice("default", PRIORITIES, "P6"))


# --- routing.toml -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Route:
    name: str
    team: str
    tags: tuple[str, ...]
    when: Conditions


@dataclass(frozen=True)
class Routing:
    rules: tuple[Route, ...]

    def match(self, facts: Facts) -> Route | None:
        return next((r for r in self.rules if r.when.matches(facts)), None)


def load_routing(path: Path) -> Routing:
    root = TomlTable.read(path)
    root.check_keys(("rule",))
    tables = root.tables("rule")
    check_names(tables)
    routes = []
    for t in tables:
        t.check_keys(("name", "team", "tags") + CONDITION_KEYS, required=("name", "team"))
        routes.append(Route(t.str("name"), t.str("team"), tuple(t.str_list("tags")), conditions(t)))
    return Routing(tuple(routes))


# --- workflow.toml ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Timer:
    """What happens to a case that sits in `status`: optional reminder, then a move."""
    status: str
    to: str
    after: timedelta | None  # from entering the status, or from the reminder if there is one;
    #                          None: set per case (hold N days)
    remind: timedelta | None = None  # mail the customer a reminder this long after entering
    note: bool = False  # add an internal note when the timer moves the case


@dataclass(frozen=True)
class Workflow:
    labels: dict[str, str]  # status -> label for people
    customer_reply: dict[str, str]  # status -> status a customer reply moves the case to
    timers: dict[str, Timer]
    releases: tuple[date, ...]  # sorted

    def label(self, status: str) -> str:
        return self.labels.get(status, status)

    def on_customer_reply(self, status: str) -> str | None:
        return self.customer_reply.get(status)

    def timer(self, status: str) -> Timer | None:
        return self.timers.get(status)

    def next_release(self, after: date) -> date | None:
        """The first release strictly after `after` (a release today is too late to promise)."""
        return next((d for d in self.releases if d > after), None)


def load_workflow(path: Path) -> Workflow:
    root = TomlTable.read(path)
    root.check_keys(("statuses", "customer_reply", "timers", "releases"), required=("statuses",))
    statuses = root.table("statuses")
    statuses.check_keys(STATUSES, required=STATUSES)
    labels = {s: statuses.str(s) for s in STATUSES}
    replies = {}
    if "customer_reply" in root.data:
        table = root.table("customer_reply")
        table.check_keys(STATUSES)
        replies = {s: table.choice(s, STATUSES) for s in table.data}
    timers = {}
    if "timers" in root.data:
        table = root.table("timers")
        table.check_keys(STATUSES)
        for status in table.data:
            t = table.table(status)
            t.check_keys(("to", "after", "remind", "note"), required=("to",))
            timers[status] = Timer(status=status, to=t.choice("to", STATUSES), after=t.duration("after"),
                                   remind=t.duration("remind"), note=bool(t.bool("note")))
    return Workflow(labels=labels, customer_reply=replies, timers=timers,
                    releases=tuple(sorted(root.date_list("releases"))))


# --- the stage ----------------------------------------------------------------------------------

def decide(rules: Any, facts: Facts, now: datetime, mailbox: MailboxConfig | None
           ) -> tuple[dict[str, Any], dict[str, str]]:
    """The new case's fields and, for each, the rule that set it. Pure: no database."""
    classification, priority_rules = rules.classification, rules.priority
    urgent = priority_rules.find_urgent(facts.both)
    facts.urgent = urgent is not None
    fields: dict[str, Any] = {"urgent": facts.urgent}
    by: dict[str, str] = {"urgent": "priority:urgent_phrases"}

    rule = classification.match(facts)
    if rule is None:
        facts.type, triage, source = classification.default_type, True, "classification:default"
        fields["admin_task_type"] = None
    else:
        facts.type, triage, source = rule.type, rule.needs_triage, f"classification:{rule.name}"
        fields["admin_task_type"] = rule.admin_task_type
    fields["type"], by["type"] = facts.type, source
    fields["needs_triage"], by["needs_triage"] = triage, source
    if fields["admin_task_type"]:
        by["admin_task_type"] = source
    defaults = classification.types[facts.type]
    type_source = f"classification:types.{facts.type}"
    fields["status"], by["status"] = defaults.status, type_source
    fields["tier"], by["tier"] = "triage", "classification:default"

    prio = priority_rules.match(facts)
    fields["priority"] = prio.priority if prio else priority_rules.default
    by["priority"] = f"priority:{prio.name}" if prio else "priority:default"

    route = rules.routing.match(facts)
    if route is not None:
        fields["team"], by["team"] = route.team, f"routing:{route.name}"
    elif mailbox is not None and mailbox.team:
        fields["team"], by["team"] = mailbox.team, f"mailbox:{mailbox.name}"
    else:
        fields["team"], by["team"] = defaults.team, type_source
    fields["tags"] = list(route.tags) if route else []
    if fields["tags"]:
        by["tags"] = by["team"]

    fields["need_by"], by["need_by"] = None, type_source
    if fields["priority"] in defaults.need_by_release_for:
        local_today = now.astimezone(rules.sla.calendar.tz).date()
        fields["need_by"] = rules.workflow.next_release(local_today)
        by["need_by"] = "workflow:releases"
    elif defaults.need_by_days is not None:
        fields["need_by"] = rules.sla.calendar.add_business_days(now, defaults.need_by_days)

    customer = facts.customer
    source = f"directory:{customer.match}" if customer is not None else "directory:unknown"
    fields["company"] = customer.company if customer is not None else None
    fields["partner"] = bool(customer is not None and customer.partner)
    fields["internal"] = bool(customer is not None and customer.internal)
    for name in ("company", "partner", "internal"):
        by[name] = source
    return fields, by


def run(work) -> None:
    """Fill work.fields / work.decided_by for mail that opens a new case."""
    if (work.screen is not None or work.case is not None or work.duplicate_of is not None
            or work.disposition is not None):
        return
    mail = work.mail
    sender = (mail.reply_to[0] if mail.reply_to else mail.from_addr or "").strip().lower()
    work.customer = directory.lookup(sender) if sender else None
    facts = Facts(subject=normalise(mail.subject or ""), body=body_text(mail.text or ""), sender=sender,
                  mailbox=work.mailbox.name if work.mailbox else None, customer=work.customer)
    fields, by = decide(work.ctx.rules, facts, work.now, work.mailbox)
    work.fields.update(fields)
    work.decided_by.update(by)
    if fields["urgent"]:
        work.note("classify", "priority:urgent_phrases")
    for name in ("type", "priority", "team"):
        work.note("classify", by[name])
