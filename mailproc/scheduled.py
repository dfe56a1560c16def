"""Work at wall-clock slots: the leads' digests, agents' check-ins, the monthly hours
report and the customer-lifecycle mails (SPEC §8).

Each provider in `PROVIDERS` lists its `SlotJob`s for the configuration (a daily
digest; one check-in job per agent, in the agent's zone; a monthly job as a daily
time on one day of the month). `run` asks `mailproc.slots` which slots are due and,
for each, claims it and lets the job queue its mail in one transaction: a slot is
done exactly once, across restarts and between daemons on one PostgreSQL, and a
job that fails leaves its slot unclaimed, to be tried again.

A `Scheduler` remembers when each job's next slot falls, so a tick between slots
costs no query at all; the first tick after a start (or a reload) looks back
over every job once, which is how missed slots are caught up.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo

from mailproc import db, slots
from mailproc.context import Context
from mailproc.slots import LATEST, Slot, SlotSpec

log = logging.getLogger("mailproc.scheduled")

# Modules with `slot_jobs(ctx) -> list[SlotJob]`; imported on first use.
PROVIDERS = ("mailproc.reports.digest", "mailproc.reports.weekly", "mailproc.reports.checkin",
             "mailproc.reports.hours", "mailproc.lifecycle", "mailproc.learned")
RETRY_AFTER = timedelta(minutes=5)  # a job that failed is tried again after this
HORIZON = timedelta(days=40)  # how far ahead the next slot of a job is looked for (monthly jobs)


@dataclass(frozen=True)
class SlotJob:
    """`name` keys its slots (slot_run.key is f"{name}:{local date}T{HH:MM}"): one name
    per job and subject, e.g. "digest", "checkin:ana". `run(ctx, slot, now)` queues the
    job's mail for the slot in the caller's transaction and returns how many it queued."""
    name: str
    spec: SlotSpec
    tz: tzinfo
    run: Callable[[Context, Slot, datetime], int]
    catch_up: str = LATEST
    lookback: timedelta = slots.LOOKBACK  # how far back a missed slot is caught up (monthly jobs: a month)
    run_first: bool = True  # False: a job with no slot done yet starts with its next slot (see slots.due)
    # Long work that must not hold the database's write lock (training a model): run after the
    # transaction that claimed a slot committed. Its failure is logged and reported; the slot
    # stays done, so it is tried at the next slot, not every RETRY_AFTER.
    after: Callable[[Context, datetime], None] | None = None


@dataclass
class Done:
    mails: int = 0
    slots: list[str] = field(default_factory=list)  # the slot keys done
    failed: list[str] = field(default_factory=list)  # "<job>: <error>"


def jobs(ctx: Context) -> list[SlotJob]:
    found: list[SlotJob] = []
    for name in PROVIDERS:
        try:
            provider = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue  # a provider not built into this installation
        found.extend(provider.slot_jobs(ctx))
    return found


@dataclass
class Scheduler:
    """Runs the slot jobs of one configuration; keep one per daemon (a reload makes a new one)."""
    ctx: Context
    next_at: dict[str, datetime] = field(default_factory=dict)  # job name -> its next slot's instant
    _jobs: list[SlotJob] | None = None

    def run(self, now: datetime, stop: Callable[[], bool] = lambda: False) -> Done:
        done = Done()
        if self._jobs is None:
            self._jobs = jobs(self.ctx)
        for job in self._jobs:
            if stop():
                break
            known = self.next_at.get(job.name)
            if known is not None and now < known:
                continue
            claimed = len(done.slots)
            try:
                with db.transaction():
                    for slot in slots.due(job.name, job.spec, job.tz, now, job.catch_up, job.lookback,
                                          job.run_first):
                        if slots.claim(slot.key, slot.at, now):
                            done.mails += job.run(self.ctx, slot, now)
                            done.slots.append(slot.key)
            except Exception as exc:
                log.exception("slot job %s failed; tried again in %s", job.name, RETRY_AFTER)
                done.failed.append(f"{job.name}: {exc}")
                self.next_at[job.name] = now + RETRY_AFTER
                continue
            if job.after is not None and len(done.slots) > claimed:
                try:
                    job.after(self.ctx, now)
                except Exception as exc:
                    log.exception("slot job %s: its work after the slot failed", job.name)
                    done.failed.append(f"{job.name}: {exc}")
            upcoming = slots.instants(job.spec, job.tz, now, now + HORIZON)
            self.next_at[job.name] = upcoming[0] if upcoming else now + HORIZON
        for key in done.slots:
            log.info("slot %s done", key)
        return done


def run(ctx: Context, now: datetime, stop: Callable[[], bool] = lambda: False) -> Done:
    """Every slot due at `now`, once (for `run --once` and tests)."""
    return Scheduler(ctx).run(now, stop)
