"""`mailproc status`: what an operator must know at a glance, read from the database alone.

How each mailbox's last poll went (the daemon records it with `record_poll`),
the outbox's depth and oldest mail, failed messages, the due work by kind,
cases whose tier SLA is red and engineering holds flagged as too long. No
mailbox or SMTP server is contacted, so the report works while they are down,
which is when it is most needed.

Every query is an aggregate over an index or a read of a small table, never
a pass over all cases: the outbox and messages by their `state` index, the
due work through the partial index of pending rows, red SLAs through
`cases.sla_due` (set only while the clock runs), flagged holds through the
partial index `cases_long_hold` (flagged cases only). The lists of cases are
capped at `LIST_LIMIT`, with the full count beside them.
"""

from __future__ import annotations

from datetime import datetime

from mailproc import db, views
from mailproc.models import iso, stored, utc

LIST_LIMIT = 50  # cases listed per section; the count says how many there are in all
STOPPED = ("resolved", "closed")  # statuses whose SLA clock no longer runs

_UPSERT_OK = ('INSERT INTO "mailbox_state" ("mailbox", "last_poll_at", "last_ok_at") VALUES (?, ?, ?)'
              ' ON CONFLICT ("mailbox") DO UPDATE SET "last_poll_at" = excluded."last_poll_at",'
              ' "last_ok_at" = excluded."last_ok_at"')
_UPSERT_ERROR = ('INSERT INTO "mailbox_state" ("mailbox", "last_poll_at", "last_error", "last_error_at")'
                 ' VALUES (?, ?, ?, ?) ON CONFLICT ("mailbox") DO UPDATE SET'
                 ' "last_poll_at" = excluded."last_poll_at", "last_error" = excluded."last_error",'
                 ' "last_error_at" = excluded."last_error_at"')

MAILBOXES = 'SELECT "mailbox", "last_poll_at", "last_ok_at", "last_error", "last_error_at" FROM "mailbox_state"'
OUTBOX = ('SELECT "state", COUNT(*), MIN("created_at") FROM "outbox"'
          ' WHERE "state" IN (\'queued\', \'sending\', \'failed\') GROUP BY "state"')
MESSAGES = ('SELECT "state", COUNT(*) FROM "message" WHERE "state" IN (\'pending\', \'failed\')'
            ' GROUP BY "state"')
DUE = ('SELECT "kind", COUNT(*), MIN("due_at"), SUM(CASE WHEN "due_at" <= ? THEN 1 ELSE 0 END),'
       ' SUM(CASE WHEN "attempts" > 0 THEN 1 ELSE 0 END) FROM "due" WHERE "done_at" IS NULL GROUP BY "kind"')
_RED_WHERE = ' WHERE c."sla_due" <= ? AND c."status" NOT IN (?, ?)'
RED_COUNT = 'SELECT COUNT(*) FROM "cases" c' + _RED_WHERE
RED = ('SELECT c."id", c."summary", c."tier", c."priority", c."status", c."sla_due", p."handle", p."address"'
       ' FROM "cases" c LEFT JOIN "person" p ON p."id" = c."assignee_id"' + _RED_WHERE
       + ' ORDER BY c."sla_due", c."id" LIMIT ?')
# COALESCE keeps SQLite from reading all cases of those statuses through `cases_open`
# (status, type, priority) instead of the few flagged ones through `cases_long_hold`.
_HOLD_WHERE = ' WHERE c."long_hold_at" IS NOT NULL AND COALESCE(c."status", \'\') IN ({marks})'
HOLD_COUNT = 'SELECT COUNT(*) FROM "cases" c' + _HOLD_WHERE
HOLDS = ('SELECT c."id", c."summary", c."tier", c."status", c."status_changed_at", c."long_hold_at", p."handle",'
         ' p."address" FROM "cases" c LEFT JOIN "person" p ON p."id" = c."assignee_id"' + _HOLD_WHERE
         + ' ORDER BY c."status_changed_at", c."id" LIMIT ?')


def record_poll(mailbox: str, now: datetime, error: str | None) -> None:
    """Note one poll of `mailbox`: fine (`error` None) or failed with `error`.

    A good poll keeps the last error and its time: the report shows a mailbox
    as failing only while its last error is newer than its last good poll, and
    an operator still sees what the last trouble was and when it ended."""
    at = utc(now)
    if error is None:
        db.execute(_UPSERT_OK, [mailbox, at, at])
    else:
        db.execute(_UPSERT_ERROR, [mailbox, at, error[:2000], at])


