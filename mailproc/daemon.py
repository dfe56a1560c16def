"""The long-running process: poll on start and every `poll_interval`, drain the
outbox continuously (in a sender process beside it), stop cleanly.

Shaped like huey's consumer: signal handlers only set flags; the main loop
does the work and checks the flags between messages, so SIGTERM/SIGINT finish
the message in hand and exit 0, and SIGHUP reloads config, rules and templates
at a safe point. Every scheduled job is wrapped so one failure is logged and
the schedule goes on (schedule's own advice).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import time
from dataclasses import dataclass, field

import schedule

from mailproc import config as config_mod
from mailproc import db, fetch, logs, pipeline, roster, send
from mailproc.clock import Clock
from mailproc.context import Context, load_context
from mailproc.errors import ConfigError, MailprocError
from mailproc.rawstore import RawStore
from mailproc.systemd import Watchdog, notify

log = logging.getLogger(__name__)

SEND_EVERY_SECONDS = 5
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
            continue
        if polled.error:
            log.error("mailbox %s: %s", box.name, polled.error)
            result.problems.append(f"mailbox {box.name}: {polled.error}")
        elif polled.busy and wait_for_lease:
            result.problems.append(f"mailbox {box.name}: another process ({polled.busy}) was polling "
                                   f"{box.folder}; not polled")
    return result


def run_once(ctx: Context, stop=lambda: False) -> Round:
    """Poll every mailbox once and process, while a sender process drains the outbox; return
    when both are done. The sender starts with the first new mail (a poll that finds
    nothing stays quick); what was already due is sent at the end. A mailbox that could
    not be polled, or an SMTP server that could not be used, is in `problems`."""
    sender = SenderProcess(ctx.config, ctx.clock)
    try:
        result = intake(ctx, stop, on_mail=sender.ensure_started, wait_for_lease=RUN_ONCE_LEASE_WAIT)
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
class Daemon:
    ctx: Context
    flags: Flags = field(default_factory=Flags)
    watchdog: Watchdog = field(default_factory=Watchdog)
    sender: SenderProcess | None = None

    def should_stop(self) -> bool:
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

    def _guarded(self, name: str, job) -> None:
        try:
            job()
        except Exception:
            log.exception("scheduled job %s failed; it will run again on schedule", name)

    def poll(self) -> None:
        self._guarded("poll", lambda: intake(self.ctx, self.should_stop))  # problems are logged as they happen

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
        if self.sender is not None:
            # it sends what is due, then a new one starts with the new configuration
            self.sender.finish(STOP_SENDER_AFTER, tick=self.watchdog.ping)
            self.sender = None
        self.keep_sender()
        log.info("reloaded configuration, rules and templates; polling every %s", self.ctx.config.poll_interval)

    def _poll_seconds(self) -> int:
        return max(1, int(self.ctx.config.poll_interval.total_seconds()))

    def run(self) -> int:
        self._install_signals()
        scheduler = schedule.Scheduler()
        poll_job = scheduler.every(self._poll_seconds()).seconds.do(self.poll)
        scheduler.every(SEND_EVERY_SECONDS).seconds.do(lambda: self._guarded("sender", self.keep_sender))
        self.keep_sender()
        notify("READY=1")
        log.info("started: %d mailbox(es), polling every %s", len(self.ctx.config.mailboxes),
                 self.ctx.config.poll_interval)
        self.poll()
        while not self.flags.stop:
            if self.flags.reload:
                self.reload()
                if poll_job.interval != self._poll_seconds():  # poll_interval changed
                    scheduler.cancel_job(poll_job)
                    poll_job = scheduler.every(self._poll_seconds()).seconds.do(self.poll)
            scheduler.run_pending()
            self.watchdog.ping()
            idle = scheduler.idle_seconds
            time.sleep(min(max(idle or 0, 0.05), 0.5))
        notify("STOPPING=1")
        if self.sender is not None:
            self.sender.finish(STOP_SENDER_AFTER, tick=self.watchdog.ping)
        log.info("stopped")
        return 0
