"""The long-running process: a loop of ticks, each polling if a poll is due, doing
the due work whose time has come, and keeping the sender (a process of its own
that drains the outbox continuously) alive; it stops cleanly.

Shaped like huey's consumer: signal handlers only set flags; the loop does the
work and checks the flags between messages and due items, so SIGTERM/SIGINT
finish the one in hand and exit 0, and SIGHUP reloads config, rules and
templates at a safe point (keeping the old ones if the new ones are invalid).
Each part of a tick is guarded: one failure is logged and the next tick tries
again. What is due is decided from the `now` a tick is given, never from the
wall clock: `run --once --now …` and tests drive the same code.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import signal
import time
from dataclasses import dataclass, field
from datetime import datetime

from mailproc import config as config_mod
from mailproc import clusters, db, fetch, logs, pipeline, roster, scheduled, send, status, sweep, timers
from mailproc.sweep import Swept
from mailproc.clock import Clock
from mailproc.context import Context, load_context
from mailproc.errors import ConfigError, MailprocError
from mailproc.models import Outbox
from mailproc.rawstore import RawStore
from mailproc.systemd import Watchdog, notify

log = logging.getLogger(__name__)

SEND_EVERY_SECONDS = 5
TICK_SECONDS = 5  # between ticks: the sweep of due work is one indexed query when nothing is due
STOP_SENDER_AFTER = 30  # seconds a stopping daemon lets its sender go on sending


def checked_context(config: config_mod.Config, clock: Clock) -> Context:
    """`load_context`, and every template compiled: a template with a syntax error is
    refused at start-up and on reload (exit 78, file and line named) instead of
    failing, one by one, every message that needs it."""
    ctx = load_context(config, clock)
    problems = ctx.templates.check()
    if problems:
        raise ConfigError("; ".join(problems))
    return ctx


@dataclass
class Flags:
    stop: bool = False
    reload: bool = False


EX_TEMPFAIL = 75  # sysexits.h: a temporary failure; trying again later may work
RUN_ONCE_LEASE_WAIT = 60.0  # seconds `run --once` waits for another process polling a mailbox


@dataclass
class Round:
    """What one round of intake (and, for `run --once`, sending) did and what went wrong."""
    counts: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # each names the mailbox or the sender

    def add(self, more: dict[str, int]) -> None:
        for k, v in more.items():
            self.counts[k] = self.counts.get(k, 0) + v


def intake(ctx: Context, stop=lambda: False, on_mail=lambda: None, wait_for_lease: float = 0) -> Round:
    """Process what a crash left pending, then poll every mailbox once. `on_mail` is called
    before each batch of new mail is processed. A mailbox that could not be polled is
    a problem of the round; it never stops the others."""
    result = Round()

    def handle(rows) -> None:
        on_mail()
        result.add(pipeline.process_all(ctx, rows, stop))

    db.reconnect_if_broken()
    result.add(pipeline.process_pending(ctx, stop))
    for box in ctx.config.mailboxes:
        if stop():
            break
        try:
            polled = fetch.poll(box, ctx, handle, stop, wait_for_lease=wait_for_lease)
        except db.DATABASE_DOWN:
            raise  # no mailbox can be handled; the round ends, the next one reconnects
        except Exception as exc:  # one mailbox's trouble must not skip the others
            log.exception("mailbox %s: poll failed; the other mailboxes go on", box.name)
            result.problems.append(f"mailbox {box.name}: poll failed: {exc}")
            _note_poll(ctx, box.name, f"poll failed: {exc}")
            continue
        if polled.error:
            log.error("mailbox %s: %s", box.name, polled.error)
            result.problems.append(f"mailbox {box.name}: {polled.error}")
            _note_poll(ctx, box.name, polled.error)
        elif polled.busy:
            if wait_for_lease:
                result.problems.append(f"mailbox {box.name}: another process ({polled.busy}) was polling "
                                       f"{box.folder}; not polled")
        else:
            _note_poll(ctx, box.name, None)
    return result


def _note_poll(ctx: Context, mailbox: str, error: str | None) -> None:
    """How the poll went, for `mailproc status`; a database hiccup here never fails the round."""
    try:
        with db.transaction():
            status.record_poll(mailbox, ctx.clock.now(), error)
    except db.DATABASE_DOWN as exc:
        log.warning("mailbox %s: could not note the poll (%s)", mailbox, exc)


def run_once(ctx: Context, stop=lambda: False) -> Round:
    """Poll every mailbox once and process, do every due item whose time has come at the
    clock's `now` (with `--now`, that instant), and send; return when all is done. A sender
    process drains the outbox during intake, starting with the first new mail (a poll that
    finds nothing stays quick); what the sweep queued, and what was already due, is sent at
    the end. A mailbox that could not be polled, a due item that failed, or an SMTP server
    that could not be used is in `problems`."""
    sender = SenderProcess(ctx.config, ctx.clock)
    try:
        timers.backfill(ctx, ctx.clock.now())
        result = intake(ctx, stop, on_mail=sender.ensure_started, wait_for_lease=RUN_ONCE_LEASE_WAIT)
        if not stop():
            swept = sweep.sweep(ctx, ctx.clock.now(), stop)
            result.add({f"due:{kind}": n for kind, n in swept.done.items()})
            result.problems.extend(swept.failed)
        if not stop():
            try:
                found = clusters.run(ctx, ctx.clock.now())
                result.add({"clustered": found.total} if found.total else {})
            except Exception as exc:  # the next run tries again: the cases stay unclustered
                log.exception("cluster pass failed")
                result.problems.append(f"cluster pass: {exc}")
        if not stop():
            slotted = scheduled.run(ctx, ctx.clock.now(), stop)
            result.add({"slots": len(slotted.slots)} if slotted.slots else {})
            result.problems.extend(slotted.failed)
    finally:
        code = sender.finish()
    if code == EX_TEMPFAIL:
        result.problems.append("sender: the SMTP server could not be used (see the log); mail stays queued")
    elif code != 0:
        raise MailprocError(f"the sender process ended with exit status {code}; unsent mail stays queued")
    if not stop():
        drained = send.drain(ctx, stop=stop)
        if drained.down and code != EX_TEMPFAIL:
            result.problems.append(f"sender: {drained.down}; mail stays queued")
    return result


def dry_run(ctx: Context, out) -> Swept:
    """What the due work would do at the clock's `now`, without doing it: the sweep runs in
    a transaction that is rolled back, and every mail it would have queued is written to
    `out` (see `preview`). No mailbox is polled and nothing is sent or changed."""
    return preview(out, lambda: sweep.sweep(ctx, ctx.clock.now())) or Swept()


def preview(out, work):
    """Run `work()` in a transaction that is rolled back, writing every mail it queued to
    `out` (the raw message, after a line naming it); return what `work` returned."""
    before = db.query_one('SELECT COALESCE(MAX("id"), 0) FROM "outbox"', [])[0]
    result = None
    try:
        with db.transaction():
            result = work()
            for row in Outbox.select().where(Outbox.id > before).order_by(Outbox.id):
                raw = bytes(row.raw)
                out.write(f"=== would send: {row.kind} to {row.to_addr} (case {row.case_id}) ===\n")
                out.write(raw.decode("utf-8", "replace").replace("\r\n", "\n"))
                out.write("\n")
            raise _RolledBack
    except _RolledBack:
        pass
    return result


class _RolledBack(Exception):
    """Leaves the dry run's transaction, undoing all it did."""


