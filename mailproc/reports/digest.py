"""The leads' daily digest (issue 8, item 1; SPEC §8; seeds 000, 002, 003).

`build` gathers the figures of one local day of the digest's zone (`[digest]
timezone`) from `mailproc.reports.queries` — every figure one aggregate query,
defined there — and renders `templates/digest.*.j2`: a plain-text part with every
figure line by line and an HTML part of tables and table-cell bars, its CSS inlined
by `reports.html.finish`. `mailproc report digest` prints the very same Report.
The HTML part lists at most `HTML_LIMITS` rows per list, clusters and members (with
the full counts and a pointer to the text part and the CLI), fewer when the finished
part would still reach Gmail's clip size.

`slot_jobs` gives the scheduler one job, "digest", at `[digest] time` in that zone.
Its run mails the digest of the day before the slot's local date, one mail per
recipient: `[digest] recipients`, else every active agent whose roles include
`lead` (read when the slot comes, so a new lead gets the next one). With nobody to
send to it logs a warning and still claims the slot: a digest nobody could read is
not owed later.

"Stuck" uses the `[still_looking] nudge_after` threshold of rules/workflow.toml in
business time, exactly: the cutoff is the latest wait start whose nudge deadline
has passed at `now` (found by bisection on the calendar's `deadline`, which only
grows with its start), so the query compares `waiting_since` to one instant.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta, timezone, tzinfo

from mailproc.context import Context
from mailproc.models import PRIORITY_LABELS, TYPE_LABELS
from mailproc.reports import Report, html as finishing, queries, recipients, send
from mailproc.reports.html import LIMIT
from mailproc.scheduled import SlotJob
from mailproc.slots import Slot

log = logging.getLogger("mailproc.reports.digest")

KIND = "digest"
TREND_DAYS = 14
BUCKET_LABELS = {"under_1h": "< 1 h", "1_6h": "1–6 h", "6_12h": "6–12 h", "12_24h": "12–24 h",
                 "overdue": "overdue (> 24 h)", "waiting": "waiting (< 24 h old, no answer yet)"}
COLOUR_LABELS = {"red": "red", "yellow": "yellow", "green": "green", "paused": "paused", "none": "no limit"}
LOOKBACK = timedelta(days=366)  # how far back a wait start is searched for the stuck cutoff
# What the HTML part lists (the text part and `mailproc report digest` list everything the
# queries return): css-inline writes each cell's style into it (~100 bytes a cell), so five
# lists of 50 rows, or 25 clusters of 20, pass Gmail's ~100 KB clip. Each step is tried in
# turn until the finished part passes `html.problems` (the last lists counts only).
HTML_LIMITS = ({"rows": 12, "clusters": 10, "members": 5, "examples": 3},
               {"rows": 8, "clusters": 6, "members": 3, "examples": 2},
               {"rows": 5, "clusters": 4, "members": 2, "examples": 1},
               {"rows": 0, "clusters": 0, "members": 0, "examples": 0})


def bounds(day: date, tz: tzinfo) -> tuple[datetime, datetime]:
    """The local `day` of zone `tz` as UTC instants [start, end) (23 or 25 hours on a DST change)."""
    start = datetime.combine(day, time(0), tz).astimezone(timezone.utc)
    end = datetime.combine(day + timedelta(days=1), time(0), tz).astimezone(timezone.utc)
    return start, end


def default_day(ctx: Context, now: datetime) -> date:
    """Yesterday in the digest's zone."""
    return now.astimezone(ctx.config.digest.timezone).date() - timedelta(days=1)


def stuck_cutoff(ctx: Context, now: datetime) -> datetime:
    """The latest wait start whose still-looking nudge is due at `now` (business time)."""
    target = ctx.rules.workflow.still_looking.nudge_after
    calendar = ctx.rules.sla.calendar
    low, high = now - LOOKBACK, now  # deadline(low) <= now is assumed; deadline(now) > now unless zero
    if calendar.deadline(target, high) <= now:
        return high
    while high - low > timedelta(minutes=1):
        middle = low + (high - low) / 2
        if calendar.deadline(target, middle) <= now:
            low = middle
        else:
            high = middle
    return low.replace(microsecond=0)


