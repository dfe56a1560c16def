"""An agent's command mail: authorised, applied all together or not at all, answered
with one transcript (SPEC §5).

`act` hands a mail here when its subject has a command group and its From is
an agent of the roster (`is_command_mail`). A customer's subject with a
command group is an ordinary follow-up: the commands are never read.

- `authz.authorise` decides whether the mail proves it comes from that
  agent. Refused: no change; the mail stays on the case as a 'comment'
  event; the agent is told why at their ROSTER address (never the From,
  which may be forged). Automatic mail (auto-submitted, bulk) gets no answer
  at all: answering robots is how mail loops start.
- Allowed: the commands run through `mailproc.commands.apply`, in one
  savepoint inside the message's transaction; a problem of the grammar
  (unknown verb, typo, too many) or a refused value means none of them runs.
  The agent gets one transcript: what changed old → new, what was refused
  and why, in the order written (and the command reference for `help`).
- A command mail whose case does not exist (or that names none) gets an
  error mail at the roster address.
- The new text of an allowed mail goes to the customer (`relay`), also when
  it has no commands at all; not when its commands were refused, nor for
  `note`, `split` and `help`, whose text is the command's own. A mail with
  only commands sends the customer nothing.

Transcripts are not `automatic` in the outbox's sense (the per-address limit
of automatic mail would silence an agent who works many cases in an hour):
only a proven, non-automatic mail from the agent causes one, so they cannot
loop. Refusals are automatic, so a forger cannot flood an agent's mailbox
through us beyond the per-address limit.
"""

from __future__ import annotations

import logging
from typing import Any

from mailproc import authz, cases, commands, compose, notify, outbox, relay
from mailproc.models import Case, Person, aware
from mailproc.replytext import extract
from mailproc.roster import Agent
from mailproc.stages import Work
from mailproc.subject import find_tokens, parse_commands, token_regex

log = logging.getLogger(__name__)

TRANSCRIPT, REFUSAL = "transcript", "refusal"
# Commands whose mail text is not for the customer: the body is the command's own.
PRIVATE = ("note", "split", "help")
SUBJECT_LIMIT = 500


def _roster(ctx: Any):
    return getattr(ctx, "roster", None) or commands.assign.roster_of(ctx)


def agent_of(work: Work) -> Agent | None:
    return _roster(work.ctx).by_address(work.mail.from_addr)


def is_command_mail(work: Work) -> bool:
    """A subject with a command group from an address of the roster (cheap test first)."""
    return parse_commands(work.mail.subject).span is not None and agent_of(work) is not None


def is_agent_reply(work: Work) -> bool:
    """A mail on a case from an address of the roster: an answer to relay, once proven."""
    return work.case is not None and agent_of(work) is not None


def run(work: Work) -> None:
    """Handle an agent's command mail; `work.case` ends as the case it was about (if any)."""
    ctx, mail = work.ctx, work.mail
    agent = agent_of(work)
    assert agent is not None
    case = work.case or work.reopen_of
    work.case, work.reopen_of = case, None
    if case is None:
        _no_case(work, agent)
        return
    agents = {a.address: a.name for a in _roster(ctx).agents}
    decision = authz.authorise(mail, case=case.id, agents=agents, now=work.now, secrets=ctx.config.token_keys,
                               authserv_id=ctx.config.authserv_id, merged=cases.merged_into(case.id))
    if not decision.allowed:
        _refused(work, case, agent, decision)
        return
    work.note("agentmail", f"authorised:{decision.how}")
    parsed = parse_commands(mail.subject)
    if parsed.span is None:  # an answer without commands
        _relay(work, case, agent)
        return
    actor = agent.address
    origin = commands.Origin(work.message, extract(mail).text)
    if parsed.problems:
        results = [commands.Result(c.raw, skipped=True) for c in parsed.commands]
        applied = False
    else:
        results, applied = commands.apply(ctx, case, parsed.commands, actor=actor, now=work.now, message=origin)
        if not applied:
            case = work.case = Case.get_by_id(case.id)  # the object saw the rolled-back changes
    problems = list(parsed.problems) + [f"{r.raw}: {r.error}" for r in results if r.error]
    cases.record(case, "commands", now=work.now, actor=actor, message=work.message,
                 rule=f"agentmail:{decision.how}",
                 detail=("applied: " if applied else "refused, nothing changed: ")
                 + "; ".join([r.change.text for r in results if r.change] or problems)[:2000])
    work.note("agentmail", "applied" if applied else "refused")
    if applied and not any(c.name in PRIVATE for c in parsed.commands):
        _relay(work, case, agent)
    if applied:
        _tell_new_assignee(work, case, agent, results)
    _queue(work, case, agent, TRANSCRIPT, automatic=False, context=dict(
        applied=applied, results=results, problems=list(parsed.problems),
        help_text=commands.reference_text() if any(c.name == "help" for c in parsed.commands) else ""))


