"""Opening the database named by `database =` and keeping its schema current.

SQLite (WAL, foreign keys on) is the default; PostgreSQL takes the same code
through a `postgresql://` URL. The schema carries a version number; opening a
database runs the migrations it lacks, in order, each in a transaction, so an
upgrade keeps every case and message. A database from a newer mailproc is
refused rather than misread.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from contextlib import contextmanager
from typing import Callable, Iterator

import peewee as pw

from mailproc.errors import ConfigError, SchemaError, TransientError

log = logging.getLogger(__name__)

proxy = pw.DatabaseProxy()

# busy_timeout first: switching a new file to WAL takes a lock, and a second
# process opening the file at that moment must wait for it, not fail at once.
SQLITE_PRAGMAS = {"busy_timeout": 30000, "journal_mode": "wal", "foreign_keys": 1, "synchronous": "normal",
                  "cache_size": -16000}


def _v1(database: pw.Database) -> None:
    from mailproc import models
    database.create_tables([t for t in models.TABLES if t is not models.Lease])


def _v2(database: pw.Database) -> None:
    from mailproc import models
    database.create_tables([models.Lease])


def _add_missing_columns(database: pw.Database, model, names: tuple[str, ...]) -> None:
    """Add the model's columns `names` to its table where missing (a database made by v1 of a
    later release already has them: v1 creates the tables as the models are now)."""
    from playhouse.migrate import SchemaMigrator, migrate as run_migration

    table = model._meta.table_name
    migrator = SchemaMigrator.from_database(database)
    present = {c.name for c in database.get_columns(table)}
    for name in names:
        if name not in present:
            run_migration(migrator.add_column(table, name, model._meta.fields[name]))


def _v3(database: pw.Database) -> None:
    """The roster: an agent's NAME, time zone and last assignment, a team's lead, team
    membership, and an index for counting an agent's open cases. A database made by
    _v1 from today's models has them already, so each part is added only if missing."""
    from mailproc import models
    _add_missing_columns(database, models.Person, ("handle", "timezone", "last_assigned_at"))
    _add_missing_columns(database, models.Team, ("lead",))
    database.create_tables([models.TeamMember, models.Case], safe=True)  # safe: also the indexes


def _v4(database: pw.Database) -> None:
    """Time logged on cases by agents' `time=` commands (the monthly hours report)."""
    from mailproc import models
    database.create_tables([models.TimeEntry], safe=True)


V5_CASE_COLUMNS = ("hold_until", "away_until", "reminded_at", "waiting_since", "sla_paused_at", "sla_paused_hours",
                   "sla_warn_at", "sla_due", "long_hold_at", "paged_at", "page_level", "page_ack_at", "survey_sent_at",
                   "satisfaction_at", "testimonial_sent_at")


def _v5(database: pw.Database) -> None:
    """The workflow's timers: the due-work table (with a partial index of the pending
    rows, which is all the sweep reads), slot runs, mailbox poll state, and the case
    columns timers and SLA clocks keep."""
    from mailproc import models
    _add_missing_columns(database, models.Case, V5_CASE_COLUMNS)
    database.create_tables([models.Case, models.Due, models.SlotRun, models.MailboxState], safe=True)
    database.execute_sql('CREATE INDEX IF NOT EXISTS "due_pending" ON "due" ("due_at") WHERE "done_at" IS NULL')
    # `mailproc status` lists the flagged engineering holds: the few flagged cases, not all.
    database.execute_sql('CREATE INDEX IF NOT EXISTS "cases_long_hold" ON "cases" ("long_hold_at")'
                         ' WHERE "long_hold_at" IS NOT NULL')


V6_CUSTOMER_COLUMNS = ("contact", "included_hours", "owner")
# Reports (SPEC §8) are aggregate queries over time ranges: each range they read has an index.
V6_INDEXES = (
    ('"cases_closed_at"', '"cases" ("closed_at")'),
    ('"cases_resolved_at"', '"cases" ("resolved_at")'),
    ('"cases_open"', '"cases" ("status", "type", "priority")'),
    ('"message_stored_at"', '"message" ("stored_at")'),
    ('"event_kind_at"', '"event" ("kind", "at")'),
    ('"cases_satisfaction_at"', '"cases" ("satisfaction_at")'),  # the digest's satisfaction answers of a day
    ('"cases_testimonial_sent_at"', '"cases" ("testimonial_sent_at")'),  # the digest's testimonial pipeline
    ('"cases_known_issue"', '"cases" ("known_issue")'),  # known issues' cases listed together
    # the weekly digest's on-call pages: the few paged cases, not all
    ('"cases_paged_at"', '"cases" ("paged_at") WHERE "paged_at" IS NOT NULL'),
)


def _v6(database: pw.Database) -> None:
    """Reports and knowledge: the directory's hours-report columns, agents' answers,
    known-issue clusters, and the indexes the digests' range queries use."""
    from mailproc import models
    _add_missing_columns(database, models.Customer, V6_CUSTOMER_COLUMNS)
    database.create_tables([models.Answer, models.Cluster, models.ClusterMember, models.Correction], safe=True)
    for name, target in V6_INDEXES:
        database.execute_sql(f"CREATE INDEX IF NOT EXISTS {name} ON {target}")


