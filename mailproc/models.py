"""The data model: cases, their events, messages, the outbox, the directory.

One peewee model per table, bound at run time to SQLite or PostgreSQL through
`db.proxy`. Times are stored as naive UTC (`utc()` converts); every table that
reports need has the timestamps they need, so digests and SLA clocks never
have to reconstruct history from the event log, while the event log still
holds every change (who, when, what, why, which rule).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import overload

import peewee as pw

from mailproc.db import proxy

CASE_TYPES = ("request", "admin", "enhancement", "bug")
STATUSES = ("new", "assigned", "pending_input", "waiting", "on_hold", "pending_product",
            "pending_development", "pending_release", "staging", "staging_pass", "staging_fail",
            "resolved", "pending_closure", "closed")
PRIORITIES = ("P1", "P2", "P3", "P4", "P5", "P6")
TIERS = ("triage", "T1", "T2", "T3", "T4", "T5", "oncall")
PLANS = ("free", "trial", "paid", "enterprise")
DISPOSITIONS = ("new_case", "follow_up", "duplicate", "bounce", "auto_reply", "bulk", "loop",
                "rejected", "failed", "command", "satisfaction")


@overload
def utc(value: datetime) -> datetime: ...
@overload
def utc(value: None) -> None: ...
def utc(value: datetime | None) -> datetime | None:
    """Aware or naive-UTC datetime -> naive UTC, the form stored in the database."""
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(timezone.utc).replace(tzinfo=None)


@overload
def aware(value: datetime) -> datetime: ...
@overload
def aware(value: None) -> None: ...
def aware(value: datetime | None) -> datetime | None:
    """Stored naive UTC -> aware UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=timezone.utc)


def stored(value: object) -> datetime | None:
    """A time from a raw query, as aware UTC: SQLite hands stored times back as text,
    PostgreSQL as naive datetimes (both UTC)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return aware(value) if isinstance(value, datetime) else None


def iso(value: object, timespec: str = "auto") -> str | None:
    """A stored time (as `stored` reads it) in ISO 8601 with its UTC offset, for reports' JSON."""
    at = stored(value)
    return None if at is None else at.isoformat(timespec=timespec)


class JSONField(pw.TextField):
    def db_value(self, value):
        return None if value is None else json.dumps(value, sort_keys=True, ensure_ascii=False)

    def python_value(self, value):
        return None if value is None else json.loads(value)


class Base(pw.Model):
    class Meta:
        database = proxy
        legacy_table_names = False


class SchemaVersion(Base):
    version = pw.IntegerField()


class Team(Base):
    """A team of the roster (mailproc.ini [team:NAME], or named by the rules); synced at start-up."""
    name = pw.CharField(unique=True)
    address = pw.CharField(null=True)  # where team notifications go
    lead = pw.CharField(null=True)  # the lead's agent NAME (Person.handle)


class Person(Base):
    """An agent of the roster (mailproc.ini [agent:NAME]), synced at start-up by
    `roster.sync`; one who left the config is kept inactive, so their cases keep
    their assignee."""
    address = pw.CharField(unique=True)
    handle = pw.CharField(null=True, unique=True)  # the agent NAME of mailproc.ini, used in assign=NAME
    name = pw.CharField(default="")  # the display name
    role = pw.CharField(default="agent")  # "agent", or the roles: "lead", "oncall", "lead,oncall"
    team = pw.ForeignKeyField(Team, null=True, on_delete="SET NULL")  # the first team; all in TeamMember
    tier = pw.CharField(null=True)
    timezone = pw.CharField(null=True)  # IANA name
    availability = pw.CharField(null=True)  # e.g. "Mon-Fri 07:00-13:00"; None: the business calendar
    active = pw.BooleanField(default=True)
    # When a case was last given to them: assignment spreads load by it (set with the assignee).
    last_assigned_at = pw.DateTimeField(null=True)


class TeamMember(Base):
    """Which agents are in which team (an agent may be in several)."""
    team = pw.ForeignKeyField(Team, on_delete="CASCADE")
    person = pw.ForeignKeyField(Person, on_delete="CASCADE")

    class Meta:
        indexes = ((("team", "person"), True),)


