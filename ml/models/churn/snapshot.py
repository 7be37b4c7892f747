"""Churn from one flat customer table ("snapshot mode"): attributes plus a churn flag per customer.

Many teams have no event history, only an export of their customers as they are today with a
column saying who left (the public Telco file is one). ``raw.customer_snapshot``
(``ml.data.flat_tables``) holds it: ``customer_id``, when the row was observed, the churn flag or
date, typed attributes ``attr_*`` and ``protected_*`` columns for the fairness audit only.

The model is ``ml.modelling.flat_outcome``'s recipe with churn words ("contract: Month-to-month
(churns 2.1x the average)"), its settings chosen by inner cross-validation on the fit rows from
:data:`SNAPSHOT_TUNING_GRID`. It is governed as the event-based churn model is: registered as
``churn_snapshot``, promoted by the same :class:`ml.modelling.promotion.PromotionRule` (AUC,
calibration and lift at capacity against the champion on the same held-out customers, and the
fairness gate over the protected columns), with a model card; its scores go to
``serving.customer_scores`` with ``model_name = 'churn_snapshot'``.

What a snapshot can and cannot promise (docs/bring-your-own-data.md):

* The attributes of a customer who left were recorded when the export was taken, after the
  churn: a column that changes because of the churn (a final bill, a cancellation reason, a
  "days since last login" that keeps growing) leaks the outcome. The loader refuses columns whose
  name looks like the outcome unless the mapping drops them with a reason; the rest is the
  mapping author's judgement, and the model card says so.
* There is no future to validate on: the holdout is a stratified 20% of customers (the newest
  by ``observed_at`` when the export spans several dates). Scores of active customers are
  in-sample when no calibrator is kept (the booster is refitted on every customer).
* ``churn_probability`` is the probability of having churned, as of the snapshot, for a customer
  like this one: with no time window in the data it is a ranking of risk, not "within 90 days".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from ml.data.contract import PII_COLUMNS, PROTECTED_COLUMNS
from ml.data.flat_tables import PROTECTED_PREFIX, FlatTable
from ml.data.sources import Needs
from ml.modelling.boosting import BoostingParams, flat_params
from ml.modelling.evaluation import (
    EvaluationResult,
    capacity_metrics,
    evaluate,
    plot_shap_summary,
)
from ml.modelling.fairness import (
    FairnessConfig,
    FairnessReport,
    declared_protected_groups,
    fairness_report,
    proxy_check,
)
from ml.modelling.flat_outcome import (
    FlatModelConfig,
    FlatOutcome,
    FlatOutcomeModel,
    explain,
    feature_table,
    holdout_split,
    plot_flat_model,
    train_flat_model,
)
from ml.modelling.model_card import FairnessGate, ModelCard, markdown_table
from ml.modelling.promotion import PromotionRule, champion_rule
from ml.modelling.reasons import DEFAULT_RULES, ReasonRules, ReasonWords
from ml.modelling.registry import Candidate, Training
from ml.models.churn.model import CHURN_BOOSTING
from ml.models.churn.scoring import RiskBands, feature_fingerprints, validate_scores

MODEL_NAME = "churn_snapshot"
NEEDS = Needs(MODEL_NAME, tables=("customer_snapshot",))
"""The source tables the model needs rows in (``ml.data.sources``)."""
LABEL_COLUMN = "churned"

CHURN = FlatOutcome(
    label_column=LABEL_COLUMN,
    date_column="observed_at",
    never=frozenset({"customer_id", "observed_at", "churned_at", LABEL_COLUMN})
    | PII_COLUMNS
    | PROTECTED_COLUMNS,
    verb="churns",
    subject="customers",
    words=ReasonWords(raises="raises risk", lowers="holds risk down"),
)

# The candidates of the inner CV: the churn model's settings and slower, more regularised ones.
# On Telco (benchmarks/quality.py) the inner CV chose 1500 rounds at 0.01 with l2 60 on every
# outer fold; a smaller or noisier table may prefer the defaults, so the data decides.
SNAPSHOT_TUNING_GRID: tuple[dict[str, Any], ...] = (
    {},
    {"iterations": 1500, "learning_rate": 0.01, "l2_leaf_reg": 30.0},
    {"iterations": 1500, "learning_rate": 0.01, "l2_leaf_reg": 60.0},
    {"iterations": 1500, "learning_rate": 0.01, "l2_leaf_reg": 60.0, "depth": 5},
)
NUMERIC_GROUPS = 4  # a numeric protected column with many values is audited in quartiles


@dataclass(frozen=True)
class SnapshotConfig(FlatModelConfig):
    """Settings of the snapshot churn model (``FlatModelConfig`` with churn's defaults)."""

    boosting: BoostingParams = CHURN_BOOSTING
    tuning_grid: tuple[dict[str, Any], ...] = SNAPSHOT_TUNING_GRID


class ChurnSnapshotModel(FlatOutcomeModel):
    """The snapshot churn model (its class name is in the registry's pickles)."""

    outcome = CHURN


@dataclass(frozen=True)
class SnapshotGovernance:
    """Action threshold, capacity, fairness and promotion settings (as ``ChurnGovernance``).

    The fairness gate asks for calibration within groups by default, not equal selection rates
    (``FairnessConfig.criterion``): the protected columns of a customer export (seniority, family
    status) often come with truly different churn rates, and then a calibrated model cannot
    select every group at the same rate. Selection rates and TPR differences stay in the report
    and the model card; ``fairness_criterion="selection_rate"`` restores the four-fifths gate.
    """

    bands: RiskBands = field(default_factory=RiskBands)
    capacity: int = 500
    fairness_criterion: Literal["selection_rate", "calibration"] = "calibration"
    min_selection_rate_ratio: float = 0.8
    promotion: PromotionRule = field(default_factory=PromotionRule)


def split_snapshot(rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(training, active)``: customers with a known outcome, and those not churned (scored)."""
    churned = rows[LABEL_COLUMN].astype("boolean")
    training = rows.loc[churned.notna().to_numpy()].reset_index(drop=True)
    active = rows.loc[(churned == False).fillna(False).to_numpy()]  # noqa: E712 - nullable
    return training, active.reset_index(drop=True)


def protected_frame(rows: pd.DataFrame) -> pd.DataFrame:
    """The ``protected_*`` columns as audit groups: numbers with many values in quartiles."""
    return declared_protected_groups(rows, NUMERIC_GROUPS)


def _logit(p: np.ndarray) -> np.ndarray:
    clipped = np.clip(p, 1e-12, 1 - 1e-12)
    return np.log(clipped / (1 - clipped))


def train(
    table: FlatTable,
    config: SnapshotConfig,
    governance: SnapshotGovernance,
    plots_dir: Path,
) -> Training:
    """Train on the customers with a known outcome, audit and build the candidate.

    The candidate is judged on the held-out customers: ROC AUC, calibration and lift at capacity
    against the champion's on the same customers (``PromotionRule``), and the fairness gate over
    the protected columns (a failed gate keeps it a challenger).
    """
    training, active = split_snapshot(table.rows)
    model = train_flat_model(
        ChurnSnapshotModel, training, config, table.labels, table.missing_meanings
    )
    assert model.holdout is not None and model.holdout_labels is not None
    assert model.holdout_proba is not None
    _, is_holdout = holdout_split(training, model.config, CHURN)
    holdout = training.loc[is_holdout].reset_index(drop=True)
    y = model.holdout_labels
    # The held-out booster's probabilities through the kept calibrator: what the model would have
    # said about customers it did not see.
    logit = _logit(model.holdout_proba)
    proba = model.calibrator.apply(logit) if model.calibrator else model.holdout_proba
    metrics = evaluate(y, proba)
    capacity = capacity_metrics(y, proba, governance.capacity)

    plots = plot_flat_model(model, plots_dir, "churn_snapshot")
    plots["shap_summary"], importance = plot_shap_summary(
        model.shap_values(holdout), model.prepare(holdout), plots_dir / "shap_summary.png"
    )
    fairness, proxies = _audit(model, holdout, y, proba, governance)
    gate_failures = (
        ()
        if fairness is None or fairness.gate_passed
        else tuple(f"fairness gate: {r}" for r in fairness.reasons)
    )
    rule = replace(governance.promotion, capacity=governance.capacity)
    decide = champion_rule(holdout, y, proba, rule, gate_failures)

    logged = {**metrics.as_metrics(), **capacity, **model.calibration_report.as_metrics()}
    artifacts: dict[str, object] = {"feature_importance.json": importance}
    if fairness is not None:
        logged |= fairness.as_metrics()
        artifacts["fairness_report.json"] = fairness.to_dict()
    if proxies is not None:
        artifacts["proxy_check.json"] = proxies.to_dict("records")
    card = _model_card(model, training, active, metrics, capacity, plots, fairness, proxies)
    candidate = Candidate(
        name=MODEL_NAME,
        model=model,
        decide=decide,
        params={
            **flat_params(model.config),
            **{f"tuned_{k}": v for k, v in model.tuned.items()},
            **{f"promotion_{k}": v for k, v in asdict(rule).items()},
            "calibration_chosen": model.calibration_report.method,
            "features": ",".join(model.feature_names),
        },
        metrics=logged,
        card=card,
        card_dir=plots_dir / "model_card",
        plots=tuple(plots.values()),
        json_artifacts=artifacts,
    )
    summary: dict[str, float | int | str] = {
        "roc_auc": metrics.roc_auc,
        "pr_auc": metrics.pr_auc,
        "brier": metrics.brier,
        "ece": metrics.ece,
        "lift_top_decile": metrics.lift_at_k,
        "churn_rate": metrics.base_rate,
        "holdout_customers": metrics.n,
        "training_customers": len(training),
        "active_customers": len(active),
        "calibration": model.calibration_report.method,
        "settings": ", ".join(f"{k}={v}" for k, v in model.tuned.items()) or "defaults",
        "fairness_gate": "not audited (no protected column)"
        if fairness is None
        else ("passed" if fairness.gate_passed else "FAILED"),
    }
    top = list(importance.items())[:8]
    tables = {"top_features": "\n".join(f"- {model.label(n)}: {v:.3f}" for n, v in top)}
    if fairness is not None:
        tables["fairness"] = fairness.table_markdown()
    if proxies is not None:
        flagged = proxies.loc[proxies["flagged"], ["feature", "protected", "method", "association"]]
        tables["proxy_features"] = (
            markdown_table(flagged) if len(flagged) else "none above the threshold"
        )
    return Training(candidate=candidate, summary=summary, tables=tables)


def _audit(
    model: FlatOutcomeModel,
    holdout: pd.DataFrame,
    y: np.ndarray,
    proba: np.ndarray,
    governance: SnapshotGovernance,
) -> tuple[FairnessReport | None, pd.DataFrame | None]:
    sensitive = protected_frame(holdout)
    if sensitive.empty:
        return None, None
    fairness_config = _fairness_config(governance)
    report = fairness_report(
        y,
        proba,
        governance.bands.high,
        sensitive,
        fairness_config,
        gated=tuple(sensitive.columns),
    )
    proxies = proxy_check(holdout[list(model.feature_names)], sensitive, fairness_config)
    return report, proxies


def _fairness_config(governance: SnapshotGovernance) -> FairnessConfig:
    return FairnessConfig(
        min_selection_rate_ratio=governance.min_selection_rate_ratio,
        capacity_k=governance.capacity,
        criterion=governance.fairness_criterion,
    )


def _model_card(
    model: FlatOutcomeModel,
    training: pd.DataFrame,
    active: pd.DataFrame,
    metrics: EvaluationResult,
    capacity: dict[str, float],
    plots: dict[str, Path],
    fairness: FairnessReport | None,
    proxies: pd.DataFrame | None,
) -> ModelCard:
    limits = [
        "Attributes of customers who left were recorded after they left: a column that changes "
        "because of the churn leaks the outcome into the model. Drop such columns in the "
        "mapping (the loader refuses those whose name looks like the outcome).",
        "A snapshot has no time window: the probability ranks customers by risk; it is not a "
        "probability of leaving within a given number of days.",
        "The holdout is a random 20% of the same snapshot, not a later period: expect the "
        "AUC to be lower on customers of a later export.",
    ]
    if fairness is None:
        limits.append("No protected column was declared in the mapping: fairness not audited.")
    if proxies is not None:
        flagged = proxies.loc[proxies["flagged"]]
        limits += [
            f"{model.label(str(row.feature))} is associated with {row.protected} "
            f"({row.association:.2f}): a possible proxy; its use is reviewed, not blocked."
            for row in flagged.itertuples()  # the few flagged proxies, not customer rows
        ]
    protected = [c for c in training.columns if c.startswith(PROTECTED_PREFIX)]
    return ModelCard(
        model_name=MODEL_NAME,
        intended_use="Rank active customers of a flat customer export by the risk of churning, "
        "so retention teams spend their capacity on the customers most at risk.",
        not_intended_for=(
            "Pricing, credit or eligibility decisions about a person.",
            "Any decision about a customer without a human or an explicit policy in the loop.",
        ),
        data_window={
            "training_customers": str(len(training)),
            "active_customers_scored": str(len(active)),
            "holdout": "20% of customers (newest by observed_at when dated, else stratified)",
            "settings": ", ".join(f"{k}={v}" for k, v in model.tuned.items()) or "defaults",
        },
        features=feature_table(model),
        excluded=tuple((c, "protected attribute: audit only") for c in protected),
        metrics={k: v for k, v in metrics.as_metrics().items() if k not in ("n", "top_fraction")},
        plots={name.replace("_", " ").capitalize(): p for name, p in plots.items()},
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
        known_limits=tuple(limits),
    )


def score(
    model: ChurnSnapshotModel,
    version: str,
    rows: pd.DataFrame,
    scored_at: datetime,
    bands: RiskBands | None = None,
    rules: ReasonRules = DEFAULT_RULES,
) -> pd.DataFrame:
    """The active customers of the snapshot scored and explained (reasons by ``rules``,
    ``CRM_REASON_*``): ``serving.customer_scores``.

    ``as_of_date`` is the newest ``observed_at`` of the snapshot, or the scoring date when the
    export has no observation date.

    Raises:
        ValueError: The scores break the serving contract; the caller keeps the last good table.
    """
    bands = bands or RiskBands()
    _, active = split_snapshot(rows)
    observed = pd.to_datetime(rows["observed_at"]).max() if "observed_at" in rows else pd.NaT
    as_of = (observed if pd.notna(observed) else pd.Timestamp(scored_at)).date()
    proba = model.predict_proba(active) if len(active) else np.empty(0)
    explained = explain(model, active, rules)
    n = len(active)
    scores = pd.DataFrame(
        {
            "customer_id": active["customer_id"].astype(str).to_numpy(dtype=object),
            "as_of_date": np.full(n, as_of, dtype=object),
            "scored_at": pd.Series([pd.Timestamp(scored_at)] * n, dtype="datetime64[us]"),
            "churn_probability": proba.astype("float64"),
            "churn_risk_band": bands.assign(proba).astype(object),
            "churn_top_drivers": explained["top_drivers"].to_numpy(dtype=object),
            "churn_reason": explained["reason"].to_numpy(dtype=object),
            "model_name": np.full(n, MODEL_NAME, dtype=object),
            "model_version": np.full(n, str(version), dtype=object),
            "churn_reason_factors": explained["reason_factors"].to_numpy(dtype=object),
            "features_fingerprint": feature_fingerprints(active[list(model.feature_names)], rules),
        }
    )
    validate_scores(scores)
    return scores
