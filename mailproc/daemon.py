"""The long-running process: poll on start and every `poll_interval`, drain the
outbox continuously, stop cleanly.

Shaped like huey's consumer: signal handlers only set flags; the main loop
does the work and checks the flags between messages, so SIGTERM/SIGINT finish
the message in hand and exit 0, and SIGHUP reloads config, rules and templates
at a safe point. Every scheduled job is wrapped so one failure is logged and
the schedule goes on (schedule's own advice).
"""

from __future__ import annotations

import logging
import signal
import time
from dataclasses import dataclass, field

import schedule

from mailproc import config as config_mod
from mailproc import fetch, pipeline, send
from mailproc.context import Context, load_context
from mailproc.errors import MailprocError
from mailproc.systemd import Watchdog, notify

log = logging.getLogger(__name__)

SEND_EVERY_SECONDS = 5


@dataclass
class Flags:
    stop: bool = False
    reload: bool = False


def run_once(ctx: Context, stop=lambda: False) -> dict[str, int]:
    """Poll every mailbox once, process, drain the outbox. Returns disposition counts."""
    counts: dict[str, int] = {}

    def handle(rows):
        for k, v in pipeline.process_all(ctx, rows, stop).items():
            counts[k] = counts.get(k, 0) + v

    for k, v in pipeline.process_pending(ctx, stop).items():
        counts[k] = counts.get(k, 0) + v
    for box in ctx.config.mailboxes:
        if stop():
            break
        result = fetch.poll(box, ctx, handle, stop)
        if result.error:
            log.error("mailbox %s: %s", box.name, result.error)
    if not stop():
        send.drain(ctx, stop=stop)
    return counts


@dataclass
class Daemon:
    ctx: Context
    flags: Flags = field(default_factory=Flags)
    watchdog: Watchdog = field(default_factory=Watchdog)

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
        self._guarded("poll", lambda: run_once(self.ctx, self.should_stop))

    def drain(self) -> None:
        self._guarded("send", lambda: send.drain(self.ctx, stop=self.should_stop))

    def reload(self) -> None:
        self.flags.reload = False
        try:
            config = config_mod.load(self.ctx.config.path)
            self.ctx = load_context(config, self.ctx.clock)
            log.info("reloaded configuration, rules and templates")
        except MailprocError as exc:
            log.error("reload refused, keeping the running configuration: %s", exc)

    def run(self) -> int:
        self._install_signals()
        scheduler = schedule.Scheduler()
        seconds = max(1, int(self.ctx.config.poll_interval.total_seconds()))
        scheduler.every(seconds).seconds.do(self.poll)
        scheduler.every(SEND_EVERY_SECONDS).seconds.do(self.drain)
        notify("READY=1")
        log.info("started: %d mailbox(es), polling every %s", len(self.ctx.config.mailboxes),
                 self.ctx.config.poll_interval)
        self.poll()
        while not self.flags.stop:
            if self.flags.reload:
                self.reload()
            scheduler.run_pending()
            self.watchdog.ping()
            idle = scheduler.idle_seconds
            time.sleep(min(max(idle or 0, 0.05), 0.5))
        notify("STOPPING=1")
        log.info("stopped")
        return 0
