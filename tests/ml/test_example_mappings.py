"""The HubSpot and Salesforce example mappings load their fixture exports whole and safely.

Each folder ``examples/<crm>/`` is a runnable source: a ``mapping.yaml`` and invented export files
named and laid out as the CRM writes them. A broken mapping shows here as a quarantined row, a
contract column left empty or untyped, a stage or priority that did not map to the contract's
values, an outcome that does not match the export, or personal data that reached a table.
"""

from __future__ import annotations

import csv
import gzip
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from ml.data.mapping import TableMapping, candidate_files
from ml.data.sources import TableLoad, load_mappings, load_table

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EXPECTED_ROWS = {
    "hubspot": {"leads": 30, "orders": 28},
    "salesforce": {"customers": 25, "orders": 35, "support_tickets": 30},
}
# Contract columns every fixture row fills, with the type the loader must give them.
FILLED = {
    ("hubspot", "leads"): {
        "lead_id": "VARCHAR",
        "created_at": "TIMESTAMP",
        "source": "VARCHAR",
        "country": "VARCHAR",
        "role": "VARCHAR",
        "email_opens": "INTEGER",
        "page_views": "INTEGER",
        "website_visits": "INTEGER",
        "converted": "BOOLEAN",
    },
    ("hubspot", "orders"): {
        "order_id": "VARCHAR",
        "customer_record_id": "VARCHAR",
        "ordered_at": "TIMESTAMP",
        "amount": "DOUBLE",
        "status": "VARCHAR",
    },
    ("salesforce", "customers"): {
        "customer_record_id": "VARCHAR",
        "country": "VARCHAR",
        "acquisition_channel": "VARCHAR",
        "signed_up_at": "TIMESTAMP",
    },
    ("salesforce", "orders"): {
        "order_id": "VARCHAR",
        "customer_record_id": "VARCHAR",
        "ordered_at": "TIMESTAMP",
        "amount": "DOUBLE",
        "status": "VARCHAR",
    },
    ("salesforce", "support_tickets"): {
        "ticket_id": "VARCHAR",
        "customer_record_id": "VARCHAR",
        "opened_at": "TIMESTAMP",
        "category": "VARCHAR",
        "priority": "VARCHAR",
    },
}


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect(str(tmp_path / "w.duckdb"))
    # The loader reads naive timestamps in the session time zone (ml.core.warehouse sets UTC).
    connection.execute("SET TimeZone = 'UTC'")
    yield connection
    connection.close()


def _mappings(example: str) -> dict[str, TableMapping]:
    """The tables the example's mapping.yaml has a section for."""
    mappings = load_mappings(EXAMPLES / example / "mapping.yaml")
    return {name: m for name, m in mappings.items() if not m.is_default}


def _load(
    con: duckdb.DuckDBPyConnection, example: str, tmp_path: Path, source: Path | None = None
) -> dict[str, TableLoad]:
    return {
        name: load_table(con, mapping, source or EXAMPLES / example, tmp_path / "quarantine")
        for name, mapping in _mappings(example).items()
    }


def _export(example: str, table: str) -> list[dict[str, str]]:
    """The fixture rows of a table, as the export has them."""
    (path,) = candidate_files(_mappings(example)[table], EXAMPLES / example)
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _column(con: duckdb.DuckDBPyConnection, table: str, key: str, column: str) -> dict:
    """``key -> column`` of ``raw.<table>``."""
    return dict(con.execute(f"select {key}, {column} from raw.{table}").fetchall())