def figures(ctx: Context, day: date, now: datetime) -> dict:
    """Every figure of the digest for the local `day`, JSON-able."""
    tz = ctx.config.digest.timezone
    start, end = bounds(day, tz)
    days = []
    for back in range(TREND_DAYS - 1, -1, -1):
        d = day - timedelta(days=back)
        days.append((d.isoformat(), *bounds(d, tz)))
    survey = ctx.rules.survey
    unhappy = [a.name for a in survey.answers if not a.happy]
    workflow = ctx.rules.workflow
    from mailproc.reports import clusters  # another report's module: imported when a digest is built
    knowledge = clusters.section(ctx, start, end, now)
    return {
        "kind": KIND, "day": day.isoformat(), "timezone": str(tz), "start": start.isoformat(),
        "end": end.isoformat(), "now": now.isoformat(),
        "volumes": queries.volumes(start, end, now),
        "trend": queries.trend(days, now),
        "resolution": queries.resolution(start, end, now),
        "first_response": queries.first_response(start, end, now),
        "sla": queries.sla(start, end, now),
        "stuck": queries.stuck(start, end, now, statuses=workflow.still_looking.statuses,
                               cutoff=stuck_cutoff(ctx, now), hold_statuses=workflow.long_holds.statuses),
        "satisfaction": queries.satisfaction(start, end, now, answers=[a.name for a in survey.answers],
                                             unhappy=unhappy),
        "testimonials": queries.testimonials(start, end, now),
        "outcomes": queries.outcomes(start, end, now, unhappy=unhappy),
        "knowledge": {"clusters": knowledge.get("clusters", []), "missing_docs": knowledge.get("missing_docs", [])},
        "pipeline": queries.pipeline(start, end, now, mailboxes=[b.name for b in ctx.config.mailboxes]),
    }


def labels(ctx: Context) -> dict:
    """What the templates call each key of the figures."""
    return {"types": TYPE_LABELS, "priorities": PRIORITY_LABELS, "buckets": BUCKET_LABELS,
            "colours": COLOUR_LABELS, "answers": {a.name: a.label for a in ctx.rules.survey.answers},
            "outcomes": queries.OUTCOME_LABELS}


def build(ctx: Context, *, day: date | None, now: datetime, agent: str | None = None) -> Report:
    """The digest of the local `day` (None: yesterday in the digest's zone); `agent` is not used."""
    day = day or default_day(ctx, now)
    data = figures(ctx, day, now)
    for limits in HTML_LIMITS:
        rendered = ctx.templates.render(KIND, d=data, labels=labels(ctx), limits=limits)
        html = finishing.finish(rendered.html)
        if len(html.encode("utf-8")) < LIMIT:
            break
    else:
        log.warning("digest for %s: the HTML part is %d bytes even with counts only", day, len(html.encode()))
    return Report(kind=KIND, subject=rendered.subject, data=data, text=rendered.text, html=html,
                  to=recipients(ctx))


def _run(ctx: Context, slot: Slot, now: datetime) -> int:
    day = slot.at.astimezone(ctx.config.digest.timezone).date() - timedelta(days=1)
    to = recipients(ctx)
    if not to:
        log.warning("digest for %s: no [digest] recipients and no active agent with the lead role; not sent", day)
        return 0
    report = build(ctx, day=day, now=now)
    return sum(1 for address in to if send(ctx, report, address, now) is not None)


def slot_jobs(ctx: Context) -> list[SlotJob]:
    digest = ctx.config.digest
    return [SlotJob(KIND, digest.time, digest.timezone, _run)]
