"""The slot-job scheduler on both databases: each slot's job runs once, also after a
restart; a job that fails leaves its slot to be tried again later without holding up
the others; a scheduler between slots asks the database nothing."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from mailproc import db, scheduled, slots
from mailproc.clock import Clock
from mailproc.config import load
from mailproc.context import load_context
from mailproc.models import SlotRun

LISBON = ZoneInfo("Europe/Lisbon")
NOW = datetime(2026, 11, 30, 7, 0, 30, tzinfo=timezone.utc)  # Lisbon is on UTC in winter


@pytest.fixture
def ctx(db_url, make_config):
    config = load(make_config(database=db_url))
    db.open_database(config.database)
    yield load_context(config, Clock(NOW))
    db.close()


class Calls:
    """A slot job's run: records the slots it was called for; fails while `failing`."""

    def __init__(self, failing: bool = False):
        self.keys: list[str] = []
        self.failing = failing

    def __call__(self, ctx, slot, now) -> int:
        if self.failing:
            raise RuntimeError("template missing")
        self.keys.append(slot.key)
        return 1


def scheduler(ctx, *jobs: scheduled.SlotJob) -> scheduled.Scheduler:
    return scheduled.Scheduler(ctx, _jobs=list(jobs))


def job(name: str, run, spec: str = "07:00") -> scheduled.SlotJob:
    return scheduled.SlotJob(name, slots.parse_slots(spec), LISBON, run)


def test_each_slot_runs_once_also_across_a_restart(ctx):
    calls = Calls()
    first = scheduler(ctx, job("digest", calls))
    done = first.run(NOW)
    assert (done.mails, done.slots, done.failed) == (1, ["digest:2026-11-30T07:00"], [])
    assert first.run(NOW + timedelta(minutes=1)).slots == []
    assert scheduler(ctx, job("digest", calls)).run(NOW + timedelta(minutes=2)).slots == []  # restarted
    assert calls.keys == ["digest:2026-11-30T07:00"]
    tomorrow = NOW + timedelta(days=1)
    assert first.run(tomorrow).slots == ["digest:2026-12-01T07:00"]


def test_a_failing_job_keeps_its_slot_and_is_tried_again_later(ctx):
    broken, fine = Calls(failing=True), Calls()
    sched = scheduler(ctx, job("digest", broken), job("checkin:ana", fine))
    done = sched.run(NOW)
    assert done.failed == ["digest: template missing"]
    assert fine.keys == ["checkin:ana:2026-11-30T07:00"]  # the other job went on
    assert SlotRun.select().where(SlotRun.key.startswith("digest:")).count() == 0  # rolled back, not claimed
    broken.failing = False
    assert sched.run(NOW + timedelta(minutes=1)).slots == []  # not before RETRY_AFTER
    later = NOW + scheduled.RETRY_AFTER
    assert sched.run(later).slots == ["digest:2026-11-30T07:00"]
    assert broken.keys == ["digest:2026-11-30T07:00"]


def test_between_slots_the_scheduler_reads_nothing(ctx):
    """After a run the next slot's instant is remembered: with the slot rows gone (as if the
    database were asked, it would answer "due"), a run before that instant does nothing."""
    calls = Calls()
    sched = scheduler(ctx, job("digest", calls))
    sched.run(NOW)
    assert sched.next_at["digest"] == datetime(2026, 12, 1, 7, 0, tzinfo=timezone.utc)
    SlotRun.delete().execute()
    assert sched.run(NOW + timedelta(hours=3)).slots == []
    assert scheduler(ctx, job("digest", calls)).run(NOW + timedelta(hours=3)).slots == ["digest:2026-11-30T07:00"]


def test_downtime_catches_up_the_latest_slot_only(ctx):
    calls = Calls()
    scheduler(ctx, job("digest", calls)).run(NOW)
    done = scheduler(ctx, job("digest", calls)).run(NOW + timedelta(days=4))  # down three days
    assert done.slots == ["digest:2026-12-04T07:00"]
    outcome = {r.key: r.outcome for r in SlotRun.select()}
    assert [k for k, o in sorted(outcome.items()) if o == slots.DONE] == ["digest:2026-11-30T07:00",
                                                                         "digest:2026-12-04T07:00"]
    assert all(outcome[f"digest:2026-12-0{d}T07:00"] == slots.SKIPPED for d in (1, 2, 3))
    assert calls.keys == ["digest:2026-11-30T07:00", "digest:2026-12-04T07:00"]


def test_stop_is_asked_between_jobs(ctx):
    first, second = Calls(), Calls()
    asked = []

    def stop() -> bool:
        asked.append(1)
        return len(asked) > 1
    done = scheduler(ctx, job("a", first), job("b", second)).run(NOW, stop)
    assert (first.keys, second.keys, done.slots) == (["a:2026-11-30T07:00"], [], ["a:2026-11-30T07:00"])


def test_the_configured_providers_give_their_jobs(ctx):
    names = {j.name for j in scheduled.jobs(ctx)}
    assert {"digest", "weekly"} <= names


def test_work_after_a_slot_runs_outside_its_transaction_and_a_failure_keeps_the_slot_done(ctx):
    seen: list[bool] = []

    def after(context, now) -> None:
        seen.append(db.proxy.obj.in_transaction())
        raise RuntimeError("training failed")

    sched = scheduler(ctx, scheduled.SlotJob("learn", slots.parse_slots("07:00"), LISBON, lambda *_: 0, after=after))
    done = sched.run(NOW)
    assert done.slots == ["learn:2026-11-30T07:00"] and done.failed == ["learn: training failed"]
    assert seen == [False]
    assert sched.run(NOW + timedelta(minutes=10)).slots == [] and seen == [False]  # not again until tomorrow
