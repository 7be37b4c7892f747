"""MLflow on sqlite: logging, registration, champion/challenger promotion and loading.

One registry per module (sqlite migrations cost seconds): the fixture registers three models in
sequence and the tests check what each step decided.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from ml.data.features import LABEL_COLUMN
from ml.modelling.boosting import flat_params
from ml.modelling.evaluation import evaluate, plot_calibration_curve, plot_lift_chart
from ml.modelling.model_card import ModelCard
from ml.modelling.promotion import (
    PromotionRule,
)
from ml.modelling.registry import Candidate, Registration, Registry, load_champion, register
from ml.models.churn.model import (
    ChurnModel,
    TimeSplit,
    TrainingConfig,
    split_out_of_time,
    train_churn_model,
)
from ml.models.churn.pipeline import promotion_rule
from tests.ml.conftest import HORIZON_DAYS

CUSTOMER_ID = re.compile(rb"C\d{6}")


@dataclass(frozen=True)
class History:
    registry: Registry
    split: TimeSplit
    models: tuple[ChurnModel, ...]
    results: tuple[Registration, ...]
    aucs: tuple[float, ...]
    cwd: Path


def _register(
    registry: Registry, model: ChurnModel, split: TimeSplit, plots_dir: Path, params: dict
) -> tuple[Registration, float]:
    """Register a churn model under the churn rule (as ml.models.churn.pipeline.train does)."""
    y = split.validation[LABEL_COLUMN].to_numpy()
    proba = model.predict_proba(split.validation)
    metrics = evaluate(y, proba)
    plots = [
        plot_calibration_curve(y, proba, plots_dir / "calibration_curve.png"),
        plot_lift_chart(y, proba, plots_dir / "lift_chart.png"),
    ]
    candidate = Candidate(
        name="churn",
        model=model,
        decide=promotion_rule(split.validation, proba, PromotionRule()),
        params={**params, **{f"split_{k}": v for k, v in split.summary().items()}},
        metrics={**metrics.as_metrics(), "oracle_auc": 0.9},
        card=ModelCard(model_name="churn", intended_use="Testing the registry."),
        card_dir=plots_dir / "model_card",
        plots=plots,
    )
    return register(registry, candidate), metrics.roc_auc


def _champion_auc_before(result: Registration) -> float | None:
    terms = {t.name: t for t in result.decision.terms}
    return terms["roc_auc"].champion if terms else None


@pytest.fixture(scope="module")
def history(
    tmp_path_factory: pytest.TempPathFactory,
    feature_frame: pd.DataFrame,
    trained_model: ChurnModel,
    fast_config: TrainingConfig,
) -> History:
    root = tmp_path_factory.mktemp("mlflow")
    cwd = tmp_path_factory.mktemp("cwd")
    registry = Registry(f"sqlite:///{root / 'mlflow.db'}", root / "mlartifacts")
    split = split_out_of_time(
        feature_frame, fast_config.training_as_of_dates, horizon_days=HORIZON_DAYS
    )
    shuffled = split.train.assign(
        **{LABEL_COLUMN: np.random.default_rng(0).permutation(split.train[LABEL_COLUMN].to_numpy())}
    )
    weak = train_churn_model(
        split, replace(fast_config, boosting=replace(fast_config.boosting, iterations=8, depth=2))
    )
    noise = train_churn_model(
        replace(split, train=shuffled, calibration=split.calibration.iloc[:0]),
        replace(fast_config, calibration="none"),
    )
    models = (weak, noise, trained_model)
    results, aucs = [], []
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(cwd)  # nothing may land in the working directory (./mlruns, catboost_info)
        for i, model in enumerate(models):
            result, auc = _register(
                registry, model, split, root / f"plots{i}", flat_params(fast_config)
            )
            results.append(result)
            aucs.append(auc)
    return History(registry, split, models, tuple(results), tuple(aucs), cwd)


def test_first_model_becomes_champion(history: History) -> None:
    first = history.results[0]
    assert first.alias == "champion"
    assert _champion_auc_before(first) is None
    assert first.model_version == "1"
    assert "first model" in first.reason


def test_worse_model_becomes_challenger(history: History) -> None:
    second = history.results[1]
    assert history.aucs[1] < history.aucs[0]
    assert second.alias == "challenger"
    assert _champion_auc_before(second) == pytest.approx(history.aucs[0])
    assert f"{history.aucs[1]:.4f}" in second.reason and f"{history.aucs[0]:.4f}" in second.reason


def test_better_model_takes_champion(history: History) -> None:
    third = history.results[2]
    assert history.aucs[2] > history.aucs[0]
    assert third.alias == "champion"
    assert _champion_auc_before(third) == pytest.approx(history.aucs[0])
    client = MlflowClient(tracking_uri=history.registry.tracking_uri)
    assert str(client.get_model_version_by_alias("churn", "champion").version) == "3"
    assert str(client.get_model_version_by_alias("churn", "challenger").version) == "2"


def test_run_records_metrics_params_and_plots(history: History) -> None:
    client = MlflowClient(tracking_uri=history.registry.tracking_uri)
    run = client.get_run(history.results[2].run_id)
    assert run.data.metrics["roc_auc"] == pytest.approx(history.aucs[2])
    assert run.data.metrics["oracle_auc"] == pytest.approx(0.9)
    assert run.data.metrics["champion_roc_auc_before"] == pytest.approx(history.aucs[0])
    decision = mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/promotion_decision.json")
    assert decision["promote"] is True and decision["champion_version"] == "1"
    assert [t["name"] for t in decision["terms"]] == ["roc_auc", "brier", "ece", "lift_at_capacity"]
    assert all(t["passed"] for t in decision["terms"])
    assert run.data.params["boosting_iterations"] == "50"
    assert run.data.params["split_validation_date"] == "2025-12-01"
    assert run.data.tags["alias"] == "champion"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert artifacts == {"plots/calibration_curve.png", "plots/lift_chart.png"}


def test_load_champion_round_trips_predictions_exactly(history: History) -> None:
    model, version = load_champion(history.registry, "churn")
    assert version == history.results[2].model_version
    frame = history.split.validation
    np.testing.assert_array_equal(
        model.predict_proba(frame), history.models[2].predict_proba(frame)
    )
    np.testing.assert_array_equal(model.shap_values(frame), history.models[2].shap_values(frame))
    assert model.training_window == history.models[2].training_window


def test_load_champion_without_champion_is_a_clear_error(history: History) -> None:
    with pytest.raises(LookupError, match="no champion"):
        load_champion(history.registry, "never-trained")


def test_artifacts_stay_under_artifacts_dir_and_hold_no_customer_ids(history: History) -> None:
    files = [p for p in history.registry.artifacts_dir.rglob("*") if p.is_file()]
    assert any(p.name == "python_model.pkl" for p in files)
    assert any(p.suffix == ".png" for p in files)
    leaks = [str(p) for p in files if CUSTOMER_ID.search(p.read_bytes())]
    assert leaks == []
    db = Path(history.registry.tracking_uri.removeprefix("sqlite:///"))
    assert not CUSTOMER_ID.search(db.read_bytes())
    assert not os.listdir(history.cwd)
    client = MlflowClient(tracking_uri=history.registry.tracking_uri)
    experiment = client.get_experiment_by_name("churn")
    assert experiment is not None
    assert (
        experiment.artifact_location
        == (history.registry.artifacts_dir / "churn").resolve().as_uri()
    )


def test_customer_id_pattern_would_catch_a_leak(history: History) -> None:
    # Guards the leak test above: the ids really have this shape.
    assert CUSTOMER_ID.fullmatch(history.split.validation["customer_id"].iloc[0].encode())


def test_pyfunc_predicts_calibrated_probabilities(history: History) -> None:
    import mlflow.pyfunc

    loaded = mlflow.pyfunc.load_model(f"models:/churn/{history.results[2].model_version}")
    frame = history.split.validation.head(50)
    np.testing.assert_array_equal(
        np.asarray(loaded.predict(frame)), history.models[2].predict_proba(frame)
    )
