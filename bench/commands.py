"""Agents' command mails against a desk full of open cases (see bench/README.md).

    .venv/bin/python bench/commands.py [--cases 10000] [--commands 1000]

One throwaway Dovecot mailbox and SMTP sink, one SQLite site with two agents:
1. --cases customer questions (distinct senders, so each opens a case and is
   acknowledged, assigned and notified), taken in by one `mailproc run --once`;
2. --commands agent mails, each `Re: [Case #N] … [status=pending_input
   priority=P3 tag=bench]` with a text for the customer and the trusted
   server's Authentication-Results (dmarc=pass), spread over the open cases,
   taken in by a second `mailproc run --once`: authorised, applied in one
   savepoint each, relayed to the customer, answered with a transcript.
Reports the rate of each run (the whole command, start-up included) and peak
RSS of the main and sender processes, sampled from /proc.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import sys
import tempfile
from datetime import timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import corpus  # noqa: E402
from run import SmtpSink, run_mailproc  # noqa: E402

from mailproc.testing import write_config  # noqa: E402
from mailproc.testing.dovecot import Dovecot  # noqa: E402

TRUSTED = "mx.bench.example"
AGENTS = {"ana": "ana@agents.bench.example", "bob": "bob@agents.bench.example"}


def question(i: int) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"Customer {i} <c{i}@shop{i % 50}.example>"
    msg["To"] = "support@bench.example"
    msg["Subject"] = f"How do I export report {i}?"
    msg["Date"] = format_datetime(corpus.T0 + timedelta(seconds=i))
    msg["Message-ID"] = f"<q{i}@shop{i % 50}.example>"
    msg.set_content(f"I cannot find the export button for report {i} in the Reports menu.\nThanks")
    return msg.as_bytes()


def command(i: int, case: int, agent: str) -> bytes:
    msg = EmailMessage()
    msg["Authentication-Results"] = f"{TRUSTED}; dmarc=pass header.from=agents.bench.example"
    msg["From"] = AGENTS[agent]
    msg["To"] = "support@bench.example"
    msg["Subject"] = f"Re: [Case #{case}] How do I export report? [status=pending_input priority=P3 tag=bench]"
    msg["Date"] = format_datetime(corpus.T0 + timedelta(days=1, seconds=i))
    msg["Message-ID"] = f"<cmd{i}@agents.bench.example>"
    msg.set_content("The export button is under Reports > Share. Could you confirm it works?\n\n"
                    "On Mon, 2 Nov 2026 at 08:00, Customer wrote:\n"
                    f"> I cannot find the export button for report {case}.\n")
    return msg.as_bytes()


def outcome(database: Path) -> dict[str, int]:
    """What the command mails did, read back from the site's database."""
    con = sqlite3.connect(database)
    try:
        def count(sql: str) -> int:
            return con.execute(sql).fetchone()[0]
        return {"dispositions_command": count("SELECT COUNT(*) FROM message WHERE disposition = 'command'"),
                "status_changes": count("SELECT COUNT(*) FROM event WHERE rule = 'command:status'"),
                "relayed": count("SELECT COUNT(*) FROM outbox WHERE kind = 'agent_reply'"),
                "transcripts": count("SELECT COUNT(*) FROM outbox WHERE kind = 'transcript'"),
                "open_cases": count("SELECT COUNT(*) FROM cases WHERE status NOT IN ('resolved', 'closed')")}
    finally:
        con.close()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=10000)
    parser.add_argument("--commands", type=int, default=1000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mailproc-bench-commands-"))
    os.chmod(work, 0o755)
    dovecot = Dovecot(work / "dovecot")
    dovecot.start()
    smtp = SmtpSink()
    results: dict[str, object] = {"cases": args.cases, "commands": args.commands}
    try:
        dovecot.add_user("bench", "bench")
        dovecot.load("bench", [question(i) for i in range(args.cases)], corpus.T0)
        box = dict(name="support", host=dovecot.host, port=dovecot.port, username="bench", password="bench",
                   address="support@bench.example")
        hours = "Mon-Sun 00:00-24:00"
        config = write_config(work / "site", mailboxes=[box], smtp=dict(host=smtp.host, port=smtp.port),
                              agents={name: dict(address=address, teams="Support Team", hours=hours)
                                      for name, address in AGENTS.items()})
        config.write_text(config.read_text() + f"\n[auth]\nauthserv_id = {TRUSTED}\n")
        seconds, rss = run_mailproc(config)
        results["intake"] = {"seconds": round(seconds, 1), "rate": round(args.cases / seconds, 1),
                             "peak_rss_mb": rss}
        rng = random.Random(5)
        mails = [command(i, rng.randrange(1, args.cases + 1), rng.choice(list(AGENTS)))
                 for i in range(args.commands)]
        dovecot.load("bench", mails, corpus.T0 + timedelta(days=1))
        seconds, rss = run_mailproc(config)
        results["command_mails"] = {"seconds": round(seconds, 1), "rate": round(args.commands / seconds, 1),
                                    "peak_rss_mb": rss, **outcome(config.parent / "storage" / "mailproc.sqlite3")}
    finally:
        smtp.stop()
        dovecot.stop()
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
