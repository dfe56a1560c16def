"""The weekly hand-over digest: seed 002's "Changing of the Guard", mailed to the leads on
Monday morning (`[digest] weekly`, default "Mon 08:00" in the digest's zone).

It covers the Monday-to-Sunday week before the slot, in the digest's zone, and says what
the meeting goes through:

- volumes: cases opened and closed in the week, by type and by priority, beside the
  week before (so a growing backlog shows as a trend, not a feeling);
- open loops: open cases escalated to T3 or higher (T3, T4, T5, on-call) that no agent
  has answered since they entered that tier — what last week's T3 and on-call leave
  to this week's;
- known issues: cases tagged with a known issue (`known=`), per issue: how many cases,
  opened and closed in the week, still open; an issue whose first case came this week
  is new, one whose cases are all finished, with some closed this week, is done;
- on-call pages: cases paged in the week, how long each acknowledgement took, the
  ones never acknowledged, and the wake-up and next-in-rotation pages that followed;
- cases tagged for review (`REVIEW_TAGS`, e.g. "Process Tweak") during the week.

Every figure is one aggregate query on an index (creation, closure, the open-status
index, the event log's kind and time, and partial indexes of known-issue and paged
cases); lists are capped at `LIST_LIMIT` with the full count beside them. Open loops
and "still open" are read as they stand when the report is built.

`mailproc report weekly --for DATE` reports the Monday-to-Sunday week holding DATE.
"""

from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from typing import Any

import peewee as pw

from mailproc import db, oncall, reports, slots
from mailproc.context import Context
from mailproc.models import CASE_TYPES, PRIORITIES, PRIORITY_LABELS, STATUSES, TYPE_LABELS, aware, iso, stored, utc
from mailproc.reports import Report, html as report_html, queries
from mailproc.scheduled import SlotJob

KIND = "weekly"
# Cases listed per section (the count says how many there are in all): four full lists with
# summaries cut to 80 characters keep the HTML part well under Gmail's clipping size.
LIST_LIMIT = 30
# Tags that ask the leads to look at how a case was handled (seed 002, "Review Tags").
# Matched without case and whatever separates the words: "process-tweak" and
# "ProcessTweak" are "Process Tweak" (a tag= command cannot hold a space).
REVIEW_TAGS = ("Process Tweak", "Missed Doc Review")
LOOP_TIERS = ("T3", "T4", "T5", "oncall")  # escalated to engineering or higher
FINISHED = ("resolved", "pending_closure", "closed")  # not open: nothing more is owed to the customer
OPEN = tuple(s for s in STATUSES if s not in FINISHED)
DEFAULT_ACK_WITHIN = timedelta(hours=1)  # seed 002: on-call sees a page within an hour

_OPEN_MARKS = ", ".join("?" * len(OPEN))
_TIER_MARKS = ", ".join("?" * len(LOOP_TIERS))

NEW = ('SELECT "type", "priority", SUM(CASE WHEN "created_at" >= ? THEN 1 ELSE 0 END),'
       ' SUM(CASE WHEN "created_at" < ? THEN 1 ELSE 0 END) FROM "cases"'
       ' WHERE "created_at" >= ? AND "created_at" < ? GROUP BY "type", "priority"')
CLOSED = ('SELECT "type", "priority", SUM(CASE WHEN "closed_at" >= ? THEN 1 ELSE 0 END),'
          ' SUM(CASE WHEN "closed_at" < ? THEN 1 ELSE 0 END) FROM "cases"'
          ' WHERE "closed_at" >= ? AND "closed_at" < ? GROUP BY "type", "priority"')
_LOOP_WHERE = (f' WHERE c."status" IN ({_OPEN_MARKS}) AND c."tier" IN ({_TIER_MARKS})'
               ' AND (c."last_agent_at" IS NULL OR c."last_agent_at" < c."tier_entered_at")')
