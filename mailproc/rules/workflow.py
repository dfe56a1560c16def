"""rules/workflow.toml: the statuses' labels, what a customer's reply does to a
case's status, the timers that move cases that sit in a status, and the
release dates need-by dates are promised against.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from mailproc.models import STATUSES
from mailproc.rules.reader import TomlTable


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
class Workflow:
    labels: dict[str, str]  # status -> label for people
    customer_reply: dict[str, str]  # status -> status a customer reply moves the case to
    timers: dict[str, Timer]
    releases: tuple[date, ...]  # sorted

    def label(self, status: str) -> str:
        return self.labels.get(status, status)

    def on_customer_reply(self, status: str) -> str | None:
        return self.customer_reply.get(status)

    def timer(self, status: str) -> Timer | None:
        return self.timers.get(status)

    def next_release(self, after: date) -> date | None:
        """The first release strictly after `after` (a release today is too late to promise)."""
        return next((d for d in self.releases if d > after), None)


def load_workflow(path: Path) -> Workflow:
    root = TomlTable.read(path)
    root.check_keys(("statuses", "customer_reply", "timers", "releases"), required=("statuses",))
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
                    releases=tuple(sorted(root.date_list("releases"))))
