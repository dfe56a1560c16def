"""Building test mails and running the real `mailproc` command in-process."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from email.message import EmailMessage
from email.utils import format_datetime

from mailproc import cli, db

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=timezone.utc)


def mail(subject="Question about reports", body="How do I export a report?", *, sender="alice@acme.example",
         to="support@example.com", message_id=None, headers=None, date=T0) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(date)
    if message_id is not False:
        msg["Message-ID"] = f"<{message_id or abs(hash((subject, body, sender, str(date))))}@test.example>"
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    return msg.as_bytes()


def run(config, *args, now=None, capsys=None):
    """Run `mailproc --config CONFIG ARGS…` in-process; return (exit code, stdout)."""
    argv = ["--config", str(config)] + (["--now", now] if now else []) + [str(a) for a in args]
    try:
        code = cli.main(argv)
    finally:
        db.close()
    out = capsys.readouterr().out if capsys else ""
    return code, out


def run_json(config, capsys, *args, now=None):
    code, out = run(config, *args, "--json", now=now, capsys=capsys)
    assert code == 0, out
    return json.loads(out)


def run_once(config, now) -> None:
    """`mailproc run --once` in-process at the instant `now`; it must succeed."""
    try:
        assert cli.main(["--config", str(config), "--now", now.isoformat(), "run", "--once"]) == 0
    finally:
        db.close()


def clock_from(monkeypatch, start: datetime) -> None:
    """One clock for the whole test, standing at `start` when the test begins and running on
    as real time does: in-process commands share it (each would otherwise start its set clock
    afresh at `start`, and a mail queued by one could be "in the future" for the next), and
    processes started by the test get it through MAILPROC_NOW. An explicit --now still wins."""
    from mailproc.clock import Clock, parse_instant

    offset = start - datetime.now(timezone.utc)
    monkeypatch.setenv("MAILPROC_NOW", start.isoformat())

    def from_env(cls, now=None):
        return cls(parse_instant(now)) if now else cls.shifted(offset)

    monkeypatch.setattr(Clock, "from_env", classmethod(from_env))


def report_site(url: str, make_config, agents: dict, now: datetime, digest_zone: str = "Europe/Lisbon"):
    """A desk for report tests: one mailbox (never polled), `agents` synced to the database,
    the digest in `digest_zone`; the context at `now`, its database open (the caller closes it)."""
    from mailproc import roster
    from mailproc.clock import Clock
    from mailproc.config import load
    from mailproc.context import load_context

    path = make_config(database=url, agents=agents,
                       mailboxes=[dict(name="support", host="127.0.0.1", port=1, username="u", password="p",
                                       address="support@example.com")])
    with path.open("a", encoding="utf-8") as f:
        f.write(f"\n[digest]\ntimezone = {digest_zone}\n")
    config = load(path)
    db.open_database(config.database)
    context = load_context(config, Clock(now))
    roster.sync(context.roster)
    return context
