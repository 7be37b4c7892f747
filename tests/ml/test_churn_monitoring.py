"""Churn performance monitoring on a real DuckDB warehouse: estimates of the newest scoring run,
realized figures next to the stored estimates once labels land, segments."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from ml.core.warehouse import connect
from ml.modelling.performance import EstimationConfig
from ml.modelling.performance_table import TABLE, read_performance
from ml.modelling.stability import STABILITY_TABLE, StabilityThresholds
from ml.models.churn.monitoring import monitor_performance, monitor_stability

JULY, AUGUST, SEPTEMBER = date(2026, 7, 1), date(2026, 8, 1), date(2026, 9, 1)
N = 3_000
CONFIG = EstimationConfig(min_segment_rows=500)


def _snapshot(as_of: date, seed: int, version: str) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    ids = [f"c{i:05d}" for i in range(N)]
    plan = rng.choice(["basic", "standard", "premium"], N, p=[0.5, 0.35, 0.15])
    p = rng.beta(1.3, 6.0, N)
    return {
        "scores": pd.DataFrame(
            {
                "customer_id": ids,
                "as_of_date": as_of,
                "churn_probability": p,
                "churn_risk_band": np.where(p >= 0.4, "high", np.where(p >= 0.15, "medium", "low")),
                "model_version": version,
            }
        ),
        "features": pd.DataFrame(
            {
                "customer_id": ids,
                "as_of_date": as_of,
                "plan": plan,
                "contract_type": rng.choice(["monthly", "annual"], N),
                "country_code": "DE",
            }
        ),
        "labels": pd.DataFrame(
            {
                "customer_id": ids,
                "as_of_date": as_of,
                "churned": rng.random(N) < p,
                "label_available": False,
            }
        ),
        "segments": pd.DataFrame(
            {
                "customer_id": ids,
                "as_of_date": as_of,
                "segment_name": np.where(p > 0.2, "Drifting away", "Steady"),
            }
        ),
    }


TABLES = {
    "scores": "serving.customer_scores",
    "features": "marts.customer_features",
    "labels": "marts.churn_labels",
    "segments": "serving.customer_segments",
}


def _append(con: duckdb.DuckDBPyConnection, snapshot: dict[str, pd.DataFrame]) -> None:
    for key, table in TABLES.items():
        frame = snapshot[key]  # noqa: F841 (read by DuckDB's replacement scan)
        exists = con.execute(
            "select count(*) from information_schema.tables "
            "where table_schema || '.' || table_name = ?",
            [table],
        ).fetchone()
        if exists and exists[0]:
            con.execute(f"insert into {table} by name select * from frame")
        else:
            con.execute(f"create table {table} as select * from frame")


def _land_labels(con: duckdb.DuckDBPyConnection, as_of: date) -> None:
    con.execute(
        "update marts.churn_labels set label_available = true where as_of_date = ?", [as_of]
    )


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    path = tmp_path / "warehouse.duckdb"
    with connect(path) as con:
        for schema in ("serving", "marts"):
            con.execute(f"create schema {schema}")
        _append(con, _snapshot(JULY, 1, "3"))
        _append(con, _snapshot(AUGUST, 2, "4"))
        _land_labels(con, JULY)
    return path


def _row(table: pd.DataFrame, as_of: date, metric: str, segment: str = "all") -> pd.Series:
    found = table[
        (table["as_of_date"].dt.date == as_of)
        & (table["metric"] == metric)
        & (table["segment"] == segment)
    ]
    assert len(found) == 1, (as_of, metric, segment)
    return found.iloc[0]


def test_newest_run_is_estimated_and_a_labelled_run_realized(warehouse: Path) -> None:
    with connect(warehouse) as con:
        result = monitor_performance(con, capacity=300, now=datetime(2026, 9, 2), config=CONFIG)
        table = read_performance(con, "churn")
        july = con.execute(
            "select s.churn_probability, l.churned from serving.customer_scores s join "
            "marts.churn_labels l using (customer_id, as_of_date) where as_of_date = ?",
            [JULY],
        ).df()
    assert (result.version, result.as_of_date) == ("4", AUGUST)
    assert result.realized_runs == (("3", JULY),)
    august = _row(table, AUGUST, "roc_auc")
    assert august["version"] == "4" and pd.isna(august["realized"])
    assert august["interval_low"] < august["estimated"] < august["interval_high"]
    realized = _row(table, JULY, "roc_auc")["realized"]
    assert realized == pytest.approx(roc_auc_score(july["churned"], july["churn_probability"]))
    segments = set(table["segment"])
    assert {"all", "plan=basic", "plan=standard", "contract_type=monthly"} <= segments
    assert {"segment_name=Drifting away", "country_code=DE"} <= segments
    assert "plan=premium" not in segments  # about 450 rows, fewer than 500
    assert result.figure("roc_auc") == pytest.approx(august["estimated"])


def test_realized_lands_next_to_the_estimate_the_run_made(warehouse: Path) -> None:
    with connect(warehouse) as con:
        monitor_performance(con, capacity=300, now=datetime(2026, 9, 2), config=CONFIG)
        before = _row(read_performance(con, "churn"), AUGUST, "precision_at_capacity")
        # A month later: September is scored and August's labels have landed.
        _append(con, _snapshot(SEPTEMBER, 3, "4"))
        _land_labels(con, AUGUST)
        second = monitor_performance(con, capacity=300, now=datetime(2026, 10, 2), config=CONFIG)
        after = _row(read_performance(con, "churn"), AUGUST, "precision_at_capacity")
        rows = con.execute(f"select count(*) from {TABLE}").fetchone()
    assert second.realized_runs == (("4", AUGUST),)
    assert after["estimated"] == before["estimated"]
    assert after["estimated_at"] == before["estimated_at"] == pd.Timestamp(2026, 9, 2)
    assert after["realized_at"] == pd.Timestamp(2026, 10, 2)
    assert 0.0 <= after["realized"] <= 1.0
    assert rows is not None and rows[0] > 0


def test_a_second_pass_writes_no_duplicate_rows(warehouse: Path) -> None:
    with connect(warehouse) as con:
        monitor_performance(con, capacity=300, now=datetime(2026, 9, 2), config=CONFIG)
        first = read_performance(con)
        again = monitor_performance(con, capacity=300, now=datetime(2026, 9, 3), config=CONFIG)
        second = read_performance(con)
    assert again.realized_runs == ()  # July is realized already
    assert len(second) == len(first)
    assert second["estimated"].tolist() == first["estimated"].tolist()


def test_nothing_scored_writes_nothing(tmp_path: Path) -> None:
    with connect(tmp_path / "empty.duckdb") as con:
        result = monitor_performance(con, capacity=300, now=datetime(2026, 9, 2))
        assert result.version is None and result.estimates.empty
        assert read_performance(con).empty


def test_stability_compares_the_two_newest_runs(warehouse: Path) -> None:
    with connect(warehouse) as con:
        con.execute(
            "create table serving.next_best_actions as select customer_id, as_of_date, "
            "case when churn_probability > 0.3 then 'retention_call' else 'none' end as action "
            "from serving.customer_scores"
        )
        found = monitor_stability(con, StabilityThresholds(), datetime(2026, 9, 2))
        stored = con.execute(f"select metric, value from {STABILITY_TABLE} order by 1").fetchall()
        bands = con.execute(
            "select avg((a.churn_risk_band <> b.churn_risk_band)::int) from "
            "serving.customer_scores a join serving.customer_scores b using (customer_id) "
            "where a.as_of_date = ? and b.as_of_date = ?",
            [JULY, AUGUST],
        ).fetchall()[0][0]
    assert found is not None
    assert (found.previous_as_of_date, found.as_of_date) == (JULY, AUGUST)
    figures = {f.metric: f.value for f in found.figures}
    # Independent draws per month: the bands of the same customer change often, the
    # distribution does not.
    assert figures["band_changed_share"] == pytest.approx(bands)
    assert figures["score_psi"] < 0.05
    assert 0.0 < figures["action_changed_share"] < 1.0
    assert dict(stored) == pytest.approx(figures)


def test_stability_needs_two_runs(tmp_path: Path) -> None:
    with connect(tmp_path / "one.duckdb") as con:
        con.execute("create schema serving")
        con.execute("create schema marts")
        _append(con, _snapshot(JULY, 1, "3"))
        assert monitor_stability(con, StabilityThresholds(), datetime(2026, 9, 2)) is None