def _hours(since: datetime | None, now: datetime) -> float | None:
    return None if since is None else round((now - since).total_seconds() / 3600, 2)


def _person(handle: str | None, address: str | None) -> str | None:
    return handle or address


def report(source, now: datetime) -> dict:
    """The status as a dict (the `--json` output). `source` is a Context, or a Config
    (the rules are then read from its rules directory: holds need their statuses)."""
    config = getattr(source, "config", source)
    rules = getattr(source, "rules", None)
    if rules is None:
        from mailproc.rules import load_rules
        rules = load_rules(config.rules_dir, config.timezone)
    data = {"now": now.isoformat(), "mailboxes": _mailboxes(config, now), "outbox": _outbox(now),
            "messages": _messages(), "due": _due(now), "red_slas": _red(now),
            "holds": _holds(tuple(rules.workflow.long_holds.statuses), now)}
    data["attention"] = attention(data)
    return data


def _mailboxes(config, now: datetime) -> list[dict]:
    known = {row[0]: row for row in db.query_all(MAILBOXES, [])}
    result = []
    for box in config.mailboxes:
        _, polled, ok, error, error_at = known.get(box.name, (box.name, None, None, None, None))
        polled, ok, error_at = stored(polled), stored(ok), stored(error_at)
        failing = error_at is not None and (ok is None or error_at >= ok)
        result.append({"name": box.name, "address": box.address, "folder": box.folder,
                       "last_poll_at": iso(polled), "last_ok_at": iso(ok), "last_error": error,
                       "last_error_at": iso(error_at), "failing": failing,
                       "hours_since_ok": _hours(ok, now)})
    return result


def _outbox(now: datetime) -> dict:
    rows = {state: (count, stored(oldest)) for state, count, oldest in db.query_all(OUTBOX, [])}
    oldest = rows.get("queued", (0, None))[1]
    return {"queued": rows.get("queued", (0, None))[0], "sending": rows.get("sending", (0, None))[0],
            "failed": rows.get("failed", (0, None))[0], "oldest_queued_at": iso(oldest),
            "oldest_queued_hours": _hours(oldest, now)}


def _messages() -> dict:
    rows = dict(db.query_all(MESSAGES, []))
    return {"failed": rows.get("failed", 0), "pending": rows.get("pending", 0)}


def _due(now: datetime) -> dict:
    kinds = {}
    for kind, count, first, overdue, failing in db.query_all(DUE, [utc(now)]):
        kinds[kind] = {"pending": count, "next_due_at": iso(stored(first)), "overdue": int(overdue or 0),
                       "failing": int(failing or 0)}
    firsts = [v["next_due_at"] for v in kinds.values() if v["next_due_at"]]
    return {"pending": sum(v["pending"] for v in kinds.values()),
            "overdue": sum(v["overdue"] for v in kinds.values()),
            "failing": sum(v["failing"] for v in kinds.values()),
            "next_due_at": min(firsts, key=datetime.fromisoformat) if firsts else None,
            "kinds": dict(sorted(kinds.items()))}


def _red(now: datetime) -> dict:
    params = [utc(now), *STOPPED]
    (count,) = db.query_one(RED_COUNT, params)
    cases = []
    for number, summary, tier, priority, status, due, handle, address in db.query_all(RED, params + [LIST_LIMIT]):
        due = stored(due)
        cases.append({"number": number, "summary": summary, "tier": tier, "priority": priority, "status": status,
                      "assignee": _person(handle, address), "sla_due": iso(due),
                      "hours_overdue": _hours(due, now)})
    return {"count": count, "cases": cases}


def _holds(statuses: tuple[str, ...], now: datetime) -> dict:
    if not statuses:
        return {"count": 0, "cases": []}
    where = ", ".join("?" * len(statuses))
    (count,) = db.query_one(HOLD_COUNT.format(marks=where), list(statuses))
    cases = []
    for number, summary, tier, status, since, flagged, handle, address in db.query_all(
            HOLDS.format(marks=where), [*statuses, LIST_LIMIT]):
        since = stored(since)
        cases.append({"number": number, "summary": summary, "tier": tier, "status": status,
                      "assignee": _person(handle, address), "held_since": iso(since),
                      "flagged_at": iso(stored(flagged)),
                      "days_held": round((now - since).total_seconds() / 86400, 1)})
    return {"count": count, "cases": cases}


