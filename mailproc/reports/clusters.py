"""Known-issue clusters and missing docs (issue 8, items 3 and 4; seed 002).

`section(ctx, start, end, now)` is what the daily digest shows; `build(...)` is
`mailproc report clusters`. Both read the rows the cluster pass
(`mailproc.clusters`) and the relay (`mailproc.missingdocs`) wrote, with a few
indexed queries bounded by the window — never a loop over all cases.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from mailproc import reports, slots
from mailproc.clusters import PAGE_AT, SUGGEST_AT
from mailproc.context import Context
from mailproc.models import TYPE_LABELS, Case, Cluster, ClusterMember, iso, utc
from mailproc.reports import Report, html as report_html
from mailproc.reports.queries import CLOSED as FINISHED  # not open: as the digest and the weekly count

# A cluster is worth showing from this size on: the size at which seed 002 says
# "this may be a known issue" and the leads are mailed.
SHOWN_FROM = SUGGEST_AT
MEMBERS_SHOWN = 20  # per cluster in the digest
REPORT_FROM = 2  # the report also shows pairs: a cluster in the making
REPORT_MEMBERS = 200  # per cluster in the report
KNOWN_LISTED = 1000  # tagged cases in the report
KIND = "clusters"


def clusters(start: datetime, end: datetime, *, min_size: int = SHOWN_FROM,
             members_limit: int | None = MEMBERS_SHOWN) -> list[dict[str, Any]]:
    """Clusters of `min_size`+ members that were active in [start, end): a member
    joined in the window. Largest first."""
    s, e = utc(start), utc(end)
    rows = list(Cluster.select()
                .where((Cluster.size >= min_size) & (Cluster.last_at >= s) & (Cluster.opened_at < e))
                .order_by(Cluster.size.desc(), Cluster.id))
    out: list[dict[str, Any]] = []
    for c in rows:
        q = (ClusterMember.select(ClusterMember, Case)
             .join(Case).where(ClusterMember.cluster == c.id).order_by(ClusterMember.id))  # oldest first
        if members_limit is not None:
            q = q.limit(members_limit)
        members = [{"case": m.case.id, "summary": m.case.summary, "contact": m.case.contact,
                    "created_at": iso(m.case.created_at, "seconds"), "similarity": int(round(m.similarity)),
                    "known_issue": m.case.known_issue or ""} for m in q]
        out.append({"id": c.id, "type": c.type, "size": c.size, "summary": c.summary,
                    "opened_at": iso(c.opened_at, "seconds"), "last_at": iso(c.last_at, "seconds"),
                    "suggested_at": iso(c.suggested_at, "seconds"), "paged_at": iso(c.paged_at, "seconds"),
                    "members": members})
    return out


def section(ctx: Context, start: datetime, end: datetime, now: datetime) -> dict[str, Any]:
    """The digest's known-issue part for [start, end).

    Returns {"clusters": [...], "missing_docs": [...]}.

    Each cluster: {"id": int, "type": str, "size": int, "summary": str (the first
    member's), "opened_at": ISO, "last_at": ISO (newest member's creation),
    "suggested_at": ISO | None (leads mailed), "paged_at": ISO | None (on-call paged),
    "members": [{"case": int, "summary": str, "contact": str, "created_at": ISO,
    "similarity": int 0-100, "known_issue": str ("" if untagged)}] (at most 20)}.

    Each missing doc: {"answers": int, "cases": int (distinct), "excerpt": str (the
    first answer's text, shortened), "first_at": ISO, "last_at": ISO,
    "examples": [{"case": int, "agent": str, "at": ISO, "excerpt": str}]}.
    Missing docs look back `missingdocs.WINDOW` (30 days) up to `end`.
    """
    try:
        from mailproc import missingdocs
    except ImportError:  # not there yet
        docs: list[dict[str, Any]] = []
    else:
        docs = missingdocs.find(end - missingdocs.WINDOW, end)
    return {"clusters": clusters(start, end), "missing_docs": docs}


def known_issues(start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Cases tagged with a known issue (known=) that were open at some time in [start, end),
    listed together by known issue, most cases first. Each: {"known": str, "cases":
    [{"case", "summary", "contact", "status", "created_at"}], "open": int (not resolved,
    pending_closure or closed)}. Reads the
    tagged cases only (the cases' known_issue index)."""
    rows = (Case.select(Case.id, Case.known_issue, Case.summary, Case.contact, Case.status, Case.created_at,
                        Case.closed_at)
            .where(Case.known_issue.is_null(False) & (Case.created_at < utc(end))
                   & (Case.closed_at.is_null() | (Case.closed_at >= utc(start))))
            .order_by(Case.known_issue, Case.created_at, Case.id).limit(KNOWN_LISTED))
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for c in rows:
        grouped[c.known_issue].append({"case": c.id, "summary": c.summary, "contact": c.contact,
                                       "status": c.status, "created_at": iso(c.created_at, "seconds")})
    out = [{"known": k, "cases": v, "open": sum(1 for c in v if c["status"] not in FINISHED)}
           for k, v in grouped.items()]
    out.sort(key=lambda d: (-len(d["cases"]), d["known"]))
    return out


def _zone(ctx: Context):
    digest = ctx.config.digest
    return digest.timezone if digest is not None else ctx.config.timezone


def _midnight(day: date, tz) -> datetime:
    at, _ = slots.resolve(day, time(0, 0), tz)
    return at


def build(ctx: Context, *, day: date | None, now: datetime, agent: str | None = None) -> Report:
    """`mailproc report clusters`: the clusters active on the local `day` (None: today so far,
    as the pass sees it) with their members, the known issues' cases listed together, and the
    missing docs of the 30 days up to the day's end. `agent` is not used."""
    from mailproc import missingdocs
    tz = _zone(ctx)
    day = day if day is not None else now.astimezone(tz).date()
    start, end = _midnight(day, tz), _midnight(day + timedelta(days=1), tz)
    docs_end = min(end, now) if start <= now else end
    data = {
        "day": day.isoformat(), "timezone": str(tz), "start": iso(utc(start), "seconds"),
        "end": iso(utc(end), "seconds"),
        "generated_at": now.astimezone(timezone.utc).isoformat(timespec="seconds"),
        "clusters": clusters(start, end, min_size=REPORT_FROM, members_limit=REPORT_MEMBERS),
        "known_issues": known_issues(start, end),
        "missing_docs": missingdocs.find(docs_end - missingdocs.WINDOW, docs_end),
        "thresholds": {"suggest_at": SHOWN_FROM, "page_at": PAGE_AT, "missing_doc_cases": missingdocs.MIN_CASES},
    }
    rendered = ctx.templates.render(KIND, data=data, type_labels=TYPE_LABELS, day=day)
    return Report(kind=KIND, subject=rendered.subject, data=data, text=rendered.text,
                  html=report_html.finish(rendered.html), to=reports.recipients(ctx))
