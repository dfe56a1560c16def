"""Threading: which existing case, if any, does this mail belong to?

In order (the first that answers wins):
  1. duplicate   - the same Message-ID (or, without one, the same bytes) was
                   already handled, e.g. one mail CC'd to support@ and billing@;
  2. token       - the subject names a case ("[Case #123]", read by
                   `mailproc.subject`) and the sender is on that case; a number
                   quoted by a stranger is not proof;
  3. in_reply_to / references - a Message-ID we received or sent for a case;
  4. bounce      - the bounced original is one of our mails on a case.
A normal reply to a Closed case does not reopen it: `reopen_of` asks `act` to
open a new case linked to the old one. An answer to the satisfaction question
stays on its case (`mailproc.satisfaction`). Bounces and auto-replies stay on the
closed case (recorded there, nothing reopened).

This stage only reads the database.
"""

from __future__ import annotations

import peewee as pw

from mailproc import cases, db, satisfaction
from mailproc.models import Case, Message, Participant, Person
from mailproc.stages import Work
from mailproc.subject import find_tokens, token_regex


def run(work: Work) -> None:
    """Set work.case / thread_rule / duplicate_of / reopen_of; record what fired."""
    if _duplicate(work):
        return
    case, rule = _by_token(work)
    if case is None:
        case, rule = _by_message_ids(work)
    if case is None and work.bounce is not None and work.bounce.original_message_id:
        case = _case_of_message_id(work.bounce.original_message_id, work.message.id)
        rule = "bounce" if case is not None else None
    if case is None:
        return
    work.thread_rule = rule
    work.note("thread", rule)
    if case.status == "closed":  # only a closed case can have been merged into another
        goes_on = cases.survivor(case.id)
        if goes_on != case.id:
            case = Case.get_by_id(goes_on)
            work.note("thread", f"merged-into:{goes_on}")
    if satisfaction.is_answer(work, case):  # an answer to our question reopens nothing
        work.note("thread", "satisfaction-answer")
        work.case = case
        return
    if case.status == "closed" and work.screen is None:
        work.reopen_of = case
        work.note("thread", "reply-to-closed-case")
        return
    work.case = case


# Hand-written (hot path: every message asks). Only the indexed column in the
# WHERE clause: with `state` there too, SQLite may pick the much less selective
# state index and scan every handled message; the few rows are filtered here.
_SAME_MESSAGE_ID_SQL = "SELECT id, case_id, state FROM message WHERE message_id = ? ORDER BY id"
_SAME_BYTES_SQL = "SELECT id, case_id, state FROM message WHERE raw_sha256 = ? ORDER BY id"


def _duplicate(work: Work) -> bool:
    if work.mail.message_id:
        rows = db.query_all(_SAME_MESSAGE_ID_SQL, [work.mail.message_id])
    else:
        rows = db.query_all(_SAME_BYTES_SQL, [work.message.raw_sha256])
    first = next((row for row in rows if row[0] != work.message.id and row[2] == "done"), None)
    if first is None:
        return False
    work.duplicate_of = Message.get_by_id(first[0])
    work.case = Case.get_by_id(first[1]) if first[1] is not None else None
    work.thread_rule = "duplicate"
    work.note("thread", "duplicate")
    return True


def _by_token(work: Work) -> tuple[Case | None, str | None]:
    for number in find_tokens(work.mail.subject, token_regex(work.ctx.config.case_token)):
        case = Case.get_or_none(Case.id == number)
        if case is None:
            work.note("thread", "token-unknown-case")
            continue
        if _on_case(case, work.mail.from_addr):
            return case, "token"
        work.note("thread", "token-ignored-sender-not-on-case")
    return None, None


def _on_case(case: Case, address: str) -> bool:
    """The contact, a participant, or an active agent may thread by case number."""
    address = (address or "").strip().lower()
    if not address:
        return False
    if (case.contact or "").strip().lower() == address:
        return True
    if Participant.select().where((Participant.case == case)
                                  & (pw.fn.LOWER(Participant.address) == address)).exists():
        return True
    return is_agent(address)


def is_agent(address: str) -> bool:
    """An active person of the roster (matched without regard to case)."""
    return Person.select().where((pw.fn.LOWER(Person.address) == (address or "").strip().lower())
                                 & Person.active).exists()


def _by_message_ids(work: Work) -> tuple[Case | None, str | None]:
    # The nearest ancestor is last in References, so look from the end.
    for rule, ids in (("in_reply_to", work.mail.in_reply_to), ("references", list(reversed(work.mail.references)))):
        for message_id in ids:
            case = _case_of_message_id(message_id, work.message.id)
            if case is not None:
                return case, rule
    return None, None


_SENT_CASE_SQL = "SELECT case_id FROM outbox WHERE message_id = ? AND case_id IS NOT NULL ORDER BY id LIMIT 1"
_RECEIVED_CASE_SQL = ("SELECT case_id FROM message WHERE message_id = ? AND case_id IS NOT NULL AND id <> ?"
                      " ORDER BY id LIMIT 1")


def _case_of_message_id(message_id: str, own_id: int | None) -> Case | None:
    """The case of a mail we sent (Outbox) or received (Message) with this Message-ID."""
    found = (db.query_one(_SENT_CASE_SQL, [message_id])
             or db.query_one(_RECEIVED_CASE_SQL, [message_id, own_id if own_id is not None else -1]))
    return Case.get_or_none(Case.id == found[0]) if found else None
