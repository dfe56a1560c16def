"""The sweep of due work: driven in-process by `Daemon.tick(now)`; two sweepers on one
PostgreSQL do each item once; SIGTERM in the middle of a sweep loses nothing and sends
nothing twice; a failing item is kept, retried later and never blocks the others; stale
items do nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

from mailproc import cases, db, due, sweep, timers
from mailproc.clock import Clock
from mailproc.config import load
from mailproc.daemon import Daemon, checked_context
from mailproc.models import Case, Due, Event, Message, Outbox

from helpers import mail

UTC = timezone.utc
ASKED = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)  # in the past: the IMAP server keeps no future dates
DUE = ASKED + timedelta(days=3, minutes=1)  # every reminder of a case asked at ASKED is due


def _config(make_config, db_url, dovecot, imap_user, smtp=None):
    box = dict(name="support", host=dovecot.host, port=dovecot.port, username=imap_user[0],
               password=imap_user[1], address="support@example.com")
    return make_config(database=db_url, mailboxes=[box],
                       smtp=dict(host=smtp.host, port=smtp.port) if smtp else None)


def _context(config):
    ctx = checked_context(load(config), Clock())
    db.open_database(ctx.config.database)
    return ctx


def _pending_cases(ctx, count: int, at: datetime = ASKED) -> list[int]:
    """`count` cases in Pending Input since `at`, with their due work planned (as a command would)."""
    numbers = []
    with db.transaction():
        for i in range(count):
            case = cases.open_case({"contact": f"c{i}@shop.example", "summary": f"Question {i}", "mailbox": "support",
                                    "status": "assigned", "last_customer_at": at, "last_agent_at": at},
                                   decided={}, rules={}, actor="c@shop.example", now=at)
            cases.set_field(case, "status", "pending_input", actor="ana@agents.example", now=at, command="pending")
            timers.replan(ctx, case, at)
            numbers.append(case.id)
    return numbers


def test_tick_polls_when_a_poll_is_due_and_sweeps_every_time(make_config, db_url, dovecot, imap_user):
    config = _config(make_config, db_url, dovecot, imap_user)
    ctx = _context(config)
    [number] = _pending_cases(ctx, 1)
    dovecot.append(imap_user[0], mail("Export question", "How do I export?", date=ASKED), internaldate=ASKED)
    daemon = Daemon(ctx, start_sender=False)

    first = daemon.tick(ASKED + timedelta(hours=1))
    assert first.polled and first.intake is not None and first.intake.counts.get("new_case") == 1
    [message] = Message.select()  # intake ran on the tick's clock, not the wall clock
    assert abs(message.processed_at - (ASKED + timedelta(hours=1)).replace(tzinfo=None)) < timedelta(minutes=1)
    assert first.swept is not None and first.swept.total == 0
    later = daemon.tick(ASKED + timedelta(hours=2))  # poll_interval is 2 h: no poll yet
    assert not later.polled and later.swept is not None
    reminder = daemon.tick(DUE)  # 3 days on: a poll is due, and the reminder
    # the reminder, and the new case's own timers (it waited 3 days for an answer)
    assert reminder.polled and reminder.swept.done["remind"] == 1 and reminder.swept.done["still_looking"] == 1
    assert Outbox.select().where(Outbox.kind == "reminder", Outbox.case == number).count() == 1
    assert daemon.tick(DUE - timedelta(days=1)).polled  # a clock set back polls at once ...
    assert Outbox.select().where(Outbox.kind == "reminder").count() == 1  # ... and never repeats work


def test_a_failing_item_is_kept_retried_later_and_never_blocks_the_others(make_config, db_url, dovecot, imap_user,
                                                                         monkeypatch):
    ctx = _context(_config(make_config, db_url, dovecot, imap_user))
    first, second = _pending_cases(ctx, 2)
    real = timers.RUNNERS["remind"]

    def flaky(ctx, case, now):
        if case.id == first:
            raise RuntimeError("template server on fire")
        real(ctx, case, now)

    monkeypatch.setitem(timers.RUNNERS, "remind", flaky)
    swept = sweep.sweep(ctx, DUE)
    assert swept.done == Counter({"remind": 1}) and len(swept.failed) == 1 and "on fire" in swept.failed[0]
    failed = Due.get(Due.case == first, Due.kind == "remind")
    assert failed.done_at is None and failed.attempts == 1 and "on fire" in failed.last_error
    assert failed.due_at > DUE.replace(tzinfo=None)  # backed off
    with db.transaction():  # a change of its case replans it: the backoff stands
        timers.replan(ctx, Case.get_by_id(first), DUE)
    assert Due.get_by_id(failed.id).due_at == failed.due_at
    assert Case.get_by_id(first).reminded_at is None  # its work was rolled back, the other's kept
    assert Case.get_by_id(second).reminded_at is not None
    monkeypatch.setitem(timers.RUNNERS, "remind", real)
    early = sweep.sweep(ctx, DUE + timedelta(seconds=30))
    assert early.total == 0 and not early.failed  # not taken again before its backoff (1 min)
    assert sweep.sweep(ctx, DUE + timedelta(minutes=2)).done == Counter({"remind": 1})
    assert Outbox.select().where(Outbox.kind == "reminder").count() == 2


def test_a_stale_item_does_nothing(make_config, db_url, dovecot, imap_user):
    """The case moved on without replanning (an older mailproc, a hand edit): the sweep
    recomputes the plan before doing an item, so a stale one ends without effect."""
    ctx = _context(_config(make_config, db_url, dovecot, imap_user))
    [number] = _pending_cases(ctx, 1)
    Case.update(status="assigned").where(Case.id == number).execute()  # no replan
    swept = sweep.sweep(ctx, DUE)
    assert swept.total == 0 and swept.stale == 1
    assert Due.get(Due.case == number, Due.kind == "remind").outcome == due.STALE
    assert not Outbox.select().where(Outbox.kind == "reminder").exists()


_SWEEPER = """
import sys, time
from datetime import datetime
from mailproc import db, sweep
from mailproc.clock import Clock
from mailproc.config import load
from mailproc.daemon import checked_context
ctx = checked_context(load(sys.argv[1]), Clock())
db.open_database(ctx.config.database)
start = float(sys.argv[3])
while time.time() < start:
    time.sleep(0.005)
