"""The customer directory: who a sender is (SPEC §3).

It stands in for the CRM look-up seed 000 does by hand ("log in to the
accounts app to get the customer plan"): an address or a whole domain maps
to a company, its plan, licenses and flags, which feed the priority rules.
It is kept as a CSV that the team edits and imports; an import checks every
row first and then writes them all in one transaction, so a typo on line 40
never leaves half a directory behind.

After the eight columns every file has, three optional ones may follow, in any
order (the header names them): `contact` (where the monthly hours report
goes), `included_hours` (the plan's hours a month) and `owner` (the account
owner, an agent NAME or an address, who gets a copy of that report). A file
without one of them leaves that column of existing rows as it is, so an old
eight-column file imported again never wipes what a newer one set.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from mailproc import db
from mailproc.errors import ConfigError
from mailproc.models import PLANS, Customer

HEADER = ("match", "company", "plan", "licenses", "high_value", "partner", "internal", "google_apps")
OPTIONAL = ("contact", "included_hours", "owner")  # after HEADER, in any order, each at most once
FLAGS = ("high_value", "partner", "internal", "google_apps")
TRUE = {"true", "yes", "y", "1"}
FALSE = {"false", "no", "n", "0", ""}
CHUNK = 400  # rows per IN (...) query / multi-row insert; below every backend's parameter limit

_DOMAIN = re.compile(r"(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,62}")
_LOCAL = re.compile(r"[^@\s\"<>(),;:]+")


@dataclass(frozen=True)
class ImportResult:
    added: int
    updated: int


def valid_match(value: str) -> bool:
    """An address (local@domain) or a domain with at least one dot."""
    local, at, domain = value.rpartition("@")
    if at and not _LOCAL.fullmatch(local):
        return False
    return bool(_DOMAIN.fullmatch(domain))


def _flag(value: str) -> bool:
    value = value.strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise ValueError(f"not true/false: {value!r} (use true/false, yes/no or 1/0)")


def _address(value: str) -> bool:
    local, at, domain = value.rpartition("@")
    return bool(at and local) and valid_match(value)


def _optional(raw: dict[str, str], agents: Collection[str] | None) -> dict:
    """The optional columns present in the file; an empty cell clears the value."""
    row: dict = {}
    if "contact" in raw:
        contact = raw["contact"].lower()
        if contact and not _address(contact):
            raise ValueError(f"contact {raw['contact']!r} is not an address (name@domain)")
        row["contact"] = contact or None
    if "included_hours" in raw:
        text = raw["included_hours"]
        try:
            hours = float(text) if text else None
        except ValueError:
            raise ValueError(f"included_hours {text!r} is not a number of hours (e.g. 10 or 7.5)") from None
        if hours is not None and (not math.isfinite(hours) or hours < 0):
            raise ValueError(f"included_hours {text!r} must be a number of hours, 0 or more")
        row["included_hours"] = hours
    if "owner" in raw:
        owner = raw["owner"]
        if "@" in owner:
            if not _address(owner.lower()):
                raise ValueError(f"owner {owner!r} is not an address (name@domain)")
            owner = owner.lower()
        elif owner and agents is not None and owner not in agents:
            known = ", ".join(sorted(agents)) or "none configured"
            raise ValueError(f"owner {owner!r} is neither an address nor an agent of the roster ({known})")
        row["owner"] = owner or None
    return row


def _row(values: list[str], header: tuple[str, ...] = HEADER, agents: Collection[str] | None = None) -> dict:
    if len(values) != len(header):
        raise ValueError(f"has {len(values)} columns, expected {len(header)} ({','.join(header)})")
    raw = dict(zip(header, (v.strip() for v in values)))
    match = raw["match"].lower()
    if not valid_match(match):
        raise ValueError(f"match {raw['match']!r} is neither an address nor a domain")
    if not raw["company"]:
        raise ValueError("company is empty")
    plan = raw["plan"].lower()
    if plan not in PLANS:
        raise ValueError(f"unknown plan {raw['plan']!r}; one of: {', '.join(PLANS)}")
    try:
        licenses = int(raw["licenses"] or 0)
    except ValueError:
        raise ValueError(f"licenses {raw['licenses']!r} is not a whole number") from None
    if licenses < 0:
        raise ValueError("licenses must not be negative")
    row = {"match": match, "company": raw["company"], "plan": plan, "licenses": licenses}
    for name in FLAGS:
        try:
            row[name] = _flag(raw[name])
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
    row.update(_optional(raw, agents))
    return row


def _header(values: list[str] | None) -> tuple[str, ...]:
    """The file's columns: HEADER, then optional ones each at most once."""
    names = tuple(h.strip().lower() for h in values or ())
    if names[:len(HEADER)] != HEADER:
        raise ValueError(f"the first line must be: {','.join(HEADER)} (then, optionally, any of "
                         f"{', '.join(OPTIONAL)})")
    seen: set[str] = set()
    for name in names[len(HEADER):]:
        if name not in OPTIONAL:
            raise ValueError(f"unknown column {name!r} after the first {len(HEADER)}; optional ones: "
                             f"{', '.join(OPTIONAL)}")
        if name in seen:
            raise ValueError(f"column {name!r} is given twice")
        seen.add(name)
    return names