class SenderProcess:
    """The outbox drained in a process of its own, beside intake.

    Sending is the one other long job of the pipeline; in its own process it
    uses the second core and never waits behind a long poll (Mailman's
    outgoing runner works the same way). Both processes share only the
    database, where each outbox row is claimed atomically before it is sent.
    """

    def __init__(self, config: config_mod.Config, clock: Clock):
        # The configuration itself, not its path: the sender must run with what the
        # daemon runs with, even after the file on disk was changed (or broken).
        self.config = config
        self.clock = clock
        self._mp = multiprocessing.get_context("spawn")
        self._done = self._mp.Event()
        self.process: multiprocessing.process.BaseProcess | None = None

    def ensure_started(self) -> None:
        if self.process is None:
            self.start()

    def start(self) -> None:
        self.process = self._mp.Process(target=_sender_main, name="mailproc-sender",
                                        args=(self.config, self.clock.offset, self._done, os.getpid(),
                                              logging.getLevelName(logging.getLogger().level)))
        self.process.start()

    def alive(self) -> bool:
        return self.process is not None and self.process.is_alive()

    def finish(self, timeout: float | None = None, tick=lambda: None) -> int:
        """Ask the sender to send what is due and exit; wait; return its exit status (0 = fine).

        With `timeout`, a sender still busy after that long (a big queue, a slow
        server) gets SIGTERM: it finishes the mail in hand and stops; the rest
        stays queued. `tick` runs every second meanwhile (the systemd watchdog)."""
        self._done.set()
        if self.process is None:
            return 0
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.process.is_alive():
            tick()
            if deadline is not None and time.monotonic() > deadline:
                self.process.terminate()
                deadline = None
            self.process.join(1)
        return self.process.exitcode if self.process.exitcode is not None else -1


