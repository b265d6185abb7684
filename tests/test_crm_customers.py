"""Customers against the real database: the CSV import (numbers in E.164, several per
customer, other columns as fields, updates by CRM id, campaign contacts linked), every bad
row one line naming line, column and reason with nothing written, lookup by the caller's
number, and the CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from callcenter.campaigns.numbers import Normaliser
from callcenter.crm import CrmError
from callcenter.crm import customers as store
from tests.conftest import Cli, count

US = Normaliser("US")


def error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith("Error: ")
    return lines[0]


def write(tmp_path: Path, text: str, name: str = "customers.csv") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.fixture
def s(clean_db: Engine) -> Iterator[Session]:
    with sessionmaker(clean_db)() as session, session.begin():
        yield session


GOOD = (
    "name,phone,phone2,email,crm_id,tier,notes\n"
    "Ann Smith,(212) 555-0100;+1 415 555 0101,,ann@example.com,A-1,gold,\n"
    "Bob Jones,+44 20 7946 0018,312-555-0102,,B-2,,likes mornings\n"
    "Cy,,,cy@example.org,,silver,\n"
)


def test_caller_forms_cover_how_asterisk_writes_a_number() -> None:
    assert store.caller_forms("+12125550100") == [
        "+12125550100",
        "12125550100",
        "2125550100",
        "0012125550100",
        "01112125550100",
    ]
    assert store.caller_forms("+442079460018") == [
        "+442079460018",
        "442079460018",
        "2079460018",
        "02079460018",
        "00442079460018",
        "011442079460018",
    ]


def test_import_good_file(run_cli: Cli, clean_db: Engine, tmp_path: Path) -> None:
    out = run_cli.ok("customers", "import", write(tmp_path, GOOD), "--json")
    report = json.loads(out.output)
    assert report == {
        "rows": 3,
        "created": 3,
        "updated": 0,
        "phones": 4,
        "contacts_linked": 0,
    }
    listed = json.loads(run_cli.ok("customers", "list", "--json").output)
    by_name = {c["name"]: c for c in listed}
    assert [c["name"] for c in listed] == ["Ann Smith", "Bob Jones", "Cy"]
    assert by_name["Ann Smith"]["phones"] == ["+12125550100", "+14155550101"]
    assert by_name["Ann Smith"]["fields"] == {"tier": "gold"}
    assert by_name["Ann Smith"]["crm_id"] == "A-1"
    assert by_name["Bob Jones"]["phones"] == ["+442079460018", "+13125550102"]
    assert by_name["Bob Jones"]["fields"] == {"notes": "likes mornings"}
    assert by_name["Cy"]["phones"] == []
    assert by_name["Cy"]["crm_id"] is None
    assert count(clean_db, "customer_phones") == 4


def test_reimport_by_crm_id_updates(run_cli: Cli, clean_db: Engine, tmp_path: Path) -> None:
    run_cli.ok("customers", "import", write(tmp_path, GOOD))
    again = (
        "name,phone,crm_id,tier\n"
        # Ann keeps one number and drops the other; Bob's old number goes to a new customer.
        "Ann B. Smith,+1 415 555 0101,A-1,platinum\n"
        "Bob Jones,312-555-0102,B-2,\n"
        "Dee,+44 20 7946 0018,,\n"
    )
    out = run_cli.ok("customers", "import", write(tmp_path, again, "again.csv"), "--json")
    assert json.loads(out.output) == {
        "rows": 3,
        "created": 1,
        "updated": 2,
        "phones": 3,
        "contacts_linked": 0,
    }
    ann = json.loads(run_cli.ok("customers", "show", "crm:A-1", "--json").output)["customer"]
    assert ann["name"] == "Ann B. Smith"
    assert ann["phones"] == ["+14155550101"]
    assert ann["fields"] == {"tier": "platinum"}  # merged: the new value wins
    dee = json.loads(run_cli.ok("customers", "show", "+442079460018", "--json").output)
    assert dee["customer"]["name"] == "Dee"
    assert count(clean_db, "customers") == 4
    # Ann's and Bob's numbers are the file's now; Dee has the one Bob gave up; Cy has none.
    assert count(clean_db, "customer_phones") == 3


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "name,phone\nAnn,212 555 0100\nBob,12345\n",
            "line 3, column 'phone': '12345' is not a valid number",
        ),
        (
            "name,phone,phone2\nAnn,212 555 0100,\nBob,+1 415 555 0101,(212) 555-0100\n",
            "line 3, column 'phone2': +12125550100 is also on line 2 (a number belongs to one "
            "customer)",
        ),
        (
            "name,phone,email\nAnn,212 555 0100,ann@@example\n",
            "line 2, column 'email': e-mail 'ann@@example' is not an e-mail address",
        ),
        (
            "name,phone,crm_id\nAnn,212 555 0100,X\nBob,415 555 0101,X\n",
            "line 3, column 'crm_id': 'X' is also on line 2",
        ),
        ("name,phone\nAnn,212 555 0100,extra\n", "line 2, column '#3': 3 columns where"),
        ("name,email\nAnn,a@b.co\n", "line 1, column 'phone': the header has no phone column"),
        (
            "name,phone\nAnn,212 555 0100\n ,;\n",
            "line 3, column 'name': a customer needs a name or a phone",
        ),
        ("name,phone\nAnn,212 555 0100;bad\n", "line 2, column 'phone': 'bad' is not a phone"),
    ],
)
def test_bad_rows_are_one_line_and_write_nothing(
    run_cli: Cli, clean_db: Engine, tmp_path: Path, text: str, expected: str
) -> None:
    run_cli.ok("customers", "add", "--name", "Existing", "--phone", "+1 646 555 0199")
    result = run_cli("customers", "import", write(tmp_path, text))
    assert result.exit_code == 1
    line = error_line(result.output)
    assert expected in line, line
    assert line.endswith("; nothing was imported")
    assert count(clean_db, "customers") == 1
    assert count(clean_db, "customer_phones") == 1


def test_number_of_another_customer_is_an_error(
    run_cli: Cli, clean_db: Engine, tmp_path: Path
) -> None:
    run_cli.ok("customers", "add", "--name", "Existing", "--phone", "+1 646 555 0199")
    text = "name,phone\nNew one,212 555 0100\nThief,(646) 555-0199\n"
    result = run_cli("customers", "import", write(tmp_path, text))
    assert result.exit_code == 1
    line = error_line(result.output)
    assert "line 3, column 'phone': +16465550199 already belongs to customer 1 (Existing)" in line
    assert count(clean_db, "customers") == 1
    assert count(clean_db, "customer_phones") == 1


def test_missing_file_and_empty_file(run_cli: Cli, tmp_path: Path) -> None:
    result = run_cli("customers", "import", str(tmp_path / "nope.csv"))
    assert result.exit_code == 1
    assert "cannot read" in error_line(result.output)
    result = run_cli("customers", "import", write(tmp_path, ""))
    assert "is empty" in error_line(result.output)


def test_import_links_campaign_contacts(run_cli: Cli, clean_db: Engine, tmp_path: Path) -> None:
    run_cli.ok("queues", "add", "sales")
    run_cli.ok("campaigns", "add", "spring", "--queue", "sales")
    contacts = "phone,name\n212 555 0100,Ann\n646 555 0111,Nobody\n"
    run_cli.ok("contacts", "import", write(tmp_path, contacts, "c.csv"), "--campaign", "spring")
    out = run_cli.ok("customers", "import", write(tmp_path, GOOD), "--json")
    assert json.loads(out.output)["contacts_linked"] == 1
    with clean_db.connect() as conn:
        rows: dict[str, int | None] = dict(
            conn.execute(sa.text("SELECT phone, customer_id FROM contacts ORDER BY phone")).all()
        )
        ann = conn.scalar(sa.text("SELECT id FROM customers WHERE crm_id = 'A-1'"))
    assert rows == {"+12125550100": ann, "+16465550111": None}


def test_create_update_and_lookup(s: Session) -> None:
    ann = store.create_customer(
        s, US, name=" Ann ", phones=["212 555 0100", "+12125550100", "415-555-0101"]
    )
    assert [p.phone for p in ann.phones] == ["+12125550100", "+14155550101"]
    assert ann.name == "Ann"
    assert store.lookup_caller(s, US, "2125550100") is ann
    assert store.lookup_caller(s, US, "+1 (415) 555-0101") is ann
    assert store.lookup_caller(s, US, "anonymous") is None
    assert store.lookup_caller(s, US, "6465550199") is None
    with pytest.raises(CrmError, match=r"\+12125550100 already belongs to customer"):
        store.create_customer(s, US, name="Bob", phones=["212 555 0100"])
    with pytest.raises(CrmError, match="is not a valid number"):
        store.create_customer(s, US, name="Bob", phones=["555"])
    with pytest.raises(CrmError, match="needs a name or a phone"):
        store.create_customer(s, US)
    store.update_customer(s, US, ann.id, phones=["646 555 0199"], fields={"tier": "gold"})
    assert store.lookup_caller(s, US, "2125550100") is None
    assert store.lookup_caller(s, US, "6465550199") is ann
    bob = store.create_customer(s, US, name="Bob", phones=["212 555 0100"], crm_id="B")
    with pytest.raises(CrmError, match="CRM id 'B' is customer"):
        store.update_customer(s, US, ann.id, crm_id="B")
    assert store.resolve_customer(s, US, str(bob.id)) is bob
    assert store.resolve_customer(s, US, "2125550100") is bob
    assert store.resolve_customer(s, US, "crm:B") is bob
    with pytest.raises(CrmError, match="no customer has the number"):
        store.resolve_customer(s, US, "+1 312 555 0102")
    with pytest.raises(CrmError, match="no customer with id 999"):
        store.resolve_customer(s, US, "999")


def test_list_search(run_cli: Cli, tmp_path: Path) -> None:
    run_cli.ok("customers", "import", write(tmp_path, GOOD))

    def names(search: str) -> list[str]:
        out = run_cli.ok("customers", "list", "--search", search, "--json").output
        return [c["name"] for c in json.loads(out)]

    assert names("smith") == ["Ann Smith"]
    assert names("EXAMPLE") == ["Ann Smith", "Cy"]
    assert names("b-2") == ["Bob Jones"]
    assert names("(312) 555-0102") == ["Bob Jones"]
    assert names("100%") == []
    table = run_cli.ok("customers", "list").output
    assert "3 of 3 customers" in table
    assert "Ann Smith" in table


def test_show_unknown_customer(run_cli: Cli) -> None:
    result = run_cli("customers", "show", "+1 212 555 0100")
    assert result.exit_code == 1
    assert error_line(result.output) == "Error: no customer has the number +12125550100"
    result = run_cli("customers", "show", "not a number")
    assert result.exit_code == 1
    assert "a customer is named by id, phone number or crm:ID" in error_line(result.output)
