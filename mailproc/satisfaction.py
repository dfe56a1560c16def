"""A customer's answer to the satisfaction question (SPEC §4; rules/survey.toml).

An answer is a mail on a case that was asked (`survey_sent_at`) which either
answers our question (In-Reply-To / References name the question's
Message-ID, as the outbox row of kind 'satisfaction' records it) or carries
the answer links' subject ("Re: [Case #12] Satisfaction: Satisfied"; a
mailto: link sets no threading headers). `thread` marks it (`ANSWER` in the
trace) instead of opening a new case linked to the closed one, and `act`
files it with disposition `satisfaction` and calls `take`.

The answer is read from the link's subject, else from the reply's new text:
a number alone or the words of one answer, English or Portuguese. The latest
readable answer stands (a customer may think again; each change is in the
history). An unhappy answer mails the assignee and the team lead once per
change to it. An answer nobody can read is kept on the case as a comment; the
customer is not asked again.
"""

from __future__ import annotations

from mailproc import cases, db, replytext
from mailproc.jobs import _mail
from mailproc.models import Case, aware
from mailproc.stages import Work

ANSWER = "thread:satisfaction-answer"  # the trace entry that makes a mail an answer
COMMENT_LIMIT = 2000
_ASKED_IDS_SQL = "SELECT message_id FROM outbox WHERE case_id = ? AND kind = 'satisfaction'"


def is_answer(work: Work, case: Case) -> bool:
    """Whether this mail (not an auto-reply or bounce) answers the case's satisfaction question."""
    if work.screen is not None or case.survey_sent_at is None:
        return False
    if case.status != "closed" or case.closed_at is None or case.survey_sent_at < case.closed_at:
        return False  # reopened since: a mail in the survey's thread is about the case again
    from mailproc.stages.thread import is_agent  # thread imports this module
    if is_agent(work.mail.from_addr):  # an agent's mail on the case is theirs to handle
        return False
    ours = {row[0] for row in db.query_all(_ASKED_IDS_SQL, [case.id])}
    mail = work.mail
    if ours & {*mail.in_reply_to, *mail.references}:
        return True
    return work.ctx.rules.survey.marker(mail.subject) is not None


def answered(work: Work) -> bool:
    return ANSWER in work.trace


def take(work: Work) -> None:
    """Store the answer on the case, or keep an unreadable one as a comment."""
    case, ctx, mail = work.case, work.ctx, work.mail
    assert case is not None
    rules = ctx.rules.survey
    actor = mail.from_addr or cases.SYSTEM
    text = replytext.extract(mail).text.strip()
    answer = rules.read_subject(mail.subject) or rules.read(text)
    if answer is None:
        cases.record(case, "comment", now=work.now, actor=actor, rule="survey:unreadable", message=work.message,
                     detail=(text or mail.subject)[:COMMENT_LIMIT])
        return
    was = case.satisfaction
    arrived = aware(work.message.arrived_at) or work.now
    cases.set_field(case, "satisfaction", answer.name, actor=actor, now=work.now, rule="survey:answer",
                    message=work.message, detail=text[:COMMENT_LIMIT] or None)
    cases.touch(case, work.now, satisfaction_at=arrived)
    cases.contact_seen(mail.from_addr, work.now)
    if not answer.happy and was != answer.name:
        _tell(work, case, answer.label, text)


def _tell(work: Work, case: Case, label: str, text: str) -> None:
    """Mail the assignee and the team lead (each once) that the customer is unhappy."""
    ctx = work.ctx
    people = [p for p in [_mail.assignee(ctx, case), *_mail.leads(ctx, case, first="team")] if p is not None]
    seen: set[str] = set()
    for agent in people:
        if agent.name in seen:
            continue
        seen.add(agent.name)
        _mail.to_agent(ctx, case, agent, "unhappy_customer", work.now, answer_label=label,
                       answer_text=text[:COMMENT_LIMIT])
    if not seen:
        cases.record(case, "mail_suppressed", now=work.now, new="unhappy_customer", rule="survey:unhappy",
                     detail="no assignee and no lead on the roster to tell")
