"""Churn training with its trust checks: fairness gate in promotion, capacity, model card."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from ml.modelling.evaluation import capacity_metrics
from ml.modelling.registry import Registration, Registry, register
from ml.models.churn import pipeline as churn
from ml.models.churn.data import ChurnTrainingInputs, TrainingSample
from ml.models.churn.model import TrainingConfig
from tests.ml.conftest import HORIZON_DAYS


def _customers(frame: pd.DataFrame, unfair: bool) -> pd.DataFrame:
    ids = frame["customer_id"].drop_duplicates().to_numpy()
    rng = np.random.default_rng(1)
    gender = rng.choice(["female", "male"], len(ids))
    if unfair:
        # Gender follows the contract type (at the validation date) the churn risk depends on: a
        # model that never sees gender still selects one gender far more often.
        validation = frame.loc[frame["as_of_date"] == frame["as_of_date"].max()]
        month_to_month = validation.set_index("customer_id")["contract_type"] == "month-to-month"
        gender = np.where(month_to_month.reindex(ids).to_numpy(), "female", "male")
    return pd.DataFrame(
        {"customer_id": ids, "gender": gender, "birth_year": rng.integers(1950, 2000, len(ids))}
    )


def _train(
    tmp_path: Path, frame: pd.DataFrame, customers: pd.DataFrame, config: TrainingConfig
) -> tuple[churn.ChurnTraining, Registration, MlflowClient]:
    registry = Registry(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "art")
    inputs = ChurnTrainingInputs(
        labelled=frame,
        identity_map=pd.DataFrame({"customer_record_id": [], "customer_id": []}),
        customers=customers,
        horizon_days=HORIZON_DAYS,
        sample=TrainingSample(None, len(frame), len(frame), *[frame["customer_id"].nunique()] * 2),
    )
    training = churn.train(
        inputs,
        config,
        churn.ChurnGovernance(action_threshold=0.3, capacity=100),
        plots_dir=tmp_path / "plots",
    )
    return training, register(registry, training.candidate), MlflowClient(registry.tracking_uri)


def test_fair_model_is_promoted_with_a_card(
    tmp_path: Path, feature_frame: pd.DataFrame, fast_config: TrainingConfig
) -> None:
    outcome, registration, client = _train(
        tmp_path, feature_frame, _customers(feature_frame, False), fast_config
    )
    assert outcome.fairness is not None and outcome.fairness.gate_passed, outcome.fairness.reasons
    assert registration.alias == "champion"
    md, html = registration.model_card
    text = md.read_text()
    for heading in ("## Fairness", "## Calibration", "## Capacity", "## Known limits"):
        assert heading in text
    assert "protected attribute: audit only" in text and "gender" in text
    assert html.read_text().count("<h1>") == 1
    run = client.get_run(registration.run_id)
    assert run.data.metrics["lift_at_capacity"] == pytest.approx(
        outcome.capacity["lift_at_capacity"]
    )
    assert run.data.metrics["fairness.gate_passed"] == 1.0
    artifacts = {a.path for a in client.list_artifacts(registration.run_id)}
    assert {
        "model_card",
        "fairness_report.json",
        "proxy_check.json",
        "feature_importance.json",
    } <= artifacts
    plots = {a.path for a in client.list_artifacts(registration.run_id, "plots")}
    assert "plots/shap_summary.png" in plots
    assert "![Shap summary](plots/shap_summary.png)" in text
    card_files = {a.path for a in client.list_artifacts(registration.run_id, "model_card")}
    assert {"model_card/model_card.md", "model_card/model_card.html"} <= card_files


def test_failed_fairness_gate_keeps_the_model_a_challenger(
    tmp_path: Path, feature_frame: pd.DataFrame, fast_config: TrainingConfig
) -> None:
    outcome, registration, _ = _train(
        tmp_path, feature_frame, _customers(feature_frame, True), replace(fast_config)
    )
    assert outcome.fairness is not None and not outcome.fairness.gate_passed
    assert registration.alias == "challenger"
    assert registration.reason.startswith("kept as challenger: blocked by fairness gate")
    assert "gender: selection-rate ratio" in registration.reason
    assert "FAILED" in registration.model_card[0].read_text()


def test_capacity_metrics() -> None:
    y = np.array([1, 0, 1, 0, 0, 0, 0, 0, 0, 1])
    p = np.linspace(1, 0, 10)  # the first rows score highest
    got = capacity_metrics(y, p, 4)
    assert got == {
        "capacity": 4.0,
        "precision_at_capacity": 0.5,
        "lift_at_capacity": pytest.approx(0.5 / 0.3),
        "recall_at_capacity": pytest.approx(2 / 3),
    }
    assert capacity_metrics(y, p, 50)["capacity"] == 10.0