LOOP_COUNT = 'SELECT COUNT(*) FROM "cases" c' + _LOOP_WHERE
LOOPS = ('SELECT c."id", c."summary", c."tier", c."priority", c."status", c."tier_entered_at", c."last_agent_at",'
         ' p."handle", p."address" FROM "cases" c LEFT JOIN "person" p ON p."id" = c."assignee_id"' + _LOOP_WHERE
         + ' ORDER BY c."tier_entered_at", c."id" LIMIT ?')
_IN_WEEK = 'CASE WHEN "{col}" >= ? AND "{col}" < ? THEN 1 ELSE 0 END'
_STILL_OPEN = f'CASE WHEN "status" IN ({_OPEN_MARKS}) THEN 1 ELSE 0 END'
_KNOWN_SUMS = (f'SUM({_IN_WEEK.format(col="created_at")}), SUM({_IN_WEEK.format(col="closed_at")}),'
               f' SUM({_STILL_OPEN})')
KNOWN = (f'SELECT "known_issue", COUNT(*), {_KNOWN_SUMS}, MIN("created_at") FROM "cases"'
         ' WHERE "known_issue" IS NOT NULL GROUP BY "known_issue"'
         f' HAVING SUM({_IN_WEEK.format(col="created_at")}) > 0 OR SUM({_IN_WEEK.format(col="closed_at")}) > 0'
         f' OR SUM({_STILL_OPEN}) > 0'
         f' ORDER BY SUM({_STILL_OPEN}) DESC, COUNT(*) DESC, "known_issue" LIMIT ?')
_ACKED = '"page_ack_at" >= "paged_at"'  # an [ack] older than the page answered an earlier one
# Seconds from the page to its acknowledgement, in each database's arithmetic.
PAGE_STATS = ('SELECT COUNT(*), SUM(CASE WHEN {acked} THEN 1 ELSE 0 END),'
              ' SUM(CASE WHEN {acked} AND {secs} <= ? THEN 1 ELSE 0 END),'
              ' AVG(CASE WHEN {acked} THEN {secs} END), MAX(CASE WHEN {acked} THEN {secs} END)'
              ' FROM "cases" WHERE "paged_at" >= ? AND "paged_at" < ?')
PAGES = ('SELECT c."id", c."summary", c."priority", c."tier", c."status", c."paged_at", c."page_ack_at",'
         ' p."handle", p."address" FROM "cases" c LEFT JOIN "person" p ON p."id" = c."assignee_id"'
         ' WHERE c."paged_at" >= ? AND c."paged_at" < ? ORDER BY c."paged_at", c."id" LIMIT ?')
PAGE_EVENTS = ('SELECT "rule", "new", COUNT(*) FROM "event" WHERE "kind" = \'paged\' AND "at" >= ? AND "at" < ?'
               ' GROUP BY "rule", "new"')
# Tags as one word in lower case, whatever separated the words (the event log keeps the list as Python writes it).
_SQUASHED = 'REPLACE(REPLACE(REPLACE(LOWER({col}), \' \', \'\'), \'-\', \'\'), \'_\', \'\')'
_TAGGED = _SQUASHED.format(col='e."new"') + ' LIKE ?'
_UNTAGGED = '(e."old" IS NULL OR ' + _SQUASHED.format(col='e."old"') + ' NOT LIKE ?)'
_REVIEW_WHERE = (' WHERE e."kind" = \'field\' AND e."at" >= ? AND e."at" < ? AND e."field" = \'tags\' AND ('
                 + ' OR '.join(f'({_TAGGED} AND {_UNTAGGED})' for _ in REVIEW_TAGS) + ')')
