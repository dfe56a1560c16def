"""Crash safety: kill -9 the real process between fetch, commit, flag and send,
run it again, and check that every message was handled once, no case was made
twice, no acknowledgement was sent twice, and nothing was lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from datetime import timedelta

import pytest

from helpers import T0, mail



N = 4


STARTED = time.monotonic()


def mailproc(config, *args, crash=None):
    """`mailproc ARGS` in a process of its own. Its clock stands just after the test mails'
    dates (T0) and runs on from one call to the next as real time does: these tests are
    about intake, and on the real clock the workflow's timers (a "still looking" note two
    business days after a mail) would already be due for them."""
    env = {k: v for k, v in os.environ.items() if k != "MAILPROC_CRASH_AT"}
    env["MAILPROC_NOW"] = (T0 + timedelta(minutes=30, seconds=time.monotonic() - STARTED)).isoformat()
    if crash:
        env["MAILPROC_CRASH_AT"] = crash
    return subprocess.run([sys.executable, "-m", "mailproc", "--config", str(config), *args],
                          capture_output=True, text=True, env=env, timeout=120)


@pytest.fixture
def site(dovecot, imap_user, smtp, make_config):
    user, password = imap_user
    config = make_config(mailboxes=[dict(name="support", host=dovecot.host, port=dovecot.port, username=user,
                                         password=password, address="support@example.com",
                                         processed_folder="Processed", batch_size=2)],
                         smtp=dict(host=smtp.host, port=smtp.port))
    for n in range(N):
        dovecot.append(user, mail(f"Problem number {n}", f"details {n}", sender=f"c{n}@example.org",
                                  message_id=f"crash{n}"), internaldate=T0)
    return config


@pytest.mark.parametrize("point", ["after_store", "after_commit:3", "after_flag", "after_send:2"])
def test_kill_and_rerun_handles_every_message_once(site, smtp, point, dovecot):
    crashed = mailproc(site, "run", "--once", crash=point)
    if point.startswith("after_send"):  # the sender process was killed; the main one reports it
        assert crashed.returncode == 1 and "sender process ended with exit status -9" in crashed.stderr
    else:
        assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    again = mailproc(site, "run", "--once")
    assert again.returncode == 0, again.stderr

    messages = json.loads(mailproc(site, "messages", "list", "--json").stdout)
    cases = json.loads(mailproc(site, "cases", "list", "--json").stdout)
    assert len(messages) == N and all(m["state"] == "done" for m in messages)
    assert sorted(m["disposition"] for m in messages) == ["new_case"] * N
    assert sorted(c["contact"] for c in cases) == [f"c{n}@example.org" for n in range(N)]
    received = smtp.wait_for(N)
    assert sorted(r.rcpt_tos[0] for r in received) == [f"c{n}@example.org" for n in range(N)]
    assert len({r.message["Message-ID"] for r in received}) == N
    # Every message was moved out of the inbox once its case was committed.
    client = dovecot.client(_user(site))
    try:
        assert client.select_folder("INBOX")[b"EXISTS"] == 0
        assert client.select_folder("Processed")[b"EXISTS"] == N
    finally:
        client.logout()


def _user(config) -> str:
    for line in config.read_text().splitlines():
        if line.startswith("username = "):
            return line.split(" = ", 1)[1]
    raise AssertionError("no username in config")
