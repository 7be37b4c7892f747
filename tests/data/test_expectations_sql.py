"""The feature gate in SQL (expectations/sql.py) reaches GX's verdict on the same data.

Each frame is validated twice: by GX on the pandas frame (expectations.runner) and by the SQL
translation on the same rows as a DuckDB table; the failed expectations, their columns and
unexpected counts must agree.
"""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from expectations.runner import SuiteResult, validate_frame
from expectations.sql import validate_table
from expectations.suites import customer_features_suite, raw_suite
from ml.contract import RAW_TABLES
from tests.data.test_expectations import _good_features

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


def test_an_untranslated_expectation_type_is_refused() -> None:
    suite = raw_suite(RAW_TABLES["subscriptions"])  # holds regex expectations
    with duckdb.connect() as con, pytest.raises(ValueError, match="no SQL translation"):
        con.execute("create table t (subscription_id varchar)")
        validate_table(con, "t", suite)