def _sender_main(config: config_mod.Config, offset, done, parent: int, log_level: str) -> None:
    """Entry point of the sender process: drain, wait a little, repeat; after `done` is set,
    a last drain and exit. Also exits if the parent dies (its pid changes).

    Sending needs only the configuration and the clock (mail is rendered when it is
    queued), so rules and templates are not read here: a rule file being edited on
    disk cannot stop mail going out."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    stopping = Flags()
    signal.signal(signal.SIGTERM, lambda *_: setattr(stopping, "stop", True))
    logs.setup(log_level)
    ctx = Context(config=config, rules=None, templates=None, clock=Clock.shifted(offset),
                  raw=RawStore(config.storage))
    db.open_database(config.database)
    server_down = False
    try:
        while not stopping.stop and os.getppid() == parent:
            finishing = done.is_set()
            busy = False
            try:
                db.reconnect_if_broken()
                drained = send.drain(ctx, stop=lambda: stopping.stop)
                server_down = bool(drained.down) or server_down
                busy = bool(drained.sent) and not drained.down  # more may have been queued meanwhile
            except db.DATABASE_DOWN as exc:
                log.error("sender: database unavailable (%s); trying again shortly", exc)
            if finishing:
                break
            if not busy:
                done.wait(SEND_EVERY_SECONDS / 5)
    finally:
        db.close()
    if server_down:  # `run --once` reports it; the daemon's sender never gets here while it runs
        raise SystemExit(EX_TEMPFAIL)


@dataclass
class Tick:
    """What one tick did."""
    polled: bool = False
    intake: Round | None = None
    swept: Swept | None = None
    slotted: scheduled.Done | None = None


@dataclass
class Daemon:
    """The long-running process: a loop of `tick(now)` with a stop flag (huey's consumer loop).

    The clock is read once per tick, by the loop; everything a tick decides —
    whether a poll is due, which due items to do — is decided from that `now`,
    so a test (or an operator with `--now`) drives the daemon by calling
    `tick` with the instants it wants."""
    ctx: Context
    flags: Flags = field(default_factory=Flags)
    watchdog: Watchdog = field(default_factory=Watchdog)
    sender: SenderProcess | None = None
    last_poll: datetime | None = None  # the `now` of the last tick that polled
    start_sender: bool = True  # False: sending is the caller's (tests driving ticks in-process)
    scheduler: scheduled.Scheduler = field(init=False)

    def __post_init__(self) -> None:
        self.scheduler = scheduled.Scheduler(self.ctx)

    def should_stop(self) -> bool:
        """Asked between messages and due items: each one done is progress, so it feeds the watchdog."""
        self.watchdog.ping()
        return self.flags.stop

    def _install_signals(self) -> None:
        def on_stop(signum, _frame):
            self.flags.stop = True

        def on_hup(_signum, _frame):
            self.flags.reload = True

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, on_hup)

    def poll_due(self, now: datetime) -> bool:
        """A poll is due `poll_interval` after the last one; at once on the first tick, and
        when the clock went backwards (an hours-long wait would be a surprise)."""
        last = self.last_poll
        return last is None or now < last or now - last >= self.ctx.config.poll_interval

    def tick(self, now: datetime) -> Tick:
        """One round: reload if asked, intake if a poll is due, the due-work sweep, and
        the sender kept running. A failure of one part is logged and the others go on;
        the next tick tries again."""
        result = Tick()
        if self.flags.reload:
            self.reload()
        if self.poll_due(now) and not self.flags.stop:
            self.last_poll = now
            result.polled = True
            # intake reads its clock per message: one that stands at `now` when the poll starts
            at_now = dataclasses.replace(self.ctx, clock=Clock(now))
            result.intake = self._guarded("poll", lambda: intake(at_now, self.should_stop))
        if not self.flags.stop:
            result.swept = self._guarded("sweep", lambda: sweep.sweep(self.ctx, now, self.should_stop))
        if not self.flags.stop:
            self._guarded("clusters", lambda: clusters.run(self.ctx, now))
        if not self.flags.stop:
            result.slotted = self._guarded("slots", lambda: self.scheduler.run(now, self.should_stop))
        if self.start_sender and not self.flags.stop:
            self._guarded("sender", self.keep_sender)
        return result

    def _guarded(self, name: str, job):
        try:
            return job()
        except Exception:
            log.exception("%s failed; the next tick tries again", name)
            return None

    def keep_sender(self) -> None:
        """(Re)start the sender process if it is not running (it died, or after a reload)."""
        if self.sender is None or not self.sender.alive():
            if self.sender is not None:
                log.error("sender process ended (exit status %s); starting a new one", self.sender.finish(0))
            self.sender = SenderProcess(self.ctx.config, self.ctx.clock)
            self.sender.start()

    def reload(self) -> None:
        self.flags.reload = False
        try:
            config = config_mod.load(self.ctx.config.path)
            self.ctx = checked_context(config, self.ctx.clock)
        except MailprocError as exc:
            log.error("reload refused, keeping the running configuration: %s", exc)
            return
        self._guarded("roster", lambda: roster.sync(roster.from_context(self.ctx)))  # agents added or gone
        self.scheduler = scheduled.Scheduler(self.ctx)  # slots of the new config: digest time, agents' zones
        if self.sender is not None:
            # it sends what is due, then a new one starts with the new configuration
            self.sender.finish(STOP_SENDER_AFTER, tick=self.watchdog.ping)
            self.sender = None
            self.keep_sender()
        log.info("reloaded configuration, rules and templates; polling every %s", self.ctx.config.poll_interval)

    def run(self) -> int:
        self._install_signals()
        if self.start_sender:
            self.keep_sender()
        timers.backfill(self.ctx, self.ctx.clock.now())
        notify("READY=1")
        log.info("started: %d mailbox(es), polling every %s", len(self.ctx.config.mailboxes),
                 self.ctx.config.poll_interval)
        while not self.flags.stop:
            self.tick(self.ctx.clock.now())
            self.watchdog.ping()  # a tick that returned made progress; one that hangs starves the watchdog
            self._idle(TICK_SECONDS)
        notify("STOPPING=1")
        if self.sender is not None:
            self.sender.finish(STOP_SENDER_AFTER, tick=self.watchdog.ping)
        log.info("stopped")
        return 0

    def _idle(self, seconds: float) -> None:
        """Wait for the next tick, waking for a stop or reload request."""
        deadline = time.monotonic() + seconds
        while not (self.flags.stop or self.flags.reload) and time.monotonic() < deadline:
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