def attention(data: dict) -> list[str]:
    """One line per thing an operator should look at; empty when all is well."""
    lines = [f"mailbox {b['name']}: last poll failed: {b['last_error']}" for b in data["mailboxes"] if b["failing"]]
    lines += [f"mailbox {b['name']}: never polled" for b in data["mailboxes"] if b["last_poll_at"] is None]
    if data["outbox"]["failed"]:
        lines.append(f"outbox: {data['outbox']['failed']} mail(s) failed")
    if data["messages"]["failed"]:
        lines.append(f"messages: {data['messages']['failed']} failed (mailproc messages list --state failed)")
    if data["due"]["failing"]:
        lines.append(f"due work: {data['due']['failing']} item(s) raised and are being retried")
    if data["red_slas"]["count"]:
        lines.append(f"SLA: {data['red_slas']['count']} case(s) red")
    if data["holds"]["count"]:
        lines.append(f"holds: {data['holds']['count']} engineering hold(s) flagged")
    return lines


def _ago(hours: float | None) -> str:
    if hours is None:
        return ""
    if abs(hours) < 1:
        return f"{round(hours * 60)}m"
    return f"{hours:.1f}h" if abs(hours) < 48 else f"{hours / 24:.1f}d"


def render(data: dict) -> str:
    """The report as terminal text; case and error text passes through `views.shown`."""
    s = views.shown
    out = [f"mailproc status at {data['now']}", "", "Mailboxes:"]
    for b in data["mailboxes"]:
        state = "FAILING" if b["failing"] else "ok" if b["last_ok_at"] else "never polled"
        line = f"  {s(b['name']):<14} {s(b['address']):<30} {state:<13} last poll {b['last_poll_at'] or '-'}"
        if b["last_ok_at"]:
            line += f", last ok {b['last_ok_at']} ({_ago(b['hours_since_ok'])} ago)"
        out.append(line)
        if b["last_error"]:
            out.append(f"  {'':<14} last error {b['last_error_at']}: {s(b['last_error'])[:200]}")
    if not data["mailboxes"]:
        out.append("  none configured")
    o = data["outbox"]
    oldest = f", oldest queued {o['oldest_queued_at']} ({_ago(o['oldest_queued_hours'])} ago)" if o["queued"] else ""
    out += ["", f"Outbox: {o['queued']} queued, {o['sending']} sending, {o['failed']} failed{oldest}"]
    m = data["messages"]
    out.append(f"Messages: {m['failed']} failed, {m['pending']} pending")
    d = data["due"]
    out += ["", f"Due work: {d['pending']} pending, {d['overdue']} overdue, next at {d['next_due_at'] or '-'}"]
    for kind, k in d["kinds"].items():
        out.append(f"  {s(kind):<24} {k['pending']:>6} pending  next {k['next_due_at']}"
                   + (f"  {k['overdue']} overdue" if k["overdue"] else "")
                   + (f"  {k['failing']} failing" if k["failing"] else ""))
    r = data["red_slas"]
    out += ["", f"Red SLAs: {r['count']}"]
    for c in r["cases"]:
        out.append(f"  #{c['number']:<6} {c['priority']} {s(c['tier']):<7} {s(c['assignee'] or '-'):<24} "
                   f"{_ago(c['hours_overdue'])} over  {s(c['summary'])[:60]}")
    if r["count"] > len(r["cases"]):
        out.append(f"  ... and {r['count'] - len(r['cases'])} more")
    h = data["holds"]
    out += ["", f"Engineering holds flagged: {h['count']}"]
    for c in h["cases"]:
        out.append(f"  #{c['number']:<6} {s(c['status']):<20} {c['days_held']:>6} days  "
                   f"{s(c['assignee'] or '-'):<24} {s(c['summary'])[:60]}")
    if h["count"] > len(h["cases"]):
        out.append(f"  ... and {h['count'] - len(h['cases'])} more")
    out += ["", "Needs attention:" if data["attention"] else "Nothing needs attention."]
    out += [f"  {s(line)}" for line in data["attention"]]
    return "\n".join(out)
