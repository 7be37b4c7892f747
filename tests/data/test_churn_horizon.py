"""One churn horizon: the dbt var churn_horizon_days, written into marts.churn_labels, read by Python."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from ml.data.features import CHURN_LABELS_TABLE, read_churn_horizon_days


def test_reader_returns_the_horizon_of_the_default_build(warehouse: Path) -> None:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert read_churn_horizon_days(con) == 90


@pytest.mark.parametrize(
    ("horizons", "message"),
    [
        ((), "holds no churn horizon: it has no rows"),
        ((90, None), r"holds no churn horizon on 1 of 2 rows \(horizon_days is null\)"),
        ((90, 60, 90), r"holds 2 churn horizons \(60 to 90 days\)"),
    ],
)
def test_reader_refuses_a_table_without_exactly_one_horizon(
    horizons: tuple[int | None, ...], message: str
) -> None:
    with duckdb.connect() as con:
        con.execute("create schema marts")
        con.execute(
            f"create table {CHURN_LABELS_TABLE} (customer_id varchar, horizon_days integer)"
        )
        for i, days in enumerate(horizons):
            con.execute(f"insert into {CHURN_LABELS_TABLE} values (?, ?)", [f"C-{i}", days])
        with pytest.raises(ValueError, match=rf"^marts\.churn_labels {message}"):
            read_churn_horizon_days(con)
