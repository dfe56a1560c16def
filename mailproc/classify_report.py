"""`mailproc classify --report`: how often agents corrected the rules' type and priority.

Two kinds of figures, over the window (now - days, now]:

- changes: every correction agents made in the window (mailproc.corrections),
  counted per field and old -> new value; `of_rules` counts those that replaced
  the rules' value rather than another agent's;
- per value and per rule, a cohort: the cases whose type (priority) a rule set
  when they opened in the window, and how many of those cases agents have
  corrected since (a correction of that very value, naming that rule). Both
  counts are of the same cases, so the rate is a true share. The cases a rule
  decided are read from the `event` rows `cases.open_case` writes (field, new
  value, rule), not from `cases.decided_by`, which is JSON text that SQL cannot
  group on portably; the event log holds the same rule names.

A correction of a case that opened before the window counts among the
changes but not in any cohort: the rule's rate is over its own window's cases.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from mailproc import db
from mailproc.corrections import COMMAND_PREFIX, FIELDS
from mailproc.models import utc

_CHANGES = ('SELECT "old", "new", COUNT(*), SUM(CASE WHEN "classifier" = ? THEN 1 ELSE 0 END) FROM "correction"'
            ' WHERE "field" = ? AND "at" > ? AND "at" <= ? GROUP BY "old", "new"')
_COHORT = ('SELECT e."new", e."rule", COUNT(DISTINCT e."case_id"), COUNT(DISTINCT c."case_id") FROM "event" e'
           ' LEFT JOIN "correction" c ON c."case_id" = e."case_id" AND c."field" = e."field" AND c."old" = e."new"'
           ' AND c."rule" = e."rule" AND c."classifier" = ? AND c."at" <= ?'
           ' WHERE e."kind" = \'field\' AND e."field" = ? AND e."at" > ? AND e."at" <= ?'
           ' AND e."rule" IS NOT NULL AND e."rule" NOT LIKE ? GROUP BY e."new", e."rule"')


def _rate(corrected: int, decided: int) -> float | None:
    return round(corrected / decided, 4) if decided else None


def report(now: datetime, days: int = 30) -> dict[str, Any]:
    """The figures, JSON-able: {"since", "until", "days", "fields": {field: {"corrections",
    "of_rules", "changes": [{old, new, count, of_rules}], "values": [{value, decided,
    corrected, rate}]}}, "rules": [{field, rule, decided, corrected, rate, corrections}]}."""
    if days < 1:
        raise ValueError(f"--days must be 1 or more, not {days}")
    until, since = utc(now), utc(now - timedelta(days=days))
    fields: dict[str, Any] = {}
    rules: dict[tuple[str, str], dict[str, Any]] = {}
    for field in FIELDS:
        changes = [{"old": old, "new": new, "count": count, "of_rules": int(of_rules or 0)}
                   for old, new, count, of_rules in db.query_all(_CHANGES, [True, field, since, until])]
        changes.sort(key=lambda c: (-c["count"], c["old"] or "", c["new"]))
        values: dict[str, dict[str, Any]] = {}
        for value, rule, decided, corrected in db.query_all(
                _COHORT, [True, until, field, since, until, COMMAND_PREFIX + "%"]):
            row = values.setdefault(value, {"value": value, "decided": 0, "corrected": 0})
            row["decided"] += decided
            row["corrected"] += corrected
            rules[(field, rule)] = {"field": field, "rule": rule, "decided": decided, "corrected": corrected,
                                    "corrections": 0}
        fields[field] = {"corrections": sum(c["count"] for c in changes),
                         "of_rules": sum(c["of_rules"] for c in changes), "changes": changes,
                         "values": sorted(({**v, "rate": _rate(v["corrected"], v["decided"])}
                                           for v in values.values()), key=lambda v: v["value"])}
    for field, rule, count in db.query_all(
            'SELECT "field", "rule", COUNT(*) FROM "correction" WHERE "classifier" = ? AND "at" > ? AND "at" <= ?'
            ' AND "rule" IS NOT NULL GROUP BY "field", "rule"', [True, since, until]):
        rules.setdefault((field, rule), {"field": field, "rule": rule, "decided": 0, "corrected": 0,
                                         "corrections": 0})["corrections"] = count
    listed = [{**r, "rate": _rate(r["corrected"], r["decided"])} for r in rules.values()]
    listed.sort(key=lambda r: (r["field"], -r["corrections"], -(r["rate"] or 0), r["rule"]))
    return {"since": since.isoformat(), "until": until.isoformat(), "days": days, "fields": fields,
            "rules": listed}


def _percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.0f} %"


def render(data: dict[str, Any]) -> str:
    """The report as text for a terminal."""
    lines = [f"Corrections of type and priority by agents, last {data['days']} days "
             f"({data['since'][:10]} to {data['until'][:10]})"]
    for field, figures in data["fields"].items():
        lines += ["", f"{field}: {figures['corrections']} correction(s), {figures['of_rules']} of the rules' value"]
        for c in figures["changes"]:
            lines.append(f"  {c['old'] or '(none)':<12} -> {c['new']:<12} {c['count']:>5}")
        if figures["values"]:
            lines.append(f"  {'opened as':<12}    {'cases':>12} {'corrected':>10} {'rate':>6}")
        for v in figures["values"]:
            lines.append(f"  {v['value']:<12}    {v['decided']:>12} {v['corrected']:>10} {_percent(v['rate']):>6}")
    lines += ["", "rules (cases opened in the window / corrected since / corrections in the window):"]
    if not data["rules"]:
        lines.append("  none")
    for r in data["rules"]:
        lines.append(f"  {r['field']:<9} {r['rule']:<44} {r['decided']:>5} {r['corrected']:>5} "
                     f"{_percent(r['rate']):>6} {r['corrections']:>5}")
    return "\n".join(lines) + "\n"
