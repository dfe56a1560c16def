"""The daily digest's figures: one aggregate query (or two) per figure group.

Each function takes the local day's bounds as UTC instants, `start` inclusive and
`end` exclusive, and `now`; what a figure needs from the rules (statuses, answers,
thresholds) is a keyword argument, so this module reads no configuration. Every
query reads a range of an index (cases' created_at, closed_at, resolved_at,
satisfaction_at, testimonial_sent_at, sla_due, the (status, type, priority) index of
open cases, the partial index of flagged holds, message.stored_at, outbox.state) and
counts, sums or averages in SQL: the cost follows the day's cases, never all cases,
and Python only reshapes the handful of grouped rows. Lists of cases are capped at
`LIST_LIMIT` with the full count beside them.

Definitions (the digest's README text says the same):
- merged duplicates: a case closed by being merged into another (a `merged_into`
  case_link from it) is not a case of its own once merged — the outcomes count it in
  the case it joined — so it is left out of closed, resolution and first response
  (a 5-minute merge is no resolution, an unanswered duplicate no late answer) and
  counted apart as `merged` (closed in the day by a merge).
- new: created in the day; closed: `closed_at` in the day, merged duplicates apart
  (`closed` equals the outcomes' total); open: now in a status other than resolved,
  pending_closure and closed (a snapshot at `now`, not at the day's end: what the
  leads face this morning); net = new - closed - merged (goal 0): every case that
  came in less every case that left the backlog, a merged duplicate included.
- resolution: cases whose `resolved_at` (else `closed_at`, for cases closed without
  being resolved) falls in the day, merged duplicates left out; hours from
  `created_at`; the median of an even count is the mean of the two middle values;
  goal 24 h (seed 003).
- first response of the cases created in the day that were not merged away, hours from `created_at` to
  `first_response_at`: under_1h, 1_6h, 6_12h, 12_24h (24 h exactly is within), overdue
  (answered after 24 h, or not answered and 24 h old at `now`), waiting (not
  answered yet and younger than 24 h: not yet late, so not overdue).
- SLA colour of each open case at `now`: paused (`sla_paused_at` set), none (no
  limits: neither `sla_due` nor `sla_warn_at`), red (`sla_due` <= now), yellow
  (`sla_warn_at` <= now), else green.
- stuck: open cases waiting on us (`waiting_since`, in a still-looking status) since
  before `cutoff` (the caller's instant: the nudge threshold counted back from now);
  long holds: `long_hold_at` set and still in an engineering-hold status.
- satisfaction: answers whose `satisfaction_at` falls in the day, by answer.
- testimonials: asked = `testimonial_sent_at` in the day, and in the 30 days up to
  the day's end; answered = of those asked in the 30 days, the ones the customer
  replied to before the day's end: a reply to a closed case opens a new case linked
  `reopened_from` it, so a link made after the request counts, as does a customer
  mail on the case itself after it (`last_customer_at`).
- outcomes (seed 000), one per case closed in the day (cases closed by being merged
  into another are not counted on their own: they count in the case they joined),
  the most severe of the case's and of the cases merged into it (direct merges):
  `cases.outcome` when an agent set it (1-5, or its name); else a bug is 5
  (no workaround) unless it is P2 ("blocks but has a workaround") or tagged
  `workaround`, then 4; an enhancement is 3; anything else is 2 when the
  satisfaction answer was unhappy, else 1.
- pipeline: messages stored in the day by state and disposition (failed; parked:
  failed after the pipeline's attempts ran out), the outbox's queued/sending backlog
  and its oldest mail, each mailbox's last good poll.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import peewee as pw

from mailproc import db
from mailproc.models import CASE_TYPES, PRIORITIES, STATUSES, iso, stored, utc

LIST_LIMIT = 50
CLOSED = ("resolved", "pending_closure", "closed")  # not open: the work is done or being confirmed
OPEN = tuple(s for s in STATUSES if s not in CLOSED)
GOAL_HOURS = 24.0
BUCKETS = ("under_1h", "1_6h", "6_12h", "12_24h", "overdue", "waiting")
COLOURS = ("red", "yellow", "green", "paused", "none")
OUTCOMES = {1: "answered_happy", 2: "answered_unhappy", 3: "feature_request", 4: "problem_workaround",
            5: "problem_no_workaround"}
OUTCOME_LABELS = {1: "Answered question – happy", 2: "Answered question – unhappy", 3: "Added feature request",
                  4: "Reported a problem – workaround", 5: "Reported a problem – no workaround"}
TESTIMONIAL_WINDOW = timedelta(days=30)


def _postgres() -> bool:
    return isinstance(db.proxy.obj, pw.PostgresqlDatabase)


def seconds(a: str, b: str) -> str:
    """SQL for the seconds from column `a` to column `b`, on either database (SQLite's julianday
    is a float of days: rounded to the millisecond, so an hour is exactly 3600)."""
    if _postgres():
        return f"EXTRACT(EPOCH FROM ({b} - {a}))"
    return f"ROUND((julianday({b}) - julianday({a})) * 86400.0, 3)"


def hours(a: str, b: str) -> str:
    """SQL for the hours from column `a` to column `b`."""
    return f"({seconds(a, b)} / 3600.0)"


def _marks(values: Sequence[Any]) -> str:
    return ", ".join("?" * len(values))


def _round(value: Any, digits: int = 2) -> float | None:
    return None if value is None else round(float(value), digits)


def _split(rows: Sequence[tuple[str, str, int]]) -> dict:
    """(type, priority, count) rows -> totals by type and by priority (every known key present)."""
    by_type = {t: 0 for t in CASE_TYPES}
    by_priority = {p: 0 for p in PRIORITIES}
    for type_, priority, count in rows:
        by_type[type_] = by_type.get(type_, 0) + int(count)
        by_priority[priority] = by_priority.get(priority, 0) + int(count)
    return {"total": sum(by_type.values()), "by_type": by_type, "by_priority": by_priority}


# --- volumes -----------------------------------------------------------------------

_NEW = ('SELECT "type", "priority", COUNT(*) FROM "cases" WHERE "created_at" >= ? AND "created_at" < ?'
        ' GROUP BY "type", "priority"')
_MERGED_JOIN = (' LEFT JOIN "case_link" l ON l."case_id" = c."id" AND l."kind" = \'merged_into\'')  # 0 or 1 a case
_CLOSED = ('SELECT c."type", c."priority", COUNT(*) - COUNT(l."id"), COUNT(l."id") FROM "cases" c' + _MERGED_JOIN
           + ' WHERE c."closed_at" >= ? AND c."closed_at" < ? GROUP BY c."type", c."priority"')
_NOT_MERGED_AWAY = (' AND NOT EXISTS (SELECT 1 FROM "case_link" k WHERE k."case_id" = "cases"."id"'
                    ' AND k."kind" = \'merged_into\')')
_OPEN = 'SELECT "type", "priority", COUNT(*) FROM "cases" WHERE "status" IN ({marks}) GROUP BY "type", "priority"'


def volumes(start: datetime, end: datetime, now: datetime) -> dict:
    """New, closed (in the day; merged duplicates apart) and open (now) cases by type and
    priority, and the net growth."""
    span = [utc(start), utc(end)]
    new = _split(db.query_all(_NEW, span))
    rows = db.query_all(_CLOSED, span)
    closed = _split([(t, p, n) for t, p, n, _ in rows])
    merged = sum(int(m or 0) for _, _, _, m in rows)
    opened = _split(db.query_all(_OPEN.format(marks=_marks(OPEN)), list(OPEN)))
    return {"new": new, "closed": closed, "merged": merged, "open": opened,
            "net": new["total"] - closed["total"] - merged}


def trend(days: Sequence[tuple[str, datetime, datetime]], now: datetime) -> list[dict]:
    """New, closed, merged and net per day for `days` ((label, start, end), oldest first), as
    `volumes` counts them: two range queries whatever the number of days, each day a SUM(CASE …)
    column (for closed_at, one for the cases merged away and one for the others)."""
    if not days:
        return []
    first, last = utc(days[0][1]), utc(days[-1][2])
    spans: list[Any] = [v for _, s, e in days for v in (utc(s), utc(e))]
    sums = ", ".join('SUM(CASE WHEN c."created_at" >= ? AND c."created_at" < ? THEN 1 ELSE 0 END)' for _ in days)
    new = [int(v or 0) for v in db.query_one(
        f'SELECT {sums} FROM "cases" c WHERE c."created_at" >= ? AND c."created_at" < ?', spans + [first, last])]
    sums = ", ".join(f'SUM(CASE WHEN c."closed_at" >= ? AND c."closed_at" < ? AND l."id" IS {test} THEN 1 ELSE 0 END)'
                     for test in ("NULL", "NOT NULL") for _ in days)
    row = [int(v or 0) for v in db.query_one(
        f'SELECT {sums} FROM "cases" c{_MERGED_JOIN} WHERE c."closed_at" >= ? AND c."closed_at" < ?',
        spans * 2 + [first, last])]
    closed, merged = row[:len(days)], row[len(days):]
    return [{"day": label, "new": n, "closed": c, "merged": m, "net": n - c - m}
            for (label, _, _), n, c, m in zip(days, new, closed, merged)]


# --- resolution and first response ---------------------------------------------------

def _resolved_hours() -> str:
    """The hours to resolution of the cases resolved in [?, ?) (twice: resolved_at, then
    closed without resolved_at), as one derived table `r(h)`, each half on its own index (the
    second half's test of resolved_at is an expression, so SQLite does not search the
    resolved_at index for NULLs, all unresolved cases, instead of the day's closed_at range)."""
    h_res = hours('"created_at"', '"resolved_at"')
    h_closed = hours('"created_at"', '"closed_at"')
    return (f'(SELECT {h_res} AS h FROM "cases" WHERE "resolved_at" >= ? AND "resolved_at" < ?{_NOT_MERGED_AWAY}'
            f' UNION ALL SELECT {h_closed} AS h FROM "cases" WHERE "closed_at" >= ? AND "closed_at" < ?'
            f' AND COALESCE("resolved_at", NULL) IS NULL{_NOT_MERGED_AWAY}) r')


def resolution(start: datetime, end: datetime, now: datetime, *, goal_hours: float = GOAL_HOURS) -> dict:
    """Average and median hours to resolution of the cases resolved in the day, against the goal."""
    span = [utc(start), utc(end)] * 2
    count, average, within = db.query_one(
        f"SELECT COUNT(*), AVG(h), SUM(CASE WHEN h <= ? THEN 1 ELSE 0 END) FROM {_resolved_hours()}",
        [goal_hours] + span)
    count = int(count or 0)
    median = None
    if count:
        middle = [float(h) for (h,) in db.query_all(
            f"SELECT h FROM {_resolved_hours()} ORDER BY h LIMIT ? OFFSET ?",
            span + [2 - count % 2, (count - 1) // 2])]
        median = sum(middle) / len(middle)
    average = _round(average)
    return {"count": count, "average_hours": average, "median_hours": _round(median),
            "within_goal": int(within or 0), "goal_hours": goal_hours,
            "average_met": None if average is None else average <= goal_hours,
            "median_met": None if median is None else median <= goal_hours}


def first_response(start: datetime, end: datetime, now: datetime) -> dict:
    """The cases created in the day by how soon they had a first response (see the buckets above)."""
    t = seconds('"created_at"', '"first_response_at"')
    bucket = ('CASE WHEN "first_response_at" IS NULL THEN'
              ' (CASE WHEN "created_at" <= ? THEN \'overdue\' ELSE \'waiting\' END)'
              f" WHEN {t} < 3600 THEN 'under_1h' WHEN {t} < 21600 THEN '1_6h' WHEN {t} < 43200 THEN '6_12h'"
              f" WHEN {t} <= 86400 THEN '12_24h' ELSE 'overdue' END")
    rows = db.query_all(f'SELECT b, COUNT(*) FROM (SELECT {bucket} AS b FROM "cases"'
                        f' WHERE "created_at" >= ? AND "created_at" < ?{_NOT_MERGED_AWAY}) x GROUP BY b',
                        [utc(now - timedelta(hours=24)), utc(start), utc(end)])
    counts = {b: 0 for b in BUCKETS}
    counts.update({b: int(n) for b, n in rows})
    return {"buckets": counts, "total": sum(counts.values())}


# --- SLA ----------------------------------------------------------------------------

_COLOUR = ('CASE WHEN "sla_paused_at" IS NOT NULL THEN \'paused\''
           ' WHEN "sla_due" IS NULL AND "sla_warn_at" IS NULL THEN \'none\''
           ' WHEN "sla_due" <= ? THEN \'red\' WHEN "sla_warn_at" <= ? THEN \'yellow\' ELSE \'green\' END')
_RED_WHERE = ' WHERE c."sla_due" <= ? AND c."sla_paused_at" IS NULL AND c."status" IN ({marks})'


def sla(start: datetime, end: datetime, now: datetime, *, limit: int = LIST_LIMIT) -> dict:
    """The open cases' SLA colours per tier at `now`, and the red ones (most overdue first)."""
    at = utc(now)
    rows = db.query_all(f'SELECT "tier", colour, COUNT(*) FROM (SELECT "tier", {_COLOUR} AS colour FROM "cases"'
                        f' WHERE "status" IN ({_marks(OPEN)})) x GROUP BY "tier", colour', [at, at, *OPEN])
    tiers: dict[str, dict[str, int]] = {}
    for tier, colour, count in rows:
        tiers.setdefault(tier, {c: 0 for c in COLOURS})[colour] = int(count)
    totals = {c: sum(t[c] for t in tiers.values()) for c in COLOURS}
    where = _RED_WHERE.format(marks=_marks(OPEN))
    (count,) = db.query_one('SELECT COUNT(*) FROM "cases" c' + where, [at, *OPEN])
    red = [{"number": n, "summary": summary, "tier": tier, "priority": priority, "status": status,
            "assignee": handle or address, "sla_due": iso(due),
            "hours_overdue": _round((now - stored(due)).total_seconds() / 3600)}
           for n, summary, tier, priority, status, due, handle, address in db.query_all(
               'SELECT c."id", c."summary", c."tier", c."priority", c."status", c."sla_due", p."handle", p."address"'
               ' FROM "cases" c LEFT JOIN "person" p ON p."id" = c."assignee_id"' + where
               + ' ORDER BY c."sla_due", c."id" LIMIT ?', [at, *OPEN, limit])]
    return {"tiers": dict(sorted(tiers.items())), "totals": totals, "red": {"count": int(count), "cases": red}}


# --- stuck cases and long holds ---------------------------------------------------------

def stuck(start: datetime, end: datetime, now: datetime, *, statuses: Sequence[str], cutoff: datetime,
          hold_statuses: Sequence[str], limit: int = LIST_LIMIT) -> dict:
    """Cases waiting on us since before `cutoff`, and engineering holds flagged too long."""
    waiting: dict[str, Any] = {"count": 0, "cases": []}
    if statuses:
        where = f' WHERE c."status" IN ({_marks(statuses)}) AND c."waiting_since" <= ?'
        params = [*statuses, utc(cutoff)]
        (waiting["count"],) = db.query_one('SELECT COUNT(*) FROM "cases" c' + where, params)
        waiting["cases"] = [
            {"number": n, "summary": summary, "status": status, "tier": tier, "assignee": handle or address,
             "waiting_since": iso(since), "hours_waiting": _round((now - stored(since)).total_seconds() / 3600)}
            for n, summary, status, tier, since, handle, address in db.query_all(
                'SELECT c."id", c."summary", c."status", c."tier", c."waiting_since", p."handle", p."address"'
                ' FROM "cases" c LEFT JOIN "person" p ON p."id" = c."assignee_id"' + where
                + ' ORDER BY c."waiting_since", c."id" LIMIT ?', params + [limit])]
    holds: dict[str, Any] = {"count": 0, "cases": []}
    if hold_statuses:
        where = f' WHERE c."long_hold_at" IS NOT NULL AND c."status" IN ({_marks(hold_statuses)})'
        (holds["count"],) = db.query_one('SELECT COUNT(*) FROM "cases" c' + where, list(hold_statuses))
        holds["cases"] = [
            {"number": n, "summary": summary, "status": status, "tier": tier, "assignee": handle or address,
             "held_since": iso(since), "flagged_at": iso(flagged),
             "days_held": _round((now - stored(since)).total_seconds() / 86400, 1)}
            for n, summary, status, tier, since, flagged, handle, address in db.query_all(
                'SELECT c."id", c."summary", c."status", c."tier", c."status_changed_at", c."long_hold_at",'
                ' p."handle", p."address" FROM "cases" c LEFT JOIN "person" p ON p."id" = c."assignee_id"'
                + where + ' ORDER BY c."status_changed_at", c."id" LIMIT ?', [*hold_statuses, limit])]
    waiting["count"], holds["count"] = int(waiting["count"]), int(holds["count"])
    return {"waiting": waiting, "holds": holds, "cutoff": iso(cutoff)}


# --- satisfaction and testimonials ------------------------------------------------------

def satisfaction(start: datetime, end: datetime, now: datetime, *, answers: Sequence[str],
                 unhappy: Sequence[str], limit: int = LIST_LIMIT) -> dict:
    """The day's satisfaction answers by answer (`answers`: every name, in order), and the unhappy ones."""
    span = [utc(start), utc(end)]
    rows = db.query_all('SELECT "satisfaction", COUNT(*) FROM "cases" WHERE "satisfaction_at" >= ?'
                        ' AND "satisfaction_at" < ? GROUP BY "satisfaction"', span)
    counts = {name: 0 for name in answers}
    counts.update({name: int(n) for name, n in rows if name is not None})
    listed: list[dict] = []
    if unhappy:
        listed = [{"number": n, "summary": summary, "answer": answer, "assignee": handle or address,
                   "answered_at": iso(at)}
                  for n, summary, answer, at, handle, address in db.query_all(
                      'SELECT c."id", c."summary", c."satisfaction", c."satisfaction_at", p."handle", p."address"'
                      ' FROM "cases" c LEFT JOIN "person" p ON p."id" = c."assignee_id"'
                      f' WHERE c."satisfaction_at" >= ? AND c."satisfaction_at" < ?'
                      f' AND c."satisfaction" IN ({_marks(unhappy)}) ORDER BY c."satisfaction_at", c."id" LIMIT ?',
                      span + list(unhappy) + [limit])]
    return {"answers": counts, "total": sum(counts.values()), "unhappy_answers": list(unhappy),
            "unhappy": {"count": sum(counts.get(u, 0) for u in unhappy), "cases": listed}}


def testimonials(start: datetime, end: datetime, now: datetime) -> dict:
    """Testimonial requests sent in the day and in the 30 days to its end, and how many were answered."""
    window = utc(end - TESTIMONIAL_WINDOW)
    answered = ('(c."last_customer_at" > c."testimonial_sent_at" AND c."last_customer_at" < ?)'
                ' OR EXISTS (SELECT 1 FROM "case_link" l WHERE l."other_id" = c."id"'
                ' AND l."kind" = \'reopened_from\' AND l."created_at" > c."testimonial_sent_at"'
                ' AND l."created_at" < ?)')
    day_asked, asked, replied = db.query_one(
        'SELECT SUM(CASE WHEN c."testimonial_sent_at" >= ? THEN 1 ELSE 0 END), COUNT(*),'
        f' SUM(CASE WHEN {answered} THEN 1 ELSE 0 END) FROM "cases" c'
        ' WHERE c."testimonial_sent_at" >= ? AND c."testimonial_sent_at" < ?',
        [utc(start), utc(end), utc(end), window, utc(end)])
    return {"asked_day": int(day_asked or 0), "asked_30d": int(asked or 0), "answered_30d": int(replied or 0)}


# --- outcomes (seed 000) -----------------------------------------------------------------

WORKAROUND_TAG = '%"workaround"%'  # tags are stored as a JSON list: the tag `workaround`, any letter case


def _severity(alias: str, unhappy: Sequence[str]) -> tuple[str, list]:
    """SQL for the outcome (1-5) of case `alias`, and its parameters."""
    explicit = " ".join(f"WHEN {alias}.\"outcome\" IN (?, ?) THEN {n}" for n in OUTCOMES)
    explicit_params = [v for n, name in OUTCOMES.items() for v in (str(n), name)]
    unhappy_sql = f'WHEN {alias}."satisfaction" IN ({_marks(unhappy)}) THEN 2 ' if unhappy else ""
    sql = (f"CASE {explicit} WHEN {alias}.\"type\" = 'bug' THEN"
           f" (CASE WHEN {alias}.\"priority\" = 'P2' OR LOWER({alias}.\"tags\") LIKE ?"
           f" THEN 4 ELSE 5 END) WHEN {alias}.\"type\" = 'enhancement' THEN 3 {unhappy_sql}ELSE 1 END")
    return sql, explicit_params + [WORKAROUND_TAG] + list(unhappy)


_NOT_MERGED = (' AND NOT EXISTS (SELECT 1 FROM "case_link" k WHERE k."case_id" = c."id"'
               ' AND k."kind" = \'merged_into\')')


def _per_case(unhappy: Sequence[str]) -> tuple[str, list, list]:
    """A derived table o(id, sev): each case closed in [?, ?) with its most severe outcome."""
    own, own_params = _severity("c", unhappy)
    merged, merged_params = _severity("m", unhappy)
    where = ' WHERE c."closed_at" >= ? AND c."closed_at" < ?' + _NOT_MERGED
    sql = (f'(SELECT id, MAX(sev) AS sev FROM (SELECT c."id" AS id, {own} AS sev FROM "cases" c{where}'
           f' UNION ALL SELECT c."id" AS id, {merged} AS sev FROM "cases" c JOIN "case_link" l'
           ' ON l."other_id" = c."id" AND l."kind" = \'merged_into\' JOIN "cases" m ON m."id" = l."case_id"'
           f'{where}) s GROUP BY id) o')
    return sql, own_params, merged_params


def outcomes(start: datetime, end: datetime, now: datetime, *, unhappy: Sequence[str],
             limit: int = LIST_LIMIT) -> dict:
    """Seed 000's outcome report: the cases closed in the day by their most severe outcome,
    with the unhappy ones (outcome 2: "take a note on their question") listed."""
    table, own_params, merged_params = _per_case(unhappy)
    span = [utc(start), utc(end)]
    params = own_params + span + merged_params + span
    counts = {OUTCOMES[n]: 0 for n in OUTCOMES}
    for sev, count in db.query_all(f"SELECT sev, COUNT(*) FROM {table} GROUP BY sev", params):
        counts[OUTCOMES[int(sev)]] = int(count)
    unhappy_cases = [{"number": n, "summary": summary, "assignee": handle or address}
                     for n, summary, handle, address in db.query_all(
                         f'SELECT c."id", c."summary", p."handle", p."address" FROM {table}'
                         ' JOIN "cases" c ON c."id" = o.id LEFT JOIN "person" p ON p."id" = c."assignee_id"'
                         ' WHERE o.sev = 2 ORDER BY c."id" LIMIT ?', params + [limit])]
    rows = [{"outcome": n, "name": OUTCOMES[n], "label": OUTCOME_LABELS[n], "count": counts[OUTCOMES[n]]}
            for n in OUTCOMES]
    return {"counts": counts, "rows": rows, "total": sum(counts.values()),
            "unhappy": {"count": counts[OUTCOMES[2]], "cases": unhappy_cases}}


# --- pipeline health -------------------------------------------------------------------

def pipeline(start: datetime, end: datetime, now: datetime, *, mailboxes: Sequence[str] = ()) -> dict:
    """Messages stored in the day (by state and disposition), the outbox backlog, each mailbox's last good poll."""
    rows = db.query_all(
        'SELECT "state", "disposition", COUNT(*), SUM(CASE WHEN "error" LIKE ? THEN 1 ELSE 0 END)'
        ' FROM "message" WHERE "stored_at" >= ? AND "stored_at" < ? GROUP BY "state", "disposition"',
        ["parked%", utc(start), utc(end)])
    dispositions: dict[str, int] = {}
    received = failed = parked = pending = 0
    for state, disposition, count, parked_n in rows:
        received += int(count)
        if state == "failed":
            failed += int(count)
            parked += int(parked_n or 0)
        elif state == "pending":
            pending += int(count)
        elif disposition:
            dispositions[disposition] = dispositions.get(disposition, 0) + int(count)
    outbox = {state: (int(n), stored(oldest)) for state, n, oldest in db.query_all(
        'SELECT "state", COUNT(*), MIN("created_at") FROM "outbox" WHERE "state" IN (\'queued\', \'sending\')'
        ' GROUP BY "state"', [])}
    oldests = [o for _, o in outbox.values() if o is not None]
    oldest = min(oldests) if oldests else None
    polls = {name: (stored(ok), stored(err_at), err) for name, ok, err_at, err in db.query_all(
        'SELECT "mailbox", "last_ok_at", "last_error_at", "last_error" FROM "mailbox_state"', [])}
    names = list(mailboxes) or sorted(polls)
    boxes = []
    for name in names:
        ok, error_at, error = polls.get(name, (None, None, None))
        boxes.append({"name": name, "last_ok_at": iso(ok),
                      "hours_since_ok": None if ok is None else _round((now - ok).total_seconds() / 3600),
                      "failing": error_at is not None and (ok is None or error_at >= ok),
                      "last_error": error if error_at is not None and (ok is None or error_at >= ok) else None})
    return {"messages": {"stored": received, "dispositions": dict(sorted(dispositions.items())), "failed": failed,
                         "parked": parked, "pending": pending},
            "outbox": {"queued": outbox.get("queued", (0, None))[0], "sending": outbox.get("sending", (0, None))[0],
                       "oldest_at": iso(oldest),
                       "oldest_hours": None if oldest is None else _round((now - oldest).total_seconds() / 3600)},
            "mailboxes": boxes}
