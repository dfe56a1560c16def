"""`run --once` as an operator's cron job or a second daemon meets it: its exit status,
a message that kills the process, two processes on one mailbox, the send journal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import timedelta

import pytest

from mailproc import db, fetch, lease
from mailproc.clock import Clock
from mailproc.config import load
from mailproc.daemon import EX_TEMPFAIL, checked_context
from mailproc.models import Case, Message, Outbox
from mailproc.send import requeue_stale
from mailproc.sentlog import SentLog
from mailproc.testing import free_port

from mailproc import cli

from helpers import T0, clock_from, mail



@pytest.fixture(autouse=True)
def clock_at_the_mails(monkeypatch):
    """The clock stands just after the test mails' dates (T0): these tests are about intake,
    and on the real clock the workflow's timers (a "still looking" note two business days
    after a mail) would already be due for them."""
    clock_from(monkeypatch, T0 + timedelta(minutes=30))


def run(config, *args, capsys):
    """In-process `mailproc --config CONFIG ARGS…`: (exit code, stdout, stderr)."""
    try:
        code = cli.main(["--config", str(config), *args])
    finally:
        db.close()
    captured = capsys.readouterr()
    return code, captured.out, "\n".join(line for line in captured.err.splitlines()
                                         if line.startswith("mailproc: error:"))  # not the log lines


def mailproc(config, *args, env=None, timeout=180):
    full = {k: v for k, v in os.environ.items() if k != "MAILPROC_CRASH_AT"}
    # The test's clock as it stands now, not as it stood when the test began: a process
    # started on the fixed instant would find the mail an earlier, slower one queued
    # still in its future, and not send it.
    full["MAILPROC_NOW"] = Clock.from_env().now().isoformat()
    full.update(env or {})
    return subprocess.run([sys.executable, "-m", "mailproc", "--config", str(config), *args],
                          capture_output=True, text=True, env=full, timeout=timeout)


def box(dovecot, imap_user, **extra):
    user, password = imap_user
    return dict(name="support", host=dovecot.host, port=dovecot.port, username=user, password=password,
                address="support@example.com", **extra)


# --- exit status -------------------------------------------------------------------


def test_all_well_exits_0(dovecot, imap_user, smtp, make_config, capsys):
    config = make_config(mailboxes=[box(dovecot, imap_user)], smtp=dict(host=smtp.host, port=smtp.port))
    dovecot.append(imap_user[0], mail("Help", "please", message_id="ok1"), internaldate=T0)
    assert run(config, "run", "--once", capsys=capsys)[0] == 0
    assert len(smtp.wait_for(1)) == 1


def test_unreachable_mailbox_exits_75_and_names_it(dovecot, imap_user, smtp, make_config, capsys, monkeypatch):
    monkeypatch.setattr(fetch, "RETRY_DELAYS", (0.05,))
    down = dict(box(dovecot, imap_user), name="billing", port=free_port(), address="billing@example.com")
    config = make_config(mailboxes=[box(dovecot, imap_user), down], smtp=dict(host=smtp.host, port=smtp.port))
    dovecot.append(imap_user[0], mail("Help", "please", message_id="ok2"), internaldate=T0)
    code, _, err = run(config, "run", "--once", capsys=capsys)
    assert code == EX_TEMPFAIL == 75
    assert "mailbox billing:" in err and "mailbox support:" not in err
    assert Case.select().count() == 1  # the other mailbox was still handled


def test_refused_login_exits_75(dovecot, imap_user, smtp, make_config, capsys):
    config = make_config(mailboxes=[dict(box(dovecot, imap_user), password="wrong")],
                         smtp=dict(host=smtp.host, port=smtp.port))
    code, _, err = run(config, "run", "--once", capsys=capsys)
    assert code == 75 and "mailbox support: login refused" in err and "wrong" not in err


def test_unreachable_smtp_server_exits_75_and_keeps_the_mail(dovecot, imap_user, make_config, capsys):
    config = make_config(mailboxes=[box(dovecot, imap_user)], smtp=dict(host="127.0.0.1", port=free_port()))
    dovecot.append(imap_user[0], mail("Help", "please", message_id="ok3"), internaldate=T0)
    code, _, err = run(config, "run", "--once", capsys=capsys)
    assert code == 75 and "sender:" in err
    db.open_database(load(config).database)
    assert [o.state for o in Outbox.select()] == ["queued"]


# --- a message that kills the process ------------------------------------------------


def test_a_message_that_kills_the_process_is_parked_after_three_attempts(dovecot, imap_user, smtp, make_config):
    config = make_config(mailboxes=[box(dovecot, imap_user)], smtp=dict(host=smtp.host, port=smtp.port))
    for n, subject in enumerate(["First question", "POISON here", "Second question"]):
        dovecot.append(imap_user[0], mail(subject, "text", sender=f"c{n}@example.org", message_id=f"p{n}"),
                       internaldate=T0 + timedelta(minutes=n))
    deadly = {"MAILPROC_CRASH_AT": "processing@POISON"}
    for attempt in range(3):
        died = mailproc(config, "run", "--once", env=deadly)
        assert died.returncode == -9, (attempt, died.stderr)
        if attempt == 1:  # the suspect goes last: the mail behind it was not held up
            states = [m["state"] for m in json.loads(mailproc(config, "messages", "list", "--json").stdout)]
            assert states == ["done", "pending", "done"]
    last = mailproc(config, "run", "--once", env=deadly)
    assert last.returncode == 0, last.stderr
    assert "parked after 3 attempts" in last.stderr
    first, poison, second = json.loads(mailproc(config, "messages", "list", "--json").stdout)  # in UID order
    assert poison["state"] == "failed" and "parked after 3 attempts" in poison["error"]
    assert first["disposition"] == second["disposition"] == "new_case"
    assert first["attempts"] == second["attempts"] == 0  # in the batch that died, but not in hand
    try:
        received = smtp.wait_for(2)
    except TimeoutError:
        db.open_database(load(config).database)
        outbox = [(o.id, o.state, o.attempts, o.claimed_by, str(o.next_attempt_at), o.last_error)
                  for o in Outbox.select()]
        db.close()
        raise AssertionError(f"outbox: {outbox}; the last run said: {last.stderr}") from None
    assert sorted(r.rcpt_tos[0] for r in received) == ["c0@example.org", "c2@example.org"]
    # once the cause is fixed, it can be tried again
    again = mailproc(config, "messages", "retry", str(poison["id"]))
    assert again.returncode == 0 and json.loads(again.stdout)["disposition"] == "new_case"


# --- two processes on one mailbox ----------------------------------------------------------


def conversation(n: int) -> list[bytes]:
    """n questions, each followed (later in the folder) by the customer's reply to it."""
    originals = [mail(f"Question {i}", f"body {i}", sender=f"c{i}@example.org", message_id=f"q{i}")
                 for i in range(n)]
    replies = [mail(f"Re: Question {i}", f"more about {i}", sender=f"c{i}@example.org", message_id=f"r{i}",
                    headers={"In-Reply-To": f"<q{i}@test.example>", "References": f"<q{i}@test.example>"})
               for i in range(n)]
    return [m for pair in zip(originals, replies) for m in pair]


