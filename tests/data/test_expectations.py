"""GX suites from the contracts: good frames pass, each seeded violation is caught by the
expectation meant for it. One GX validation takes ~0.1 s (after a ~4 s import), so violations are
combined into one frame per suite and told apart by the failure list."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from expectations.runner import SuiteResult, validate_frame
from expectations.suites import (
    ACCEPTED_VALUES,
    accepted_values_regex,
    customer_features_suite,
    raw_suite,
)
from ml.data.contract import RAW_TABLES, Table
from ml.data.features import CATEGORICAL_FEATURES, CHURN_FEATURES, KEY_COLUMNS, NUMERIC_FEATURES

N = 12


def _good_raw(table: Table) -> pd.DataFrame:
    """A small frame that satisfies the raw contract of ``table``."""
    data: dict[str, object] = {}
    for column in table.columns:
        values = ACCEPTED_VALUES.get((table.name, column.name))
        if column.name == table.key:
            data[column.name] = [f"{table.name[:3]}{i}" for i in range(N)]
        elif values:
            data[column.name] = [values[i % len(values)] for i in range(N)]
        elif column.type == "TIMESTAMP":
            data[column.name] = pd.date_range("2025-01-01", periods=N, freq="D")
        elif column.name == "satisfaction_score":
            data[column.name] = [1 + i % 5 for i in range(N)]
        elif column.type in ("INTEGER", "BIGINT", "DOUBLE"):
            data[column.name] = [float(10 + i) for i in range(N)]
        else:
            data[column.name] = [f"v{i}" for i in range(N)]
    return pd.DataFrame(data)


def _good_features(rows: int = N) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(rows)],
            "as_of_date": [date(2026, 9, 1)] * rows,
        }
    )
    for name in NUMERIC_FEATURES:
        frame[name] = np.arange(rows, dtype=float) + 1.0
    frame["avg_satisfaction_90d"] = [None, 4.5] * (rows // 2)
    frame["days_since_last_order"] = None
    frame["plan"] = ["basic", "standard", "premium"] * (rows // 3)
    frame["contract_type"] = ["month-to-month", "one-year", "two-year"] * (rows // 3)
    frame["acquisition_channel"] = "organic"
    frame["country_code"] = "DE"
    assert set(CATEGORICAL_FEATURES) <= set(frame.columns)
    return frame[[*KEY_COLUMNS, *CHURN_FEATURES]]


def _failed(result: SuiteResult) -> set[tuple[str, str | None]]:
    return {(f.expectation, f.column) for f in result.failed}


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("month-to-month", True),
        (" Month_To_Month ", True),
        ("MONTH TO MONTH", True),
        ("monthly", False),
        ("month-to-month-x", False),
    ],
)
def test_accepted_values_regex_is_case_and_space_tolerant(value: str, ok: bool) -> None:
    import re

    pattern = accepted_values_regex(ACCEPTED_VALUES[("subscriptions", "contract_type")])
    assert bool(re.search(pattern, value)) is ok


@pytest.mark.parametrize("name", sorted(RAW_TABLES))
def test_good_raw_frames_pass(name: str) -> None:
    result = validate_frame(_good_raw(RAW_TABLES[name]), raw_suite(RAW_TABLES[name]))
    assert result.success, result.failed
    assert result.evaluated >= 2 + len(RAW_TABLES[name].required_columns)
    assert result.suite_name == f"raw_{name}"


def test_raw_violations_are_caught_by_their_expectation() -> None:
    table = RAW_TABLES["subscriptions"]
    frame = _good_raw(table)
    frame.loc[1, "subscription_id"] = "sub0"  # duplicate key (row 0 has sub0)
    frame.loc[2, "customer_record_id"] = None  # null in a required column
    frame.loc[3, "plan"] = "gold"  # not an accepted value
    frame.loc[4, "plan"] = "  PREMIUM "  # dirty but acceptable: staging lower(trim())s it
    frame.loc[5, "monthly_price"] = -5.0  # negative price
    frame.loc[6, "end_reason"] = None  # optional: null is fine
    result = validate_frame(frame, raw_suite(table))
    assert not result.success
    assert _failed(result) == {
        ("expect_column_values_to_be_unique", "subscription_id"),
        ("expect_column_values_to_not_be_null", "customer_record_id"),
        ("expect_column_values_to_match_regex", "plan"),
        ("expect_column_values_to_be_between", "monthly_price"),
    }
    by_column = {f.column: f for f in result.failed}
    assert by_column["plan"].unexpected_count == 1
    assert "gold" in by_column["plan"].observed
    assert by_column["subscription_id"].unexpected_count == 2


def test_raw_mostly_tolerates_rare_dirt() -> None:
    table = RAW_TABLES["support_tickets"]
    frame = pd.concat([_good_raw(table)] * 20, ignore_index=True)  # 240 rows
    frame["ticket_id"] = [f"t{i}" for i in range(len(frame))]
    frame.loc[0, "satisfaction_score"] = 9  # 1 of 240 out of range: within mostly=0.99
    assert validate_frame(frame, raw_suite(table)).success
    assert not validate_frame(frame, raw_suite(table, mostly=1.0)).success


def test_good_features_pass() -> None:
    result = validate_frame(_good_features(), customer_features_suite(min_rows=N))
    assert result.success, result.failed
    assert result.suite_name == "customer_features"


def test_feature_violations_are_caught_by_their_expectation() -> None:
    frame = _good_features()
    frame.loc[1, "customer_id"] = "c0"  # (c0, 2026-09-01) twice: duplicate compound key
    frame.loc[2, "logins_30d"] = -1  # negative count
    frame.loc[3, "monthly_price"] = 0.0  # price must be > 0
    frame.loc[4, "avg_satisfaction_90d"] = 6.0
    frame.loc[5, "plan"] = "Premium"  # features hold standardised values only
    frame.loc[0:4, "days_since_last_login"] = None  # 5 of 12 null: above the 30% bound
    frame["email"] = "someone@example.com"  # PII must never be in the feature table
    result = validate_frame(frame, customer_features_suite(min_rows=1000))
    assert not result.success
    assert _failed(result) == {
        ("expect_table_columns_to_match_set", None),
        ("expect_table_row_count_to_be_between", None),
        ("expect_compound_columns_to_be_unique", "customer_id,as_of_date"),
        ("expect_column_values_to_be_between", "logins_30d"),
        ("expect_column_values_to_be_between", "monthly_price"),
        ("expect_column_values_to_be_between", "avg_satisfaction_90d"),
        ("expect_column_values_to_be_in_set", "plan"),
        ("expect_column_values_to_not_be_null", "days_since_last_login"),
    }
    columns_failure = result.failures_of("expect_table_columns_to_match_set")[0]
    assert "email" in columns_failure.observed
    assert result.failures_of("expect_table_row_count_to_be_between")[0].observed == "12"