REVIEW_COUNT = 'SELECT COUNT(DISTINCT e."case_id") FROM "event" e' + _REVIEW_WHERE
REVIEW = ('SELECT c."id", c."summary", c."status", c."tags", MAX(e."at"), p."handle", p."address"'
          ' FROM "event" e JOIN "cases" c ON c."id" = e."case_id" LEFT JOIN "person" p ON p."id" = c."assignee_id"'
          + _REVIEW_WHERE + ' GROUP BY c."id", c."summary", c."status", c."tags", p."handle", p."address"'
          ' ORDER BY MAX(e."at"), c."id" LIMIT ?')


def _squash(tag: str) -> str:
    return "".join(ch for ch in tag.lower() if ch not in " -_")


def _review_params() -> list[str]:
    params: list[str] = []
    for tag in REVIEW_TAGS:
        pattern = f"%'{_squash(tag)}'%"  # whole tags only: each is quoted in the list
        params += [pattern, pattern]
    return params


def review_tags_of(tags: list[str] | None) -> list[str]:
    """The review tags among a case's tags, as `REVIEW_TAGS` spells them."""
    have = {_squash(t) for t in tags or [] if isinstance(t, str)}
    return [t for t in REVIEW_TAGS if _squash(t) in have]


# --- the week -----------------------------------------------------------------------------------------------------


def zone(ctx: Context) -> tzinfo:
    digest = ctx.config.digest
    return digest.timezone if digest is not None else ctx.config.timezone


def week_of(day: date) -> tuple[date, date]:
    """The Monday and Sunday of the week holding `day`."""
    monday = day - timedelta(days=day.weekday())
    return monday, monday + timedelta(days=6)


def week_before(slot_day: date) -> date:
    """The Monday of the last whole Monday-to-Sunday week before the local day of a slot."""
    return week_of(slot_day)[0] - timedelta(days=7)


def latest_slot_day(ctx: Context, now: datetime) -> date:
    """The local day of the latest weekly slot at or before `now` (the week before it is the default report)."""
    tz = zone(ctx)
    digest = ctx.config.digest
    if digest is None:
        return now.astimezone(tz).date()
    found = slots.occurrences(digest.weekly, tz, now - timedelta(days=8), now)
    return found[-1].day if found else now.astimezone(tz).date()


def _instant(day: date, tz: tzinfo) -> datetime:
    """Local midnight of `day` as naive UTC (a midnight in a DST gap resolves after the gap)."""
    at, _ = slots.resolve(day, time(0, 0), tz)
    return utc(at)


# --- the queries --------------------------------------------------------------------------------------------------


def _hours(since: datetime | None, until: datetime | None) -> float | None:
    return None if since is None or until is None else round((until - since).total_seconds() / 3600, 1)


def _who(handle: str | None, address: str | None) -> str | None:
    return handle or address


def _dialect() -> str:
    return "sqlite" if isinstance(db.proxy.obj, pw.SqliteDatabase) else "postgresql"


def volumes(start: datetime, end: datetime, previous: datetime) -> dict:
    """New and closed in [start, end), the week before in [previous, start), by type and priority."""
    cells: dict[tuple[str, str], dict[str, int]] = {}
    for name, sql in (("new", NEW), ("closed", CLOSED)):
        for type_, priority, this, before in db.query_all(sql, [start, start, previous, end]):
            cell = cells.setdefault((type_, priority), {"new": 0, "closed": 0, "previous_new": 0,
                                                        "previous_closed": 0})
            cell[name] += int(this or 0)
            cell[f"previous_{name}"] += int(before or 0)

    def rows(position: int, order: tuple[str, ...], labels: dict[str, str]) -> list[dict]:
        keys = list(order) + sorted({k[position] for k in cells} - set(order))
        out = []
        for key in keys:
            sums = {"new": 0, "closed": 0, "previous_new": 0, "previous_closed": 0}
            for k, cell in cells.items():
                if k[position] == key:
                    for name in sums:
                        sums[name] += cell[name]
            out.append({"key": key, "label": labels.get(key, key), **sums, "net": sums["new"] - sums["closed"]})
        return out

    total = {name: sum(c[name] for c in cells.values())
             for name in ("new", "closed", "previous_new", "previous_closed")}
    return {"new": total["new"], "closed": total["closed"], "net": total["new"] - total["closed"],
            "previous": {"new": total["previous_new"], "closed": total["previous_closed"],
                         "net": total["previous_new"] - total["previous_closed"]},
            "change": {"new": total["new"] - total["previous_new"],
                       "closed": total["closed"] - total["previous_closed"]},
            "by_type": rows(0, CASE_TYPES, TYPE_LABELS), "by_priority": rows(1, PRIORITIES, PRIORITY_LABELS)}