class Customer(Base):
    """One row of the customer directory: an address or a whole domain."""
    match = pw.CharField(unique=True)  # lower-case address or domain
    company = pw.CharField()
    plan = pw.CharField(default="free")
    licenses = pw.IntegerField(default=0)
    high_value = pw.BooleanField(default=False)
    partner = pw.BooleanField(default=False)
    internal = pw.BooleanField(default=False)
    google_apps = pw.BooleanField(default=False)
    # Schema v6, the monthly hours report (seed 004): where it goes, the plan's hours a
    # month, and the account owner (an agent NAME or an address) who gets a copy.
    contact = pw.CharField(null=True)
    included_hours = pw.FloatField(null=True)
    owner = pw.CharField(null=True)


class Contact(Base):
    """What we know about one external address: deliverability, first/last seen."""
    address = pw.CharField(unique=True)  # lower-case
    name = pw.CharField(default="")
    undeliverable = pw.BooleanField(default=False)
    undeliverable_reason = pw.TextField(null=True)
    undeliverable_at = pw.DateTimeField(null=True)
    first_seen = pw.DateTimeField(null=True)
    last_seen = pw.DateTimeField(null=True)


class Case(Base):
    """A support case. `id` is the case number customers see."""
    mailbox = pw.CharField(null=True)
    type = pw.CharField(default="request")
    status = pw.CharField(default="new")
    priority = pw.CharField(default="P6")
    tier = pw.CharField(default="triage")
    team = pw.CharField(null=True)
    assignee = pw.ForeignKeyField(Person, null=True, on_delete="SET NULL")
    contact = pw.CharField()  # the customer's address (replies go here)
    contact_name = pw.CharField(default="")
    customer = pw.ForeignKeyField(Customer, null=True, on_delete="SET NULL")
    company = pw.CharField(null=True)
    summary = pw.CharField(max_length=500, default="")
    description = pw.TextField(default="")
    item = pw.CharField(null=True)
    need_by = pw.DateField(null=True)
    source = pw.CharField(default="email")  # email | chat | phone
    partner = pw.BooleanField(default=False)
    internal = pw.BooleanField(default=False)
    possible_testimonial = pw.BooleanField(default=False)
    admin_task_type = pw.CharField(null=True)
    tags = JSONField(default=list)
    known_issue = pw.CharField(null=True)
    satisfaction = pw.CharField(null=True)
    outcome = pw.CharField(null=True)
    needs_triage = pw.BooleanField(default=False)
    decided_by = JSONField(default=dict)  # field -> name of the rule that set it
    thread_key = pw.CharField(max_length=64, null=True)  # secret for signed reply tokens
    created_at = pw.DateTimeField(index=True)
    updated_at = pw.DateTimeField()
    status_changed_at = pw.DateTimeField()
    tier_entered_at = pw.DateTimeField()
    first_response_at = pw.DateTimeField(null=True)
    last_customer_at = pw.DateTimeField(null=True)
    last_agent_at = pw.DateTimeField(null=True)
    resolved_at = pw.DateTimeField(null=True)
    closed_at = pw.DateTimeField(null=True)
    # --- what the workflow's timers read and write (schema v5) ---
    hold_until = pw.DateTimeField(null=True)  # On Hold ends (hold=Nd)
    away_until = pw.DateTimeField(null=True)  # the customer's out-of-office return: reminders wait for it
    reminded_at = pw.DateTimeField(null=True)  # the Pending Input reminder went out
    waiting_since = pw.DateTimeField(null=True)  # the customer's first mail we have not answered yet
    # The tier SLA clock pauses while the case waits on the customer: since when, and the
    # business hours paused so far in this tier.
    sla_paused_at = pw.DateTimeField(null=True)
    sla_paused_hours = pw.FloatField(default=0)
    sla_warn_at = pw.DateTimeField(null=True)  # turns yellow (None: paused, closed or no limits)
    sla_due = pw.DateTimeField(null=True, index=True)  # turns red
    long_hold_at = pw.DateTimeField(null=True)  # flagged: an engineering hold that lasted too long
    paged_at = pw.DateTimeField(null=True)  # on-call was paged for it
    page_level = pw.IntegerField(default=0)  # 0 none, 1 on-call paged, 2 wake-up list, 3 next in rotation
    page_ack_at = pw.DateTimeField(null=True)  # [ack] by on-call
    survey_sent_at = pw.DateTimeField(null=True)  # the satisfaction question went out
    satisfaction_at = pw.DateTimeField(null=True)  # the answer came
    testimonial_sent_at = pw.DateTimeField(null=True)

    class Meta:
        table_name = "cases"  # CASE is an SQL keyword
        indexes = ((("assignee", "status"), False),)  # open cases per agent, for assignment

    @property
    def number(self) -> int:
        return self.id


