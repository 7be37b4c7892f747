"""Ingest real CSV/Parquet files into a real DuckDB file: contract types, quarantine, errors."""

from __future__ import annotations

import csv
import gzip
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from ml.core.warehouse import connect
from ml.data.contract import RAW_TABLES
from ml.data.ingest import ContractError, ingest_table
from ml.data.mapping import MappingError, TableMapping, load_source_mapping

SUBSCRIPTIONS = RAW_TABLES["subscriptions"]
CUSTOMERS = RAW_TABLES["customers"]

GOOD_SUBSCRIPTIONS = """\
subscription_id,customer_record_id,plan,contract_type,monthly_price,started_at,ended_at,end_reason
s1,c1,basic,month-to-month,9.99,2025-01-01 10:00:00,,
s2,c2,Premium ,one-year,29.5,2025-02-01T08:30:00+02:00,2025-06-01,cancelled
s3,c3,standard,two-year,19,2025-03-01,,
"""


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    source, quarantine = tmp_path / "source", tmp_path / "quarantine"
    source.mkdir()
    return source, quarantine


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = connect(tmp_path / "warehouse.duckdb", threads=2, memory_limit="1GB")
    yield connection
    connection.close()


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple]:
    return con.execute(sql).fetchall()


def _types(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> list[tuple[str, str]]:
    return _rows(
        con,
        "select column_name, data_type from information_schema.columns "
        f"where table_schema = '{schema}' and table_name = '{table}' order by ordinal_position",
    )


def test_clean_csv_loads_with_contract_types(
    con: duckdb.DuckDBPyConnection, dirs: tuple[Path, Path]
) -> None:
    source, quarantine = dirs
    (source / "subscriptions.csv").write_text(GOOD_SUBSCRIPTIONS)
    result = ingest_table(con, SUBSCRIPTIONS, source, quarantine)
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (3, 3, 0)
    assert result.problems == ()
    assert result.source_file == source / "subscriptions.csv"
    assert _types(con, "raw", "subscriptions") == [(c.name, c.type) for c in SUBSCRIPTIONS.columns]
    rows = _rows(
        con,
        "select subscription_id, plan, monthly_price, started_at, ended_at "
        "from raw.subscriptions order by 1",
    )
    assert rows == [
        ("s1", "basic", 9.99, datetime(2025, 1, 1, 10, 0), None),
        # Text is kept as it is (staging trims); an offset is converted to UTC, not dropped.
        ("s2", "Premium ", 29.5, datetime(2025, 2, 1, 6, 30), datetime(2025, 6, 1)),
        ("s3", "standard", 19.0, datetime(2025, 3, 1), None),
    ]
    assert _rows(con, "select count(*) from quarantine.subscriptions") == [(0,)]
    assert len(pd.read_parquet(quarantine / "subscriptions.parquet")) == 0


def test_clean_parquet_in_any_column_order_and_gzip_csv(
    con: duckdb.DuckDBPyConnection, dirs: tuple[Path, Path]
) -> None:
    source, quarantine = dirs
    con.execute(
        f"copy (select timestamp '2025-01-01' + to_hours(range) as occurred_at, "
        f"case when range % 2 = 0 then 'login' else 'email_open' end as event_type, "
        f"'c' || (range % 7) as customer_record_id, 'e' || range as event_id from range(1000)) "
        f"to '{source / 'events.parquet'}'"
    )
    result = ingest_table(con, RAW_TABLES["events"], source, quarantine)
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (1000, 1000, 0)
    assert result.problems == ()
    assert _types(con, "raw", "events") == [
        ("event_id", "VARCHAR"),
        ("customer_record_id", "VARCHAR"),
        ("event_type", "VARCHAR"),
        ("occurred_at", "TIMESTAMP"),
    ]
    assert _rows(con, "select event_id, occurred_at from raw.events where event_id = 'e25'") == [
        ("e25", datetime(2025, 1, 2, 1, 0))
    ]

    with gzip.open(source / "subscriptions.csv.gz", "wt") as handle:
        handle.write(GOOD_SUBSCRIPTIONS)
    assert ingest_table(con, SUBSCRIPTIONS, source, quarantine).rows_loaded == 3


def test_bad_values_are_quarantined_with_file_column_and_rows(
    con: duckdb.DuckDBPyConnection, dirs: tuple[Path, Path]
) -> None:
    source, quarantine = dirs
    lines = GOOD_SUBSCRIPTIONS.splitlines()
    lines += [
        "s4,c4,basic,month-to-month,nine euros,2025-04-01,,",  # line 5: bad double
        "s5,c5,basic,month-to-month,9.99,yesterday,,",  # line 6: bad timestamp
        "s6,c6,basic,month-to-month,9.99,2025-04-02,,",  # line 7: good
        "s7,c7,basic,month-to-month,12;5,soon,,",  # line 8: both bad
        ",c8,basic,month-to-month,9.99,2025-04-03,,",  # line 9: required id missing
        "s9,c9,basic,month-to-month,9.99,2025-04-04,,,surplus",  # line 10: malformed
    ]
    (source / "subscriptions.csv").write_text("\n".join(lines) + "\n")
    result = ingest_table(con, SUBSCRIPTIONS, source, quarantine)

    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (9, 4, 5)
    assert _rows(con, "select subscription_id from raw.subscriptions order by 1") == [
        ("s1",),
        ("s2",),
        ("s3",),
        ("s6",),
    ]
    assert set(result.problems) == {
        "subscriptions.csv, column monthly_price: 2 rows cannot be read as DOUBLE "
        "(rows 5, 8; e.g. 'nine euros')",
        "subscriptions.csv, column started_at: 2 rows cannot be read as TIMESTAMP "
        "(rows 6, 8; e.g. 'yesterday')",
        "subscriptions.csv, column subscription_id: 1 row without a value in a required column "
        "(rows 9)",
        "subscriptions.csv: 1 malformed line quarantined (too many columns; lines 10)",
    }
    quarantined = _rows(
        con,
        "select source_file, row_number, reason, subscription_id, monthly_price, raw_line "
        "from quarantine.subscriptions order by row_number",
    )
    assert quarantined == [
        (
            "subscriptions.csv",
            5,
            "monthly_price: 'nine euros' cannot be read as DOUBLE",
            "s4",
            "nine euros",
            None,
        ),
        (
            "subscriptions.csv",
            6,
            "started_at: 'yesterday' cannot be read as TIMESTAMP",
            "s5",
            "9.99",
            None,
        ),
        (
            "subscriptions.csv",
            8,
            "monthly_price: '12;5' cannot be read as DOUBLE; started_at: 'soon' cannot be read as TIMESTAMP",
            "s7",
            "12;5",
            None,
        ),
        ("subscriptions.csv", 9, "subscription_id: required value missing", None, "9.99", None),
        (
            "subscriptions.csv",
            10,
            "malformed line: too many columns",
            None,
            None,
            "s9,c9,basic,month-to-month,9.99,2025-04-04,,,surplus",
        ),
    ]
    parquet = pd.read_parquet(quarantine / "subscriptions.parquet")
    assert list(parquet["row_number"]) == [5, 6, 8, 9, 10]
    assert list(parquet.columns[:3]) == ["source_file", "row_number", "reason"]


def test_fractional_integer_is_quarantined_and_blank_optional_is_null(
    con: duckdb.DuckDBPyConnection, dirs: tuple[Path, Path]
) -> None:
    source, quarantine = dirs
    (source / "support_tickets.csv").write_text(
        "ticket_id,customer_record_id,opened_at,satisfaction_score\n"
        "t1,c1,2025-01-01,4\n"
        "t2,c1,2025-01-02,4.5\n"
        "t3,c1,2025-01-03,  \n"
    )
    result = ingest_table(con, RAW_TABLES["support_tickets"], source, quarantine)
    assert _rows(
        con, "select ticket_id, satisfaction_score from raw.support_tickets order by 1"
    ) == [
        ("t1", 4),
        ("t3", None),
    ]
    assert "(rows 3; e.g. '4.5')" in " ".join(result.problems)
    # Missing optional columns are filled with null and reported.
    assert (
        "support_tickets.csv: optional column(s) category, priority, resolved_at missing; "
        "loaded as empty" in result.problems
    )


def test_missing_required_column_raises_and_keeps_previous_table(
    con: duckdb.DuckDBPyConnection, dirs: tuple[Path, Path]
) -> None:
    source, quarantine = dirs
    (source / "subscriptions.csv").write_text(GOOD_SUBSCRIPTIONS)
    ingest_table(con, SUBSCRIPTIONS, source, quarantine)
    (source / "subscriptions.csv").write_text(
        "subscription_id,customer_record_id,plan,contract_type,started_at\ns9,c9,basic,one-year,2025-01-01\n"
    )
    with pytest.raises(
        ContractError, match=r"subscriptions\.csv: missing required column\(s\) monthly_price"
    ):
        ingest_table(con, SUBSCRIPTIONS, source, quarantine)
    assert _rows(con, "select count(*) from raw.subscriptions") == [(3,)]
    # The failed attempt left no temp tables behind.
    assert _rows(con, "select count(*) from duckdb_tables() where temporary") == [(0,)]


def test_unreadable_file_raises_and_a_missing_one_keeps_the_previous_table(
    con: duckdb.DuckDBPyConnection, dirs: tuple[Path, Path]
) -> None:
    source, quarantine = dirs
    events = RAW_TABLES["events"]
    # No file, never loaded: an empty table (the source holds other tables only).
    first = ingest_table(con, events, source, quarantine)
    assert first.loaded_empty and _rows(con, "select count(*) from raw.events") == [(0,)]
    (source / "events.csv").write_text(
        "event_id,customer_record_id,event_type,occurred_at\ne1,c1,login,2025-01-01\n"
    )
    ingest_table(con, events, source, quarantine)
    (source / "events.csv").unlink()
    # No file after a load: the last load stays, and the report says so.
    kept = ingest_table(con, events, source, quarantine)
    assert (
        "no file events.csv" in kept.problems[0]
        and "last load (1 rows) is kept" in kept.problems[0]
    )
    assert _rows(con, "select event_id from raw.events") == [("e1",)]
    (source / "events.parquet").write_bytes(b"PAR1 this is not parquet at all \x00\xff" * 20)
    with pytest.raises(ContractError, match=r"events\.parquet: cannot be read"):
        ingest_table(con, events, source, quarantine)
    assert _rows(con, "select event_id from raw.events") == [("e1",)]
    (source / "events.csv").write_text("x")
    with pytest.raises(ContractError, match="several files"):
        ingest_table(con, events, source, quarantine)
    (source / "events.parquet").unlink()
    (source / "events.csv").write_bytes(b"")
    with pytest.raises(ContractError, match=r"events\.csv: the file is empty"):
        ingest_table(con, events, source, quarantine)
    assert _rows(con, "select event_id from raw.events") == [("e1",)]


def test_invalid_utf8_line_is_quarantined_not_fatal(
    con: duckdb.DuckDBPyConnection, dirs: tuple[Path, Path]
) -> None:
    source, quarantine = dirs
    (source / "events.csv").write_bytes(
        b"event_id,customer_record_id,event_type,occurred_at\n"
        b"e1,c1,login,2025-01-01\n"
        b"e2,c\xe9,login,2025-01-02\n"  # Latin-1 byte: not UTF-8
        b"e3,c3,login,2025-01-03\n"
    )
    result = ingest_table(con, RAW_TABLES["events"], source, quarantine)
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (3, 2, 1)
    assert result.problems == (
        "events.csv: 1 malformed line quarantined (invalid encoding; lines 3)",
    )
    # The rejected line is quarantined under its own line number, with its raw text.
    assert _rows(con, "select row_number, reason from quarantine.events") == [
        (3, "malformed line: invalid encoding")
    ]


def test_extra_columns_ignored_and_pii_never_in_problems(
    con: duckdb.DuckDBPyConnection, dirs: tuple[Path, Path]
) -> None:
    source, quarantine = dirs
    (source / "customers.csv").write_text(
        "Email,customer_record_id,signed_up_at,full_name,birth_year,favourite_colour\n"
        "ann.secret@example.com,c1,2025-01-01,Ann Secret,1980,red\n"
        "bob.hidden@example.com,c2,not a date,Bob Hidden,19x7,blue\n"
        "cid.private@example.com,c3,2025-01-03,Cid Private,1999,green,surplus\n"
    )
    result = ingest_table(con, CUSTOMERS, source, quarantine)
    assert result.rows_loaded == 1
    assert "customers.csv: extra column(s) favourite_colour ignored" in result.problems
    assert _types(con, "raw", "customers") == [(c.name, c.type) for c in CUSTOMERS.columns]
    # Header matching ignores case: 'Email' is the contract's email column.
    assert _rows(con, "select email from raw.customers") == [("ann.secret@example.com",)]
    text = " ".join(result.problems) + " ".join(
        r[0] for r in _rows(con, "select reason from quarantine.customers")
    )
    assert "birth_year" in text and "rows 3" in text  # the problem is named ...
    for secret in ("secret", "hidden", "private", "Bob", "19x7"):  # ... but no value is shown
        assert secret not in text


# (value of a text column, quarantined?) — the spreadsheet-formula and control-character rule.
UNSAFE_TEXT = [
    ("organic", False),
    ("+49 (0)30 1234-567", False),  # phone numbers start with '+'
    ("+1 555.010/9999", False),
    ("-5", False),
    ("-", False),  # a placeholder
    ("e-mail = yes", False),  # '=' inside is harmless
    ("Tab\tinside", False),
    ("=1+1", True),
    ("  =1+1", True),  # staging trims, so the spreadsheet would see '=1+1'
    ("+cmd|' /C calc'!A0", True),
    ("-2+3+cmd|' /C calc'!A0", True),
    ("@SUM(1+1)", True),
    ("+1-800-FLOWERS", True),  # a formula to a spreadsheet, so a vanity number goes too
    ("\tx", True),
    ("\rx", True),
    ("a\x00b", True),
    ("a\x1b[2Jb", True),
    ("a\x7fb", True),
]


def test_text_that_a_spreadsheet_would_run_or_with_control_characters_is_quarantined(
    con: duckdb.DuckDBPyConnection, dirs: tuple[Path, Path]
) -> None:
    source, quarantine = dirs
    frame = pd.DataFrame(
        {
            "customer_record_id": [f"c{i}" for i in range(len(UNSAFE_TEXT))],
            "acquisition_channel": [value for value, _ in UNSAFE_TEXT],
            "signed_up_at": "2025-01-01",
        }
    )
    # Every value quoted, so a carriage return or tab is inside its field.
    frame.to_csv(source / "customers.csv", index=False, quoting=csv.QUOTE_ALL)
    result = ingest_table(con, CUSTOMERS, source, quarantine)
    quarantined = {r[0] for r in _rows(con, "select customer_record_id from quarantine.customers")}
    expected = {f"c{i}" for i, (_, unsafe) in enumerate(UNSAFE_TEXT) if unsafe}
    assert quarantined == expected
    assert result.rows_loaded == len(UNSAFE_TEXT) - len(expected)
    # Kept values are stored exactly as written.
    kept = dict(_rows(con, "select customer_record_id, acquisition_channel from raw.customers"))
    assert kept["c1"] == "+49 (0)30 1234-567" and kept["c6"] == "Tab\tinside"


def test_non_utf8_header_and_header_only_file_are_refused(
    con: duckdb.DuckDBPyConnection, dirs: tuple[Path, Path]
) -> None:
    source, quarantine = dirs
    (source / "events.csv").write_text(
        "event_id,customer_record_id,event_type,occurred_at\ne1,c1,login,2025-01-01\n"
    )
    ingest_table(con, RAW_TABLES["events"], source, quarantine)
    (source / "events.csv").write_bytes("event_id,customer_récord_id\n".encode("cp1252"))
    with pytest.raises(ContractError, match=r"events\.csv: the header row \(line 1\) is not UTF-8"):
        ingest_table(con, RAW_TABLES["events"], source, quarantine)
    (source / "events.csv").write_text("event_id,customer_record_id,event_type,occurred_at\n")
    with pytest.raises(ContractError, match=r"events\.csv: no data rows"):
        ingest_table(con, RAW_TABLES["events"], source, quarantine)
    assert _rows(con, "select event_id from raw.events") == [("e1",)]
    # orders may be empty: the CRM has no orders.
    (source / "orders.csv").write_text("order_id,customer_record_id,ordered_at,amount\n")
    assert ingest_table(con, RAW_TABLES["orders"], source, quarantine).rows_loaded == 0


ORDERS = RAW_TABLES["orders"]

# A transaction log as a web shop exports it: invoice lines, no order id of its own per line, no
# amount column, cancellations marked by the invoice number, a line without a customer.
INVOICE_LINES = """\
InvoiceNo,StockCode,Quantity,InvoiceDate,UnitPrice,CustomerID
536365,85123A,6,2010-12-01 08:26:00,2.55,17850
536365,71053,6,2010-12-01 08:26:00,3.39,17850
C536379,D,-1,2010-12-01 09:41:00,27.5,14527
536380,22961,24,2010-12-01 09:41:00,0.85,
536381,22139,1,2010-12-02 10:00:00,4.95,14527
"""


def _order_log_mapping(source: Path, extra: str = "") -> TableMapping:
    (source / "mapping.yaml").write_text(
        "orders:\n"
        "  file: lines.csv\n"
        "  columns: {CustomerID: customer_record_id, InvoiceDate: ordered_at}\n"
        "  generate_id: true\n"
        "  exclude_rows:\n"
        '    InvoiceNo: {starts_with: [C], reason: "a cancellation, not a purchase"}\n'
        "  drop: {Quantity: no amount, UnitPrice: no amount, StockCode: a product code}\n" + extra
    )
    return load_source_mapping(source / "mapping.yaml", RAW_TABLES)["orders"]


def test_an_order_log_without_amounts_loads_with_null_amounts_and_generated_ids(
    con: duckdb.DuckDBPyConnection, dirs: tuple[Path, Path]
) -> None:
    source, quarantine = dirs
    (source / "lines.csv").write_text(INVOICE_LINES)

    result = ingest_table(con, ORDERS, source, quarantine, mapping=_order_log_mapping(source))

    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (5, 3, 2)
    assert _rows(
        con, "select order_id, customer_record_id, amount, status from raw.orders order by 1"
    ) == [
        # the id is the line in the file (the header is line 1)
        ("orders-2", "17850", None, None),
        ("orders-3", "17850", None, None),
        ("orders-6", "14527", None, None),
    ]
    reasons = dict(_rows(con, "select row_number, reason from quarantine.orders"))
    assert reasons == {
        4: "excluded by the mapping: InvoiceNo starts with 'C' (a cancellation, not a purchase)",
        5: "customer_record_id: required value missing",
    }
    assert any("lines.csv: 1 row excluded by the mapping" in p for p in result.problems)
    assert any("amount, product_category, status missing" in p for p in result.problems)
    assert not any("extra column" in p for p in result.problems)  # InvoiceNo is the rule's


def test_amounts_when_mapped_keep_the_contract_rules(
    con: duckdb.DuckDBPyConnection, dirs: tuple[Path, Path]
) -> None:
    source, quarantine = dirs
    (source / "orders.csv").write_text(
        "order_id,customer_record_id,ordered_at,amount\n"
        "o1,c1,2025-01-01,10.5\n"
        "o2,c1,2025-01-02,ten\n"
        "o3,c2,2025-01-03,\n"
    )

    result = ingest_table(con, ORDERS, source, quarantine)

    # An amount that is there must read as a number; a blank one is no amount (optional).
    assert _rows(con, "select order_id, amount from raw.orders order by 1") == [
        ("o1", 10.5),
        ("o3", None),
    ]
    assert _rows(con, "select reason from quarantine.orders") == [
        ("amount: 'ten' cannot be read as DOUBLE",)
    ]
    assert result.rows_quarantined == 1


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("    InvoiceNo: {starts_with: [C]}\n", "without a reason"),
        ("    InvoiceNo: {reason: why}\n", "starts_with or values"),
        ("    InvoiceNo: [C]\n", "must be"),
    ],
)
def test_an_exclusion_needs_a_rule_and_a_reason(tmp_path: Path, section: str, message: str) -> None:
    path = tmp_path / "mapping.yaml"
    path.write_text("orders:\n  exclude_rows:\n" + section)

    with pytest.raises(MappingError, match=message):
        load_source_mapping(path, RAW_TABLES)


def test_an_exclusion_by_a_column_not_in_the_file_is_refused(
    con: duckdb.DuckDBPyConnection, dirs: tuple[Path, Path]
) -> None:
    source, quarantine = dirs
    (source / "lines.csv").write_text(INVOICE_LINES.replace("InvoiceNo", "Invoice"))

    with pytest.raises(ContractError, match="'InvoiceNo' of exclude_rows"):
        ingest_table(con, ORDERS, source, quarantine, mapping=_order_log_mapping(source))
