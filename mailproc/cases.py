"""The one door for every change to a case, its history and the addresses on it.

Whatever changes a case — a new mail (`stages.act`), an agent's command, a
workflow timer — writes through these functions, so that every change gets
the same event (who, when, old → new, which rule or command, which mail) and
the same timestamps that reports and SLA clocks read (`status_changed_at`,
`tier_entered_at`, `resolved_at`, ...). Nobody else writes cases, events,
participants, case links or contacts.

Every new mail passes through here, so each function issues the fewest
statements it can, through the prepared statements of `db` (`insert`,
`insert_many`, `update`, `execute`), and reads old values from the case
object the caller already holds rather than from the database. Nothing here
commits: the caller's transaction decides (a message's, or a command mail's,
so that all its changes land together or not at all).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import peewee as pw

from mailproc import db
from mailproc.models import Case, CaseLink, Event, Message, Participant, Person, utc

SYSTEM = "mailproc"  # the actor of what no person did (rules, timers, the sender)

# The fields a new case's history starts with, in this order, when the rules decided them.
INITIAL_FIELDS = ("type", "status", "priority", "tier", "team", "company", "need_by", "partner", "internal",
                  "needs_triage", "tags", "admin_task_type")

# Timestamps that move with a field: the SLA clock of a tier starts when the case enters it.
FIELD_STAMPS = {"status": ("status_changed_at",), "tier": ("tier_entered_at",)}
# Timestamps that a status sets when the case enters it (what reports count).
STATUS_STAMPS = {"resolved": "resolved_at", "closed": "closed_at"}

LINK_KINDS = ("reopened_from", "split_from", "merged_into")

CaseRef = Case | int  # a case, or its number where only the number is at hand (the sender)


def _text(value: Any) -> str | None:
    """A value as the event log keeps it (a foreign key as its id)."""
    return None if value is None else str(value)


def _row(case: CaseRef, kind: str, *, now: datetime, actor: str = SYSTEM, field: str | None = None,
         old: Any = None, new: Any = None, rule: str | None = None, message: Message | int | None = None,
         detail: str | None = None) -> dict:
    return dict(case=case, at=utc(now), actor=actor, kind=kind, field=field, old=_text(old), new=_text(new),
                rule=rule, message=message, detail=detail)


def record(case: CaseRef, kind: str, *, now: datetime, actor: str = SYSTEM, field: str | None = None,
           old: Any = None, new: Any = None, rule: str | None = None, message: Message | int | None = None,
           detail: str | None = None) -> int:
    """Add one event to the case's history; returns its id.

    For happenings that change no field (a follow-up, a bounce, mail queued or
    sent); a changed field is `set_field`'s, which writes the event with it."""
    return db.insert(Event, **_row(case, kind, now=now, actor=actor, field=field, old=old, new=new, rule=rule,
                                   message=message, detail=detail))


# --- Opening a case ------------------------------------------------------------

def open_case(values: Mapping[str, Any], *, decided: Mapping[str, Any], rules: Mapping[str, str], actor: str,
              now: datetime, opened_at: datetime | None = None, message: Message | int | None = None,
              detail: str | None = None, participants: Iterable[str] = ()) -> Case:
    """Insert a case with `values` (`contact` required) and the start of its history.

    `decided` holds the fields the rules decided (field -> value) and `rules`
    the rule behind each (kept on the case as `decided_by`): each decided
    field of INITIAL_FIELDS gets an event by mailproc naming its rule, after a
    'created' event by `actor`. The contact and every address of
    `participants` (the others on the mail) become participants. `opened_at`
    (the mail's arrival; default `now`) starts the case's clocks; an assignee
    in `values` gets `last_assigned_at` = `now`. Four statements (five with an
    assignee), whatever the number of fields and participants."""
    opened = utc(opened_at or now)
    row = {"created_at": opened, "updated_at": utc(now), "status_changed_at": opened, "tier_entered_at": opened,
           "decided_by": dict(rules), **values}
    case = Case(id=db.insert(Case, **row), **row)
    events = [_row(case, "created", now=now, actor=actor, message=message, detail=detail)]
    events += [_row(case, "field", now=now, field=name, new=decided[name], rule=rules.get(name), message=message)
               for name in INITIAL_FIELDS if decided.get(name) not in (None, [], "")]
    db.insert_many(Event, events)
    rows = [{"case": case, "address": case.contact, "role": "contact"}]
    rows += _new_participants(case, participants, "cc", {case.contact})
    db.insert_many(Participant, rows)
    note_assigned(case.__data__.get("assignee"), now)
    return case


