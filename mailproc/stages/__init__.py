"""The per-message stages, in the order `pipeline` runs them (`PURE_STAGES`,
which need no database, then `STAGES`, inside the message's transaction).

Each stage is a module with `run(work: Work) -> None`. Stages read the
database but only `act` writes to it; each records the rules that fired in
`work.trace`, and each looks at what the earlier ones decided before doing
anything (classify, for one, runs only for mail that opens a new case).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mailproc.config import MailboxConfig
from mailproc.context import Context
from mailproc.models import Case, Message
from mailproc.parse import ParsedMail


@dataclass
class Bounce:
    """What a delivery-status notification told us."""
    recipients: list[str]  # the addresses that failed, lower-case
    original_message_id: str | None  # Message-ID of the mail that bounced, if found
    reason: str  # the diagnostic, short
    permanent: bool  # 5.x.x (or unknown): the address is undeliverable


@dataclass
class Work:
    ctx: Context
    message: Message  # the stored row, state 'pending'
    mail: ParsedMail
    raw: bytes
    now: datetime  # aware UTC; the processing time
    mailbox: MailboxConfig | None  # the mailbox it came in through, if any
    trace: list[str] = field(default_factory=list)  # "stage:rule" that fired, in order

    # screen
    screen: str | None = None  # bounce | auto_reply | bulk | loop | rejected, None for a normal mail
    bounce: Bounce | None = None

    # thread
    case: Case | None = None  # the existing case this mail belongs to
    thread_rule: str | None = None  # how it was matched: token | in_reply_to | references | duplicate | bounce
    duplicate_of: Message | None = None  # same Message-ID / bytes already handled
    reopen_of: Case | None = None  # a reply to a closed case: open a new one linked to this

    # classify (new cases only): field -> value, and field -> rule name
    fields: dict[str, Any] = field(default_factory=dict)
    decided_by: dict[str, str] = field(default_factory=dict)
    customer: Any = None  # models.Customer or None

    # outcome
    disposition: str | None = None

    def note(self, stage: str, rule: str) -> None:
        self.trace.append(f"{stage}:{rule}")