class CaseLink(Base):
    """A relation between two cases: 'reopened_from', 'split_from', 'merged_into'."""
    case = pw.ForeignKeyField(Case, backref="links", on_delete="CASCADE")
    other = pw.ForeignKeyField(Case, backref="linked_from", on_delete="CASCADE")
    kind = pw.CharField()
    created_at = pw.DateTimeField()


class Participant(Base):
    """Addresses that are on a case: the contact, CC'd parties, agents."""
    case = pw.ForeignKeyField(Case, backref="participants", on_delete="CASCADE")
    address = pw.CharField()
    role = pw.CharField(default="cc")  # contact | cc | agent

    class Meta:
        indexes = ((("case", "address"), True),)


class Message(Base):
    """Every message ever received, whatever became of it."""
    raw_sha256 = pw.CharField(max_length=64, index=True)
    size = pw.IntegerField()
    source = pw.CharField()  # imap | ingest | deliver
    mailbox = pw.CharField(null=True)
    folder = pw.CharField(null=True)
    uidvalidity = pw.BigIntegerField(null=True)
    uid = pw.BigIntegerField(null=True)
    message_id = pw.CharField(max_length=998, null=True, index=True)
    subject = pw.TextField(default="")
    from_addr = pw.CharField(default="")
    arrived_at = pw.DateTimeField()  # server arrival time (INTERNALDATE); SLA clocks start here
    stored_at = pw.DateTimeField()
    processed_at = pw.DateTimeField(null=True)
    moved_at = pw.DateTimeField(null=True)  # moved to the mailbox's processed_folder
    state = pw.CharField(default="pending", index=True)  # pending | done | failed
    disposition = pw.CharField(null=True, index=True)
    case = pw.ForeignKeyField(Case, null=True, backref="messages", on_delete="SET NULL")
    error = pw.TextField(null=True)
    attempts = pw.IntegerField(default=0)
    trace = JSONField(default=list)  # the rules that fired, in order

    class Meta:
        indexes = ((("mailbox", "folder", "uidvalidity", "uid"), True),)


class Event(Base):
    """The case's history: one row per change or notable happening."""
    case = pw.ForeignKeyField(Case, backref="events", on_delete="CASCADE")
    at = pw.DateTimeField(index=True)
    actor = pw.CharField(default="mailproc")  # an address, or 'mailproc'
    # created | field | message | auto_reply | bounce | mail_queued | mail_sent | mail_failed | ...
    kind = pw.CharField()
    field = pw.CharField(null=True)
    old = pw.TextField(null=True)
    new = pw.TextField(null=True)
    rule = pw.CharField(null=True)  # the rule that caused it
    message = pw.ForeignKeyField(Message, null=True, on_delete="SET NULL")
    detail = pw.TextField(null=True)


class Outbox(Base):
    """Outgoing mail, queued in the transaction that caused it; only `send` drains it."""
    case = pw.ForeignKeyField(Case, null=True, backref="outgoing", on_delete="SET NULL")
    kind = pw.CharField()  # the template: acknowledgement, reminder, ...
    message_id = pw.CharField(max_length=998, unique=True)
    mail_from = pw.CharField()
    recipients = JSONField()
    to_addr = pw.CharField()  # the first recipient, lower-case: the per-address limit counts by it
    raw = pw.BlobField()
    automatic = pw.BooleanField(default=True)  # counts toward the per-address limit
    state = pw.CharField(default="queued", index=True)  # queued | sending | sent | failed
    attempts = pw.IntegerField(default=0)
    next_attempt_at = pw.DateTimeField()
    claimed_at = pw.DateTimeField(null=True)
    claimed_by = pw.CharField(null=True)  # the drain that claimed it (a random token)
    last_error = pw.TextField(null=True)
    created_at = pw.DateTimeField(index=True)
    sent_at = pw.DateTimeField(null=True)

    class Meta:
        indexes = ((("to_addr", "created_at"), False),)