swept = sweep.sweep(ctx, datetime.fromisoformat(sys.argv[2]))
print(swept.total)
"""


def test_two_sweepers_on_one_postgresql_do_each_item_once(make_config, postgresql_url, dovecot, imap_user):
    config = _config(make_config, postgresql_url, dovecot, imap_user)
    ctx = _context(config)
    numbers = _pending_cases(ctx, 300)
    db.close()
    start = time.time() + 3
    procs = [subprocess.Popen([sys.executable, "-c", _SWEEPER, str(config), DUE.isoformat(), str(start)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    done = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        done.append(int(out.strip().splitlines()[-1]))
    assert sum(done) == 300, done  # together, each item once
    db.open_database(postgresql_url)
    per_case = Counter(case for (case,) in Outbox.select(Outbox.case).where(Outbox.kind == "reminder").tuples())
    assert sorted(per_case) == numbers and set(per_case.values()) == {1}
    assert Event.select().where(Event.kind == "reminded").count() == 300
    assert not Due.select().where(Due.kind == "remind", Due.done_at.is_null()).exists()


def test_sigterm_in_the_middle_of_a_sweep_loses_nothing_and_sends_nothing_twice(make_config, db_url, dovecot,
                                                                               imap_user, smtp, tmp_path):
    count = 400
    config = _config(make_config, db_url, dovecot, imap_user, smtp)
    ctx = _context(config)
    _pending_cases(ctx, count)
    db.close()
    log = tmp_path / "run.log"
    argv = [sys.executable, "-m", "mailproc", "--config", str(config), "--now", DUE.isoformat(), "run", "--once"]
    with open(log, "w") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + 60
        while "remind done" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) in (0, 75), log.read_text()
    db.open_database(load(config).database)
    reminded = Outbox.select().where(Outbox.kind == "reminder").count()
    assert 0 < reminded < count, "the stop came in the middle of the sweep"
    assert Due.select().where(Due.kind == "remind", Due.outcome == "done").count() == reminded
    sent_first = Outbox.select().where(Outbox.kind == "reminder", Outbox.state == "sent").count()
    db.close()
    # The next run does the rest: every reminder row is sent, and the server got each one once.
    assert subprocess.run(argv, capture_output=True, timeout=300).returncode == 0
    db.open_database(load(config).database)
    rows = {r.message_id for r in Outbox.select().where(Outbox.kind == "reminder")}
    assert len(rows) == count and not Outbox.select().where(Outbox.state != "sent").exists()
    got = [m.message["Message-ID"].strip("<>") for m in smtp.wait_for(count, timeout=60)]
    reminders = [mid for mid in got if mid in rows]
    assert sorted(reminders) == sorted(rows), f"{sent_first} sent by the first run"  # each once, none twice


@pytest.fixture
def postgresql_url(db_url):
    if not db_url.startswith("postgresql"):
        pytest.skip("row locks of several sweepers: PostgreSQL (SQLite's write lock serializes them)")
    return db_url


def test_cases_opened_before_due_work_are_planned_once(make_config, db_url, dovecot, imap_user):
    """A database upgraded from before due work: its open cases have no due rows until the
    first start plans them, once."""
    ctx = _context(_config(make_config, db_url, dovecot, imap_user))
    at = ASKED.replace(tzinfo=None)
    for i, status in enumerate(("pending_input", "assigned", "closed")):
        Case.create(contact=f"old{i}@shop.example", status=status, created_at=at, updated_at=at,
                    status_changed_at=at, tier_entered_at=at, last_customer_at=at)
    assert not Due.select().exists()
    assert timers.backfill(ctx, DUE) == 2  # the closed case has nothing to plan
    kinds = {(d.case_id, d.kind) for d in Due.select()}
    assert (1, "remind") in kinds and (2, "still_looking") in kinds and not [k for k in kinds if k[0] == 3]
    assert timers.backfill(ctx, DUE) == 0
    assert sweep.sweep(ctx, DUE).done["remind"] == 1


def test_a_hold_without_days_waits_for_an_agent_and_hold_again_moves_the_end(make_config, db_url, dovecot, imap_user):
    from mailproc import commands
    from mailproc.commands import Origin

    ctx = _context(_config(make_config, db_url, dovecot, imap_user))
    [number] = _pending_cases(ctx, 1)
    case = Case.get_by_id(number)
    with db.transaction():
        cases.set_field(case, "status", "on_hold", actor="ana@agents.example", now=ASKED, command="status")
        timers.replan(ctx, case, ASKED)
    assert not [p for p in timers.plan(ctx, case) if p.kind == "move"]  # status=on_hold: no end given
    with db.transaction():
        commands.REGISTRY["hold"].run(ctx, case, "3d", actor="ana@agents.example", now=ASKED + timedelta(hours=1),
                                      message=Origin(None))
        timers.replan(ctx, case, ASKED + timedelta(hours=1))
    [move] = [p for p in timers.plan(ctx, case) if p.kind == "move"]
    assert move.due_at == ASKED + timedelta(days=3, hours=1)
    with db.transaction():  # hold=5d on a held case: the end moves, the item with it
        commands.REGISTRY["hold"].run(ctx, case, "5d", actor="ana@agents.example", now=ASKED + timedelta(hours=2),
                                      message=Origin(None))
        timers.replan(ctx, case, ASKED + timedelta(hours=2))
    [row] = Due.select().where(Due.case == number, Due.kind == "move", Due.done_at.is_null())
    assert row.due_at == (ASKED + timedelta(days=5, hours=2)).replace(tzinfo=None)


def test_a_customer_away_since_the_reminder_is_not_resolved_for_it(make_config, db_url, dovecot, imap_user):
    ctx = _context(_config(make_config, db_url, dovecot, imap_user))
    [number] = _pending_cases(ctx, 1)
    case = Case.get_by_id(number)
    reminded, back = ASKED + timedelta(days=3), ASKED + timedelta(days=12)
    with db.transaction():
        cases.touch(case, reminded, reminded_at=reminded)
    [move] = [p for p in timers.plan(ctx, case) if p.kind == "move"]
    assert move.due_at == reminded + timedelta(days=3)
    with db.transaction():
        cases.touch(case, reminded, away_until=back)  # their out-of-office came after the reminder
    [move] = [p for p in timers.plan(ctx, case) if p.kind == "move"]
    assert move.due_at == back
