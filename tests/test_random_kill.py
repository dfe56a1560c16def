"""kill -9 of the whole process group (intake and its sender together) at random moments.

What an operator's `systemctl kill -s KILL`, the OOM killer or a power cut does.
Every trial adds mail, starts `run --once` in a session of its own, kills the
group after a random delay, and the next trial goes on from there; a last run
finishes the work. Then every mail has its case once, every customer got their
acknowledgement, and a mail that arrived twice is allowed only when the
server's 250 for its first copy came within a few milliseconds before a kill,
or after it (the client had sent the whole mail and died before reading the
answer): that window is SMTP's own, not ours.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from datetime import timedelta

import pytest

from mailproc import db, lease
from mailproc.config import load
from mailproc.models import Case, Message, Outbox

from helpers import T0, mail

# A long mail (a pasted log): intake holds the write lock longer for it, which is
# when a sender that recorded its sends in the database had to wait.
BODY = "My export stopped working after the upgrade; the page says error 500.\n" * 1500
WINDOW = 0.005  # seconds between the server's 250 and a kill within which a second copy is SMTP's limit
# A 250 the server wrote after the kill (the client had sent the final dot, then
# died before reading the answer) is the same limit; the server takes a moment
# to read and parse a long mail before it answers.
AFTER = 0.25


def trials(dovecot, imap_user, smtp, make_config, db_url, count: int, per_trial: int) -> None:
    user, password = imap_user
    config = make_config(database=db_url, mailboxes=[dict(
        name="support", host=dovecot.host, port=dovecot.port, username=user, password=password,
        address="support@example.com", batch_size=25)], smtp=dict(host=smtp.host, port=smtp.port))
    env = {k: v for k, v in os.environ.items() if k != "MAILPROC_CRASH_AT"}
    rng = random.Random(int(os.environ.get("MAILPROC_KILL_SEED", "7")))
    logs = config.parent / "trials"  # each trial's log: which message a death was blamed on
    logs.mkdir()
    # Kills land over start-up and the work after it, however long start-up takes here:
    # kills that all land before the first message would test little, and kills that
    # land at the same early moment every time blame the first message every time.
    start_up = start_up_time(config, env)
    kills: list[float] = []
    history: list[tuple] = []  # (started, killed, exit status) per trial, for the failure message
    total = 0
    for trial in range(count):
        mails = [mail(f"Trial {trial} question {i}", BODY, sender=f"t{trial}c{i}@example.org",
                      message_id=f"t{trial}m{i}") for i in range(per_trial)]
        dovecot.load(user, mails, T0 + timedelta(hours=trial))
        total += per_trial
        started = time.time()
        with open(logs / f"trial-{trial}.log", "wb") as err:
            proc = subprocess.Popen([sys.executable, "-m", "mailproc", "--config", str(config), "--log-level",
                                     "info", "run", "--once"], stdout=subprocess.DEVNULL, stderr=err, env=env,
                                    start_new_session=True)
        time.sleep(rng.uniform(start_up / 2, start_up + 2.5))  # 80 mails take about 2 s after start-up
        try:
            os.killpg(proc.pid, signal.SIGKILL)
            kills.append(time.time())
        except ProcessLookupError:
            pass  # it finished first
        proc.wait()
        history.append((round(started, 3), round(kills[-1], 3) if kills else None, proc.returncode))
        time.sleep(0.05)  # a sender orphaned for a moment notices its parent is gone
    for _ in range(2):
        last = subprocess.run([sys.executable, "-m", "mailproc", "--config", str(config), "run", "--once"],
                              capture_output=True, text=True, env=env, timeout=120)
        assert last.returncode == 0, last.stderr

    # Counted by recipient: a second copy (allowed below) must not stand in for a mail not yet arrived.
    deadline = time.monotonic() + 30
    while True:
        received = smtp.wait_for(0)
        customers = {r.rcpt_tos[0] for r in received}
        if len(customers) >= total:
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(customers)} of {total} customers got their acknowledgement; "
                                 f"not sent: {unsent(config)}; start-up {start_up:.2f} s; "
                                 f"deaths blamed on: {blamed(logs)}")
        time.sleep(0.1)
    copies: dict[str, list[float]] = defaultdict(list)
    for r in received:
        copies[r.message["Message-ID"]].append(r.at)
    late = []
    for message_id, times in copies.items():
        if len(times) < 2:
            continue
        first = min(times)
        if not any(kill - WINDOW <= first <= kill + AFTER for kill in kills):
            kill = min((k for k in kills if k >= first), default=None)
            late.append((message_id, [round(t, 3) for t in times], None if kill is None else round(kill - first, 4)))
    assert not late, f"sent twice, the first 250 well before any kill: {late}; trials: {history}"
    assert sorted({r.rcpt_tos[0] for r in received}) == sorted(
        f"t{t}c{i}@example.org" for t in range(count) for i in range(per_trial))

    db.open_database(load(config).database)
    assert Message.select().where(Message.state != "done").count() == 0
    assert Case.select().count() == total
    db.close()


def start_up_time(config, env) -> float:
    """Seconds a process takes to start and load the rules and templates: about what `check`
    takes (it also compiles the shipped templates, which start-up leaves out: a little more)."""
    began = time.monotonic()
    subprocess.run([sys.executable, "-m", "mailproc", "--config", str(config), "check"], env=env,
                   capture_output=True, check=True)
    return time.monotonic() - began


def blamed(logs) -> list[str]:
    """Each trial's 'message N was in hand when a process died' lines, for the failure message."""
    return [f"{path.stem}: {line.split(': ', 1)[1]}" for path in sorted(logs.iterdir())
            for line in path.read_text(errors="replace").splitlines() if "was in hand" in line]


def unsent(config) -> list:
    """What the database says of the mail that did not arrive, for the failure message."""
    db.open_database(load(config).database)
    try:
        return ([(o.id, o.state, o.attempts, o.last_error, o.claimed_by, str(o.claimed_at),
                  lease.dead_here(o.claimed_by)) for o in Outbox.select().where(Outbox.state != "sent")]
                + [(m.id, m.state, m.attempts, m.error) for m in Message.select().where(Message.state != "done")])
    finally:
        db.close()


def test_random_kills_of_the_process_group_send_nothing_twice(dovecot, imap_user, smtp, make_config, db_url):
    trials(dovecot, imap_user, smtp, make_config, db_url, count=6, per_trial=40)


@pytest.mark.slow
def test_many_random_kills(dovecot, imap_user, smtp, make_config, db_url):
    trials(dovecot, imap_user, smtp, make_config, db_url, count=int(os.environ.get("MAILPROC_KILL_TRIALS", "20")),
           per_trial=80)