class TimeEntry(Base):
    """Time an agent logged on a case (`time=1.5h tag=Meetings`): the monthly hours
    report (seed 004) sums it per case, agent and tag."""
    case = pw.ForeignKeyField(Case, backref="time_entries", on_delete="CASCADE")
    person = pw.ForeignKeyField(Person, null=True, on_delete="SET NULL")
    actor = pw.CharField()  # the agent's address, kept if the person row goes
    minutes = pw.IntegerField()
    tag = pw.CharField(null=True)
    logged_at = pw.DateTimeField(index=True)
    message = pw.ForeignKeyField(Message, null=True, on_delete="SET NULL")


class ImapCheckpoint(Base):
    """Where intake stopped in one mailbox folder."""
    mailbox = pw.CharField()
    folder = pw.CharField()
    uidvalidity = pw.BigIntegerField()
    last_uid = pw.BigIntegerField(default=0)
    updated_at = pw.DateTimeField()

    class Meta:
        indexes = ((("mailbox", "folder"), True),)


class Lease(Base):
    """Who may do a job that only one process at a time may do (poll a mailbox folder).

    Held until `expires_at` and renewed while the work goes on, so a holder
    that dies lets go by itself; one on this host that is gone is replaced at once."""
    name = pw.CharField(unique=True)
    holder = pw.CharField()  # host:pid:random, see lease.new_holder
    expires_at = pw.DateTimeField()


class Due(Base):
    """Work that falls due at a time: a reminder, a status move, an SLA warning, a page.

    Written in the transaction of the change that causes it (`timers.replan`),
    cancelled (done_at set, outcome 'cancelled') when a later change makes it
    moot, and swept by `sweep` with one query on the partial index of pending
    rows, so the sweep's cost follows the due items, not the cases. `key` is
    unique: the same piece of work planned twice is one row, and a row done
    stays done (a clock set backwards never repeats it)."""
    case = pw.ForeignKeyField(Case, null=True, on_delete="CASCADE")
    kind = pw.CharField()
    key = pw.CharField(max_length=200, unique=True)
    due_at = pw.DateTimeField()
    done_at = pw.DateTimeField(null=True)
    outcome = pw.CharField(null=True)  # done | cancelled | stale
    attempts = pw.IntegerField(default=0)
    last_error = pw.TextField(null=True)
    created_at = pw.DateTimeField()

    class Meta:
        indexes = ((("case", "done_at"), False),)


class SlotRun(Base):
    """A daily or per-agent slot (a digest, a check-in) that was done, under a unique
    key, written in the transaction of its mail: each slot happens exactly once."""
    key = pw.CharField(max_length=200, unique=True)
    slot_at = pw.DateTimeField()  # the slot's instant (UTC)
    done_at = pw.DateTimeField()
    outcome = pw.CharField(max_length=20, default="done")  # done | skipped (missed in downtime, not caught up)


class MailboxState(Base):
    """How the last polls of a mailbox went (`mailproc status`)."""
    mailbox = pw.CharField(unique=True)
    last_poll_at = pw.DateTimeField(null=True)
    last_ok_at = pw.DateTimeField(null=True)
    last_error = pw.TextField(null=True)
    last_error_at = pw.DateTimeField(null=True)


