"""Cases and messages as plain dicts, for `--json` output and reports, and
`shown` for printing their text to a terminal."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Callable

from peewee import fn

from mailproc.models import Case, Event, Message, Participant, TimeEntry, aware


# C0 and C1 controls, DEL, and the bidirectional controls that reorder a line on screen.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape(m: re.Match) -> str:
    code = ord(m.group(0))
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def shown(value) -> str:
    """`value` as text safe to print on a terminal: a subject holding ESC could
    otherwise recolour, clear or retitle the operator's terminal (and BEL, NUL or
    a line break garble a listing). Controls are printed escaped, as `\\x1b`."""
    text = "" if value is None else str(value)
    return text if text.isprintable() else _CONTROL.sub(_escape, text)


def _time(value):
    if isinstance(value, datetime):
        return aware(value).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


SlaOf = Callable[[Case], tuple[str | None, datetime | None]]


def case_summary(case: Case, message_count: int | None = None, sla_of: SlaOf | None = None) -> dict:
    """The case as a dict; `sla_of` gives its SLA colour and when it turns red
    (`jobs.sla.state` at the clock's now), shown as `sla` and `sla_due`."""
    if message_count is None:
        message_count = Message.select().where(Message.case == case).count()
    return {
        "number": case.id, "mailbox": case.mailbox, "type": case.type, "status": case.status,
        "priority": case.priority, "team": case.team,
        "assignee": case.assignee.address if case.assignee_id else None,
        "tier": case.tier, "contact": case.contact, "contact_name": case.contact_name,
        "company": case.company, "summary": case.summary, "tags": case.tags or [],
        "need_by": _time(case.need_by), "needs_triage": case.needs_triage, "partner": case.partner,
        "internal": case.internal, "source": case.source, "known_issue": case.known_issue,
        "created_at": _time(case.created_at), "updated_at": _time(case.updated_at),
        "first_response_at": _time(case.first_response_at), "last_customer_at": _time(case.last_customer_at),
        "last_agent_at": _time(case.last_agent_at), "resolved_at": _time(case.resolved_at),
        "closed_at": _time(case.closed_at), "message_count": message_count,
        **_sla(case, sla_of),
    }


def _sla(case: Case, sla_of: SlaOf | None) -> dict:
    if sla_of is None:
        return {}
    colour, due = sla_of(case)
    return {"sla": colour, "sla_due": _time(due), "on_hold_until": _time(case.hold_until),
            "long_hold": case.long_hold_at is not None, "satisfaction": case.satisfaction}


def case_detail(case: Case, sla_of: SlaOf | None = None) -> dict:
    data = case_summary(case, sla_of=sla_of)
    data["description"] = case.description
    data["decided_by"] = case.decided_by or {}
    data["events"] = [event_dict(e) for e in case.events.order_by(Event.at, Event.id)]
    data["messages"] = [message_dict(m) for m in case.messages.order_by(Message.arrived_at, Message.id)]
    data["participants"] = [{"address": p.address, "role": p.role}
                            for p in case.participants.order_by(Participant.id)]
    data["links"] = ([{"kind": link.kind, "case": link.other_id} for link in case.links]
                     + [{"kind": f"{link.kind}:by", "case": link.case_id} for link in case.linked_from])
    entries = list(case.time_entries.order_by(TimeEntry.logged_at, TimeEntry.id))
    data["time_logged"] = {
        "hours": round(sum(e.minutes for e in entries) / 60, 2),
        "entries": [{"at": _time(e.logged_at), "actor": e.actor, "hours": round(e.minutes / 60, 2), "tag": e.tag}
                    for e in entries]}
    data["assignee_name"] = case.assignee.handle if case.assignee_id else None
    return data


def event_dict(event: Event) -> dict:
    return {"at": _time(event.at), "actor": event.actor, "kind": event.kind, "field": event.field,
            "old": event.old, "new": event.new, "rule": event.rule, "message": event.message_id,
            "detail": event.detail}


def message_dict(message: Message) -> dict:
    return {"id": message.id, "message_id": message.message_id, "from": message.from_addr,
            "subject": message.subject, "mailbox": message.mailbox, "source": message.source,
            "uid": message.uid, "size": message.size, "arrived_at": _time(message.arrived_at),
            "processed_at": _time(message.processed_at), "state": message.state,
            "disposition": message.disposition, "case": message.case_id, "error": message.error,
            "attempts": message.attempts, "trace": message.trace or []}


def case_list(status: str | None = None, sla_of: SlaOf | None = None) -> list[dict]:
    counts = dict(Message.select(Message.case, fn.COUNT(Message.id)).where(Message.case.is_null(False))
                  .group_by(Message.case).tuples())
    query = Case.select().order_by(Case.id)
    if status:
        query = query.where(Case.status == status)
    return [case_summary(c, counts.get(c.id, 0), sla_of) for c in query]


