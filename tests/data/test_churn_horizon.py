"""One churn horizon: the dbt var churn_horizon_days, written into marts.churn_labels, read by Python.

The fixtures' churn dates (tests/data/fixtures): C-R005 cancelled 2025-05-20, C-R010 cancelled
2025-08-20; the snapshot is 2025-10-15, so a window is observed when it ends by 2025-10-16.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest

from ml.models.churn.data import LABELS_TABLE as CHURN_LABELS_TABLE
from ml.models.churn.data import read_churn_horizon_days

# The conftest fixtures hand out DbtBuild results and the loader/runner functions.
Build = Any
LAST_OBSERVED_DAY = dt.date(2025, 10, 16)


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


def test_a_changed_var_gives_60_day_labels_and_horizon(
    tmp_path: Path,
    load_raw: Callable[[duckdb.DuckDBPyConnection], None],
    dbt: Callable[..., Build],
) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        load_raw(con)
    # The labels, everything upstream of them, and the data and unit tests of those models only
    # (cautious: not the tests that also read a model outside the selection).
    selection = ("--select", "+churn_labels", "--indirect-selection", "cautious")
    build = dbt("build", warehouse, tmp_path, {"churn_horizon_days": 60}, selection)
    assert build.returncode == 0 and not build.failures(), build.output[-5000:]

    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert read_churn_horizon_days(con) == 60
        assert con.execute(
            f"select distinct horizon_days from {CHURN_LABELS_TABLE}"
        ).fetchall() == [(60,)]
        rows = con.execute(
            "select l.customer_id, l.as_of_date, l.churned, l.label_available, c.churned_at "
            f"from {CHURN_LABELS_TABLE} as l join marts.customers as c using (customer_id)"
        ).fetchall()
    labels = {(c, d.month): (y, a) for c, d, y, a, _ in rows}
    assert labels[("C-R005", 5)] == (True, True)  # 19 days later
    assert labels[("C-R010", 6)] == (False, True)  # 80 days later: churned within 90, not 60
    assert labels[("C-R010", 7)] == (True, True)  # 50 days later
    # 19 days later; with 60 days the window of 2025-08-01 is observed (with 90 it is not).
    assert labels[("C-R010", 8)] == (True, True)
    assert sum(y for y, _ in labels.values()) == 3  # 4 with the default 90 days
    # Every label and every label_available, computed on 60 days.
    for _, as_of, churned, available, churned_at in rows:
        window_end = as_of + dt.timedelta(days=60)
        assert churned == (churned_at is not None and as_of <= churned_at.date() < window_end)
        assert available == (window_end <= LAST_OBSERVED_DAY)
