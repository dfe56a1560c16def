"""Classify: what a new case is, how urgent, and whose.

For mail that opens a case, this stage looks the sender up in the customer
directory and decides type, status, priority, team, need-by date and the
customer fields, from four rule files in `rules/` that the team edits
(classification.toml, priority.toml, routing.toml, workflow.toml; their
comments are the manual). Every field records the rule that set it in
`work.decided_by`, so "why is this P2?" always has an answer.

Reading each of those files into typed rules is `mailproc.rules` (one
module per file); how the rules' conditions match a mail (one normalised
text, phrases, patterns) is `mailproc.rules.matching`. This stage only
applies them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mailproc import directory, learned
from mailproc.config import MailboxConfig
from mailproc.rules import Rules
from mailproc.rules.classification import Evidence, TypeRule
from mailproc.rules.matching import SUBJECT_LIMIT, Conditions, Facts, body_text, normalise


def decide(rules: Rules, facts: Facts, now: datetime, mailbox: MailboxConfig | None,
           models: learned.InUse | None = None) -> tuple[dict[str, Any], dict[str, str]]:
    """The new case's fields and, for each, the rule that set it. Pure: no database.
    `models`: what agents' corrections taught (mailproc.learned), weighed beside the rules."""
    classification, priority_rules = rules.classification, rules.priority
    urgent = priority_rules.find_urgent(facts.both)
    facts.urgent = urgent is not None
    fields: dict[str, Any] = {"urgent": facts.urgent}
    by: dict[str, str] = {"urgent": "priority:urgent_phrases"}

    extra: tuple[Evidence, ...] = ()
    alone: tuple[Evidence, ...] = ()
    # the mail's words as the models read them, made once for both models
    words = learned.features(facts.subject, facts.body) if models is not None else []
    if models is not None and models.type is not None:
        guess, p, known = model_evidence(models.type, models.weight, facts, words)
        if known < learned.MIN_KNOWN:
            pass  # too little text the model knows: its guess would be noise
        elif p >= learned.MIN_PROBABILITY:
            extra = (guess,)
        elif p >= learned.MIN_PROBABILITY_ALONE:
            alone = (guess,)
    decision = classification.weigh(facts, extra, alone)
    rule = decision.rule
    if rule is None:
        # no evidence ("default"), too little ("weak") or two types too close ("split")
        source = "classification:default" if decision.why == "none" else f"classification:{decision.why}"
        facts.type, triage = classification.default_type, True
        fields["admin_task_type"] = None
    else:
        facts.type, triage, source = rule.type, rule.needs_triage, f"classification:{rule.name}"
        fields["admin_task_type"] = rule.admin_task_type
    if decision.evidence:
        by["evidence"] = "; ".join(map(str, decision.evidence))
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
    if models is not None and models.priority is not None:
        found = words + learned.facet_terms(learned.facets(facts.customer, "priority", facts.type))
        level, p = models.priority.predict(found)
        # A rule that read the text (a facet, or seed 004's urgent phrases) stands unless the
        # model is very sure; one that only read the directory is a weaker guess. Too little
        # text the model knows, and it says nothing.
        read_text = prio is not None and (bool(prio.when.text) or prio.when.urgent is not None)
        needed = models.priority_probability if read_text else \
            min(models.priority_probability, learned.DIRECTORY_ONLY_PROBABILITY)
        by["model"] = f"priority {level} ({p:.0%} sure; used from {needed:.0%})"
        if models.priority.known(found) >= learned.MIN_KNOWN and p >= needed and level != fields["priority"]:
            fields["priority"], by["priority"] = level, "model:priority"

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


def model_evidence(model: learned.Model, weight: float, facts: Facts, words: list[str]
                   ) -> tuple[Evidence, float, int]:
    """The type model's best guess as evidence weighing `weight` x its probability, the
    probability, and how many of the mail's features the model knows. How sure it must be
    to count is `decide`'s (learned.MIN_PROBABILITY…). `words`: learned.features of the mail."""
    found = words + learned.facet_terms(learned.facets(facts.customer, "type"))
    kind, p = model.predict(found)
    return (Evidence(TypeRule(name="model", type=kind, when=Conditions(), weight=round(weight * p, 2)),
                     f"{p:.0%} sure, {model.source}"), p, model.known(found))


def facts_of(mail, mailbox: str | None, customer=None) -> Facts:
    """What the rules read of a parsed mail: the sender (Reply-To first), its directory row
    (looked up here unless given), the normalised subject and body."""
    sender = (mail.reply_to[0] if mail.reply_to else mail.from_addr or "").strip().lower()
    if customer is None and sender:
        customer = directory.lookup(sender)
    return Facts(subject=normalise((mail.subject or "")[:SUBJECT_LIMIT]), body=body_text(mail.text or ""),
                 sender=sender, mailbox=mailbox, customer=customer)


def explain(rules: Rules, mail, now: datetime, mailbox: MailboxConfig | None,
            models: learned.InUse | None = None) -> dict[str, Any]:
    """What a new case opened by a parsed mail would get, and the rule behind each field,
    without storing anything (`mailproc classify FILE`): for writing and testing rules."""
    facts = facts_of(mail, mailbox.name if mailbox else None)
    fields, by = decide(rules, facts, now, mailbox, models)
    customer = facts.customer
    return {"subject": mail.subject or "", "from": facts.sender,
            "customer": None if customer is None else {
                "match": customer.match, "company": customer.company, "plan": customer.plan,
                "licenses": customer.licenses, "high_value": customer.high_value, "partner": customer.partner,
                "internal": customer.internal},
            "fields": {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in fields.items()},
            "decided_by": by}


def prepare(rules: Rules, learn) -> None:
    """Build, at start-up, what classifying builds once: the rules' text indexes and the
    starter model. Done lazily, the first mail of every run would carry that cost (a
    quarter of a second), and a process killed then would find that mail in flight again."""
    _ = rules.classification.index, rules.priority.index, rules.priority.urgent_index
    if learn.starter and learn.weight > 0:
        learned.starter_models()


def run(work) -> None:
    """Fill work.fields / work.decided_by for mail that opens a new case."""
    if (work.screen is not None or work.case is not None or work.duplicate_of is not None
            or work.disposition is not None):
        return
    facts = facts_of(work.mail, work.mailbox.name if work.mailbox else None)
    work.customer = facts.customer
    learn = work.ctx.config.learn
    models = learned.in_use(learn.weight, learn.priority_probability, learn.starter)
    fields, by = decide(work.ctx.rules, facts, work.now, work.mailbox, models)
    work.fields.update(fields)
    work.decided_by.update(by)
    if fields["urgent"]:
        work.note("classify", "priority:urgent_phrases")
    for name in ("type", "priority", "team"):
        work.note("classify", by[name])