def open_loops(now: datetime) -> dict:
    params = [*OPEN, *LOOP_TIERS]
    (count,) = db.query_one(LOOP_COUNT, params)
    listed = []
    for number, summary, tier, priority, status, entered, answered, handle, address in db.query_all(
            LOOPS, params + [LIST_LIMIT]):
        entered, answered = stored(entered), stored(answered)
        listed.append({"number": number, "summary": summary, "tier": tier, "priority": priority, "status": status,
                       "assignee": _who(handle, address), "tier_entered_at": iso(entered),
                       "last_agent_at": iso(answered), "waiting_hours": _hours(entered, now)})
    return {"count": int(count or 0), "cases": listed}


def known_issues(start: datetime, end: datetime) -> dict:
    week = [start, end, start, end]
    rows = db.query_all(KNOWN, week + list(OPEN) + week + list(OPEN) + list(OPEN) + [LIST_LIMIT])
    issues = []
    for name, total, opened, closed, still_open, first in rows:
        first = stored(first)
        opened, closed, still_open = int(opened or 0), int(closed or 0), int(still_open or 0)
        issues.append({"known_issue": name, "cases": int(total), "opened": opened, "closed": closed,
                       "open": still_open, "first_case_at": iso(first),
                       "new": first is not None and start <= utc(first) < end,
                       "done": still_open == 0 and closed > 0})
    return {"count": len(issues), "new": sum(1 for i in issues if i["new"]),
            "done": sum(1 for i in issues if i["done"]), "issues": issues}


def pages(ctx: Context, start: datetime, end: datetime) -> dict:
    settings = oncall.settings(ctx.config)
    within = settings.ack_within if settings is not None else DEFAULT_ACK_WITHIN
    secs = queries.seconds('"paged_at"', '"page_ack_at"')  # whole milliseconds: an ack at 60 min is in time
    stats = PAGE_STATS.format(acked=_ACKED, secs=secs)
    count, acked, in_time, average, longest = db.query_one(stats, [within.total_seconds(), start, end])
    listed = []
    for number, summary, priority, tier, status, paged, ack, handle, address in db.query_all(
            PAGES, [start, end, LIST_LIMIT]):
        paged, ack = stored(paged), stored(ack)
        answered = ack is not None and paged is not None and ack >= paged
        listed.append({"number": number, "summary": summary, "priority": priority, "tier": tier, "status": status,
                       "assignee": _who(handle, address), "paged_at": iso(paged),
                       "acknowledged_at": iso(ack) if answered else None,
                       "ack_minutes": round((ack - paged).total_seconds() / 60) if answered else None})
    paged_whom: dict[str, int] = {}
    rounds = {"oncall:page": 0, "oncall:wakeup": 0, "oncall:next": 0}
    for rule, whom, n in db.query_all(PAGE_EVENTS, [start, end]):
        if rule in rounds:
            rounds[rule] += int(n)
        if rule in ("oncall:page", "oncall:next") and whom:
            paged_whom[whom] = paged_whom.get(whom, 0) + int(n)

    def minutes(seconds: Any) -> int | None:
        return None if seconds is None else round(float(seconds) / 60)
    count, acked = int(count or 0), int(acked or 0)
    return {"count": count, "acknowledged": acked, "unacknowledged": count - acked,
            "acknowledged_in_time": int(in_time or 0), "ack_within_minutes": round(within.total_seconds() / 60),
            "average_ack_minutes": minutes(average), "longest_ack_minutes": minutes(longest),
            "wakeup_pages": rounds["oncall:wakeup"], "next_in_rotation_pages": rounds["oncall:next"],
            "paged": [{"who": k, "pages": v} for k, v in sorted(paged_whom.items(), key=lambda kv: (-kv[1], kv[0]))],
            "cases": listed}


