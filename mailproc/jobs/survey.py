"""After a case closes: the satisfaction question, then the testimonial request (SPEC §4,
seeds 000 and 003; settings in rules/survey.toml).

- `survey`: the question, `after_close` (a minute) after the case closed, so the
  closure mail (statuses, at the instant of closing) goes first; postponed while
  the customer is away. Not for internal or partner cases or customers (the case's
  flags or its directory row), nor for a case merged into another (its customer
  hears on the case that goes on). At most one question per address within
  `once_per` (30 days): a case closed sooner is skipped with an event saying so,
  and its item ends done, so it is not asked later either; `survey_sent_at` stays
  empty (it says a question went out, and reports count it).
- `testimonial`: `testimonial_after` (a week) after closing, when the answer was
  happy or an agent marked the case a possible testimonial — never after an
  unhappy answer. The Google Apps variant when the customer's directory row says
  google_apps.

Both keys name `closed_at`: a reopen (the case leaves Closed) cancels what is
pending, and a later close plans afresh.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import quote

from mailproc import cases, db
from mailproc.context import Context
from mailproc.due import Planned, key
from mailproc.jobs import _mail
from mailproc.jobs.statuses import later
from mailproc.models import Case, aware, utc
from mailproc.outbox import bare_address

_CUSTOMER_SQL = "SELECT internal, partner, google_apps FROM customer WHERE id = ?"
_ASKED_SQL = ("SELECT created_at FROM outbox WHERE to_addr = ? AND created_at > ? AND kind = 'satisfaction'"
              " ORDER BY created_at DESC LIMIT 1")


def _customer(case: Case) -> tuple[bool, bool, bool]:
    """(internal, partner, google_apps) of the case's directory row; all False without one."""
    customer_id = case.__data__.get("customer")
    row = db.query_one(_CUSTOMER_SQL, [customer_id]) if customer_id is not None else None
    return (bool(row[0]), bool(row[1]), bool(row[2])) if row else (False, False, False)


def plan(ctx: Context, case: Case) -> list[Planned]:
    closed = aware(case.closed_at)
    if case.status != "closed" or closed is None or case.internal or case.partner:
        return []
    wants_survey = case.survey_sent_at is None
    rules = ctx.rules.survey
    wants_testimonial = (case.testimonial_sent_at is None and not rules.unhappy(case.satisfaction)
                         and (rules.happy(case.satisfaction) or bool(case.possible_testimonial)))
    if not (wants_survey or wants_testimonial):
        return []
    internal, partner, _ = _customer(case)
    if internal or partner or cases.merged_to(case.id) is not None:
        return []
    items = []
    if wants_survey:
        at = later(closed + rules.after_close, aware(case.away_until))
        items.append(Planned("survey", key("survey", case.id, closed), at))
    if wants_testimonial:
        items.append(Planned("testimonial", key("testimonial", case.id, closed), closed + rules.testimonial_after))
    return items


def asked_recently(ctx: Context, case: Case, now: datetime) -> datetime | None:
    """When the case's contact was last asked, if within `once_per` of `now`."""
    row = db.query_one(_ASKED_SQL, [bare_address(case.contact).lower(), utc(now - ctx.rules.survey.once_per)])
    if not row:
        return None
    at = row[0]
    return aware(datetime.fromisoformat(at) if isinstance(at, str) else at)


def answer_links(ctx: Context, case: Case, address: str) -> list[dict]:
    """One mailto: link per answer, to the case's mailbox, its subject carrying the case
    token and the answer ("Re: [Case #12] Satisfaction: Satisfied"), URL-encoded."""
    token = ctx.config.case_token.format(number=case.id)
    rules = ctx.rules.survey
    links = []
    for answer in rules.answers:
        subject = f"Re: {token} {rules.subject}: {answer.label}"
        links.append(dict(number=answer.number, label=answer.label, name=answer.name, subject=subject,
                          mailto=f"mailto:{address}?subject={quote(subject, safe='')}"))
    return links


def _survey(ctx: Context, case: Case, now: datetime) -> None:
    from mailproc.stages.thread import is_agent
    if is_agent(case.contact):
        cases.record(case, "survey_skipped", now=now, rule="survey:internal", detail="the contact is an agent")
        return
    asked = asked_recently(ctx, case, now)
    if asked is not None:
        cases.record(case, "survey_skipped", now=now, rule="survey:once_per",
                     detail=f"{case.contact} was asked on {asked.astimezone(ctx.config.timezone):%Y-%m-%d %H:%M}:"
                            f" at most one question within {ctx.rules.survey.once_per.days} days")
        return
    box = _mail.mailbox_of(ctx, case)
    address = box.address if box is not None else ""
    sent = _mail.to_customer(ctx, case, "satisfaction", now, answers=answer_links(ctx, case, address),
                             marker=ctx.rules.survey.subject)
    if sent is not None:
        cases.touch(case, now, survey_sent_at=now)


def _testimonial(ctx: Context, case: Case, now: datetime) -> None:
    google = _customer(case)[2]
    rules = ctx.rules.survey
    kind = "testimonial_google" if google else "testimonial"
    sent = _mail.to_customer(ctx, case, kind, now, review_url=rules.google_review_url if google else rules.review_url,
                             answer_label=(rules.answer(case.satisfaction).label
                                           if rules.answer(case.satisfaction) else None))
    if sent is not None:  # refused (limit, undeliverable: a mail_suppressed event), the done item is not retried
        cases.touch(case, now, testimonial_sent_at=now)


RUN = {"survey": _survey, "testimonial": _testimonial}
