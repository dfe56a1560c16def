"""Agents' corrections of a case's type or priority, kept as training examples.

When an agent changes a case's type or priority by command (`[type=bug]`,
`[priority=P2]`), the change is kept in the `correction` table beside the
event that `cases.set_field` writes, in the same transaction, with:

- the rule that had set the old value: the rule of the latest event that set
  the field (the classifier's `classification:<rule>` / `priority:<rule>`
  when the case opened, `command:<verb>` after an agent's earlier change),
  else the case's `decided_by`;
- `classifier`: whether that old value was the rules' decision. Every change
  is kept, but only a change of the rules' value says the rules were wrong;
  a second correction (an agent changing an agent's value) is kept with
  `classifier` false, so the newest row of a case and field still holds the
  label the agents settled on;
- what the classifier read: the case's subject and the first TEXT_LIMIT
  characters of its description (the mail's text), so a model can later be
  trained on the corrections without the mails.

Reading the corrections back as figures is `mailproc.classify_report`.
"""

from __future__ import annotations

from datetime import datetime

from mailproc import db
from mailproc.models import Case, Correction, Message, utc

FIELDS = ("type", "priority")
TEXT_LIMIT = 4000  # characters of the description kept: what the rules read of a long mail
COMMAND_PREFIX = "command:"

# The rule of the newest event that set the field: what decided the value the agent replaces.
_LAST_RULE = ('SELECT "rule" FROM "event" WHERE "case_id" = ? AND "kind" = \'field\' AND "field" = ?'
              ' ORDER BY "at" DESC, "id" DESC LIMIT 1')


def text_of(case: Case) -> str:
    """What the classifier read of the case: its subject, a blank line, the start of its description."""
    return f"{case.summary or ''}\n\n{(case.description or '')[:TEXT_LIMIT]}"


def deciding_rule(case: Case, field: str) -> str | None:
    """The rule (or `command:<verb>`) that set the field's current value."""
    row = db.query_one(_LAST_RULE, [case.id, field])
    if row is not None and row[0]:
        return row[0]
    return (case.decided_by or {}).get(field)


def by_classifier(rule: str | None) -> bool:
    """Whether a value set by `rule` was the rules' decision rather than an agent's."""
    return not (rule or "").startswith(COMMAND_PREFIX)


def record(case: Case, field: str, old: str | None, new: str, *, actor: str, now: datetime,
           message: Message | int | None) -> int:
    """Keep one correction of `field` (old -> new). Call it before the field's new event
    is written (it reads the rule of the value replaced) and in the command's transaction."""
    if field not in FIELDS:
        raise ValueError(f"corrections are kept for {', '.join(FIELDS)}, not {field!r}")
    rule = deciding_rule(case, field)
    return db.insert(Correction, case=case.id, field=field, old=old, new=new, actor=actor, at=utc(now), rule=rule,
                     classifier=by_classifier(rule), text=text_of(case), message=message)
