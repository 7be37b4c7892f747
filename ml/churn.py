"""The churn use case end to end, composed from the pure pieces of ``ml/``.

Dagster assets call these three functions and nothing else of the model code, so the same steps
run from a notebook, a test or another orchestrator.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd

from ml.drift import DriftResult, drift_report
from ml.evaluation import EvaluationResult, evaluate, plot_calibration_curve, plot_lift_chart
from ml.features import CATEGORICAL_FEATURES, CHURN_FEATURES, LABEL_COLUMN
from ml.oracle import oracle_auc
from ml.registry import MlflowConfig, RegistrationResult, load_champion, log_and_register
from ml.scoring import RiskBands, score_customers, validate_scores
from ml.training import ChurnModel, TimeSplit, TrainingConfig, split_out_of_time, train_churn_model


@dataclass(frozen=True)
class ChurnTrainingOutcome:
    """What one training run produced: the split, the out-of-time metrics, the registry result."""

    split: TimeSplit
    metrics: EvaluationResult
    oracle_auc: float | None
    registration: RegistrationResult
    plots: tuple[Path, ...]


def train_and_register(
    labelled: pd.DataFrame,
    identity_map: pd.DataFrame,
    config: TrainingConfig,
    mlflow: MlflowConfig,
    plots_dir: Path,
    truth_dir: Path | None,
    promotion_margin: float = 0.0,
) -> ChurnTrainingOutcome:
    """Train on past as-of dates, evaluate out of time, log to MLflow and promote by rule.

    Args:
        labelled: ``marts.customer_features`` joined with available ``marts.churn_labels``.
        identity_map: ``marts.customer_identity_map``, used only to reach the synthetic truth.
        config: CatBoost and split settings.
        mlflow: Where to log and register.
        plots_dir: Folder for the calibration curve and lift chart.
        truth_dir: Synthetic truth folder (oracle AUC), or None for real data.
        promotion_margin: How much worse than the champion a new model may be and still win.
    """
    split = split_out_of_time(labelled, config.training_as_of_dates)
    model = train_churn_model(split, config)
    y_true = split.validation[LABEL_COLUMN].to_numpy()
    proba = model.predict_proba(split.validation)
    metrics = evaluate(y_true, proba)
    plots_dir.mkdir(parents=True, exist_ok=True)
    plots = (
        plot_calibration_curve(y_true, proba, plots_dir / "calibration_curve.png"),
        plot_lift_chart(y_true, proba, plots_dir / "lift_chart.png"),
    )
    oracle = None
    if truth_dir is not None:
        keys = split.validation[["customer_id", "as_of_date", LABEL_COLUMN]]
        oracle = oracle_auc(keys, identity_map, truth_dir)
    registration = log_and_register(
        mlflow,
        model,
        split_summary=split.summary(),
        metrics=metrics,
        params=config.as_params(),
        plot_paths=list(plots),
        validation_frame=split.validation,
        promotion_margin=promotion_margin,
        extra_metrics={"oracle_auc": oracle} if oracle is not None else None,
    )
    return ChurnTrainingOutcome(split, metrics, oracle, registration, plots)


def score_latest(
    features: pd.DataFrame, mlflow: MlflowConfig, scored_at: datetime, bands: RiskBands
) -> pd.DataFrame:
    """Score the newest as-of date with the champion and explain every row.

    Raises:
        ValueError: if the scores break the serving contract; the caller then keeps the last
            good table.
    """
    model, version = load_champion(mlflow)
    scores = score_customers(model, features, mlflow.model_name, version, scored_at, bands)
    validate_scores(scores)
    return scores


@dataclass(frozen=True)
class ChurnDrift:
    features: DriftResult
    scores: DriftResult


def churn_drift(
    model: ChurnModel,
    reference_features: pd.DataFrame,
    current_features: pd.DataFrame,
    current_scores: pd.Series,
    reports_dir: Path,
) -> ChurnDrift:
    """Drift of the scoring features against the champion's training data, and of the scores.

    The reference scores are the champion's own scores on its training reference, so a moved
    score distribution means the population moved, not the model.
    """
    feature_drift = drift_report(
        reference_features,
        current_features,
        columns=list(CHURN_FEATURES),
        categorical=list(CATEGORICAL_FEATURES),
        html_path=reports_dir / "churn_feature_drift.html",
    )
    reference_scores = pd.DataFrame({"churn_probability": model.predict_proba(reference_features)})
    score_drift = drift_report(
        reference_scores,
        pd.DataFrame({"churn_probability": current_scores.to_numpy()}),
        columns=["churn_probability"],
        categorical=[],
        html_path=reports_dir / "churn_score_drift.html",
    )
    return ChurnDrift(feature_drift, score_drift)
