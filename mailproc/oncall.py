"""Who is on call at an instant (seed 002): a weekly rotation.

The rotation turns at each handover — a weekday and a time in the
installation's time zone (`[oncall] handover = Mon 09:00`) — so it follows
the wall clock across daylight-saving changes: the handover is at 09:00 local
time before and after the clocks move, and the week between is 167 or 169
hours long. The first handover on or after `[oncall] start` is the first
person's; each later one moves to the next person, round the list.

Everything here is a pure function of the configuration and `now`: the same
instant always names the same person, whichever process asks.

Without an [oncall] section the rotation is the agents with role `oncall`, in
the order of their [agent:…] sections, with the defaults of the section
(handover Mon 09:00, no wake-up list, 1 h to acknowledge, 30 min more before
the next person); with neither, nobody is on call and nothing is paged.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from mailproc.config import Config, OncallConfig

WEEK = timedelta(days=7)


def settings(config: Config) -> OncallConfig | None:
    """The on-call settings in force: the [oncall] section, else the rotation of the
    agents with role oncall; None when nobody is on call."""
    if config.oncall is not None:
        return config.oncall
    rotation = tuple(a.name for a in config.agents if "oncall" in a.roles)
    if not rotation:
        return None
    return OncallConfig(rotation=rotation, handover_day=0, handover_time=time(9, 0), start=date(1970, 1, 1),
                        wakeup=(), ack_within=timedelta(hours=1), next_after=timedelta(minutes=30),
                        configured=False)


def _at(day: date, oc: OncallConfig, tz: ZoneInfo) -> datetime:
    """The handover of the local date `day`, as an instant (UTC). A handover time that a
    clock change skips is taken as the same wall time before the change (fold 0)."""
    return datetime.combine(day, oc.handover_time, tzinfo=tz).astimezone(timezone.utc)


def handover_before(oc: OncallConfig, tz: ZoneInfo, now: datetime) -> datetime:
    """The last handover at or before `now` (UTC)."""
    now = now.astimezone(timezone.utc)
    local = now.astimezone(tz).date()
    day = local - timedelta(days=(local.weekday() - oc.handover_day) % 7)
    at = _at(day, oc, tz)
    return at if at <= now else _at(day - WEEK, oc, tz)


def handover_after(oc: OncallConfig, tz: ZoneInfo, now: datetime) -> datetime:
    """The first handover after `now` (UTC): when the person on call hands over."""
    before = handover_before(oc, tz, now)
    return _at(before.astimezone(tz).date() + WEEK, oc, tz)


def turn(oc: OncallConfig, tz: ZoneInfo, now: datetime) -> int:
    """The index in the rotation of whoever is on call at `now`."""
    first = oc.start + timedelta(days=(oc.handover_day - oc.start.weekday()) % 7)
    weeks = (handover_before(oc, tz, now).astimezone(tz).date() - first).days // 7
    return weeks % len(oc.rotation)


def on_call(oc: OncallConfig, tz: ZoneInfo, now: datetime) -> str:
    """The NAME of the agent on call at `now`."""
    return oc.rotation[turn(oc, tz, now)]


def next_person(oc: OncallConfig, tz: ZoneInfo, now: datetime, besides: str | None = None) -> str | None:
    """Who is paged when the on-call person does not answer: the first person of the
    rotation from whoever is on call at `now` onwards who is not `besides` (the one
    paged first; by default the person on call now). None: nobody else takes turns."""
    i = turn(oc, tz, now)
    skip = oc.rotation[i] if besides is None else besides
    for step in range(len(oc.rotation)):
        name = oc.rotation[(i + step) % len(oc.rotation)]
        if name != skip:
            return name
    return None