@pytest.mark.slow
def test_two_processes_on_one_mailbox_make_each_case_once(dovecot, imap_user, smtp, make_config, db_url):
    n = 60
    config = make_config(database=db_url, mailboxes=[box(dovecot, imap_user, batch_size=10)],
                         smtp=dict(host=smtp.host, port=smtp.port))
    dovecot.load(imap_user[0], conversation(n), T0)
    env = {k: v for k, v in os.environ.items() if k != "MAILPROC_CRASH_AT"}
    procs = [subprocess.Popen([sys.executable, "-m", "mailproc", "--config", str(config), "run", "--once"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]
    outcomes = [(p.wait(timeout=180), p.stderr.read()) for p in procs]
    for code, err in outcomes:
        assert code == 0, err
        assert "Traceback" not in err and "database is locked" not in err
    db.open_database(load(config).database)
    assert Case.select().count() == n
    assert Message.select().where(Message.disposition == "follow_up").count() == n
    assert len({r.message["Message-ID"] for r in smtp.wait_for(n)}) == n


def test_many_processes_starting_on_a_new_database_create_the_schema_once(make_config, db_url):
    config = make_config(database=db_url)
    env = {k: v for k, v in os.environ.items() if k != "MAILPROC_CRASH_AT"}
    procs = [subprocess.Popen([sys.executable, "-m", "mailproc", "--config", str(config), "cases", "list"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(4)]
    for p in procs:
        assert p.wait(timeout=60) == 0, p.stderr.read()


def test_a_folder_polled_by_another_process_is_left_to_it(dovecot, imap_user, make_config, db_url):
    config = load(make_config(database=db_url, mailboxes=[box(dovecot, imap_user)]))
    ctx = checked_context(config, Clock())
    db.open_database(config.database)
    dovecot.append(imap_user[0], mail("Help", "please", message_id="leased"), internaldate=T0)
    mailbox = config.mailboxes[0]
    other = "otherhost:1:abcd"
    assert lease.acquire(fetch.lease_name(mailbox), other, ctx.clock.now()) is None
    handled = []
    result = fetch.poll(mailbox, ctx, handled.extend)
    assert result.busy == other and result.fetched == 0 and not handled
    lease.release(fetch.lease_name(mailbox), other)
    result = fetch.poll(mailbox, ctx, handled.extend)
    assert result.busy is None and result.fetched == 1


def test_an_expired_lease_or_a_dead_local_holder_is_taken_over(make_config, sqlite_url):
    db.open_database(sqlite_url)
    now = Clock().now()
    assert lease.acquire("job", "otherhost:1:x", now) is None
    assert lease.acquire("job", "me", now) == "otherhost:1:x"
    assert lease.acquire("job", "me", now + lease.TTL + timedelta(seconds=1)) is None
    dead = subprocess.run([sys.executable, "-c", "import mailproc.lease as l; print(l.new_holder())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    assert lease.acquire("job2", dead, now) is None
    assert lease.acquire("job2", "me", now) is None  # its process is gone: no need to wait


def test_a_reused_pid_does_not_keep_a_dead_holder_alive():
    host, pid, started, rand = lease.new_holder().split(":")
    assert not lease.dead_here(f"{host}:{pid}:{started}:{rand}")  # this very process
    assert lease.dead_here(f"{host}:{pid}:{int(started) + 1}:{rand}")  # same pid, another process
    assert not lease.dead_here(f"elsewhere:{pid}:{int(started) + 1}:{rand}")  # another host: cannot know


def test_a_killed_process_nobody_has_reaped_yet_is_dead():
    child = subprocess.Popen([sys.executable, "-c", "import mailproc.lease as l; print(l.new_holder(), flush=True)"],
                             stdout=subprocess.PIPE, text=True)
    holder = child.stdout.readline().strip()
    try:
        deadline = time.monotonic() + 10
        while not open(f"/proc/{child.pid}/stat").read().split(") ")[1].startswith("Z"):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert lease.dead_here(holder)  # a zombie: its pid still answers kill(pid, 0)
    finally:
        child.wait()


# --- the send journal ----------------------------------------------------------------------


def test_a_row_the_journal_says_was_accepted_is_recorded_sent_not_sent_again(make_config, sqlite_url, tmp_path):
    db.open_database(sqlite_url)
    now = Clock().now()
    dead = subprocess.run([sys.executable, "-c", "import mailproc.lease as l; print(l.new_holder())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    rows = [Outbox.create(kind="acknowledgement", message_id=f"m{i}@x", mail_from="s@x", recipients=["a@x"],
                          to_addr="a@x", raw=b"x", state="sending", claimed_at=now.replace(tzinfo=None),
                          claimed_by=dead, next_attempt_at=now.replace(tzinfo=None),
                          created_at=now.replace(tzinfo=None)) for i in range(3)]
    journal = SentLog(tmp_path)
    journal.record(rows[0].id, "m0@x")
    journal.record(rows[1].id, "another-database@x")  # same id, not the same mail
    with open(journal.path, "ab") as fh:
        fh.write(f"{rows[2].id} m2".encode())  # torn line: the kill came mid-write
    assert requeue_stale(now, journal) == 2
    states = {o.message_id: o.state for o in Outbox.select()}
    assert states == {"m0@x": "sent", "m1@x": "queued", "m2@x": "queued"}


def test_the_journal_is_pruned_to_the_rows_still_sending(tmp_path, monkeypatch):
    import mailproc.sentlog as sentlog
    monkeypatch.setattr(sentlog, "PRUNE_ABOVE", 10)
    journal = SentLog(tmp_path)
    for i in range(5):
        journal.record(i, f"m{i}@x")
    assert journal.prune(lambda: [1, 3]) == 2
    journal.record(7, "m7@x")
    assert journal.accepted() == {1: "m1@x", 3: "m3@x", 7: "m7@x"}
    assert oct(journal.path.stat().st_mode & 0o777) == "0o600"


# --- the message in hand -----------------------------------------------------------------


def test_only_the_message_in_hand_is_blamed_for_a_death(tmp_path):
    from mailproc import inflight
    script = ("import os, signal, sys; from mailproc import inflight; h = inflight.of(sys.argv[1]); "
              "[h.mark(i) for i in (11, 12, 13)]; os.kill(os.getpid(), signal.SIGKILL)")
    subprocess.run([sys.executable, "-c", script, str(tmp_path)])
    clean = ("import sys; from mailproc import inflight; h = inflight.of(sys.argv[1]); h.mark(21); h.mark(0)")
    subprocess.run([sys.executable, "-c", clean, str(tmp_path)], check=True)  # exits normally: file removed
    between = ("import os, signal, sys; from mailproc import inflight; h = inflight.of(sys.argv[1]); "
               "h.mark(31); h.mark(0); os.kill(os.getpid(), signal.SIGKILL)")
    subprocess.run([sys.executable, "-c", between, str(tmp_path)])  # died between batches: nobody in hand
    mine = inflight.of(tmp_path)
    mine.mark(41)  # alive: not blamed
    assert inflight.left_by_the_dead(tmp_path) == [13]
    assert inflight.left_by_the_dead(tmp_path) == []  # counted once
    mine.close()
    assert sorted(p.name for p in (tmp_path / "inflight").iterdir()) == []
