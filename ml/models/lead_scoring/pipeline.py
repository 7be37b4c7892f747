"""The lead model's life cycle: train and judge a candidate on the export, score the open leads."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from ml.data.flat_tables import FlatTable
from ml.data.sources import Needs
from ml.modelling.boosting import flat_params
from ml.modelling.evaluation import plot_shap_summary
from ml.modelling.fairness import (
    FairnessConfig,
    FairnessReport,
    declared_protected_groups,
    fairness_report,
)
from ml.modelling.flat_outcome import feature_table, holdout_split, plot_flat_model
from ml.modelling.model_card import FairnessGate, ModelCard
from ml.modelling.promotion import PromotionDecision, decide_by_metric, with_gate
from ml.modelling.reasons import DEFAULT_RULES, ReasonRules
from ml.modelling.registry import Candidate, Training
from ml.models.lead_scoring.model import (
    CONVERSION,
    LeadConfig,
    LeadModel,
    lead_training_frame,
    score_leads,
    train_lead_model,
)

MODEL_NAME = "lead_scoring"
NEEDS = Needs(MODEL_NAME, tables=("leads",))
"""The source tables the model needs rows in (``ml.data.sources``)."""


def audit_lead_selection(
    holdout: pd.DataFrame,
    labels: np.ndarray,
    proba: np.ndarray,
    config: LeadConfig,
    fairness: FairnessConfig,
    top_fraction: float,
) -> FairnessReport | None:
    """Who the lead model selects, by the protected columns the mapping declared.

    Selected means graded A (``score >= grade_a``, score ``round(100 * p)``) and, at the capacity
    cut, among the top ``fairness.capacity_k`` holdout leads (default: the top fraction the lift
    is measured at, ``top_fraction``). Every declared protected column is gated.

    Returns:
        The report, or ``None`` when the mapping declared no protected column.
    """
    sensitive = declared_protected_groups(holdout)
    if sensitive.empty:
        return None
    if fairness.capacity_k is None:
        fairness = replace(fairness, capacity_k=max(1, math.ceil(top_fraction * len(holdout))))
    # round(100 p) >= grade_a when p >= (grade_a - 0.5) / 100, up to how exact halves round.
    threshold = min(max((config.grade_a - 0.5) / 100, 0.0), 1.0)
    return fairness_report(
        labels, proba, threshold, sensitive, fairness, gated=tuple(sensitive.columns)
    )


def train(
    leads: FlatTable,
    config: LeadConfig,
    plots_dir: Path,
    fairness: FairnessConfig | None = None,
) -> Training:
    """Train on the leads whose conversion window closed, evaluate on the newest 20%.

    The candidate becomes champion when its holdout ROC AUC is at least the champion's on the
    same leads and, when the mapping declares protected columns, the fairness gate over who is
    graded A and who falls in the capacity cut passes (:func:`audit_lead_selection`).

    Args:
        leads: ``raw.leads`` with its column labels (``ml.data.flat_tables.read_flat_table``).
        config: Model settings.
        plots_dir: Folder for the plots and the model card.
        fairness: Fairness gate settings; defaults to :class:`FairnessConfig`.
    """
    training, _ = lead_training_frame(
        leads.rows, conversion_window_days=config.conversion_window_days
    )
    model = train_lead_model(training, config, leads.labels, leads.missing_meanings)
    assert model.holdout is not None and model.holdout_labels is not None
    plots = plot_flat_model(model, plots_dir, "lead")
    _, is_holdout = holdout_split(training, config, CONVERSION)
    holdout = training.loc[is_holdout]
    labels, new_auc = model.holdout_labels, model.holdout.roc_auc
    plots["shap_summary"], _ = plot_shap_summary(
        model.shap_values(holdout), model.prepare(holdout), plots_dir / "shap_summary.png"
    )
    importance = model.feature_importance()
    audit = audit_lead_selection(
        holdout.reset_index(drop=True),
        np.asarray(labels),
        np.asarray(model.predict_proba(holdout), dtype=float),
        config,
        fairness or FairnessConfig(),
        model.holdout.top_fraction,
    )
    gate_failures = tuple(f"fairness gate: {r}" for r in audit.reasons) if audit is not None else ()

    def decide(champion: LeadModel | None, version: str | None) -> PromotionDecision:
        before = (
            float(roc_auc_score(labels, champion.predict_proba(holdout)))
            if champion is not None
            else None
        )
        return with_gate(
            decide_by_metric(
                "roc_auc", new_auc, before, rows=len(holdout), champion_version=version
            ),
            gate_failures,
        )

    metrics = model.holdout.as_metrics()
    json_artifacts: dict[str, object] = {"feature_importance.json": importance}
    logged = {**metrics, **(audit.as_metrics() if audit is not None else {})}
    if audit is not None:
        json_artifacts["fairness_report.json"] = audit.to_dict()
    card = ModelCard(
        model_name=MODEL_NAME,
        intended_use="Rank open leads by the chance of converting within the conversion "
        "window, so sales call the most promising first.",
        not_intended_for=("Deciding whether a person may buy or at what price.",),
        data_window={"training_leads": str(len(training)), "holdout": "newest 20% by creation"},
        features=feature_table(model),
        metrics={k: v for k, v in metrics.items() if k != "top_fraction"},
        plots={name.capitalize(): p for name, p in plots.items()},
        calibration={"method": model.calibration_report.method, "brier": model.holdout.brier},
        fairness_table=audit.groups if audit is not None else None,
        fairness_gate=FairnessGate(audit.gate_passed, audit.reasons + audit.inconclusive)
        if audit is not None
        else None,
        known_limits=(
            "Columns sales fill in after contact are leakage and must be dropped in the mapping.",
            "Without creation dates the holdout is random and the scores of open leads are "
            "in-sample.",
            *(
                ()
                if audit is not None
                else ("No protected column was declared in the mapping: fairness not audited.",)
            ),
        ),
    )
    top = sorted(importance.items(), key=lambda kv: -kv[1])[:8]
    return Training(
        candidate=Candidate(
            name=MODEL_NAME,
            model=model,
            decide=decide,
            params=flat_params(config),
            metrics=logged,
            card=card,
            card_dir=plots_dir / "model_card",
            plots=tuple(plots.values()),
            json_artifacts=json_artifacts,
        ),
        summary={
            "roc_auc": new_auc,
            "pr_auc": model.holdout.pr_auc,
            "lift_top_decile": model.holdout.lift_at_k,
            "conversion_rate": model.holdout.base_rate,
            "holdout_leads": model.holdout.n,
            "training_leads": len(training),
            "calibration": model.calibration_report.method,
            "fairness_gate": "not audited (no protected column)"
            if audit is None
            else ("passed" if audit.gate_passed else "FAILED"),
        },
        tables={
            "top_features": "\n".join(f"- {name}: {value:.1f}" for name, value in top),
            **({"fairness": audit.table_markdown()} if audit is not None else {}),
        },
    )


def score(
    model: LeadModel,
    version: str,
    leads: pd.DataFrame,
    scored_at: datetime,
    rules: ReasonRules = DEFAULT_RULES,
) -> pd.DataFrame:
    """The open leads scored 0-100, graded, explained (reasons by ``rules``,
    ``CRM_REASON_*``): the rows of ``serving.lead_scores``."""
    _, open_leads = lead_training_frame(
        leads, conversion_window_days=model.config.conversion_window_days
    )
    scores = score_leads(model, open_leads, model_version=version, rules=rules)
    scores.insert(1, "scored_at", pd.Timestamp(scored_at))
    return scores
