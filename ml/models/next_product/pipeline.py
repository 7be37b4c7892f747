"""The next-product model's life cycle: train and judge a candidate, pick each customer's offer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from ml.data.sources import Needs
from ml.modelling.boosting import flat_params
from ml.modelling.evaluation import plot_calibration_curve, plot_lift_chart, plot_shap_summary
from ml.modelling.fairness import FairnessConfig, FairnessReport, audit_customer_selection
from ml.modelling.model_card import FairnessGate, ModelCard
from ml.modelling.promotion import PromotionDecision, decide_by_metric, with_gate
from ml.modelling.reasons import DEFAULT_RULES, ReasonRules
from ml.modelling.registry import Candidate, Training
from ml.models.next_product.model import (
    LABEL,
    NextProductConfig,
    NextProductModel,
    recommend,
    train_next_product_model,
)

MODEL_NAME = "next_product"
NEEDS = Needs(
    MODEL_NAME, tables=("customers", "subscriptions", "orders"), uses=("events", "support_tickets")
)
"""The source tables the model needs rows in (``ml.data.sources``)."""


def audit_offers(
    holdout: pd.DataFrame,
    proba: np.ndarray,
    customers: pd.DataFrame,
    fairness: FairnessConfig,
    top_fraction: float,
) -> FairnessReport:
    """Who gets an offer at the capacity cut, by gender and age band.

    Each customer is offered its most likely category (as :func:`score` does); the customers
    whose offer ranks in the top ``capacity_k`` are those a campaign reaches. Outcome: the
    customer bought the offered category.
    """
    offers = (
        holdout[["customer_id", "as_of_date", LABEL]]
        .assign(score=proba, outcome=holdout[LABEL].astype(int).to_numpy())
        .sort_values(["score", "customer_id"], ascending=[False, True], kind="stable")
        .drop_duplicates("customer_id")
    )
    return audit_customer_selection(offers, customers, fairness, top_fraction)


def train(
    labelled: pd.DataFrame,
    config: NextProductConfig,
    plots_dir: Path,
    customers: pd.DataFrame | None = None,
    fairness: FairnessConfig | None = None,
) -> Training:
    """Fit on all but the newest labelled as-of date, evaluate on it, refit on all.

    The candidate becomes champion when its holdout ROC AUC is at least the champion's on the
    same rows and, when ``customers`` is given, the fairness gate on who is offered at the
    capacity cut passes (:func:`audit_offers`).

    Args:
        labelled: ``ml.models.next_product.data.read_product_candidates(con, labelled=True)``.
        config: Model settings.
        plots_dir: Folder for the plots and the model card.
        customers: ``customer_id``, ``gender``, ``birth_year`` of ``marts.customers``, for the
            fairness audit only; ``None`` skips it (the card says not audited).
        fairness: Fairness gate settings; defaults to :class:`FairnessConfig`.
    """
    training = train_next_product_model(labelled, config)
    labels, proba = training.holdout_labels, training.holdout_probability
    holdout = labelled.loc[labelled["as_of_date"] == labelled["as_of_date"].max()]
    shap_plot, importance = plot_shap_summary(
        training.model.shap_values(holdout),
        training.model.features(holdout),
        plots_dir / "shap_summary.png",
    )
    plots = (
        plot_calibration_curve(labels, proba, plots_dir / "calibration_curve.png"),
        plot_lift_chart(labels, proba, plots_dir / "lift_chart.png"),
        shap_plot,
    )
    m = training.holdout
    audit = (
        audit_offers(holdout, proba, customers, fairness or FairnessConfig(), m.top_fraction)
        if customers is not None
        else None
    )
    gate_failures = tuple(f"fairness gate: {r}" for r in audit.reasons) if audit is not None else ()

    def decide(champion: NextProductModel | None, version: str | None) -> PromotionDecision:
        before = (
            float(roc_auc_score(labels, champion.predict(holdout)))
            if champion is not None
            else None
        )
        return with_gate(
            decide_by_metric(
                "roc_auc", m.roc_auc, before, rows=len(holdout), champion_version=version
            ),
            gate_failures,
        )

    card = ModelCard(
        model_name=MODEL_NAME,
        intended_use="Rank, per customer, the product categories not bought yet by the chance of "
        "a purchase within 90 days, to choose what a cross-sell offer shows.",
        not_intended_for=("Pricing or credit decisions.",),
        data_window={k: str(v) for k, v in training.summary.items()},
        metrics={k: v for k, v in m.as_metrics().items() if k not in ("n", "top_fraction")},
        plots={p.stem.replace("_", " ").capitalize(): p for p in plots},
        calibration={"brier": m.brier, "ece": m.ece},
        fairness_table=audit.groups if audit is not None else None,
        fairness_gate=FairnessGate(audit.gate_passed, audit.reasons + audit.inconclusive)
        if audit is not None
        else None,
        known_limits=(
            "Predicts purchases, not purchases caused by an offer: the next best action scales "
            "it by an assumed incrementality.",
            "Only categories the customer has never bought are candidates.",
        ),
    )
    return Training(
        candidate=Candidate(
            name=MODEL_NAME,
            model=training.model,
            decide=decide,
            params=flat_params(config),
            metrics={**m.as_metrics(), **(audit.as_metrics() if audit is not None else {})},
            card=card,
            card_dir=plots_dir / "model_card",
            plots=plots,
            json_artifacts={
                "split_summary.json": training.summary,
                "feature_importance.json": importance,
                **({"fairness_report.json": audit.to_dict()} if audit is not None else {}),
            },
        ),
        summary={
            "roc_auc": m.roc_auc,
            "pr_auc": m.pr_auc,
            "lift_top_decile": m.lift_at_k,
            "purchase_rate": m.base_rate,
            "holdout_rows": m.n,
            "holdout_as_of": str(training.summary["holdout_as_of_date"]),
            "fairness_gate": "not audited"
            if audit is None
            else ("passed" if audit.gate_passed else "FAILED"),
        },
        tables={"fairness": audit.table_markdown()} if audit is not None else {},
    )


def score(
    model: NextProductModel,
    version: str,
    candidates: pd.DataFrame,
    rules: ReasonRules = DEFAULT_RULES,
) -> pd.DataFrame:
    """Per customer, the category not bought yet with the highest purchase probability: the rows
    of ``serving.next_product_offers`` (empty when no customer has a candidate category); the
    reasons by ``rules`` (``CRM_REASON_*``)."""
    offers = recommend(model, candidates, rules)
    offers["model_version"] = version
    return offers
