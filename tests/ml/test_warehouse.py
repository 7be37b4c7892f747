"""Warehouse helpers against a real DuckDB file: atomic publish, latest view, Parquet export."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from ml.core.warehouse import connect, create_latest_view, export_parquet, publish_table


def _scores(as_of: date, customers: list[str], probability: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": customers,
            "as_of_date": [as_of] * len(customers),
            "scored_at": [datetime(2026, 9, 1, 6, 0)] * len(customers),
            "churn_probability": [probability] * len(customers),
            "model_version": ["1"] * len(customers),
        }
    )


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = connect(tmp_path / "state" / "warehouse.duckdb", threads=1, memory_limit="1GB")
    yield connection
    connection.close()


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple]:
    return con.execute(sql).fetchall()


def test_connect_creates_parent_and_sets_limits(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "w.duckdb"
    con = connect(path, threads=1, memory_limit="1GB")
    assert path.parent.is_dir()
    assert _rows(con, "select current_setting('threads')") == [(1,)]
    assert _rows(con, "select current_setting('TimeZone')") == [("UTC",)]
    assert _rows(con, "select current_setting('temp_directory')")[0][0].endswith("w.duckdb.tmp")
    con.execute("create table t as select 1 as x")
    con.close()
    reader = connect(path, read_only=True)
    assert _rows(reader, "select x from t") == [(1,)]
    with pytest.raises(duckdb.Error):
        reader.execute("create table u as select 1")
    reader.close()


def test_publish_creates_typed_table_and_replaces_same_as_of(
    con: duckdb.DuckDBPyConnection,
) -> None:
    where = "as_of_date = DATE '2026-09-01'"
    assert (
        publish_table(
            con,
            _scores(date(2026, 8, 1), ["a", "b"], 0.1),
            "serving",
            "scores",
            replace_where="as_of_date = DATE '2026-08-01'",
        )
        == 2
    )
    publish_table(
        con, _scores(date(2026, 9, 1), ["a", "b"], 0.2), "serving", "scores", replace_where=where
    )
    types = dict(
        _rows(
            con,
            "select column_name, data_type from information_schema.columns where table_name = 'scores'",
        )
    )
    assert types == {
        "customer_id": "VARCHAR",
        "as_of_date": "DATE",
        "scored_at": "TIMESTAMP",
        "churn_probability": "DOUBLE",
        "model_version": "VARCHAR",
    }
    # Re-scoring 2026-09-01 replaces that date's rows (three customers now) and keeps August.
    publish_table(
        con,
        _scores(date(2026, 9, 1), ["a", "b", "c"], 0.3),
        "serving",
        "scores",
        replace_where=where,
    )
    assert _rows(
        con,
        "select as_of_date, count(*), max(churn_probability) from serving.scores group by 1 order by 1",
    ) == [(date(2026, 8, 1), 2, 0.1), (date(2026, 9, 1), 3, 0.3)]


def test_failed_publish_keeps_previous_rows(con: duckdb.DuckDBPyConnection) -> None:
    where = "as_of_date = DATE '2026-09-01'"
    publish_table(
        con, _scores(date(2026, 9, 1), ["a", "b"], 0.2), "serving", "scores", replace_where=where
    )
    bad = _scores(date(2026, 9, 1), ["a", "b", "c"], 0.9)
    bad["churn_probability"] = ["0.5", "0.6", "not a number"]  # fails the cast into DOUBLE
    with pytest.raises(duckdb.ConversionException):
        publish_table(con, bad, "serving", "scores", replace_where=where)
    assert _rows(con, "select customer_id, churn_probability from serving.scores order by 1") == [
        ("a", 0.2),
        ("b", 0.2),
    ]
    # A whole-table replace that fails mid-way also leaves the old table in place.
    with pytest.raises(duckdb.Error):
        publish_table(
            con, "select 'x' as customer_id, cast('oops' as double) as p", "serving", "scores"
        )
    assert _rows(con, "select count(*) from serving.scores") == [(2,)]
    # The connection is usable again (no transaction left open).
    publish_table(con, "select 'x' as customer_id", "serving", "scores")
    assert _rows(con, "select * from serving.scores") == [("x",)]


def test_publish_adds_new_columns(con: duckdb.DuckDBPyConnection) -> None:
    publish_table(
        con, _scores(date(2026, 8, 1), ["a"], 0.1), "serving", "scores", replace_where="true"
    )
    newer = _scores(date(2026, 9, 1), ["a"], 0.2).assign(clv=12.5)
    publish_table(con, newer, "serving", "scores", replace_where="as_of_date = DATE '2026-09-01'")
    assert _rows(con, "select as_of_date, clv from serving.scores order by 1") == [
        (date(2026, 8, 1), None),
        (date(2026, 9, 1), 12.5),
    ]


def test_latest_view_one_row_per_customer(con: duckdb.DuckDBPyConnection) -> None:
    publish_table(
        con, _scores(date(2026, 8, 1), ["a", "b"], 0.1), "serving", "scores", replace_where="true"
    )
    publish_table(
        con,
        _scores(date(2026, 9, 1), ["a"], 0.7),
        "serving",
        "scores",
        replace_where="as_of_date = DATE '2026-09-01'",
    )
    create_latest_view(con, "serving", "scores", "scores_latest", "customer_id", "as_of_date")
    assert _rows(
        con,
        "select customer_id, as_of_date, churn_probability from serving.scores_latest order by 1",
    ) == [("a", date(2026, 9, 1), 0.7), ("b", date(2026, 8, 1), 0.1)]


def test_export_parquet_is_readable_and_leaves_no_temp(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    publish_table(con, _scores(date(2026, 9, 1), ["a", "b", "c"], 0.4), "serving", "scores")
    exports = tmp_path / "exports"
    path = export_parquet(con, "serving", "scores", exports)
    assert path == exports / "serving.scores.parquet"
    frame = pd.read_parquet(path)
    assert sorted(frame["customer_id"]) == ["a", "b", "c"]
    # Re-export over an existing file replaces it whole.
    publish_table(con, _scores(date(2026, 9, 1), ["z"], 0.4), "serving", "scores")
    export_parquet(con, "serving", "scores", exports)
    assert list(pd.read_parquet(path)["customer_id"]) == ["z"]
    assert sorted(p.name for p in exports.iterdir()) == ["serving.scores.parquet"]


def test_export_failure_keeps_previous_file(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    publish_table(con, _scores(date(2026, 9, 1), ["a"], 0.4), "serving", "scores")
    exports = tmp_path / "exports"
    path = export_parquet(con, "serving", "scores", exports)
    before = path.read_bytes()
    with pytest.raises(duckdb.Error):
        export_parquet(con, "serving", "missing_table", exports)
    assert path.read_bytes() == before
    assert sorted(p.name for p in exports.iterdir()) == ["serving.scores.parquet"]


def test_read_path_for_bi_tools_while_a_run_writes(tmp_path: Path) -> None:
    """What docs/operations.md promises readers: Parquet always, read-only DuckDB between runs."""
    path = tmp_path / "warehouse.duckdb"
    with connect(path) as con:
        publish_table(con, _scores(date(2026, 9, 1), ["C-1", "C-2"], 0.5), "serving", "scores")
        export = export_parquet(con, "serving", "scores", tmp_path / "exports")

    # Between runs any number of processes may read at once.
    readers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import duckdb, sys, time; "
                "c = duckdb.connect(sys.argv[1], read_only=True); "
                "print(c.execute('select count(*) from serving.scores').fetchall()[0][0]); "
                "time.sleep(2)",
                str(path),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    with connect(path, read_only=True) as con:
        assert con.execute("select count(*) from serving.scores").fetchall() == [(2,)]
    assert [r.communicate(timeout=60)[0].strip() for r in readers] == ["2", "2"]

    # While a run holds the file for writing, a DuckDB reader in another process is refused;
    # the Parquet export stays readable.
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
            "print('open', flush=True); time.sleep(30)",
            str(path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "open"
        with pytest.raises(duckdb.IOException, match="lock"):
            duckdb.connect(str(path), read_only=True)
        assert duckdb.sql(f"select count(*) from read_parquet('{export}')").fetchall() == [(2,)]
    finally:
        writer.kill()
        writer.wait()