class Answer(Base):
    """What an agent wrote to a customer (the relayed or directly sent text), kept so
    near-identical answers on different cases can show a missing help article (seed 002).
    `documented`: the answer links a help article of rules/help.toml. The answer is compared
    once, when recorded (missingdocs.record): `compared` is the text as compared, `size` its
    length (the length bounds the score, so candidates are read by (at, size)), `group_id`
    the id of the first answer of its group of near-identical ones (None when documented)."""
    case = pw.ForeignKeyField(Case, on_delete="CASCADE")
    actor = pw.CharField()  # the agent's address
    at = pw.DateTimeField()
    text = pw.TextField()  # the new text, bounded (missingdocs.TEXT_LIMIT)
    documented = pw.BooleanField(default=False)
    message = pw.ForeignKeyField(Message, null=True, on_delete="SET NULL")
    compared = pw.TextField(default="")  # normalized start of the text (missingdocs.COMPARED characters)
    size = pw.IntegerField(default=0)  # len(compared)
    group_id = pw.IntegerField(null=True, index=True)

    class Meta:
        indexes = ((("at", "size"), False),)  # the window's answers, and among them a length band


class Cluster(Base):
    """New cases of one type that read alike within a window: a possible known issue
    (seed 002). Grows as similar cases arrive; `suggested_at` / `paged_at` record that
    the leads were told (3+) and on-call paged (6+), each once."""
    type = pw.CharField()
    opened_at = pw.DateTimeField()
    last_at = pw.DateTimeField(index=True)  # the newest member's creation time
    size = pw.IntegerField(default=1)
    summary = pw.CharField(max_length=500, default="")  # the first member's summary
    suggested_at = pw.DateTimeField(null=True)
    paged_at = pw.DateTimeField(null=True)
    known = pw.CharField(max_length=64, null=True)  # the known= value suggested (ID-slug): IDs are not reused


class ClusterMember(Base):
    cluster = pw.ForeignKeyField(Cluster, backref="members", on_delete="CASCADE")
    case = pw.ForeignKeyField(Case, unique=True, on_delete="CASCADE")
    similarity = pw.FloatField(default=100.0)  # to the case it joined by (0-100)
    added_at = pw.DateTimeField()


class Correction(Base):
    """An agent's change of a case's type or priority by command (`[type=bug]`), kept with
    what the classifier read (subject and start of the description) so that corrections
    can be counted per rule (`mailproc classify report`) and learnt from. Every change is
    kept; `classifier` says whether the old value was the rules' decision (the rule is
    not an agent's `command:...`): only those count as the classifier's errors."""
    case = pw.ForeignKeyField(Case, on_delete="CASCADE")
    field = pw.CharField()  # type | priority
    old = pw.CharField(null=True)
    new = pw.CharField()
    actor = pw.CharField()  # the agent's address
    at = pw.DateTimeField(index=True)
    rule = pw.CharField(null=True)  # what had set the old value: "classification:...", "priority:...", "command:..."
    classifier = pw.BooleanField(default=True)  # the old value was the rules' (not an earlier command's)
    text = pw.TextField(default="")  # the case's subject, a blank line, the start of its description
    message = pw.ForeignKeyField(Message, null=True, on_delete="SET NULL")


class LearnedModel(Base):
    """A model of one field (type or priority) trained on agents' corrections by
    `mailproc classify learn` (mailproc.learned). `data` is plain JSON (classes,
    intercepts, per-term weights), so a model is read without the training library
    and can be inspected; the newest row of a field is the one in use."""
    field = pw.CharField()
    trained_at = pw.DateTimeField()
    examples = pw.IntegerField()  # what it was trained on: corrections plus confirmed cases
    corrections = pw.IntegerField()
    accuracy = pw.FloatField(null=True)  # cross-validated, when there were enough examples per class
    data = pw.TextField()

    class Meta:
        indexes = ((("field", "trained_at"), False),)


TABLES = [SchemaVersion, Team, Person, TeamMember, Customer, Contact, Case, CaseLink, Participant, Message,
          Event, Outbox, ImapCheckpoint, Lease, Due, SlotRun, MailboxState, Answer, Cluster, ClusterMember,
          Correction, LearnedModel]

TYPE_LABELS = {"request": "Request for Service", "admin": "Admin Task",
               "enhancement": "Enhancement Request", "bug": "Bug / Report a Problem"}
PRIORITY_LABELS = {"P1": "P1 – Emergency", "P2": "P2 – Blocker", "P3": "P3 – Very High",
                   "P4": "P4 – High", "P5": "P5 – Medium", "P6": "P6 – Low"}
