"""An agent's answer, relayed to the customer.

The agent replies to a notification in their own mail client; the customer
must get only what the agent wrote, from the support mailbox, on the case's
thread. `replytext` cuts the new text (at our "reply above this line" marker,
else at the client's quote header, without the signature, bounded); it goes
out as a person's answer — not `Auto-Submitted`, not counted toward the
robot limit — with the case token, In-Reply-To the customer's last mail. It
sets the case's first response and last agent message.

Not relayed: a reply with only commands and no new text, and an agent who
answered the customer directly (the customer's address in To or Cc, the
mailbox in Cc): the customer already has it, so it is recorded as the
agent's reply. Either way the message row keeps the raw mail on the case.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from mailproc import cases, compose, missingdocs, outbox, replytext
from mailproc.context import Context
from mailproc.models import Case, Message, aware
from mailproc.parse import ParsedMail

EXCERPT = 500  # characters of the answer kept in the case's event


@dataclass(frozen=True)
class Relayed:
    """What became of the agent's text: "relayed", "recorded" (sent directly), or "none"."""
    outcome: str
    text: str
    truncated: bool = False


def relay(ctx: Context, case: Case, mail: ParsedMail, message: Message, *, agent_name: str, agent_address: str,
          now: datetime) -> Relayed:
    """Relay (or record) the new text of an agent's reply on `case`, in the caller's transaction."""
    reply = replytext.extract(mail)
    text = reply.text.strip()
    if not text:
        return Relayed("none", "")
    contact = (case.contact or "").lower()
    arrived = aware(message.arrived_at) or now
    times = {"last_agent_at": arrived}
    if case.first_response_at is None:
        times["first_response_at"] = arrived
    if contact and contact in {a.lower() for a in (*mail.to, *mail.cc)}:
        cases.record(case, "agent_reply", now=now, actor=agent_address, message=message,
                     detail=f"answered the customer directly: {text[:EXCERPT]}")
        cases.touch(case, now, **times)
        missingdocs.record(ctx, case, actor=agent_address, text=text, now=now, message=message,
                           html=mail.html)
        return Relayed("recorded", text, reply.truncated)
    box = next((b for b in ctx.config.mailboxes if b.name == case.mailbox), None) or (
        ctx.config.mailboxes[0] if ctx.config.mailboxes else None)
    if box is None or not contact:
        cases.record(case, "mail_suppressed", now=now, new="agent_reply", message=message,
                     detail="no mailbox to send from" if box is None else "the case has no contact address")
        return Relayed("none", text, reply.truncated)
    parent = _last_customer_mail(case, contact)
    token = ctx.config.case_token.format(number=case.id)
    context = dict(case=case, token=token, text=text, truncated=reply.truncated,
                   agent_name=compose.printable_line(agent_name, compose.MAX_NAME))
    outbox.render_and_queue(ctx, kind="agent_reply", case=case, to=case.contact, mail_from=box.address,
                            context=context, in_reply_to=parent.message_id if parent else None,
                            references=[parent.message_id] if parent and parent.message_id else [],
                            now=now, automatic=False)
    cases.record(case, "agent_reply", now=now, actor=agent_address, message=message,
                 detail=f"relayed to {case.contact}: {text[:EXCERPT]}")
    cases.touch(case, now, **times)
    missingdocs.record(ctx, case, actor=agent_address, text=text, now=now, message=message,
                           html=mail.html)
    return Relayed("relayed", text, reply.truncated)


def _last_customer_mail(case: Case, contact: str) -> Message | None:
    return (Message.select(Message.message_id).where(Message.case == case, Message.from_addr == contact,
                                                     Message.message_id.is_null(False))
            .order_by(Message.arrived_at.desc(), Message.id.desc()).first())

