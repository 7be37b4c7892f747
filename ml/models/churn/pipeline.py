"""The churn use case end to end, composed from the pure pieces of ``ml/``.

Dagster assets call these three functions and nothing else of the model code, so the same steps
run from a notebook, a test or another orchestrator.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from ml.data.contract import PII_COLUMNS, PROTECTED_COLUMNS
from ml.data.features import CATEGORICAL_FEATURES, CHURN_FEATURES, LABEL_COLUMN
from ml.modelling.drift import DriftResult, drift_report
from ml.modelling.evaluation import (
    EvaluationResult,
    capacity_metrics,
    evaluate,
    plot_calibration_curve,
    plot_lift_chart,
    plot_shap_summary,
)
from ml.modelling.fairness import (
    PROTECTED_ATTRIBUTES,
    FairnessConfig,
    FairnessReport,
    fairness_report,
    protected_groups,
    proxy_check,
)
from ml.modelling.model_card import FairnessGate, ModelCard, write_model_card
from ml.modelling.promotion import PromotionRule
from ml.modelling.registry import (
    MlflowConfig,
    RegistrationResult,
    load_champion,
    log_and_register,
    log_artifact_dir,
)
from ml.models.churn.model import (
    ChurnModel,
    TimeSplit,
    TrainingConfig,
    split_out_of_time,
    train_churn_model,
)
from ml.models.churn.scoring import RiskBands, score_customers, validate_scores
from ml.synthetic.oracle import oracle_auc

SHAP_SUMMARY_ROWS = 20_000  # validation rows explained for the SHAP summary and importance


@dataclass(frozen=True)
class ChurnTrainingOutcome:
    """What one training run produced: the split, the out-of-time metrics, the registry result."""

    split: TimeSplit
    metrics: EvaluationResult
    oracle_auc: float | None
    registration: RegistrationResult
    plots: tuple[Path, ...]
    capacity: dict[str, float] = field(default_factory=dict)
    fairness: FairnessReport | None = None
    proxies: pd.DataFrame | None = None
    model_card: tuple[Path, Path] | None = None


BUSINESS_SLICES: tuple[str, ...] = ("plan", "contract_type", "country_code")
"""Slices the fairness audit reports next to the protected attributes (reported, not gated)."""


@dataclass(frozen=True)
class ChurnGovernance:
    """Settings of the trust checks of a churn training run.

    Attributes:
        action_threshold: Churn probability from which a customer is acted on (the high band).
        capacity: Customers the team can act on per cycle (precision and lift are reported
            there).
        fairness: Fairness gate and proxy settings.
        promotion: Margins of the promotion rule (its capacity is set to ``capacity``).
    """

    action_threshold: float = 0.4
    capacity: int = 500
    fairness: FairnessConfig = field(default_factory=FairnessConfig)
    promotion: PromotionRule = field(default_factory=PromotionRule)


def audit_fairness(
    validation: pd.DataFrame,
    proba: np.ndarray,
    customers: pd.DataFrame,
    governance: ChurnGovernance,
) -> tuple[FairnessReport, pd.DataFrame]:
    """The fairness report of the validation decisions and the proxy check of the features.

    Protected attributes come from ``customers`` (``marts.customers``) and are joined to the
    validation rows only here; they never reach a model.
    """
    as_of_year = pd.Timestamp(validation["as_of_date"].max()).year
    groups = protected_groups(customers, as_of_year, governance.fairness)
    rows = validation[["customer_id", *BUSINESS_SLICES]].merge(
        groups, on="customer_id", how="left", validate="many_to_one"
    )
    sensitive = rows[[*PROTECTED_ATTRIBUTES, *BUSINESS_SLICES]]
    report = fairness_report(
        validation[LABEL_COLUMN].to_numpy(),
        proba,
        governance.action_threshold,
        sensitive,
        governance.fairness,
    )
    raw = validation[["customer_id"]].merge(
        customers[["customer_id", *sorted(PROTECTED_COLUMNS)]], on="customer_id", how="left"
    )
    proxies = proxy_check(
        validation[list(CHURN_FEATURES)].reset_index(drop=True),
        raw[sorted(PROTECTED_COLUMNS)],
        governance.fairness,
    )
    return report, proxies


def train_and_register(
    labelled: pd.DataFrame,
    identity_map: pd.DataFrame,
    config: TrainingConfig,
    mlflow: MlflowConfig,
    plots_dir: Path,
    truth_dir: Path | None,
    customers: pd.DataFrame | None = None,
    governance: ChurnGovernance | None = None,
) -> ChurnTrainingOutcome:
    """Train on past as-of dates, evaluate out of time, log to MLflow and promote by rule.

    With ``customers`` (``marts.customers``: the protected attributes) the validation decisions
    are audited for fairness; a failed gate keeps the new version a challenger whatever its AUC.
    A model card (Markdown and HTML) is written next to the plots and logged with the run.

    Args:
        labelled: ``marts.customer_features`` joined with available ``marts.churn_labels``.
        identity_map: ``marts.customer_identity_map``, used only to reach the synthetic truth.
        config: CatBoost and split settings.
        mlflow: Where to log and register.
        plots_dir: Folder for the calibration curve and lift chart.
        truth_dir: Synthetic truth folder (oracle AUC), or None for real data.
        customers: Customers with their protected attributes, for the fairness audit only.
        governance: Action threshold, capacity and fairness settings.
    """
    governance = governance or ChurnGovernance()
    split = split_out_of_time(labelled, config.training_as_of_dates)
    model = train_churn_model(split, config)
    y_true = split.validation[LABEL_COLUMN].to_numpy()
    proba = model.predict_proba(split.validation)
    metrics = evaluate(y_true, proba)
    plots_dir.mkdir(parents=True, exist_ok=True)
    # The summary and global importance from a seeded sample: SHAP costs ~0.1 ms per row, and
    # 600k validation rows at 1M customers (70 s) say no more than 20k about a mean |SHAP|.
    explained = split.validation.sample(
        n=min(len(split.validation), SHAP_SUMMARY_ROWS), random_state=0
    )
    shap_plot, importance = plot_shap_summary(
        model.shap_values(explained), model.prepare(explained), plots_dir / "shap_summary.png"
    )
    plots = (
        plot_calibration_curve(y_true, proba, plots_dir / "calibration_curve.png"),
        plot_lift_chart(y_true, proba, plots_dir / "lift_chart.png"),
        shap_plot,
    )
    oracle = None
    if truth_dir is not None:
        keys = split.validation[["customer_id", "as_of_date", LABEL_COLUMN]]
        oracle = oracle_auc(keys, identity_map, truth_dir)
    capacity = capacity_metrics(y_true, proba, governance.capacity)
    extra = {**capacity, **({"oracle_auc": oracle} if oracle is not None else {})}
    fairness, proxies = None, None
    artifacts: dict[str, object] = {"feature_importance.json": importance}
    if customers is not None:
        fairness, proxies = audit_fairness(split.validation, proba, customers, governance)
        extra.update(fairness.as_metrics())
        extra["proxy_features_flagged"] = float(proxies["flagged"].sum())
        artifacts["fairness_report.json"] = fairness.to_dict()
        artifacts["proxy_check.json"] = proxies.to_dict("records")
    registration = log_and_register(
        mlflow,
        model,
        split_summary=split.summary(),
        metrics=metrics,
        params=config.as_params(),
        plot_paths=list(plots),
        validation_frame=split.validation,
        rule=replace(governance.promotion, capacity=governance.capacity),
        extra_metrics=extra,
        gate_failures=tuple(f"fairness gate: {r}" for r in fairness.reasons)
        if fairness is not None and not fairness.gate_passed
        else (),
        json_artifacts=artifacts,
    )
    card = _model_card(model, split, metrics, capacity, plots, fairness, proxies, registration)
    card_paths = write_model_card(card, plots_dir / "model_card")
    log_artifact_dir(mlflow, registration.run_id, plots_dir / "model_card", "model_card")
    return ChurnTrainingOutcome(
        split, metrics, oracle, registration, plots, capacity, fairness, proxies, card_paths
    )


def _model_card(
    model: ChurnModel,
    split: TimeSplit,
    metrics: EvaluationResult,
    capacity: dict[str, float],
    plots: tuple[Path, ...],
    fairness: FairnessReport | None,
    proxies: pd.DataFrame | None,
    registration: RegistrationResult,
) -> ModelCard:
    summary = split.summary()
    flagged = (
        proxies.loc[proxies["flagged"], ["feature", "protected", "association"]]
        if proxies is not None
        else pd.DataFrame()
    )
    limits = [
        "Trained on monthly snapshots of the last year: a change in pricing, product or market "
        "makes the scores drift (the drift report and sensor watch for it).",
        "Ranks customers by risk; it does not say what keeps them (serving.customer_uplift does).",
        "Calibrated on one month: probabilities in small segments can be off by a few points.",
    ]
    limits += [
        f"{row.feature} is associated with {row.protected} ({row.association:.2f}): a possible "
        "proxy; its use is reviewed, not blocked."
        for row in flagged.itertuples()  # the few flagged proxies, not customer rows
    ]
    return ModelCard(
        model_name="churn",
        model_version=registration.model_version,
        alias=registration.alias,
        created_at=datetime.now(UTC),
        intended_use="Rank active customers by the probability of cancelling within 90 days, "
        "so retention teams spend their capacity on the customers most at risk.",
        not_intended_for=(
            "Pricing, credit or eligibility decisions about a person.",
            "Any decision about a customer without a human or an explicit policy in the loop.",
        ),
        data_window={k: str(v) for k, v in summary.items()},
        features=tuple(
            (name, "categorical" if name in CATEGORICAL_FEATURES else "numeric", "")
            for name in CHURN_FEATURES
        ),
        excluded=tuple((c, "personal data (PII)") for c in sorted(PII_COLUMNS))
        + tuple((c, "protected attribute: audit only") for c in sorted(PROTECTED_COLUMNS)),
        metrics={k: v for k, v in metrics.as_metrics().items() if k not in ("n", "top_fraction")},
        plots={p.stem.replace("_", " ").capitalize(): p for p in plots},
        calibration={
            "method": model.calibration_report.method,
            "brier": metrics.brier,
            "ece": metrics.ece,
        },
        capacity=capacity,
        fairness_table=fairness.groups if fairness is not None else None,
        fairness_gate=FairnessGate(fairness.gate_passed, fairness.reasons)
        if fairness is not None
        else None,
        drift=None,
        promotion=registration.reason,
        known_limits=tuple(limits),
    )


def score_latest(
    features: pd.DataFrame,
    mlflow: MlflowConfig,
    scored_at: datetime,
    bands: RiskBands,
    typical: dict[str, float] | None = None,
) -> pd.DataFrame:
    """Score the newest as-of date with the champion and explain every row.

    ``typical`` is what the reasons call typical; by default the medians of ``features``.

    Raises:
        ValueError: if the scores break the serving contract; the caller then keeps the last
            good table.
    """
    model, version = load_champion(mlflow)
    scores = score_customers(
        model, features, mlflow.model_name, version, scored_at, bands, typical=typical
    )
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
