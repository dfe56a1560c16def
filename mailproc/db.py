"""Opening the database named by `database =` and keeping its schema current.

SQLite (WAL, foreign keys on) is the default; PostgreSQL takes the same code
through a `postgresql://` URL. The schema carries a version number; opening a
database runs the migrations it lacks, in order, each in a transaction, so an
upgrade keeps every case and message. A database from a newer mailproc is
refused rather than misread.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

import peewee as pw
from playhouse.db_url import connect as url_connect

from mailproc.errors import ConfigError, SchemaError

log = logging.getLogger(__name__)

proxy = pw.DatabaseProxy()

SQLITE_PRAGMAS = {"journal_mode": "wal", "foreign_keys": 1, "synchronous": "normal",
                  "busy_timeout": 30000, "cache_size": -16000}


def _v1(database: pw.Database) -> None:
    from mailproc import models
    database.create_tables(models.TABLES)


# Append (version, function) pairs here; never edit a released one.
MIGRATIONS: list[tuple[int, Callable[[pw.Database], None]]] = [(1, _v1)]
SCHEMA_VERSION = MIGRATIONS[-1][0]


def open_database(url: str) -> pw.Database:
    """Connect, bind the models, and bring the schema up to date."""
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):]
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        database = pw.SqliteDatabase(path, pragmas=SQLITE_PRAGMAS)
    else:
        try:
            database = url_connect(url.replace("postgres://", "postgresql://", 1))
        except Exception as exc:  # bad scheme or missing driver
            raise ConfigError(f"cannot use database URL: {exc}", where="[mailproc] database") from None
    proxy.initialize(database)
    database.connect(reuse_if_open=True)
    migrate(database)
    return database


def current_version(database: pw.Database) -> int:
    from mailproc.models import SchemaVersion
    if not database.table_exists("schema_version"):
        return 0
    row = SchemaVersion.select().order_by(SchemaVersion.version.desc()).first()
    return row.version if row else 0


def migrate(database: pw.Database) -> None:
    from mailproc.models import SchemaVersion
    version = current_version(database)
    if version > SCHEMA_VERSION:
        raise SchemaError(f"database schema is version {version}, newer than this mailproc "
                          f"understands ({SCHEMA_VERSION}); upgrade mailproc")
    for number, step in MIGRATIONS:
        if number <= version:
            continue
        log.info("upgrading database schema to version %d", number)
        with database.atomic():
            step(database)
            SchemaVersion.delete().execute()
            SchemaVersion.create(version=number)


def close() -> None:
    if proxy.obj is not None and not proxy.is_closed():
        proxy.close()
