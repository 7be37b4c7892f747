"""The serving-table registry: what publishing checks, casts and replaces, and what it derives."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from ml.core.warehouse import connect
from ml.serving.publishing import newest_snapshot_sql
from ml.serving.tables import SERVING_TABLES, conform, publish, serving_table

AUDIT = serving_table("contact_policy_audit")
LEADS = serving_table("lead_scores")


def _audit(as_of: date, customers: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": [f"C-{i}" for i in range(customers)],
            "as_of_date": [as_of] * customers,
            "suppressed_action": ["retention_call"] * customers,
            "channel": ["phone"] * customers,
            # Integers on purpose: publishing casts to the declared DOUBLE.
            "expected_gain_eur": list(range(customers)),
            "reason": ["no phone consent in force"] * customers,
            "final_action": ["no_action"] * customers,
        }
    )


@pytest.fixture
def con(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    with connect(tmp_path / "warehouse.duckdb", threads=1, memory_limit="1GB") as connection:
        yield connection


def test_every_table_is_declared_once_with_keys_among_its_columns() -> None:
    names = [t.name for t in SERVING_TABLES]
    assert len(names) == len(set(names))
    for table in SERVING_TABLES:
        assert set(table.keys) <= set(table.column_names), table.name
        assert len(table.column_names) == len(set(table.column_names)), table.name
        if table.history is not None:
            assert table.model is not None, table.name
            assert table.history.score_column in table.column_names, table.name
            assert "model_version" in table.column_names, table.name
        if table.replaces in ("as_of_date", "publish_id"):
            assert table.replaces in table.column_names, table.name


def test_conform_orders_columns_and_names_what_does_not_fit() -> None:
    rows = _audit(date(2026, 9, 1), 2)
    assert list(conform(AUDIT, rows[rows.columns[::-1]]).columns) == list(AUDIT.column_names)
    with pytest.raises(ValueError, match=r"missing \['reason'\], unknown \[\]"):
        conform(AUDIT, rows.drop(columns="reason"))
    with pytest.raises(ValueError, match=r"missing \[\], unknown \['extra'\]"):
        conform(AUDIT, rows.assign(extra=1))


def test_publish_casts_to_declared_types_replaces_one_date_and_exports(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    exports = tmp_path / "exports"
    publish(con, AUDIT, _audit(date(2026, 8, 1), 3), exports)
    published = publish(con, AUDIT, _audit(date(2026, 9, 1), 2), exports)
    assert (published.rows, published.as_of_date) == (2, date(2026, 9, 1))
    types = {r[0]: r[1] for r in con.execute("describe serving.contact_policy_audit").fetchall()}
    assert types == dict(AUDIT.columns)
    publish(con, AUDIT, _audit(date(2026, 9, 1), 4), exports)  # a rerun replaces that date only
    counts = dict(
        con.execute(
            "select as_of_date, count(*) from serving.contact_policy_audit group by 1"
        ).fetchall()
    )
    assert counts == {date(2026, 8, 1): 3, date(2026, 9, 1): 4}
    assert len(pd.read_parquet(published.parquet)) == 7


def test_publish_refuses_mixed_dates_and_allows_no_rows_for_a_given_date(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    mixed = pd.concat([_audit(date(2026, 8, 1), 1), _audit(date(2026, 9, 1), 1)])
    with pytest.raises(ValueError, match="one as-of date"):
        publish(con, AUDIT, mixed, tmp_path)
    publish(con, AUDIT, _audit(date(2026, 9, 1), 2), tmp_path)
    published = publish(con, AUDIT, _audit(date(2026, 9, 1), 0), tmp_path, date(2026, 9, 1))
    assert published.rows == 0
    (rows,) = con.execute("select count(*) from serving.contact_policy_audit").fetchall()[0]
    assert rows == 0  # the policy blocked nothing on the rerun: the old audit rows are gone


def test_whole_table_publish_and_its_snapshot(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    rows = pd.DataFrame(
        {
            "lead_id": ["L1", "L2"],
            "scored_at": pd.Timestamp("2026-09-01 06:00"),
            "score": [80, 20],
            "grade": ["A", "D"],
            "conversion_probability": [0.8, 0.2],
            "top_drivers": ["[]", "[]"],
            "reason": ["a", "b"],
            "model_version": ["3", "3"],
            "reason_factors": ['{"factors": []}', '{"factors": []}'],
        }
    )
    publish(con, LEADS, rows, tmp_path)
    publish(con, LEADS, rows.head(1), tmp_path)
    assert con.execute(newest_snapshot_sql(LEADS)).df()["lead_id"].tolist() == ["L1"]
    with pytest.raises(KeyError, match="no serving table 'leads'"):
        serving_table("leads")
