"""Erasure on a real DuckDB file and real Parquet files: every store, tombstones, re-import."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from ml.core.spark import spark_parquet_folders
from ml.core.warehouse import connect, export_parquet, publish_table
from ml.data.contract import FLAT_TABLES, RAW_TABLES
from ml.data.erasure import erase_requested_persons, read_audit_log
from ml.data.flat_tables import load_flat_table
from ml.data.ingest import ingest_table
from ml.data.mapping import load_source_mapping
from ml.data.tombstones import read_tombstones

SALT = "test-salt-0123456789"
ERASED_AT = datetime(2026, 10, 1, 12, 0)
# Person C-R1 has two records (R1, R2); R3 is someone else; R9 was never resolved (rejected).
IDENTITY = [("R1", "C-R1"), ("R2", "C-R1"), ("R3", "C-R3")]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    for folder in ("exports", "quarantine", "erasure"):
        (tmp_path / folder).mkdir()
    return tmp_path


@pytest.fixture
def con(home: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = connect(home / "warehouse.duckdb", threads=2, memory_limit="1GB")
    connection.execute("create schema raw; create schema quarantine; create schema marts")
    connection.execute(
        "create table raw.orders as select * from (values "
        "('o1', 'R1', 10.0), ('o2', ' R2 ', 20.0), ('o3', 'R3', 30.0), ('o4', 'R9', 5.0)) "
        "t(order_id, customer_record_id, amount)"
    )
    connection.execute(
        "create table quarantine.orders as select * from (values "
        "('orders.csv', 7, 'amount: bad', 'R2', null), "
        "('orders.csv', 9, 'malformed line', null, 'o9,R1,\"x\",1'), "
        "('orders.csv', 11, 'malformed line', null, 'o11,R3,2')) "
        "t(source_file, row_number, reason, customer_record_id, raw_line)"
    )
    connection.execute(
        "create table marts.customer_identity_map as select * from (values "
        + ", ".join(f"('{r}', '{c}')" for r, c in IDENTITY)
        + ") t(customer_record_id, customer_id)"
    )
    connection.execute("create view marts.orders_view as select * from raw.orders")
    connection.execute(
        "create table raw.erasure_requests as select * from (values "
        "('ER1', 'R2', timestamp '2026-09-01'), ('ER2', 'R9', timestamp '2026-09-02')) "
        "t(request_id, customer_record_id, requested_at)"
    )
    scores = pd.DataFrame({"customer_id": ["C-R1", "C-R3"], "churn_probability": [0.2, 0.4]})
    publish_table(connection, scores, "serving", "customer_scores")
    export_parquet(connection, "serving", "customer_scores", home / "exports")
    connection.execute(
        f"copy quarantine.orders to '{home / 'quarantine' / 'orders.parquet'}' (format parquet)"
    )
    yield connection
    connection.close()


def _erase(con: duckdb.DuckDBPyConnection, home: Path):
    return erase_requested_persons(
        con,
        erasure_dir=home / "erasure",
        salt=SALT,
        parquet_folders={"exports": home / "exports", "quarantine": home / "quarantine"},
        erased_at=ERASED_AT,
    )


def test_every_record_of_the_person_leaves_every_store(
    con: duckdb.DuckDBPyConnection, home: Path
) -> None:
    outcome = _erase(con, home)

    assert outcome.requests == 2
    assert outcome.records_erased == 3  # R1 and R2 (one person, asked via R2), and R9
    assert con.execute("select order_id from raw.orders").fetchall() == [("o3",)]
    assert con.execute("select order_id from marts.orders_view").fetchall() == [("o3",)]
    assert con.execute("select row_number from quarantine.orders").fetchall() == [(11,)]
    assert con.execute("select customer_id from serving.customer_scores").fetchall() == [("C-R3",)]
    assert con.execute("select customer_id from marts.customer_identity_map").fetchall() == [
        ("C-R3",)
    ]
    assert con.execute("select count(*) from raw.erasure_requests").fetchall() == [(0,)]
    exported = pd.read_parquet(home / "exports" / "serving.customer_scores.parquet")
    assert exported["customer_id"].tolist() == ["C-R3"]
    quarantined = pd.read_parquet(home / "quarantine" / "orders.parquet")
    assert quarantined["row_number"].tolist() == [11]
    assert outcome.rows_removed["duckdb:raw.orders"] == 3
    assert outcome.rows_removed["file:exports/serving.customer_scores.parquet"] == 1


def test_tombstones_are_salted_hashes_and_the_audit_names_no_person(
    con: duckdb.DuckDBPyConnection, home: Path
) -> None:
    _erase(con, home)

    tombstones = read_tombstones(home / "erasure", SALT)
    expected = {hashlib.sha256((SALT + r).encode()).hexdigest() for r in ("R1", "R2", "R9")}
    assert tombstones.record_key_hashes == expected
    stored = pd.read_parquet(home / "erasure" / "tombstones.parquet")
    assert list(stored.columns) == ["record_key_hash", "request_id", "erased_at"]
    assert stored["record_key_hash"].str.fullmatch("[0-9a-f]{64}").all()
    audit = read_audit_log(home / "erasure")
    assert audit["request_id"].tolist() == ["ER1", "ER2"]
    assert audit["records_erased"].tolist() == [2, 1]
    assert not audit.astype(str).apply(lambda c: c.str.contains(r"\bR[129]\b")).any().any()


def test_a_request_is_carried_out_once(con: duckdb.DuckDBPyConnection, home: Path) -> None:
    _erase(con, home)
    # The request file is loaded again by the next run; the audit log says it is done.
    con.execute("insert into raw.erasure_requests values ('ER1', 'R2', timestamp '2026-09-01')")
    again = _erase(con, home)
    assert again.requests == 0 and again.total_rows_removed == 0
    assert len(read_audit_log(home / "erasure")) == 2


EVENT_DAY_FINGERPRINTS = """
    select cast(occurred_at as date) as activity_date, count(*) as row_count,
        bit_xor(hash(event_id, customer_record_id, occurred_at)) as checksum
    from raw.events group by all order by all