# --- Changing a case -----------------------------------------------------------

def set_field(case: Case, field: str, value: Any, *, actor: str, now: datetime, rule: str | None = None,
              command: str | None = None, message: Message | int | None = None, detail: str | None = None,
              also: Mapping[str, Any] | None = None) -> bool:
    """Set one field of the case, with the timestamps that go with it and its event
    (who, when, old -> new, the rule or `command` behind it, the mail that asked).
    False, and nothing written, when the field already holds `value`.

    Timestamps: `updated_at` always; `status_changed_at` with the status, and
    `resolved_at` / `closed_at` when it becomes resolved / closed;
    `tier_entered_at` with the tier; the new assignee's `Person.last_assigned_at`.
    A foreign key (the assignee) may be given as the row or its id; the event
    records ids.

    `also`: other columns (times such as `last_customer_at`) to write in the same
    statement when the field changes; when it does not, the caller writes them
    with `touch`. The case object is updated as well, so later steps of the same
    mail see the new value."""
    if rule is not None and command is not None:
        raise ValueError("an event names a rule or a command, not both")
    column = _settable(field)
    old = case.__data__.get(field)
    raw = value.get_id() if isinstance(value, pw.Model) else value
    if old == raw:
        return False
    changes = {field: value, **_stamps(field, value, utc(now)), **_times(also or {})}
    if field == "tier":  # a new tier starts a new SLA clock (jobs.sla): no pause carried over
        changes.update(sla_paused_hours=0.0, sla_paused_at=utc(now) if case.sla_paused_at else None)
    db.update(Case, case.id, **changes)
    for name, new in changes.items():
        setattr(case, name, new)
    if field == "assignee":
        note_assigned(raw, now)
    record(case, "field", now=now, actor=actor, field=column.name, old=old, new=raw,
           rule=rule if command is None else f"command:{command}", message=message, detail=detail)
    return True


def touch(case: Case, now: datetime, **times: datetime | float | int | None) -> None:
    """Write times of the case that have no history of their own (`last_customer_at`,
    `first_response_at`, the timers' and SLA clock's columns, ...) and `updated_at`;
    a field with history goes through `set_field`. Counters the timers keep beside
    their times (the on-call `page_level`) are written here too: the timer's own
    event is their history."""
    for name in times:
        column = Case._meta.fields.get(name)
        if not isinstance(column, (pw.DateTimeField, pw.FloatField, pw.IntegerField)) or \
                isinstance(column, pw.AutoField):
            raise ValueError(f"touch writes times (and clock readings) only, not {name!r}: use set_field")
    changes = {**_times(times), "updated_at": utc(now)}
    db.update(Case, case.id, **changes)
    for name, new in changes.items():
        setattr(case, name, new)


def _settable(field: str) -> pw.Field:
    column = Case._meta.fields.get(field)
    if column is None or isinstance(column, (pw.AutoField, pw.DateTimeField)):
        raise ValueError(f"not a field of a case that set_field can change: {field!r}")
    return column


def _stamps(field: str, value: Any, now: datetime | None) -> dict[str, datetime | None]:
    stamps = {name: now for name in FIELD_STAMPS.get(field, ())}
    if field == "status" and value in STATUS_STAMPS:
        stamps[STATUS_STAMPS[value]] = now
    stamps["updated_at"] = now
    return stamps


def note_assigned(person: int | None, now: datetime) -> None:
    """Given a case, an agent's `last_assigned_at` moves too: assignment spreads load by it."""
    if person is not None:
        db.update(Person, person, last_assigned_at=utc(now))


def _times(times: Mapping[str, Any]) -> dict[str, Any]:
    return {name: utc(v) if isinstance(v, datetime) else v for name, v in times.items()}


# --- Links between cases -------------------------------------------------------

def link(case: Case, other: Case, kind: str, *, actor: str, now: datetime, rule: str | None = None,
         message: Message | int | None = None, detail: str | None = None, other_detail: str | None = None) -> None:
    """Record that `case` is `kind` `other` (reopened_from, split_from, merged_into),
    with a 'linked' event on each of the two, `detail` on `case`, `other_detail` on `other`."""
    if kind not in LINK_KINDS:
        raise ValueError(f"unknown kind of link {kind!r} (known: {', '.join(LINK_KINDS)})")
    db.insert(CaseLink, case=case, other=other, kind=kind, created_at=utc(now))
    db.insert_many(Event, [_row(case, "linked", now=now, actor=actor, rule=rule, message=message, detail=detail),
                           _row(other, "linked", now=now, actor=actor, rule=rule, message=message,
                                detail=other_detail)])


