"""rules/workflow.toml: the statuses' labels, what a customer's reply does to a
case's status, the timers that move cases that sit in a status, and the
release dates need-by dates are promised against.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import re

from mailproc.businesstime import Target, parse_target
from mailproc.models import STATUSES
from mailproc.rules.reader import TomlTable, compile_pattern


@dataclass(frozen=True)
class Timer:
    """What happens to a case that sits in `status`: optional reminder, then a move."""
    status: str
    to: str
    after: timedelta | None  # from entering the status, or from the reminder if there is one;
    #                          None: set per case (hold N days)
    remind: timedelta | None = None  # mail the customer a reminder this long after entering
    note: bool = False  # add an internal note when the timer moves the case


@dataclass(frozen=True)
class StillLooking:
    """Seed 002: a case waiting this long for our answer gets the "still looking" note to
    the customer (once per wait) and, sooner, a nudge to its assignee."""
    statuses: tuple[str, ...]  # the statuses in which the case waits on us
    note_after: Target
    nudge_after: Target


@dataclass(frozen=True)
class LongHolds:
    """Engineering holds that last longer than `flag_after` are flagged (seed 001's
    "fringe tickets") and listed by `mailproc status` and the digests."""
    statuses: tuple[str, ...]
    flag_after: Target


@dataclass(frozen=True)
class Confirmation:
    """How a customer's reply to a Pending Closure case is read: `fixed` phrases close
    it, `broken` phrases (which win) reopen it; anything else reopens it too, so a
    question is never taken for a thank-you."""
    fixed: tuple[re.Pattern, ...]
    broken: tuple[re.Pattern, ...]
    closes_to: str

    def reading(self, text: str) -> str | None:
        """'fixed', 'broken' or None (neither said, or a question asked: "Is it fixed?")."""
        if any(p.search(text) for p in self.broken):
            return "broken"
        if "?" in text:
            return None
        if any(p.search(text) for p in self.fixed):
            return "fixed"
        return None


DEFAULT_STILL_LOOKING = StillLooking(("new", "assigned"), parse_target("2 business days"),
                                     parse_target("1 business day"))
DEFAULT_LONG_HOLDS = LongHolds(("pending_product", "pending_development", "pending_release"),
                               parse_target("10 business days"))


@dataclass(frozen=True)
class Workflow:
    labels: dict[str, str]  # status -> label for people
    customer_reply: dict[str, str]  # status -> status a customer reply moves the case to
    timers: dict[str, Timer]
    releases: tuple[date, ...]  # sorted
    still_looking: StillLooking = DEFAULT_STILL_LOOKING
    long_holds: LongHolds = DEFAULT_LONG_HOLDS
    confirmation: Confirmation | None = None

    def label(self, status: str) -> str:
        return self.labels.get(status, status)

    def on_customer_reply(self, status: str) -> str | None:
        return self.customer_reply.get(status)

    def reply_status(self, status: str, text: str) -> tuple[str | None, str | None]:
        """(the status a customer's reply moves the case to, what the reply said:
        'fixed' / 'broken' / None). A Pending Closure case the customer confirms
        fixed closes; one they say is still broken, or that they ask about, reopens."""
        after = self.customer_reply.get(status)
        if after is None or status != "pending_closure" or self.confirmation is None:
            return after, None
        said = self.confirmation.reading(text)
        return (self.confirmation.closes_to if said == "fixed" else after), said

    def timer(self, status: str) -> Timer | None:
        return self.timers.get(status)

    def next_release(self, after: date) -> date | None:
        """The first release strictly after `after` (a release today is too late to promise)."""
        return next((d for d in self.releases if d > after), None)


def load_workflow(path: Path) -> Workflow:
    root = TomlTable.read(path)
    root.check_keys(("statuses", "customer_reply", "timers", "releases", "still_looking", "long_holds",
                     "confirmation"), required=("statuses",))
    statuses = root.table("statuses")
    statuses.check_keys(STATUSES, required=STATUSES)
    labels = {s: statuses.need_str(s) for s in STATUSES}
    replies = {}
    if "customer_reply" in root.data:
        table = root.table("customer_reply")
        table.check_keys(STATUSES)
        replies = {s: table.need_choice(s, STATUSES) for s in table.data}
    timers = {}
    if "timers" in root.data:
        table = root.table("timers")
        table.check_keys(STATUSES)
        for status in table.data:
            t = table.table(status)
            t.check_keys(("to", "after", "remind", "note"), required=("to",))
            timers[status] = Timer(status=status, to=t.need_choice("to", STATUSES), after=t.duration("after"),
                                   remind=t.duration("remind"), note=bool(t.bool("note")))
    return Workflow(labels=labels, customer_reply=replies, timers=timers,
                    releases=tuple(sorted(root.date_list("releases"))),
                    still_looking=_still_looking(root), long_holds=_long_holds(root),
                    confirmation=_confirmation(root))


def _statuses(table: TomlTable, default: tuple[str, ...]) -> tuple[str, ...]:
    if "statuses" not in table.data:
        return default
    found = tuple(table.str_list("statuses"))
    for status in found:
        if status not in STATUSES:
            raise table.error("statuses", f"unknown status {status!r} (one of: {', '.join(STATUSES)})")
    return found


def _still_looking(root: TomlTable) -> StillLooking:
    if "still_looking" not in root.data:
        return DEFAULT_STILL_LOOKING
    t = root.table("still_looking")
    t.check_keys(("statuses", "note_after", "nudge_after"))
    d = DEFAULT_STILL_LOOKING
    return StillLooking(_statuses(t, d.statuses), t.target("note_after") or d.note_after,
                        t.target("nudge_after") or d.nudge_after)


def _long_holds(root: TomlTable) -> LongHolds:
    if "long_holds" not in root.data:
        return DEFAULT_LONG_HOLDS
    t = root.table("long_holds")
    t.check_keys(("statuses", "flag_after"))
    d = DEFAULT_LONG_HOLDS
    return LongHolds(_statuses(t, d.statuses), t.target("flag_after") or d.flag_after)


def _confirmation(root: TomlTable) -> Confirmation | None:
    if "confirmation" not in root.data:
        return None
    t = root.table("confirmation")
    t.check_keys(("fixed", "broken", "closes_to"), required=("fixed", "broken"))
    patterns = {}
    for key in ("fixed", "broken"):
        patterns[key] = tuple(compile_pattern(phrase, t.path, f"[confirmation] {key}") for phrase in t.str_list(key))
    return Confirmation(patterns["fixed"], patterns["broken"], t.need_choice("closes_to", STATUSES)
                        if "closes_to" in t.data else "closed")