def _tell_new_assignee(work: Work, case: Case, by: Agent, results: list) -> None:
    """A case handed to another agent (`assign=`) is announced to them as any new case
    of theirs is: a notification with the customer's text and their own reply token."""
    person = next((r.change.new for r in results if r.change and r.change.field == "assignee"), None)
    handle = Person.get_by_id(person).handle if person is not None else None
    new = _roster(work.ctx).agent(handle) if handle else None
    box = _mailbox(work, case)
    if new is None or new.name == by.name or box is None or not notify.enabled(work.ctx):
        return
    sla = work.ctx.rules.sla
    start = aware(case.created_at) if case.first_response_at is None else work.now
    due = sla.expected_response(case.priority, start or work.now) if case.priority in sla.response else None
    notify.notify(work.ctx, case=case, agent=new, event=notify.ASSIGNED, mail=work.mail, box=box, due=due,
                  now=work.now, text=case.description or "")


def _relay(work: Work, case: Case, agent: Agent) -> None:
    """The new text of the agent's mail to the customer (`relay`); nothing if there is none."""
    done = relay.relay(work.ctx, case, work.mail, work.message, agent_name=agent.config.display_name or agent.name,
                       agent_address=agent.address, now=work.now)
    work.note("agentmail", f"reply:{done.outcome}")


def _refused(work: Work, case: Case, agent: Agent, decision: authz.Decision) -> None:
    work.note("agentmail", f"refused:{decision.reason}")
    cases.record(case, "comment", now=work.now, actor=work.mail.from_addr or cases.SYSTEM, message=work.message,
                 rule="agentmail:refused",
                 detail=f"commands not run ({decision.reason}: {decision.detail}); subject: "
                        f"{work.mail.subject[:SUBJECT_LIMIT]}")
    if decision.reason == authz.AUTOMATIC:
        return  # never answer a robot
    _queue(work, case, agent, REFUSAL, automatic=True, context=dict(reason=decision.reason, detail=decision.detail))


def _no_case(work: Work, agent: Agent) -> None:
    numbers = find_tokens(work.mail.subject, token_regex(work.ctx.config.case_token))
    detail = (f"there is no case #{numbers[0]}" if numbers
              else "the mail names no case (answer a mail about the case, or put its number in the subject)")
    work.note("agentmail", "no-case")
    log.info("command mail %s from %s: %s", work.message.id, agent.name, detail)
    _queue(work, None, agent, REFUSAL, automatic=True, context=dict(reason="no such case", detail=detail))


def _queue(work: Work, case: Case | None, agent: Agent, kind: str, *, automatic: bool, context: dict) -> None:
    ctx, mail = work.ctx, work.mail
    box = _mailbox(work, case)
    if box is None:
        if case is not None:
            cases.record(case, "mail_suppressed", now=work.now, new=kind, detail="no mailbox to send from")
        return
    token = ctx.config.case_token.format(number=case.id) if case is not None else ""
    outbox.render_and_queue(
        ctx, kind=kind, case=case, to=agent.address, mail_from=box.address, in_reply_to=mail.message_id,
        references=list(mail.references), now=work.now, automatic=automatic,
        context=dict(context, agent_name=compose.greeting_name(agent.config.display_name or agent.name),
                     case=case, token=token,
                     original_subject=compose.printable_line(mail.subject, compose.MAX_SUBJECT_TEXT)))


def _mailbox(work: Work, case: Case | None):
    boxes = work.ctx.config.mailboxes
    named = next((b for b in boxes if case is not None and b.name == case.mailbox), None)
    return named or work.mailbox or (boxes[0] if boxes else None)
