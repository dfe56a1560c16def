"""Storage: the schema is versioned; upgrades keep data; a newer schema is refused.
Runs on SQLite and on a real PostgreSQL server."""

from datetime import datetime

import pytest

from mailproc import db
from mailproc.errors import SchemaError
from mailproc.models import Case, Event, SchemaVersion


def make_case(**kw):
    now = datetime(2026, 11, 26, 9, 0)
    fields = dict(contact="a@example.com", created_at=now, updated_at=now, status_changed_at=now,
                  tier_entered_at=now, summary="Hello", tags=["x"], decided_by={"type": "classification:default"})
    fields.update(kw)
    return Case.create(**fields)


def test_fresh_database_is_current_and_reopening_keeps_data(db_url):
    database = db.open_database(db_url)
    assert db.current_version(database) == db.SCHEMA_VERSION
    case = make_case()
    Event.create(case=case, at=datetime(2026, 11, 26, 9, 1), kind="created")
    db.close()
    database = db.open_database(db_url)
    again = Case.get_by_id(case.id)
    assert again.tags == ["x"] and again.decided_by == {"type": "classification:default"}
    assert again.events.count() == 1
    assert SchemaVersion.select().count() == 1


def test_newer_schema_is_refused(db_url):
    db.open_database(db_url)
    SchemaVersion.update(version=db.SCHEMA_VERSION + 1).execute()
    db.close()
    with pytest.raises(SchemaError, match="newer"):
        db.open_database(db_url)


def test_migrations_run_in_order_and_once(db_url, monkeypatch):
    calls = []
    nxt = db.SCHEMA_VERSION + 1

    def step(database):
        calls.append(nxt)
        database.execute_sql("CREATE TABLE extra_next (id INTEGER PRIMARY KEY)")

    database = db.open_database(db_url)
    make_case()
    db.close()
    monkeypatch.setattr(db, "MIGRATIONS", db.MIGRATIONS + [(nxt, step)])
    monkeypatch.setattr(db, "SCHEMA_VERSION", nxt)
    database = db.open_database(db_url)
    assert calls == [nxt] and db.current_version(database) == nxt and Case.select().count() == 1
    db.close()
    db.open_database(db_url)
    assert calls == [nxt]