def review(start: datetime, end: datetime) -> dict:
    params = [start, end, *_review_params()]
    (count,) = db.query_one(REVIEW_COUNT, params)
    listed = []
    for number, summary, status, tags, tagged, handle, address in db.query_all(REVIEW, params + [LIST_LIMIT]):
        tags = _tags(tags)
        listed.append({"number": number, "summary": summary, "status": status, "assignee": _who(handle, address),
                       "tags": review_tags_of(tags), "tagged_at": iso(stored(tagged))})
    return {"tags": list(REVIEW_TAGS), "count": int(count or 0), "cases": listed}


def _tags(value: Any) -> list[str]:
    """`cases.tags` as a list (a raw query hands back the stored JSON text)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return []
    return list(value) if isinstance(value, list) else []


# --- the report ---------------------------------------------------------------------------------------------------


def build(ctx: Context, *, day: date | None, now: datetime, agent: str | None = None) -> Report:
    """The hand-over digest of the Monday-to-Sunday week holding `day` (None: the week before
    the latest weekly slot). `agent` is not used: the digest is the whole desk's."""
    tz = zone(ctx)
    monday = week_of(day)[0] if day is not None else week_before(latest_slot_day(ctx, now))
    sunday = monday + timedelta(days=6)
    start, end = _instant(monday, tz), _instant(monday + timedelta(days=7), tz)
    previous = _instant(monday - timedelta(days=7), tz)
    data = {
        "week": {"monday": monday.isoformat(), "sunday": sunday.isoformat(), "timezone": str(tz),
                 "start": iso(aware(start)), "end": iso(aware(end))},
        "generated_at": now.astimezone(timezone.utc).isoformat(),
        "volumes": volumes(start, end, previous),
        "open_loops": open_loops(now),
        "known_issues": known_issues(start, end),
        "pages": pages(ctx, start, end),
        "review": review(start, end),
    }
    data["list_limit"] = LIST_LIMIT
    rendered = ctx.templates.render(KIND, data=data, bar=bar, local=_local(tz), monday=monday, sunday=sunday)
    return Report(kind=KIND, subject=rendered.subject, data=data, text=rendered.text,
                  html=report_html.finish(rendered.html), to=reports.recipients(ctx))


def _local(tz: tzinfo):
    """For the templates: a stored ISO instant as a short local time ("Tue 24 Nov 14:05")."""
    def local(value: str | None) -> str:
        return datetime.fromisoformat(value).astimezone(tz).strftime("%a %d %b %H:%M") if value else "-"
    return local


def bar(value: int | float | None, largest: int | float | None, width: int = 100) -> int:
    """A bar's length in percent of `width` for a table-cell bar (0 for nothing, at least 1 for anything)."""
    if not value or not largest:
        return 0
    return max(1, min(width, round(width * float(value) / float(largest))))


# --- the slot -----------------------------------------------------------------------------------------------------


def run(ctx: Context, slot: slots.Slot, now: datetime) -> int:
    """Queue the digest of the week before `slot` to each recipient; how many mails."""
    report = build(ctx, day=week_before(slot.at.astimezone(zone(ctx)).date()), now=now)
    return sum(1 for to in report.to if reports.send(ctx, report, to, now) is not None)


def slot_jobs(ctx: Context) -> list[SlotJob]:
    digest = ctx.config.digest
    if digest is None:
        return []
    return [SlotJob(KIND, digest.weekly, digest.timezone, run)]
