"""Seed 002's on-call paging: a P1 case, or one escalated to on-call, pages at once.

A case calls for on-call while it is open (not resolved, pending closure or
closed) and is P1 or in tier `oncall`. The page's basis is the instant that
made it so — the case's creation for P1, its entry into tier oncall for an
escalation — and every key names it, so a case escalated to on-call again
later pages again, while replanning the same state never pages twice.

- `oncall_page` (due at the basis: at once) mails the agent on call at that
  instant (`mailproc.oncall`), with a reply token so that their `[ack]`
  reply is a command.
- No `[ack]` within `ack_within` of the page: `oncall_wakeup` mails the
  wake-up list (`[oncall] wakeup`).
- `next_after` later still: `oncall_next` pages the next person of the
  rotation.

An acknowledgement (`page_ack_at`, set by `[ack]`) at or after the basis ends
the chain: the items still pending are cancelled by the replan that follows
the command. Each page is an event on the case naming who was paged.
Pages go out as mail to people, never held by the automatic-mail limit.
"""

from __future__ import annotations

from datetime import datetime

from mailproc import cases, compose, oncall
from mailproc.context import Context, roster_of
from mailproc.due import Planned, key
from mailproc.jobs import _mail
from mailproc.models import PRIORITY_LABELS, Case, Event, aware, utc
from mailproc.replytext import MARKER

NOT_OPEN = ("resolved", "pending_closure", "closed")
PAGED, WOKEN, NEXT = 1, 2, 3  # page_level


def basis(case: Case) -> datetime | None:
    """Since when the case calls for on-call (None: it does not)."""
    if case.status in NOT_OPEN:
        return None
    if case.tier == "oncall":
        return aware(case.tier_entered_at)
    if case.priority == "P1":
        return aware(case.created_at)
    return None


def refresh(ctx: Context, case: Case, now: datetime) -> None:
    """A case that is resolved or closed while its chain of pages runs ends the chain:
    reopened later, it must not send a wake-up page for an hour long past."""
    if case.status in NOT_OPEN and case.paged_at is not None and case.page_level < NEXT:
        cases.touch(case, now, page_level=NEXT)


def adopt(case: Case, now: datetime) -> None:
    """A case opened before due work existed (`timers.backfill`): the page it called for
    is long past, so it counts as paged and its chain as ended — an upgrade wakes nobody
    for old cases. A later escalation to on-call pages as usual."""
    since = basis(case)
    if since is not None and case.paged_at is None:
        cases.touch(case, now, paged_at=since, page_level=NEXT)


def plan(ctx: Context, case: Case) -> list[Planned]:
    since = basis(case)
    if since is None:  # most cases: decided without reading the settings
        return []
    settings = oncall.settings(ctx.config)
    if settings is None:
        return []
    acked = aware(case.page_ack_at)
    if acked is not None and acked >= since:
        return []
    paged = aware(case.paged_at)
    if paged is None or paged < since:
        return [Planned("oncall_page", key("oncall_page", case.id, since), since)]
    wake = paged + settings.ack_within
    items = []
    if case.page_level < WOKEN:
        items.append(Planned("oncall_wakeup", key("oncall_wakeup", case.id, since), wake))
    if case.page_level < NEXT:
        items.append(Planned("oncall_next", key("oncall_next", case.id, since), wake + settings.next_after))
    return items


def _reason(case: Case) -> str:
    if case.tier == "oncall":
        return "escalated to on-call"
    return f"priority {PRIORITY_LABELS.get(case.priority, case.priority)}"


def _ack_subject(ctx: Context, case: Case) -> str:
    """The subject of an acknowledging reply, as the page shows it."""
    return f"Re: {ctx.config.case_token.format(number=case.id)} {compose.unlinked(case.summary or '')} [ack]"


