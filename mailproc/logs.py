"""Logging to stderr in a form journald reads well.

Under systemd (JOURNAL_STREAM set) each line starts with the syslog priority
`<N>` so journald records the right level, and no timestamp is added (journald
has its own). On a terminal the lines carry a timestamp instead. Messages
never contain passwords: config objects hide them from repr().
"""

from __future__ import annotations

import logging
import os
import sys

_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


class JournalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        prio = _PRIORITY.get(record.levelno, 6)
        return "\n".join(f"<{prio}>{line}" for line in text.splitlines())


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time, so a replaced stderr never gets stale."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value):
        pass


def setup(level: str = "info") -> None:
    handler = _StderrHandler()
    if os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("peewee", "imapclient", "mail-parser", "mailparser", "aiosmtplib", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.ERROR if noisy in ("mailparser", "mail-parser") else logging.WARNING)
