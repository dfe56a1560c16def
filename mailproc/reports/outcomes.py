"""`mailproc report outcomes`: seed 000's outcome report on its own ("Chat Reporting").

Each case closed in the local day (the digest's zone) counts once, under its most
severe outcome — 1 answered–happy, 2 answered–unhappy, 3 feature request added,
4 problem with a workaround, 5 problem without one — with the unhappy ones listed
for the daily review. The figures are `queries.outcomes`, the very query the daily
digest shows (its docstring says how an outcome is derived), so the two never
disagree.
"""

from __future__ import annotations

from datetime import date, datetime

from mailproc.context import Context
from mailproc.reports import Report, digest, html as finishing, queries

KIND = "outcomes"


def build(ctx: Context, *, day: date | None, now: datetime, agent: str | None = None) -> Report:
    """The outcome report of the local `day` (None: yesterday in the digest's zone)."""
    day = day or digest.default_day(ctx, now)
    tz = ctx.config.digest.timezone
    start, end = digest.bounds(day, tz)
    unhappy = [a.name for a in ctx.rules.survey.answers if not a.happy]
    data = {"kind": KIND, "day": day.isoformat(), "timezone": str(tz), "start": start.isoformat(),
            "end": end.isoformat(), "now": now.isoformat(),
            "outcomes": queries.outcomes(start, end, now, unhappy=unhappy)}
    rendered = ctx.templates.render(KIND, d=data)
    return Report(kind=KIND, subject=rendered.subject, data=data, text=rendered.text,
                  html=finishing.finish(rendered.html), to=digest.recipients(ctx))
