"""A self-contained demonstration: `scripts/demo` runs this.

Starts a throwaway Dovecot and an SMTP catcher on 127.0.0.1, loads the
sample mails of demo/mail/ into a support@ and a billing@ mailbox, imports
demo/customers.csv, runs `mailproc run --once`, then shows the cases, the
fate of every message, and the mails mailproc sent. The state stays in
storage/demo/ afterwards, so the commands it prints can be tried by hand.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import io
import shutil
import sys
from datetime import datetime
from email.parser import BytesParser

from mailproc import cli
from mailproc.testing import REPO, write_config
from mailproc.testing.dovecot import Dovecot
from mailproc.testing.smtp import SmtpCatcher

DEMO = REPO / "demo"
BOXES = {"support": "support@demo.example", "billing": "billing@demo.example"}


def _recipients(raw: bytes) -> list[str]:
    headers = BytesParser(policy=email.policy.default).parsebytes(raw, headersonly=True)
    to = " ".join(str(headers.get_all(h, [""])[0]) for h in ("To", "Cc")).lower()
    return [name for name, address in BOXES.items() if address in to] or ["support"]


def _banner(text: str) -> None:
    print(f"\n=== {text} " + "=" * max(0, 70 - len(text)), flush=True)


def main() -> int:
    root = REPO / "storage" / "demo"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    dovecot, smtp = Dovecot(root / "dovecot"), SmtpCatcher()
    dovecot.start()
    smtp.start()
    try:
        for name in BOXES:
            dovecot.add_user(name, "demo")
        for eml in sorted((DEMO / "mail").glob("*.eml")):
            raw = eml.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            headers = BytesParser(policy=email.policy.default).parsebytes(raw, headersonly=True)
            arrived = headers["Date"].datetime if headers["Date"] else datetime.now().astimezone()
            for user in _recipients(raw):
                dovecot.append(user, raw, internaldate=arrived)
        config = write_config(root, mailboxes=[
            dict(name=name, host=dovecot.host, port=dovecot.port, username=name, password="demo",
                 address=address, **({"team": "Admin Task Team"} if name == "billing" else {}))
            for name, address in BOXES.items()], smtp=dict(host=smtp.host, port=smtp.port))
        base = ["--config", str(config), "--now", "2026-11-26T10:30:00+00:00"]
        _banner("mailproc customers import demo/customers.csv")
        cli.main(base + ["customers", "import", str(DEMO / "customers.csv")])
        _banner("mailproc run --once")
        cli.main(base + ["run", "--once"])
        _banner("mailproc cases list")
        cli.main(base + ["cases", "list"])
        _banner("mailproc messages list")
        cli.main(base + ["messages", "list"])
        _banner(f"mails sent ({len(smtp.messages)}) as the SMTP server received them")
        for got in smtp.messages:
            body = got.message.get_body(("plain",))
            text = body.get_content() if body else ""
            print(f"\nTo: {', '.join(got.rcpt_tos)}\nFrom: {got.message['From']}\nSubject: {got.message['Subject']}"
                  f"\nAuto-Submitted: {got.message['Auto-Submitted']}\n")
            print("    " + "\n    ".join(text.strip().splitlines()[:14]))
        _banner("mailproc status")
        cli.main(base + ["status"])
        _banner("mailproc report digest --for 2026-11-26  (the leads' daily digest of that day)")
        cli.main(["--config", str(config), "--now", "2026-11-27T07:30:00+00:00", "report", "digest",
                  "--for", "2026-11-26"])
        later = "2026-11-30T17:30:00+00:00"
        _banner(f"mailproc run --once --dry-run --now {later}  (what the timers will send by then)")
        shown = io.StringIO()
        with contextlib.redirect_stdout(shown):
            cli.main(["--config", str(config), "--now", later, "run", "--once", "--dry-run"])
        print("\n".join(line for line in shown.getvalue().splitlines() if line.startswith("=== would send"))
              or "  nothing")
        _banner("try it yourself")
        print(f"  .venv/bin/mailproc --config {config} cases show 1")
        print(f"  .venv/bin/mailproc --config {config} cases list --json")
        print(f"  .venv/bin/mailproc --config {config} --now {later} run --once --dry-run")
        print(f"  .venv/bin/mailproc --config {config} report digest --for 2026-11-26 --format html > digest.html")
        print("  (the demo's IMAP and SMTP servers stop when this command ends)")
        return 0
    finally:
        smtp.stop()
        dovecot.stop()


if __name__ == "__main__":
    sys.exit(main())