def read_csv(path: Path, agents: Collection[str] | None = None) -> list[dict]:
    """Every row of a directory CSV, validated; ConfigError names the file and line.

    `agents`: the roster's agent NAMEs, which an `owner` without an @ must be one of
    (None: not checked)."""
    path = Path(path)
    file = str(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            try:
                header = _header(next(reader, None))
            except ValueError as exc:
                raise ConfigError(str(exc), file=file, where="line 1") from None
            rows, lines = [], {}
            for values in reader:
                if not any(v.strip() for v in values):
                    continue  # blank line
                where = f"line {reader.line_num}"
                try:
                    row = _row(values, header, agents)
                except ValueError as exc:
                    raise ConfigError(str(exc), file=file, where=where) from None
                if row["match"] in lines:
                    raise ConfigError(f"{row['match']} is already on {lines[row['match']]}",
                                      file=file, where=where)
                lines[row["match"]] = where
                rows.append(row)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read: {exc}", file=file) from None
    except csv.Error as exc:
        raise ConfigError(f"not valid CSV: {exc}", file=file) from None
    return rows


def import_csv(path: Path, now: datetime | None = None, agents: Collection[str] | None = None) -> ImportResult:
    """Add or update the directory from a CSV: all rows or none.

    `now` is accepted for the callers' audit logging; rows carry no timestamp.
    `agents`: the roster's NAMEs, to check owners by (see `read_csv`).
    """
    rows = read_csv(path, agents)
    matches = [r["match"] for r in rows]
    with db.transaction():
        existing: set[str] = set()
        for i in range(0, len(matches), CHUNK):
            chunk = matches[i:i + CHUNK]
            existing.update(c.match for c in Customer.select(Customer.match).where(Customer.match.in_(chunk)))
        new = [r for r in rows if r["match"] not in existing]
        for i in range(0, len(new), CHUNK):
            Customer.insert_many(new[i:i + CHUNK]).execute()
        for row in rows:
            if row["match"] in existing:
                values = {k: v for k, v in row.items() if k != "match"}
                Customer.update(**values).where(Customer.match == row["match"]).execute()
    return ImportResult(added=len(new), updated=len(rows) - len(new))


def candidates(address: str) -> list[str]:
    """Most specific first: the address, its domain, then each parent domain."""
    address = address.strip().lower()
    local, at, domain = address.rpartition("@")
    found = [address] if at and local else []
    labels = domain.split(".")
    found += [".".join(labels[i:]) for i in range(len(labels) - 1) if labels[i]]
    return found


def lookup(address: str) -> Customer | None:
    """The directory row for a sender: exact address, else its domain, else a parent domain."""
    keys = candidates(address)
    if not keys:
        return None
    sql = f"SELECT * FROM customer WHERE match IN ({', '.join('?' * len(keys))})"  # hot path: every new case
    rows = {c.match: c for c in db.raw(Customer, sql, keys)}
    return next((rows[k] for k in keys if k in rows), None)
