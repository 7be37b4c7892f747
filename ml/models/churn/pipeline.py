"""The churn model's life cycle: train and judge a candidate, score a snapshot, watch drift.

Dagster assets call these functions (and ``ml.modelling.registry.register`` in between), so the
same steps run from a notebook, a test or another orchestrator.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from ml.data.contract import PII_COLUMNS, PROTECTED_COLUMNS
from ml.data.features import CATEGORICAL_FEATURES, CHURN_FEATURES, LABEL_COLUMN
from ml.data.sources import Needs
from ml.modelling.boosting import flat_params
from ml.modelling.drift import DriftResult, drift_report
from ml.modelling.evaluation import (
    EvaluationResult,
    capacity_metrics,
    evaluate,
    plot_calibration_curve,
    plot_lift_chart,
    plot_shap_summary,
)
from ml.modelling.explanations import ShapMode
from ml.modelling.fairness import (
    PROTECTED_ATTRIBUTES,
    FairnessConfig,
    FairnessReport,
    fairness_report,
    protected_groups,
    proxy_check,
)
from ml.modelling.model_card import FairnessGate, ModelCard, markdown_table
from ml.modelling.promotion import (
    PromotionDecision,
    PromotionRule,
    champion_rule,
)
from ml.modelling.reasons import DEFAULT_RULES, ReasonRules
from ml.modelling.registry import Candidate, Training
from ml.models.churn.data import ChurnTrainingInputs
from ml.models.churn.explain import typical_values
from ml.models.churn.model import (
    ChurnModel,
    TimeSplit,
    TrainingConfig,
    split_out_of_time,
    train_churn_model,
)
from ml.models.churn.scoring import (
    RiskBands,
    feature_fingerprints,
    score_customers,
    unchanged_scores,
    validate_scores,
)
from ml.synthetic.oracle import oracle_auc

MODEL_NAME = "churn"
NEEDS = Needs(
    MODEL_NAME,
    tables=("customers", "subscriptions"),
    uses=("events", "orders", "support_tickets", "consents"),
)
"""The source tables the model needs rows in (``ml.data.sources``)."""
SHAP_SUMMARY_ROWS = 20_000  # validation rows explained for the SHAP summary and importance

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


@dataclass(frozen=True, eq=False, kw_only=True)
class ChurnTraining(Training):
    """What one training run produced: the candidate to register and what it was judged on.

    Attributes:
        split: The out-of-time split.
        metrics: Out-of-time metrics on the validation date.
        oracle_auc: The synthetic truth's AUC on the same rows, or None on real data.
        capacity: Precision, lift and recall at the team's capacity.
        fairness: The fairness audit of the validation decisions.
        proxies: Features associated with a protected attribute (the proxy check).
    """

    split: TimeSplit
    metrics: EvaluationResult
    oracle_auc: float | None
    capacity: dict[str, float]
    fairness: FairnessReport
    proxies: pd.DataFrame


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


def promotion_rule(
    validation: pd.DataFrame,
    proba: np.ndarray,
    rule: PromotionRule,
    gate_failures: tuple[str, ...] = (),
) -> Callable[[ChurnModel | None, str | None], PromotionDecision]:
    """The churn rule of a candidate whose probabilities on ``validation`` are ``proba``
    (``ml.modelling.promotion.champion_rule`` on the validation labels)."""
    return champion_rule(
        validation, validation[LABEL_COLUMN].to_numpy(), proba, rule, gate_failures
    )


def train(
    inputs: ChurnTrainingInputs,
    config: TrainingConfig,
    governance: ChurnGovernance,
    plots_dir: Path,
    truth_dir: Path | None = None,
) -> ChurnTraining:
    """Train on past as-of dates, evaluate out of time, audit, and build the candidate.

    The candidate's rule (``ml.modelling.promotion``) compares it with the champion on the same
    validation rows: AUC, calibration and lift at capacity within margins, and the fairness gate
    (a failed gate keeps the new version a challenger whatever its AUC).

    Args:
        inputs: ``ml.models.churn.data.read_training_inputs``.
        config: CatBoost and split settings.
        governance: Action threshold, capacity, fairness and promotion settings.
        plots_dir: Folder for the plots and the model card.
        truth_dir: Synthetic truth folder (oracle AUC), or None for real data.
    """
    split = split_out_of_time(inputs.labelled, config.training_as_of_dates, inputs.horizon_days)
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
        oracle = oracle_auc(keys, inputs.identity_map, truth_dir)
    capacity = capacity_metrics(y_true, proba, governance.capacity)
    logged = {
        **metrics.as_metrics(),
        **capacity,
        **model.calibration_report.as_metrics(),
        **({"oracle_auc": oracle} if oracle is not None else {}),
    }
    artifacts: dict[str, object] = {
        "split_summary.json": split.summary(),
        "feature_importance.json": importance,
    }
    fairness, proxies = audit_fairness(split.validation, proba, inputs.customers, governance)
    logged.update(fairness.as_metrics())
    logged["proxy_features_flagged"] = float(proxies["flagged"].sum())
    artifacts["fairness_report.json"] = fairness.to_dict()
    artifacts["proxy_check.json"] = proxies.to_dict("records")
    gate_failures = (
        tuple(f"fairness gate: {r}" for r in fairness.reasons) if not fairness.gate_passed else ()
    )
    rule = replace(governance.promotion, capacity=governance.capacity)
    decide = promotion_rule(split.validation, proba, rule, gate_failures)

    report = model.calibration_report
    params = {
        **flat_params(config),
        **{f"split_{k}": v for k, v in split.summary().items()},
        **{f"promotion_{k}": v for k, v in asdict(rule).items()},
        "calibration_chosen": report.method,
        "refit_on_calibration_slice": report.refit_on_calibration_slice,
        "features": ",".join(model.feature_names),
        "cat_features": ",".join(model.cat_features),
        **inputs.sample.as_params(),
    }
    candidate = Candidate(
        name=MODEL_NAME,
        model=model,
        decide=decide,
        params=params,
        metrics=logged,
        card=_model_card(model, split, metrics, capacity, plots, fairness, proxies),
        card_dir=plots_dir / "model_card",
        plots=plots,
        json_artifacts=artifacts,
    )
    summary: dict[str, float | int | str] = {
        "roc_auc": metrics.roc_auc,
        "pr_auc": metrics.pr_auc,
        "brier": metrics.brier,
        "ece": metrics.ece,
        "precision_top_decile": metrics.precision_at_k,
        "lift_top_decile": metrics.lift_at_k,
        "validation_rows": metrics.n,
        "validation_as_of": str(split.validation_date),
        "training_as_of_dates": ", ".join(str(d) for d in split.train_dates),
        "precision_at_capacity": capacity["precision_at_capacity"],
        "lift_at_capacity": capacity["lift_at_capacity"],
        "capacity": int(capacity["capacity"]),
        "fairness_gate": "passed" if fairness.gate_passed else "FAILED",
        **inputs.sample.as_params(),
    }
    if oracle is not None:
        summary |= {"oracle_auc": oracle, "auc_gap_to_oracle": oracle - metrics.roc_auc}
    flagged = proxies.loc[proxies["flagged"], ["feature", "protected", "method", "association"]]
    tables = {
        "fairness": fairness.table_markdown(),
        "proxy_features": markdown_table(flagged) if len(flagged) else "none above the threshold",
    }
    return ChurnTraining(
        candidate=candidate,
        summary=summary,
        tables=tables,
        split=split,
        metrics=metrics,
        oracle_auc=oracle,
        capacity=capacity,
        fairness=fairness,
        proxies=proxies,
    )


def _model_card(
    model: ChurnModel,
    split: TimeSplit,
    metrics: EvaluationResult,
    capacity: dict[str, float],
    plots: tuple[Path, ...],
    fairness: FairnessReport | None,
    proxies: pd.DataFrame | None,
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
        model_name=MODEL_NAME,
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
        fairness_gate=FairnessGate(fairness.gate_passed, fairness.reasons + fairness.inconclusive)
        if fairness is not None
        else None,
        drift=None,
        known_limits=tuple(limits),
    )


def score(
    model: ChurnModel,
    version: str,
    features: pd.DataFrame,
    scored_at: datetime,
    bands: RiskBands | None = None,
    typical: dict[str, float] | None = None,
    shap_mode: ShapMode = "regular",
    rules: ReasonRules = DEFAULT_RULES,
) -> pd.DataFrame:
    """Score a feature snapshot and explain every row: the rows of ``serving.customer_scores``.

    ``typical`` is what the reasons call typical; by default the medians of ``features``.
    ``shap_mode`` is how CatBoost computes the drivers' SHAP values (``CRM_SHAP_MODE``);
    ``rules`` what a reason may cite (``CRM_REASON_*``).

    Raises:
        ValueError: if the scores break the serving contract; the caller then keeps the last
            good table.
    """
    scores = score_customers(
        model,
        features,
        MODEL_NAME,
        version,
        scored_at,
        bands or RiskBands(),
        typical=typical,
        shap_mode=shap_mode,
        rules=rules,
    )
    validate_scores(scores)
    return scores


@dataclass(frozen=True)
class ChangedScores:
    """A daily scoring that kept the unchanged rows.

    Attributes:
        scores: Every customer's row of ``serving.customer_scores`` for the as-of date.
        rescored: Rows scored and explained in this run; the others kept their row (and its
            ``scored_at``) from the last publish.
    """

    scores: pd.DataFrame
    rescored: int


def score_changed(
    model: ChurnModel,
    version: str,
    features: pd.DataFrame,
    previous: pd.DataFrame | None,
    scored_at: datetime,
    bands: RiskBands | None = None,
    shap_mode: ShapMode = "regular",
    rules: ReasonRules = DEFAULT_RULES,
) -> ChangedScores:
    """Like :func:`score`, but rows scored before from the same features keep their score.

    ``previous`` holds the published rows of the as-of date (None: score every row). A customer
    keeps its row when the same model version scored the same feature values for that date and
    explained them by the same ``rules`` and ``shap_mode`` (``features_fingerprint``); the rest
    are scored and
    explained, with what is typical taken from every row of ``features`` as :func:`score` does.
    The probabilities equal a full scoring's.
    """
    fingerprints = feature_fingerprints(features[list(model.feature_names)], rules, shap_mode)
    keep = (
        np.zeros(len(features), dtype=bool)
        if previous is None
        else unchanged_scores(features, fingerprints, previous, version)
    )
    changed = features.loc[~keep]
    fresh = score_customers(
        model,
        changed,
        MODEL_NAME,
        version,
        scored_at,
        bands or RiskBands(),
        typical=typical_values(features),
        shap_mode=shap_mode,
        rules=rules,
    )
    if previous is None or not keep.any():
        scores = fresh
    else:
        kept_ids = features.loc[keep, "customer_id"].astype(str)
        kept = previous.loc[previous["customer_id"].astype(str).isin(kept_ids), fresh.columns]
        scores = pd.concat([kept, fresh], ignore_index=True).sort_values("customer_id")
    scores = scores.reset_index(drop=True)
    validate_scores(scores)
    return ChangedScores(scores, len(changed))


@dataclass(frozen=True)
class ChurnDrift:
    features: DriftResult
    scores: DriftResult


def drift(
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
