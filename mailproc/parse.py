"""Raw bytes -> `ParsedMail`, never raising.

mail-parser does the MIME work; when it raises (it does on some real-world
bounces and broken mail) the standard library's `email` parser takes over,
and when even that fails the result still carries whatever headers could be
read, with the problem listed in `defects`. A message is never lost because
it could not be parsed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass
class Attachment:
    filename: str
    content_type: str
    size: int


@dataclass
class ParsedMail:
    message_id: str | None  # without angle brackets, whitespace stripped
    subject: str
    from_addr: str  # lower-case bare address, '' if none
    from_name: str
    reply_to: list[str]  # lower-case bare addresses
    to: list[str]
    cc: list[str]
    date: datetime | None  # aware
    in_reply_to: list[str]  # Message-IDs without angle brackets
    references: list[str]
    headers: dict[str, list[str]]  # lower-case name -> decoded values, in order
    text: str  # the plain-text body (from text/plain, else text derived from HTML)
    html: str
    attachments: list[Attachment] = field(default_factory=list)
    content_type: str = "text/plain"  # the top-level type, lower-case
    defects: list[str] = field(default_factory=list)
    parser: str = "mail-parser"  # which parser produced this: mail-parser | email | headers-only

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[0] if values else None


def parse(raw: bytes) -> ParsedMail:
    raise NotImplementedError