def _page(ctx: Context, case: Case, now: datetime) -> None:
    settings = oncall.settings(ctx.config)
    assert settings is not None  # planned only with settings
    name = oncall.on_call(settings, ctx.config.timezone, now)
    _send_page(ctx, case, now, name, rule="oncall:page", wakeup_at=now + settings.ack_within, missed=None)
    cases.touch(case, now, paged_at=now, page_level=PAGED)


def _send_page(ctx: Context, case: Case, now: datetime, name: str, *, rule: str, wakeup_at: datetime | None,
               missed: tuple[str, datetime] | None) -> None:
    agent = roster_of(ctx).agent(name)
    if agent is None:  # the rotation is checked against the roster at start-up; a reload may drop one
        cases.record(case, "paged", now=now, rule=rule, new=name, detail=f"{name} is not on the roster: nobody paged")
        return
    tz = agent.config.timezone
    _mail.to_agent(ctx, case, agent, "oncall_page", now, reason=_reason(case), marker=MARKER,
                   wakeup_at=wakeup_at.astimezone(tz) if wakeup_at else None,
                   missed_name=missed[0] if missed else None,
                   missed_at=missed[1].astimezone(tz) if missed else None, ack_subject=_ack_subject(ctx, case))
    when = f"; the wake-up page follows at {wakeup_at.isoformat(timespec='minutes')} without [ack]" \
        if wakeup_at else ""
    cases.record(case, "paged", now=now, rule=rule, new=name,
                 detail=f"on-call {name} <{agent.address}> paged ({_reason(case)}){when}")


def _first_paged(case: Case) -> str | None:
    """Whom the page of this round went to (its event, written with `paged_at`)."""
    row = (Event.select(Event.new).where((Event.case == case.id) & (Event.kind == "paged")
                                         & (Event.rule == "oncall:page") & (Event.at >= utc(case.paged_at)))
           .order_by(Event.id.desc()).first())
    return row.new if row else None


def _wakeup(ctx: Context, case: Case, now: datetime) -> None:
    settings = oncall.settings(ctx.config)
    assert settings is not None
    paged = aware(case.paged_at)
    first = _first_paged(case) or "(unknown)"
    next_at = paged + settings.ack_within + settings.next_after
    roster = roster_of(ctx)
    paged_agent = roster.agent(first)
    extra = dict(reason=_reason(case), paged_name=first, paged_address=paged_agent.address if paged_agent else None,
                 marker=MARKER, ack_subject=_ack_subject(ctx, case))
    for address in settings.wakeup:
        agent = roster.by_address(address)  # an agent of the list gets a reply token: their [ack] is a command
        tz = agent.config.timezone if agent is not None else ctx.config.timezone
        times = dict(paged_at=paged.astimezone(tz), next_at=next_at.astimezone(tz))
        if agent is not None:
            _mail.to_agent(ctx, case, agent, "wakeup_page", now, **extra, **times)
        else:
            _mail.to_address(ctx, case, address, "wakeup_page", now, **extra, **times)
    listed = ", ".join(settings.wakeup)
    cases.record(case, "paged", now=now, rule="oncall:wakeup", new=listed or None,
                 detail=(f"wake-up page to {listed}: {first} has not acknowledged since "
                         f"{paged.isoformat(timespec='minutes')}") if listed
                 else "no wake-up list is configured ([oncall] wakeup): nobody paged")
    cases.touch(case, now, page_level=WOKEN)


def _next(ctx: Context, case: Case, now: datetime) -> None:
    settings = oncall.settings(ctx.config)
    assert settings is not None
    first = _first_paged(case)
    name = oncall.next_person(settings, ctx.config.timezone, now, besides=first)
    if name is None:
        cases.record(case, "paged", now=now, rule="oncall:next",
                     detail=f"nobody else is in the on-call rotation after {first}: nobody paged")
    else:
        _send_page(ctx, case, now, name, rule="oncall:next", wakeup_at=None,
                   missed=(first, aware(case.paged_at)) if first else None)
    cases.touch(case, now, page_level=NEXT)


RUN = {"oncall_page": _page, "oncall_wakeup": _wakeup, "oncall_next": _next}
