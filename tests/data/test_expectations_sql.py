"""The checks in SQL (expectations/sql.py) reach GX's verdict on the same data.

Each frame is validated twice: by GX on the pandas frame (expectations.runner) and by the SQL
translation on the same rows as a DuckDB table; the failed expectations, their columns and
unexpected counts must agree.
"""

from __future__ import annotations

import duckdb
import great_expectations as gx
import pandas as pd
import pytest

from expectations.runner import SuiteResult, validate_frame
from expectations.sql import validate_table
from expectations.suites import customer_features_suite, raw_suite
from ml.data.contract import RAW_TABLES, Table
from tests.data.test_expectations import _good_features, _good_raw

N = 12


def _in_sql(frame: pd.DataFrame, suite_min_rows: int) -> SuiteResult:
    with duckdb.connect() as con:
        con.register("frame", frame)
        con.execute("create schema marts")
        con.execute("create table marts.customer_features as select * from frame")
        return validate_table(
            con, "marts.customer_features", customer_features_suite(min_rows=suite_min_rows)
        )


def _failed(result: SuiteResult) -> dict[tuple[str, str | None], int | None]:
    return {(f.expectation, f.column): f.unexpected_count for f in result.failed}


def test_good_features_pass_in_sql() -> None:
    result = _in_sql(_good_features(), N)
    assert result.success, result.failed
    assert result.evaluated == len(customer_features_suite(min_rows=N).expectations)


def test_sql_gate_fails_exactly_where_gx_fails() -> None:
    frame = _good_features()
    frame.loc[1, "customer_id"] = "c0"  # duplicate compound key (2 rows)
    frame.loc[2, "logins_30d"] = -1  # negative count
    frame.loc[3, "monthly_price"] = 0.0  # strict minimum
    frame.loc[4, "avg_satisfaction_90d"] = 6.0  # above the maximum
    frame.loc[5, "plan"] = "Premium"  # not a standardised value
    frame.loc[0:4, "days_since_last_login"] = None  # 5 of 12 null: above the 30% bound
    frame.loc[6, "tenure_days"] = None  # a column that may never be null
    frame["email"] = "someone@example.com"  # PII column
    gx_result = validate_frame(frame, customer_features_suite(min_rows=1000))
    sql_result = _in_sql(frame, 1000)

    assert not sql_result.success
    gx_failed, sql_failed = _failed(gx_result), _failed(sql_result)
    assert set(sql_failed) == set(gx_failed)
    for key, count in gx_failed.items():
        if count is not None:
            assert sql_failed[key] == count, key
    assert "email" in sql_result.failures_of("expect_table_columns_to_match_set")[0].observed
    assert sql_result.failures_of("expect_table_row_count_to_be_between")[0].observed == "12"
    assert "Premium" in sql_result.failures_of("expect_column_values_to_be_in_set")[0].observed


def test_mostly_is_a_share_of_the_rows_as_in_gx() -> None:
    frame = _good_features()
    frame.loc[0:2, "days_since_last_login"] = None  # 3 of 12 = 25%: within the 30% bound
    assert validate_frame(frame, customer_features_suite(min_rows=N)).success
    assert _in_sql(frame, N).success
    frame.loc[3, "days_since_last_login"] = None  # 4 of 12 = 33%: above it
    assert not validate_frame(frame, customer_features_suite(min_rows=N)).success
    assert _failed(_in_sql(frame, N)) == {
        ("expect_column_values_to_not_be_null", "days_since_last_login"): 4
    }


def _raw_in_sql(frame: pd.DataFrame, table: Table, mostly: float = 0.99) -> SuiteResult:
    with duckdb.connect() as con:
        con.register("frame", frame)
        con.execute("create schema raw")
        con.execute(f"create table raw.{table.name} as select * from frame")
        return validate_table(con, f"raw.{table.name}", raw_suite(table, mostly=mostly))


@pytest.mark.parametrize("name", sorted(RAW_TABLES))
def test_good_raw_tables_pass_in_sql(name: str) -> None:
    table = RAW_TABLES[name]
    result = _raw_in_sql(_good_raw(table), table)
    assert result.success, result.failed
    assert result.evaluated == len(raw_suite(table).expectations)


def test_raw_checks_in_sql_fail_exactly_where_gx_fails() -> None:
    table = RAW_TABLES["subscriptions"]
    frame = _good_raw(table)
    frame.loc[1, "subscription_id"] = "sub0"  # duplicate key: both rows unexpected
    frame.loc[2, "customer_record_id"] = None  # null in a required column
    frame.loc[3, "plan"] = "gold"  # not an accepted value
    frame.loc[4, "plan"] = "  PREMIUM "  # dirty but accepted (case, spaces)
    frame.loc[5, "contract_type"] = "one_year"  # accepted: "-", "_" and " " are alike
    frame.loc[6, "monthly_price"] = -5.0  # negative price
    frame.loc[7, "end_reason"] = None  # optional: null is fine
    gx_failed, sql_failed = (
        _failed(validate_frame(frame, raw_suite(table))),
        _failed(_raw_in_sql(frame, table)),
    )
    assert sql_failed == gx_failed
    assert sql_failed[("expect_column_values_to_be_unique", "subscription_id")] == 2
    assert sql_failed[("expect_column_values_to_match_regex", "plan")] == 1


def test_raw_mostly_in_sql_as_in_gx() -> None:
    table = RAW_TABLES["support_tickets"]
    frame = pd.concat([_good_raw(table)] * 20, ignore_index=True)  # 240 rows
    frame["ticket_id"] = [f"t{i}" for i in range(len(frame))]
    frame.loc[0, "satisfaction_score"] = 9  # 1 of 240 out of range: within mostly=0.99
    frame.loc[1, "ticket_id"] = "t0"  # 2 of 240 share a key: within mostly=0.99
    assert validate_frame(frame, raw_suite(table)).success
    assert _raw_in_sql(frame, table).success
    strict_gx = _failed(validate_frame(frame, raw_suite(table, mostly=1.0)))
    assert _failed(_raw_in_sql(frame, table, mostly=1.0)) == strict_gx
    assert set(strict_gx) == {
        ("expect_column_values_to_be_between", "satisfaction_score"),
        ("expect_column_values_to_be_unique", "ticket_id"),
    }


def test_an_untranslated_expectation_type_is_refused() -> None:
    suite = gx.ExpectationSuite(
        name="means", expectations=[gx.expectations.ExpectColumnMeanToBeBetween(column="x")]
    )
    with duckdb.connect() as con, pytest.raises(ValueError, match="no SQL translation"):
        con.execute("create table t (x double)")
        validate_table(con, "t", suite)