def _v7(database: pw.Database) -> None:
    """Models learnt from agents' corrections (mailproc.learned)."""
    from mailproc import models
    database.create_tables([models.LearnedModel], safe=True)


# Append (version, function) pairs here; never edit a released one.
MIGRATIONS: list[tuple[int, Callable[[pw.Database], None]]] = [(1, _v1), (2, _v2), (3, _v3), (4, _v4), (5, _v5),
                                                                (6, _v6), (7, _v7)]
SCHEMA_VERSION = MIGRATIONS[-1][0]


def open_database(url: str) -> pw.Database:
    """Connect, bind the models, and bring the schema up to date."""
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):]
        if path != ":memory:":  # customer mail: 0700 directory, 0600 file (and so -wal, -shm)
            from mailproc.rawstore import private_dir, private_file
            private_dir(Path(path).parent)
            private_file(Path(path))
        database = pw.SqliteDatabase(path, pragmas=SQLITE_PRAGMAS)
    else:
        from playhouse.db_url import connect as url_connect  # imports the PostgreSQL driver

        try:
            database = url_connect(url.replace("postgres://", "postgresql://", 1))
        except Exception as exc:  # bad scheme or missing driver
            raise ConfigError(f"cannot use database URL: {exc}", where="[mailproc] database") from None
    proxy.initialize(database)
    _INSERTS.clear()
    _UPDATES.clear()
    try:
        database.connect(reuse_if_open=True)
    except DATABASE_DOWN as exc:  # the server may just not be up yet: exit 1, systemd retries
        raise TransientError(f"cannot connect to the database ([mailproc] database): {exc}".strip()) from None
    migrate(database)
    return database


def current_version(database: pw.Database) -> int:
    from mailproc.models import SchemaVersion
    if not database.table_exists("schema_version"):
        return 0
    row = SchemaVersion.select().order_by(SchemaVersion.version.desc()).first()
    return row.version if row else 0


def migrate(database: pw.Database) -> None:
    """Bring the schema up to date, one process at a time.

    Two processes starting on a new database (two daemons, a daemon and
    `run --once`) would otherwise both create the tables; PostgreSQL then
    fails one of them with a unique violation in its catalogue. The version is
    read again once the lock is held, so the second process finds the work
    done."""
    from mailproc.models import SchemaVersion
    version = current_version(database)
    if version > SCHEMA_VERSION:
        raise SchemaError(f"database schema is version {version}, newer than this mailproc "
                          f"understands ({SCHEMA_VERSION}); upgrade mailproc")
    if version == SCHEMA_VERSION:
        return
    with _schema_lock(database):
        version = current_version(database)
        for number, step in MIGRATIONS:
            if number <= version:
                continue
            log.info("upgrading database schema to version %d", number)
            with database.atomic():
                step(database)
                SchemaVersion.delete().execute()
                SchemaVersion.create(version=number)


_SCHEMA_LOCK = 7_166_331  # PostgreSQL advisory lock key for schema changes


@contextmanager
def _schema_lock(database: pw.Database) -> Iterator[None]:
    """SQLite: a write transaction around the migrations (DDL is transactional there).
    PostgreSQL: a session advisory lock, each migration in its own transaction."""
    if isinstance(database, pw.SqliteDatabase):
        with database.atomic(lock_type="IMMEDIATE"):
            yield
        return
    database.execute_sql("SELECT pg_advisory_lock(%s)", (_SCHEMA_LOCK,))
    try:
        yield
    finally:
        database.execute_sql("SELECT pg_advisory_unlock(%s)", (_SCHEMA_LOCK,))


# --- Hot-path inserts -------------------------------------------------------
# peewee builds each statement anew, which costs a few tenths of a millisecond
# per statement, more for wide tables; a new case writes a dozen rows. These
# helpers build each model's INSERT once and reuse it, applying the same
# Python-side defaults and field conversions peewee's `create` applies.

_INSERTS: dict[tuple[type, bool], tuple[str, list]] = {}


def _insert_statement(model, returning: bool) -> tuple[str, list]:
    key = (model, returning)
    if key not in _INSERTS:
        database = proxy.obj
        fields = [f for f in model._meta.sorted_fields if not isinstance(f, pw.AutoField)]
        columns = ", ".join(f'"{f.column_name}"' for f in fields)
        marks = ", ".join([database.param] * len(fields))
        sql = f'INSERT INTO "{model._meta.table_name}" ({columns}) VALUES ({marks})'
        if returning and not isinstance(database, pw.SqliteDatabase):
            sql += f' RETURNING "{model._meta.primary_key.column_name}"'
        _INSERTS[key] = (sql, fields)
    return _INSERTS[key]


def _params(fields: list, values: dict) -> list:
    unknown = values.keys() - {f.name for f in fields}
    if unknown:
        raise TypeError(f"no such field(s): {', '.join(sorted(unknown))}")
    params = []
    for f in fields:
        value = values[f.name] if f.name in values else (f.default() if callable(f.default) else f.default)
        params.append(f.db_value(value))
    return params