def _minutes(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M")


def _iso(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC).replace(tzinfo=None)


@pytest.mark.parametrize("example", sorted(EXPECTED_ROWS))
def test_every_fixture_row_loads(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, example: str
) -> None:
    loads = _load(con, example, tmp_path)
    assert {name: load.rows_loaded for name, load in loads.items()} == EXPECTED_ROWS[example]
    for name, load in loads.items():
        assert load.has_file, name
        assert (load.rows_read, load.rows_quarantined) == (EXPECTED_ROWS[example][name], 0)
        assert len(_export(example, name)) == EXPECTED_ROWS[example][name]


@pytest.mark.parametrize(("example", "table"), sorted(FILLED))
def test_key_contract_columns_are_filled_with_their_types(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, example: str, table: str
) -> None:
    _load(con, example, tmp_path)
    types = dict(
        con.execute(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = 'raw' and table_name = ?",
            [table],
        ).fetchall()
    )
    for column, kind in FILLED[example, table].items():
        assert types[column] == kind, column
        (empty,) = con.execute(
            f"select count(*) from raw.{table} where {column} is null"
        ).fetchone()
        assert empty == 0, column


def test_hubspot_contacts_become_leads_converted_exactly_when_customers(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    _load(con, "hubspot", tmp_path)
    contacts = {row["Record ID"]: row for row in _export("hubspot", "leads")}
    customers = {i for i, row in contacts.items() if row["Lifecycle Stage"] == "Customer"}
    assert customers == {i for i, row in contacts.items() if row["Became a Customer Date"]}
    assert 0 < len(customers) < len(contacts)

    assert _column(con, "leads", "lead_id", "converted") == {i: i in customers for i in contacts}
    assert _column(con, "leads", "lead_id", "converted_at") == {
        i: _minutes(row["Became a Customer Date"]) if i in customers else None
        for i, row in contacts.items()
    }
    assert _column(con, "leads", "lead_id", "created_at") == {
        i: _minutes(row["Create Date"]) for i, row in contacts.items()
    }
    assert _column(con, "leads", "lead_id", "page_views") == {
        i: int(row["Number of Pageviews"]) for i, row in contacts.items()
    }
    assert _column(con, "leads", "lead_id", "source") == {
        i: row["Original Source"] for i, row in contacts.items()
    }


def test_hubspot_leads_keep_gender_for_audits_only_and_no_other_extra_column(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    _load(con, "hubspot", tmp_path)
    extra = {
        name
        for (name,) in con.execute(
            "select column_name from information_schema.columns where table_schema = 'raw' "
            "and table_name = 'leads' and (column_name like 'attr_%' or column_name like "
            "'protected_%')"
        ).fetchall()
    }
    # Every other export column is mapped, dropped with a reason or personal.
    assert extra == {"attr_industry", "protected_gender"}
    contacts = {row["Record ID"]: row for row in _export("hubspot", "leads")}
    assert _column(con, "leads", "lead_id", "protected_gender") == {
        i: row["Gender"] or None for i, row in contacts.items()
    }
    described = dict(
        con.execute("select column_name, source_column from raw.leads__columns").fetchall()
    )
    assert described["protected_gender"] == "Gender"
    assert "Date of birth" not in described.values()


def test_hubspot_won_deals_are_completed_orders_of_the_customers(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    _load(con, "hubspot", tmp_path)
    deals = {row["Record ID"]: row for row in _export("hubspot", "orders")}
    customers = {
        row["Record ID"]
        for row in _export("hubspot", "leads")
        if row["Lifecycle Stage"] == "Customer"
    }
    assert {row["Deal Stage"] for row in deals.values()} == {"Closed Won"}
    assert set(_column(con, "orders", "order_id", "status").values()) == {"completed"}
    # Every customer has a won deal, and every won deal belongs to a customer.
    assert set(_column(con, "orders", "order_id", "customer_record_id").values()) == customers
    assert _column(con, "orders", "order_id", "amount") == {
        i: float(row["Amount"]) for i, row in deals.items()
    }
    assert _column(con, "orders", "order_id", "ordered_at") == {
        i: _minutes(row["Close Date"]) for i, row in deals.items()
    }


def test_salesforce_ids_agree_across_objects_and_dates_are_utc(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    _load(con, "salesforce", tmp_path)
    accounts = set(_column(con, "customers", "customer_record_id", "country"))
    assert set(_column(con, "orders", "order_id", "customer_record_id").values()) <= accounts
    assert set(_column(con, "support_tickets", "ticket_id", "customer_record_id").values()) <= (
        accounts
    )
    assert _column(con, "customers", "customer_record_id", "signed_up_at") == {
        row["Id"]: _iso(row["CreatedDate"]) for row in _export("salesforce", "customers")
    }
    assert _column(con, "orders", "order_id", "ordered_at") == {
        row["Id"]: datetime.fromisoformat(row["CloseDate"])
        for row in _export("salesforce", "orders")
    }


def test_salesforce_won_opportunities_are_completed_orders(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    _load(con, "salesforce", tmp_path)
    opportunities = _export("salesforce", "orders")
    assert {row["StageName"] for row in opportunities} == {"Closed Won"}
    assert set(_column(con, "orders", "order_id", "status").values()) == {"completed"}
    assert _column(con, "orders", "order_id", "amount") == {
        row["Id"]: float(row["Amount"]) for row in opportunities
    }


def test_salesforce_cases_map_reason_and_priority_to_the_contract_values(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    _load(con, "salesforce", tmp_path)
    cases = {row["Id"]: row for row in _export("salesforce", "support_tickets")}
    values = _mappings("salesforce")["support_tickets"].values
    assert _column(con, "support_tickets", "ticket_id", "category") == {
        i: values["category"][row["Reason"]] for i, row in cases.items()
    }
    assert _column(con, "support_tickets", "ticket_id", "priority") == {
        i: {"High": "high", "Medium": "normal", "Low": "low"}[row["Priority"]]
        for i, row in cases.items()
    }
    assert set(_column(con, "support_tickets", "ticket_id", "category").values()) <= {
        "billing",
        "technical",
        "account",
        "other",
    }
    # Open cases stay unresolved; closed ones are resolved when Salesforce closed them.
    assert _column(con, "support_tickets", "ticket_id", "resolved_at") == {
        i: _iso(row["ClosedDate"]) if row["ClosedDate"] else None for i, row in cases.items()
    }
    assert any(not row["ClosedDate"] for row in cases.values())


def test_salesforce_date_times_with_a_z_suffix_load_the_same(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    source = tmp_path / "zulu"
    shutil.copytree(EXAMPLES / "salesforce", source)
    case_file = source / "Case.csv"
    case_file.write_text(case_file.read_text().replace(".000+0000", ".000Z"))
    _load(con, "salesforce", tmp_path)
    expected = _column(con, "support_tickets", "ticket_id", "opened_at")
    loads = _load(con, "salesforce", tmp_path, source)
    assert loads["support_tickets"].rows_quarantined == 0
    assert _column(con, "support_tickets", "ticket_id", "opened_at") == expected


@pytest.mark.parametrize("example", sorted(EXPECTED_ROWS))
def test_no_personal_value_reaches_any_loaded_table(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, example: str
) -> None:
    _load(con, example, tmp_path)
    personal: set[str] = set()
    for name, mapping in _mappings(example).items():
        assert mapping.pii, name
        for row in _export(example, name):
            personal |= {row[column] for column in mapping.pii if row[column]}
    assert any("@example.com" in value for value in personal)
    text_columns = con.execute(
        "select table_schema, table_name, column_name from information_schema.columns "
        "where table_schema in ('raw', 'quarantine') and data_type = 'VARCHAR'"
    ).fetchall()
    assert text_columns
    for schema, table, column in text_columns:
        values = {
            value
            for (value,) in con.execute(
                f'select distinct "{column}" from {schema}."{table}" where "{column}" is not null'
            ).fetchall()
        }
        where = f"{schema}.{table}.{column}"
        assert not values & personal, where
        assert not any("@example." in value for value in values), where
        # Longer personal values (names, addresses, phone numbers) not even as part of a value.
        long_personal = [p for p in personal if len(p) >= 8]
        assert not any(p in value for value in values for p in long_personal), where


# Invented lines laid out as the UCI Online Retail export is (its header, its three gzip parts,
# "C" invoices, lines without a CustomerID); the real data stay outside the repository.
RETAIL_HEADER = (
    "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
)
RETAIL_PARTS = {
    "online_retail_part1_2010-12_to_2011-04.csv.gz": (
        "536365,85123A,WHITE HANGING HEART,6,2010-12-01 08:26:00,2.55,17850,United Kingdom\n"
        "536365,71053,WHITE METAL LANTERN,6,2010-12-01 08:26:00,3.39,17850,United Kingdom\n"
        "C536379,D,Discount,-1,2010-12-01 09:41:00,27.5,14527,United Kingdom\n"
        "536414,22139,RETROSPOT TEA SET,56,2010-12-01 11:52:00,0,,United Kingdom\n"
    ),
    "online_retail_part2_2011-05_to_2011-08.csv.gz": (
        "545220,21955,DOORMAT UNION JACK,10,2011-05-01 10:00:00,7.08,14527,United Kingdom\n"
    ),
    "online_retail_part3_2011-09_to_2011-12.csv.gz": (
        "581587,22613,PACK OF 20 SPACEBOY NAPKINS,12,2011-12-09 12:50:00,0.85,12680,France\n"
    ),
}


def test_online_retail_loads_as_an_order_log_without_amounts(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    source = tmp_path / "online_retail"
    source.mkdir()
    for name, lines in RETAIL_PARTS.items():
        with gzip.open(source / name, "wt", encoding="utf-8") as handle:
            handle.write(RETAIL_HEADER + lines)
    (mapping,) = _mappings("online_retail").values()

    load = load_table(con, mapping, source, tmp_path / "quarantine")

    assert (load.rows_read, load.rows_loaded, load.rows_quarantined) == (6, 4, 2)
    rows = con.execute(
        "select customer_record_id, ordered_at, amount, status, order_id from raw.orders "
        "order by ordered_at, order_id"
    ).fetchall()
    assert [(r[0], r[1]) for r in rows] == [
        ("17850", datetime(2010, 12, 1, 8, 26)),  # two lines of one invoice: two orders,
        ("17850", datetime(2010, 12, 1, 8, 26)),  # one purchase day for customer value
        ("14527", datetime(2011, 5, 1, 10, 0)),
        ("12680", datetime(2011, 12, 9, 12, 50)),
    ]
    assert all(r[2] is None and r[3] is None for r in rows)  # no amount, no status
    assert len({r[4] for r in rows}) == 4  # generated ids, one per line
    reasons = sorted(r for (r,) in con.execute("select reason from quarantine.orders").fetchall())
    assert reasons == [
        "customer_record_id: required value missing",
        "excluded by the mapping: InvoiceNo starts with 'C' (a cancellation invoice undoes a "
        "purchase, it is not one)",
    ]
    assert not any("extra column" in p for p in load.problems)  # every column is accounted for
