"""Churn from a flat customer table (snapshot mode): loaded through a mapping, trained with the
churn wording, audited on the protected columns, scored into the serving contract."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from ml.data.contract import CUSTOMER_SNAPSHOT_TABLE, FLAT_TABLES
from ml.data.flat_tables import FlatTable, load_flat_table, read_flat_table
from ml.data.mapping import load_source_mapping
from ml.modelling.boosting import with_settings
from ml.modelling.flat_outcome import holdout_split
from ml.modelling.registry import Training
from ml.models.churn import snapshot
from ml.serving.tables import SERVING_TABLES
from tests.flat_exports import SNAPSHOT_MAPPING, snapshot_export

FAST = with_settings(snapshot.SnapshotConfig(), iterations=150, tuning_grid=())


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlatTable]:
    folder = tmp_path_factory.mktemp("snapshot")
    snapshot_export().to_csv(folder / "customers.csv", index=False)
    (folder / "mapping.yaml").write_text(SNAPSHOT_MAPPING)
    mapping = load_source_mapping(folder / "mapping.yaml", FLAT_TABLES)["customer_snapshot"]
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        load_flat_table(con, mapping, folder, folder / "q")
        yield read_flat_table(con, CUSTOMER_SNAPSHOT_TABLE)


@pytest.fixture(scope="module")
def training(table: FlatTable, tmp_path_factory: pytest.TempPathFactory) -> Training:
    return snapshot.train(
        table, FAST, snapshot.SnapshotGovernance(), tmp_path_factory.mktemp("plots")
    )


def test_split_trains_on_known_outcomes_and_scores_the_customers_still_there(
    table: FlatTable,
) -> None:
    train_rows, active = snapshot.split_snapshot(table.rows)
    assert len(train_rows) == len(table.rows)
    assert not active["churned"].any() and len(active) == (~table.rows["churned"]).sum()


def test_the_model_is_calibrated_and_never_sees_protected_or_outcome_columns(
    training: Training,
) -> None:
    model = training.candidate.model
    assert not any(f.startswith("protected_") for f in model.feature_names)
    assert not {"churned", "churned_at", "attr_churn_reason", "customer_id"} & set(
        model.feature_names
    )
    assert {"attr_contract", "attr_tenure"} <= set(model.feature_names)
    assert training.summary["roc_auc"] > 0.75
    assert training.summary["ece"] < 0.08
    assert training.candidate.name == "churn_snapshot"


def test_the_fairness_audit_covers_the_protected_column_and_gates_on_calibration(
    training: Training,
) -> None:
    report = training.candidate.json_artifacts["fairness_report.json"]
    assert isinstance(report, dict)
    assert {row["attribute"] for row in report["groups"]} == {"senior_citizen"}
    assert report["config"]["criterion"] == "calibration"
    # Seniors truly churn more: their selection rate is higher, and that alone does not block.
    assert training.summary["fairness_gate"] == "passed", report["reasons"]
    assert "fairness" in training.tables


def test_a_selection_rate_gate_can_be_chosen_and_blocks_promotion(
    table: FlatTable, tmp_path: Path
) -> None:
    governance = snapshot.SnapshotGovernance(fairness_criterion="selection_rate")
    result = snapshot.train(table, FAST, governance, tmp_path)
    decision = result.candidate.decide(None, None)
    if result.summary["fairness_gate"] == "FAILED":
        assert not decision.promote and "fairness gate" in decision.reason
    else:  # the planted senior effect is too weak for the chi-square test on this sample
        assert decision.promote


def test_scores_follow_the_serving_contract_with_churn_wording(
    training: Training, table: FlatTable
) -> None:
    model = training.candidate.model
    scores = snapshot.score(model, "4", table.rows, datetime(2026, 12, 1))
    contract = next(t for t in SERVING_TABLES if t.name == "customer_scores")
    assert list(scores.columns) == [name for name, _ in contract.columns]
    assert len(scores) == (~table.rows["churned"]).sum()
    assert (scores["model_name"] == "churn_snapshot").all()
    assert scores["churn_probability"].between(0, 1).all()
    reasons = " | ".join(scores["churn_reason"])
    assert "churns" in reasons and "converts" not in reasons
    assert "Contract: Month-to-month (churns" in reasons  # the export's own name
    assert "months as a customer" in reasons  # the mapping's label, not attr_tenure
    assert "never complained" in reasons or "-1" not in reasons
    for drivers in scores["churn_top_drivers"]:
        assert all(not d["feature"].startswith("protected_") for d in json.loads(drivers))


def test_a_constant_export_date_does_not_order_the_holdout(table: FlatTable) -> None:
    rows = table.rows.assign(observed_at=pd.Timestamp("2026-11-30"))
    train_rows, _ = snapshot.split_snapshot(rows)
    _, holdout = holdout_split(train_rows, FAST, snapshot.CHURN)
    # Stratified, not the last 20% of the file.
    assert not holdout[-int(0.2 * len(holdout)) :].all()
    assert abs(train_rows["churned"][holdout].mean() - train_rows["churned"].mean()) < 0.02
    assert holdout.mean() == pytest.approx(FAST.holdout_fraction, abs=0.01)
