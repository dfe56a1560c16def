"""The customer directory: CSV import (all or nothing, errors by line) and sender look-up."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from mailproc import directory
from mailproc.errors import ConfigError
from mailproc.models import Customer

NOW = datetime(2026, 5, 8, 12, tzinfo=timezone.utc)
HEADER = "match,company,plan,licenses,high_value,partner,internal,google_apps\n"


def write(tmp_path, body: str, name: str = "customers.csv"):
    path = tmp_path / name
    path.write_text(HEADER + body, encoding="utf-8")
    return path


def test_import_adds_rows_and_converts_values(database, tmp_path):
    path = write(tmp_path, "Example.COM,Example Ltd,paid,12,true,no,0,yes\n"
                           "\n"
                           "boss@bigcorp.example,Big Corp,enterprise,400,1,false,false,false\n")
    result = directory.import_csv(path, NOW)
    assert (result.added, result.updated) == (2, 0)
    row = Customer.get(Customer.match == "example.com")
    assert (row.company, row.plan, row.licenses) == ("Example Ltd", "paid", 12)
    assert (row.high_value, row.partner, row.internal, row.google_apps) == (True, False, False, True)


def test_import_again_updates_by_match(database, tmp_path):
    directory.import_csv(write(tmp_path, "example.com,Example Ltd,trial,1,false,false,false,false\n"), NOW)
    result = directory.import_csv(write(tmp_path, "EXAMPLE.com,Example Ltd,paid,15,false,true,false,false\n"
                                                  "new.example,New,free,0,no,no,no,no\n"), NOW)
    assert (result.added, result.updated) == (1, 1)
    assert Customer.select().count() == 2
    row = Customer.get(Customer.match == "example.com")
    assert (row.plan, row.licenses, row.partner) == ("paid", 15, True)


def test_bad_plan_on_line_3_names_the_line_and_writes_nothing(database, tmp_path):
    path = write(tmp_path, "good.example,Good,paid,1,false,false,false,false\n"
                           "bad.example,Bad,platinum,1,false,false,false,false\n")
    with pytest.raises(ConfigError) as err:
        directory.import_csv(path, NOW)
    assert err.value.file == str(path)
    assert err.value.where == "line 3"
    assert "platinum" in str(err.value)
    assert Customer.select().count() == 0


@pytest.mark.parametrize("row, complaint", [
    ("not an address,X,paid,1,false,false,false,false", "neither an address nor a domain"),
    ("a.example,,paid,1,false,false,false,false", "company is empty"),
    ("a.example,A,paid,many,false,false,false,false", "not a whole number"),
    ("a.example,A,paid,1,maybe,false,false,false", "high_value"),
    ("a.example,A,paid,1,false,false", "columns"),
])
def test_each_kind_of_bad_row_is_refused(database, tmp_path, row, complaint):
    with pytest.raises(ConfigError, match=complaint) as err:
        directory.import_csv(write(tmp_path, row + "\n"), NOW)
    assert err.value.where == "line 2"


def test_duplicate_match_and_wrong_header(database, tmp_path):
    path = write(tmp_path, "a.example,A,paid,1,false,false,false,false\n"
                           "A.example,A again,paid,1,false,false,false,false\n")
    with pytest.raises(ConfigError, match="already on line 2") as err:
        directory.import_csv(path, NOW)
    assert err.value.where == "line 3"
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("domain,company\nexample.com,X\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="first line") as err:
        directory.import_csv(wrong, NOW)
    assert err.value.where == "line 1"


def test_lookup_prefers_address_then_domain_then_parent_domain(database, tmp_path):
    directory.import_csv(write(tmp_path, "example.com,Example,paid,5,false,false,false,false\n"
                                         "ceo@example.com,Example (CEO),paid,5,true,false,false,false\n"
                                         "eu.example.com,Example Europe,enterprise,50,false,false,false,false\n"),
                         NOW)
    assert directory.lookup("CEO@Example.com").company == "Example (CEO)"
    assert directory.lookup("ann@example.com").company == "Example"
    assert directory.lookup("ann@mail.example.com").company == "Example"
    assert directory.lookup("bob@lisbon.eu.example.com").company == "Example Europe"
    assert directory.lookup("someone@other.example") is None
    assert directory.lookup("") is None


def test_candidates_order():
    assert directory.candidates("a@mail.example.co.uk") == [
        "a@mail.example.co.uk", "mail.example.co.uk", "example.co.uk", "co.uk"]


# --- the optional columns of the hours report: contact, included_hours, owner -----------------


def write_with(tmp_path, header: str, body: str, name: str = "customers.csv"):
    path = tmp_path / name
    path.write_text(header + "\n" + body, encoding="utf-8")
    return path


def test_optional_columns_in_any_order_are_read(database, tmp_path):
    path = write_with(tmp_path, HEADER.strip() + ",Owner,contact,included_hours",
                      "acme.example,Acme,enterprise,40,false,false,false,false,ana,Boss@Acme.example,12.5\n"
                      "shop.example,Shop,paid,3,false,false,false,false,fabio@agency.example,,\n")
    directory.import_csv(path, NOW, agents=["ana", "bruno"])
    acme = Customer.get(Customer.match == "acme.example")
    assert (acme.contact, acme.included_hours, acme.owner) == ("boss@acme.example", 12.5, "ana")
    shop = Customer.get(Customer.match == "shop.example")
    assert (shop.contact, shop.included_hours, shop.owner) == (None, None, "fabio@agency.example")


def test_an_old_eight_column_file_imports_and_keeps_what_a_newer_one_set(database, tmp_path):
    directory.import_csv(write_with(tmp_path, HEADER.strip() + ",contact,included_hours",
                                    "acme.example,Acme,paid,4,false,false,false,false,it@acme.example,10\n"), NOW)
    result = directory.import_csv(write(tmp_path, "acme.example,Acme,enterprise,4,false,false,false,false\n"
                                                  "new.example,New,free,0,no,no,no,no\n", name="old.csv"), NOW)
    assert (result.added, result.updated) == (1, 1)
    acme = Customer.get(Customer.match == "acme.example")
    assert (acme.plan, acme.contact, acme.included_hours, acme.owner) == ("enterprise", "it@acme.example", 10.0, None)
    assert Customer.get(Customer.match == "new.example").contact is None
    # an empty cell in a present column clears it
    directory.import_csv(write_with(tmp_path, HEADER.strip() + ",contact",
                                    "acme.example,Acme,enterprise,4,false,false,false,false,\n"), NOW)
    assert Customer.get(Customer.match == "acme.example").contact is None


@pytest.mark.parametrize("extra, good, bad, complaint", [
    ("contact", "a@ok.example", "not-an-address", "contact 'not-an-address' is not an address"),
    ("contact", "a@ok.example", "acme.example", "is not an address"),
    ("included_hours", "3", "ten", "not a number of hours"),
    ("included_hours", "3", "-2", "0 or more"),
    ("included_hours", "3", "nan", "0 or more"),
    ("owner", "ana", "zeca", r"neither an address nor an agent of the roster \(ana\)"),
    ("owner", "ana", "x@@y", "is not an address"),
    ("contact,owner", "a@ok.example,ana", "a@ok.example", "has 9 columns, expected 10"),
])
def test_bad_optional_values_are_refused_with_file_and_line(database, tmp_path, extra, good, bad, complaint):
    path = write_with(tmp_path, HEADER.strip() + "," + extra,
                      f"ok.example,Ok,paid,1,false,false,false,false,{good}\n"
                      f"bad.example,Bad,paid,1,false,false,false,false,{bad}\n")
    with pytest.raises(ConfigError, match=complaint) as err:
        directory.import_csv(path, NOW, agents=["ana"])
    assert (err.value.file, err.value.where) == (str(path), "line 3")
    assert Customer.select().count() == 0


@pytest.mark.parametrize("header, complaint", [
    ("contact,contact", "'contact' is given twice"),
    ("contact,phone", "unknown column 'phone'"),
])
def test_bad_optional_headers_are_refused_on_line_1(database, tmp_path, header, complaint):
    path = write_with(tmp_path, HEADER.strip() + "," + header, "")
    with pytest.raises(ConfigError, match=complaint) as err:
        directory.import_csv(path, NOW)
    assert err.value.where == "line 1"
    swapped = write_with(tmp_path, "company,match,plan,licenses,high_value,partner,internal,google_apps", "",
                         name="swapped.csv")
    with pytest.raises(ConfigError, match="first line"):
        directory.import_csv(swapped, NOW)


def test_an_owner_name_is_not_checked_without_a_roster(database, tmp_path):
    path = write_with(tmp_path, HEADER.strip() + ",owner", "a.example,A,paid,1,false,false,false,false,zeca\n")
    directory.import_csv(path, NOW)
    assert Customer.get(Customer.match == "a.example").owner == "zeca"