# --- Who is on a case ----------------------------------------------------------

_PARTICIPANTS_SQL = "SELECT address FROM participant WHERE case_id = ?"


def add_participants(case: CaseRef, addresses: Iterable[str], *, role: str = "cc",
                     known: set[str] | None = None) -> list[str]:
    """Put each address not yet on the case on it (so their replies may use the
    token); returns those added. `known`, the addresses already on the case, is
    read from the database when the caller does not have it."""
    if known is None:
        case_id = case.id if isinstance(case, Case) else case
        known = {address for (address,) in db.query_all(_PARTICIPANTS_SQL, [case_id])}
    rows = _new_participants(case, addresses, role, known)
    db.insert_many(Participant, rows)
    return [r["address"] for r in rows]


def _new_participants(case: CaseRef, addresses: Iterable[str], role: str, known: set[str]) -> list[dict]:
    rows = []
    for address in addresses:
        if address and address not in known:
            rows.append({"case": case, "address": address, "role": role})
            known.add(address)
    return rows


# --- The messages of a case ----------------------------------------------------

def file_message(message: Message, case: Case | None, *, disposition: str, trace: list[str],
                 now: datetime) -> None:
    """The message's row ends 'done', on its case (if any), with its disposition,
    the rules that fired, and the header columns (`message_id`, `subject`,
    `from_addr`) as the caller set them on `message`."""
    message.case, message.state, message.disposition = case, "done", disposition
    message.processed_at, message.trace, message.error = utc(now), trace, None
    db.update(Message, message.id, message_id=message.message_id, subject=message.subject,
              from_addr=message.from_addr, case=case, state="done", disposition=disposition,
              processed_at=message.processed_at, trace=trace, error=None)


# --- Contacts: what we know of an address --------------------------------------

_SEEN_SQL = ("INSERT INTO contact (address, name, undeliverable, first_seen, last_seen) VALUES (?, ?, ?, ?, ?)"
             " ON CONFLICT (address) DO UPDATE SET last_seen = excluded.last_seen")

_UNDELIVERABLE_SQL = (
    "INSERT INTO contact (address, name, undeliverable, undeliverable_reason, undeliverable_at, first_seen,"
    " last_seen) VALUES (?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (address) DO UPDATE SET undeliverable = excluded.undeliverable,"
    " undeliverable_reason = excluded.undeliverable_reason, undeliverable_at = excluded.undeliverable_at")


def contact_seen(address: str, now: datetime, name: str = "") -> None:
    """Record that `address` wrote to us (one upsert; SQLite 3.24+ and PostgreSQL).
    A name is kept from the first mail only."""
    at = utc(now)
    db.execute(_SEEN_SQL, [address.lower(), name[:255], False, at, at])


def contact_undeliverable(address: str, reason: str, now: datetime) -> None:
    """Mark `address` undeliverable (a permanent bounce of our own mail said so):
    no more mail is queued to it (`outbox.refusal`)."""
    at = utc(now)
    db.execute(_UNDELIVERABLE_SQL, [address.lower(), "", True, reason[:2000], at, at, at])


MAX_MERGE_HOPS = 10  # a chain of merges is followed this far, no further


def merged_to(case_id: int) -> int | None:
    """The case `case_id` was merged into (directly), or None: it goes on itself."""
    found = db.query_one("SELECT other_id FROM case_link WHERE case_id = ? AND kind = 'merged_into'", [case_id])
    return None if found is None else found[0]


def survivor(case_id: int) -> int:
    """The case that goes on for `case_id`: follows `merged_into` links (bounded)."""
    for _ in range(MAX_MERGE_HOPS):
        other = merged_to(case_id)
        if other is None:
            return case_id
        case_id = other
    return case_id


def merged_into(case_id: int) -> list[int]:
    """The cases merged (directly) into `case_id`: their reply tokens count for it."""
    return [row[0] for row in db.query_all("SELECT case_id FROM case_link WHERE other_id = ? AND kind = 'merged_into'",
                                           [case_id])]
