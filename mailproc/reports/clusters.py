"""Known-issue clusters and missing docs (issue 8, items 3 and 4; seed 002).

`section(ctx, start, end, now)` is what the daily digest shows; `build(...)` is
`mailproc report clusters`. Both read the rows the cluster pass
(`mailproc.clusters`) and the relay (`mailproc.missingdocs`) wrote, with a few
indexed queries bounded by the window — never a loop over all cases.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mailproc.context import Context
from mailproc.models import Case, Cluster, ClusterMember, aware, utc

# A cluster is worth showing from this size on: the size at which seed 002 says
# "this may be a known issue" and the leads are mailed.
SHOWN_FROM = 3
MEMBERS_SHOWN = 20  # per cluster in the digest; the report lists all


def _iso(value: datetime | None) -> str | None:
    return aware(value).isoformat(timespec="seconds") if value is not None else None


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
             .join(Case).where(ClusterMember.cluster == c.id).order_by(Case.created_at, Case.id))
        if members_limit is not None:
            q = q.limit(members_limit)
        members = [{"case": m.case.id, "summary": m.case.summary, "contact": m.case.contact,
                    "created_at": _iso(m.case.created_at), "similarity": int(round(m.similarity)),
                    "known_issue": m.case.known_issue or ""} for m in q]
        out.append({"id": c.id, "type": c.type, "size": c.size, "summary": c.summary,
                    "opened_at": _iso(c.opened_at), "last_at": _iso(c.last_at),
                    "suggested_at": _iso(c.suggested_at), "paged_at": _iso(c.paged_at),
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