def insert(model, **values) -> int:
    """INSERT one row (missing fields take their defaults); return its id."""
    sql, fields = _insert_statement(model, returning=True)
    cursor = proxy.obj.execute_sql(sql, _params(fields, values))
    return cursor.lastrowid if isinstance(proxy.obj, pw.SqliteDatabase) else cursor.fetchone()[0]


def insert_many(model, rows: list[dict]) -> None:
    """INSERT several rows: SQLite runs one prepared statement per row in process; on
    PostgreSQL, whose driver's executemany is a round trip per row, multi-row VALUES
    (psycopg2's execute_values, a few hundred rows a statement)."""
    if not rows:
        return
    sql, fields = _insert_statement(model, returning=False)
    params = [_params(fields, row) for row in rows]
    if isinstance(proxy.obj, pw.SqliteDatabase) or len(params) == 1:
        proxy.obj.cursor().executemany(sql, params)
        return
    from psycopg2.extras import execute_values

    execute_values(proxy.obj.cursor(), sql[:sql.rindex(" VALUES (")] + " VALUES %s", params, page_size=500)


_UPDATES: dict[tuple, tuple[str, list]] = {}


def update(model, row_id: int, **values) -> None:
    """UPDATE one row by id, setting only `values` (converted as peewee would)."""
    key = (model, tuple(values))
    if key not in _UPDATES:
        fields = [model._meta.fields[name] for name in values]
        param = proxy.obj.param
        assignments = ", ".join(f'"{f.column_name}" = {param}' for f in fields)
        _UPDATES[key] = (f'UPDATE "{model._meta.table_name}" SET {assignments} '
                         f'WHERE "{model._meta.primary_key.column_name}" = {param}', fields)
    sql, fields = _UPDATES[key]
    proxy.obj.execute_sql(sql, [f.db_value(v) for f, v in zip(fields, values.values())] + [row_id])


def execute(sql: str, params: list):
    """A hand-written statement with `?` placeholders, on either database (hot paths only)."""
    if proxy.obj.param != "?":
        sql = sql.replace("?", proxy.obj.param)
    return proxy.obj.execute_sql(sql, params)


def query_one(sql: str, params: list) -> tuple:
    """One row of a hand-written query."""
    return execute(sql, params).fetchone()


def query_all(sql: str, params: list) -> list[tuple]:
    """Every row of a hand-written query."""
    return execute(sql, params).fetchall()


def raw(model, sql: str, params: list):
    """Model instances from a hand-written query (`?` placeholders), converted as
    peewee converts them, without building the statement anew each time."""
    if proxy.obj.param != "?":
        sql = sql.replace("?", proxy.obj.param)
    return model.raw(sql, *params)


# The database itself is unreachable or broken: not the message's fault, so it
# is not marked failed; the caller stops and the next round starts afresh.
DATABASE_DOWN = (pw.OperationalError, pw.InterfaceError)

# Any number will do; all mailproc processes on one PostgreSQL use the same.
_MESSAGE_LOCK = 7_166_330


def serialize_messages() -> None:
    """Inside a message's transaction: one message at a time across processes.

    SQLite's BEGIN IMMEDIATE already does this; on PostgreSQL (READ COMMITTED)
    two daemons could otherwise both find "no case yet" for the same mail CC'd
    to two mailboxes, or both stay under the per-address limit. A transaction
    advisory lock is released at commit or rollback.
    """
    if not isinstance(proxy.obj, pw.SqliteDatabase):
        proxy.obj.execute_sql("SELECT pg_advisory_xact_lock(%s)", (_MESSAGE_LOCK,))


def reconnect_if_broken() -> None:
    """Before a round of work: a connection the server dropped is replaced."""
    database = proxy.obj
    try:
        database.execute_sql("SELECT 1")
    except DATABASE_DOWN:
        log.warning("database connection lost; reconnecting")
        try:
            database.close()
        except DATABASE_DOWN:
            pass
        database.connect(reuse_if_open=True)


def make_durable() -> None:
    """Before an act that cannot be undone (moving mail on the server, sending):
    what is committed must survive a power loss. With WAL and synchronous=NORMAL
    SQLite syncs its log only at checkpoints; fsync it now. PostgreSQL commits
    are durable already."""
    database = proxy.obj
    if isinstance(database, pw.SqliteDatabase) and database.database != ":memory:":
        wal = f"{database.database}-wal"
        if os.path.exists(wal):
            fd = os.open(wal, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def transaction():
    """A write transaction. On SQLite it takes the write lock up front (BEGIN
    IMMEDIATE): a deferred transaction that reads, then writes after another
    process (the sender) has committed, fails at once with "database is
    locked" instead of waiting its turn. Nested calls become savepoints."""
    database = proxy.obj
    if isinstance(database, pw.SqliteDatabase) and not database.in_transaction():
        return database.atomic(lock_type="IMMEDIATE")
    return proxy.atomic()


def close() -> None:
    if proxy.obj is not None and not proxy.is_closed():
        proxy.close()
