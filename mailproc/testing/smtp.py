"""A real SMTP server on 127.0.0.1 that keeps what it receives.

Tests, the demo and the benchmark point mailproc's `[smtp]` at it and then
look at `messages`. It can be told to answer the next DATA commands with an
error (`fail(451)` for "try later", `fail(550)` for "never") and to refuse
given recipients, so the sender's retry and failure paths run against a
server that really says no, over a real socket.
"""

from __future__ import annotations

import logging

import email
import email.policy
import threading
import time
from dataclasses import dataclass
from email.message import EmailMessage

from aiosmtpd.controller import Controller

from mailproc.testing import free_port

_DEFAULT_TEXT = {4: "Requested action aborted: try again later", 5: "Requested action not taken: rejected"}


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    message: EmailMessage
    at: float = 0.0  # time.time() when the server answered 250 (just before the answer is written)


class _Handler:
    """aiosmtpd finds `handle_RCPT` / `handle_DATA` by name."""

    def __init__(self, catcher: "SmtpCatcher"):
        self.catcher = catcher

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        refusal = self.catcher._refusal(address)
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        failure = self.catcher._next_failure()
        if failure:
            return failure
        data = bytes(envelope.content)
        message = email.message_from_bytes(data, policy=email.policy.default)
        self.catcher._add(Received(envelope.mail_from, list(envelope.rcpt_tos), data, message, time.time()))
        return "250 Message accepted for delivery"


class SmtpCatcher:
    host = "127.0.0.1"

    def __init__(self) -> None:
        self.port = 0
        self.messages: list[Received] = []
        self._lock = threading.Condition()
        self._failures: list[str] = []
        self._refused: dict[str, str] = {}
        self._controller: Controller | None = None

    def start(self) -> None:
        # aiosmtpd logs every SMTP command at INFO on "mail.log"; that drowns our own logs.
        logging.getLogger("mail.log").setLevel(logging.WARNING)
        self.port = free_port(self.host)
        self._controller = Controller(_Handler(self), hostname=self.host, port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def reset(self) -> None:
        """Forget received messages, armed failures and refused recipients."""
        with self._lock:
            self.messages.clear()
            self._failures.clear()
            self._refused.clear()

    def fail(self, code: int, text: str = "", times: int = 1) -> None:
        """The next `times` DATA commands answer `code text` instead of accepting."""
        answer = f"{code} {text or _DEFAULT_TEXT.get(code // 100, 'Error')}"
        with self._lock:
            self._failures.extend([answer] * times)

    def refuse(self, address: str, code: int = 550, text: str = "") -> None:
        """RCPT TO:<address> answers `code text` (until `reset`)."""
        answer = f"{code} {text or 'No such user here'}"
        with self._lock:
            self._refused[address.lower()] = answer

    def wait_for(self, count: int, timeout: float = 10) -> list[Received]:
        """Block until at least `count` messages arrived; return a copy of them."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"expected {count} messages within {timeout}s, got {len(self.messages)}")
                self._lock.wait(left)
            return list(self.messages)

    # called from the server thread
    def _add(self, received: Received) -> None:
        with self._lock:
            self.messages.append(received)
            self._lock.notify_all()

    def _next_failure(self) -> str | None:
        with self._lock:
            return self._failures.pop(0) if self._failures else None

    def _refusal(self, address: str) -> str | None:
        with self._lock:
            return self._refused.get(address.lower())