"""


def test_erased_events_leave_the_fingerprints_of_the_incremental_build(
    con: duckdb.DuckDBPyConnection, home: Path
) -> None:
    """The next dbt build finds no changed day where only the erased person's events went (the
    dbt tables lost their rows in the same step); a day where an erased event id has a copy of
    someone else stays changed, since which copy the build keeps can change there."""
    con.execute(
        "create table raw.events as select event_id, customer_record_id, "
        "cast(occurred_at as timestamp) as occurred_at from (values "
        "('e1', 'R1', '2026-08-01 09:00'), ('e2', 'R3', '2026-08-01 10:00'), "
        "('e3', ' R2', '2026-08-02 09:00'), "  # the day has only the erased person's event
        "('e4', 'R1', '2026-08-03 09:00'), ('e4', 'R3', '2026-08-04 09:00'), "
        "('e5', 'R3', '2026-08-03 11:00')) t(event_id, customer_record_id, occurred_at)"
    )
    con.execute("create schema state")
    con.execute(f"create table state.event_days as {EVENT_DAY_FINGERPRINTS}")
    con.execute(
        "create table state.event_checksum as select "
        "'hash(event_id, customer_record_id, occurred_at)' as row_checksum_sql"
    )

    _erase(con, home)

    kept = con.execute("select * from state.event_days order by all").fetchall()
    rebuilt = con.execute(EVENT_DAY_FINGERPRINTS).fetchall()
    assert [day for day, *_ in rebuilt] == [date(2026, 8, d) for d in (1, 3, 4)]
    assert kept[0] == rebuilt[0]  # R1's event is out, R3's stays: unchanged for the build
    assert kept[2] == rebuilt[2]
    # 2026-08-02 held only erased rows: gone from both; 2026-08-03 lost an event id that R3
    # also has: left as it was, so the build recomputes it
    assert [day for day, *_ in kept] == [date(2026, 8, d) for d in (1, 3, 4)]
    assert kept[1] != rebuilt[1] and kept[1][1] == 2


def test_reimported_rows_of_an_erased_person_are_dropped_on_load(
    con: duckdb.DuckDBPyConnection, home: Path
) -> None:
    _erase(con, home)
    source = home / "source"
    source.mkdir()
    (source / "orders.csv").write_text(
        "order_id,customer_record_id,ordered_at,amount,product_category,status\n"
        "o1,R1,2026-01-01,10,books,completed\n"
        "o2, R2 ,2026-01-02,20,books,completed\n"
        "o3,R3,2026-01-03,30,books,completed\n"
        'o5,R1,"broken\n'
        "o6,R3,2026-01-04,oops,books,completed\n"
    )
    tombstones = read_tombstones(home / "erasure", SALT)

    result = ingest_table(con, RAW_TABLES["orders"], source, home / "quarantine", tombstones)

    assert con.execute("select order_id from raw.orders").fetchall() == [("o3",)]
    assert result.rows_erased == 2
    quarantined = pd.read_parquet(home / "quarantine" / "orders.parquet")
    # o6 (R3, bad amount) stays in quarantine; nothing of R1 or R2 is kept there.
    assert not quarantined.astype(str).apply(lambda c: c.str.contains(r"\bR[12]\b")).any().any()
    assert "o6" in quarantined["order_id"].tolist()
    assert all("R1" not in p and "R2" not in p for p in result.problems)


def test_a_customer_of_a_flat_snapshot_is_erased_and_kept_out(
    con: duckdb.DuckDBPyConnection, home: Path, tmp_path: Path
) -> None:
    source = tmp_path / "snapshot_source"
    source.mkdir()
    (source / "telco.csv").write_text("customerID,Churn,tenure\nT-1,No,3\nT-2,No,5\nT-3,Yes,1\n")
    (source / "mapping.yaml").write_text(
        "customer_snapshot:\n  file: telco.csv\n  columns: {customerID: customer_id}\n"
        "  churned: {column: Churn, true_values: ['Yes'], false_values: ['No']}\n"
    )
    mapping = load_source_mapping(source / "mapping.yaml", FLAT_TABLES)["customer_snapshot"]
    load_flat_table(con, mapping, source, home / "quarantine")
    scores = pd.DataFrame({"customer_id": ["T-1", "T-2"], "churn_probability": [0.1, 0.3]})
    publish_table(con, scores, "serving", "customer_scores")
    con.execute("insert into raw.erasure_requests values ('ER3', 'T-2', timestamp '2026-09-03')")

    _erase(con, home)

    snapshot = [
        r[0] for r in con.execute("select customer_id from raw.customer_snapshot").fetchall()
    ]
    assert sorted(snapshot) == ["T-1", "T-3"]
    served = [
        r[0] for r in con.execute("select customer_id from serving.customer_scores").fetchall()
    ]
    assert served == ["T-1"]
    # A re-exported snapshot does not bring T-2 back.
    reloaded = load_flat_table(
        con,
        mapping,
        source,
        home / "quarantine",
        tombstones=read_tombstones(home / "erasure", SALT),
    )
    assert reloaded.rows_erased == 1 and reloaded.rows_loaded == 2
    snapshot = [
        r[0] for r in con.execute("select customer_id from raw.customer_snapshot").fetchall()
    ]
    assert sorted(snapshot) == ["T-1", "T-3"]


def test_the_person_leaves_the_parquet_folders_of_the_spark_engine(
    con: duckdb.DuckDBPyConnection, home: Path
) -> None:
    # Spark's layout: a folder per table of part files, each with Hadoop's checksum beside it.
    spark_home = home / "spark"
    marts = spark_home / "marts" / "marts.customer_features"
    table = spark_home / "warehouse" / "staging.db" / "base_crm__orders"
    for folder, column, values in (
        (marts, "customer_id", ["C-R1", "C-R3"]),
        (table, "customer_record_id", ["R1", "R3"]),
    ):
        folder.mkdir(parents=True)
        part = folder / "part-00000-c000.snappy.parquet"
        pd.DataFrame({column: values, "value": [1, 2]}).to_parquet(part)
        (folder / f".{part.name}.crc").write_bytes(b"stale")
        (folder / "_SUCCESS").touch()
    untouched = spark_home / "raw" / "campaigns"
    untouched.mkdir(parents=True)
    pd.DataFrame({"campaign_id": ["K1"]}).to_parquet(untouched / "data.parquet")
    (untouched / ".data.parquet.crc").write_bytes(b"kept")

    folders = spark_parquet_folders(spark_home)
    assert folders == {
        "spark/marts/marts.customer_features": marts,
        "spark/raw/campaigns": untouched,
        "spark/warehouse/staging.db/base_crm__orders": table,
    }
    outcome = erase_requested_persons(
        con, home / "erasure", SALT, {"exports": home / "exports", **folders}, ERASED_AT
    )

    for folder, column, left in (
        (marts, "customer_id", "C-R3"),
        (table, "customer_record_id", "R3"),
    ):
        assert pd.read_parquet(folder / "part-00000-c000.snappy.parquet")[column].tolist() == [left]
        assert not (folder / ".part-00000-c000.snappy.parquet.crc").exists()
    assert (
        outcome.rows_removed[
            "file:spark/marts/marts.customer_features/part-00000-c000.snappy.parquet"
        ]
        == 1
    )
    assert (untouched / ".data.parquet.crc").read_bytes() == b"kept"
    assert spark_parquet_folders(home / "no-spark") == {}
