"""The retention uplift model's life cycle: train and judge a candidate on the CRM's randomised
offer tests, score each customer's uplift and response segment."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ml.data.sources import Needs
from ml.modelling.boosting import flat_params
from ml.modelling.fairness import FairnessConfig, FairnessReport, audit_customer_selection
from ml.modelling.model_card import FairnessGate, ModelCard
from ml.modelling.promotion import PromotionDecision, decide_by_metric, with_gate
from ml.modelling.reasons import DEFAULT_RULES, ReasonRules
from ml.modelling.registry import Candidate, Training
from ml.modelling.uplift import qini_coefficient
from ml.models.retention_uplift.model import (
    CampaignUpliftConfig,
    CampaignUpliftModel,
    plot_qini,
    predict_retention_uplift,
    train_campaign_uplift,
)

MODEL_NAME = "retention_uplift"
NEEDS = Needs(
    MODEL_NAME, tables=("customers", "subscriptions", "campaigns"), uses=("events", "orders")
)
"""The source tables the model needs rows in (``ml.data.sources``)."""


def audit_targeting(
    holdout: pd.DataFrame,
    uplift: np.ndarray,
    customers: pd.DataFrame,
    fairness: FairnessConfig,
    top_fraction: float,
) -> FairnessReport:
    """Who would be targeted at the capacity cut, by gender and age band.

    Each held-out customer counts once, at its highest predicted uplift; the targeted are the
    top ``capacity_k`` (default the ``top_fraction`` uplift@k is measured at). Uplift is not a
    probability, so customers are ranked by its percentile: the group table's
    ``mean_predicted``, ``calibration_gap`` and ``brier`` columns mean nothing here.
    """
    targets = (
        holdout[["customer_id", "as_of_date", "outcome"]]
        .assign(uplift=uplift, outcome=holdout["outcome"].astype(int).to_numpy())
        .sort_values(["uplift", "customer_id"], ascending=[False, True], kind="stable")
        .drop_duplicates("customer_id")
    )
    targets["score"] = targets["uplift"].rank(pct=True, method="first")
    return audit_customer_selection(targets, customers, fairness, top_fraction)


def train(
    sends: pd.DataFrame,
    config: CampaignUpliftConfig,
    plots_dir: Path,
    customers: pd.DataFrame | None = None,
    fairness: FairnessConfig | None = None,
) -> Training:
    """T-learner uplift of the retention offer, evaluated on the newest held-out campaigns.

    The candidate becomes champion when its Qini coefficient on the same held-out campaigns is
    at least the champion's and, when ``customers`` is given, the fairness gate on who is
    targeted at the capacity cut passes (:func:`audit_targeting`).

    Args:
        sends: ``ml.models.retention_uplift.data.read_campaign_sends``: sends with a known
            outcome (at least two campaigns).
        config: Model settings.
        plots_dir: Folder for the Qini curve and the model card.
        customers: ``customer_id``, ``gender``, ``birth_year`` of ``marts.customers``, for the
            fairness audit only; ``None`` skips it.
        fairness: Fairness gate settings; defaults to :class:`FairnessConfig`.
    """
    training = train_campaign_uplift(sends, config)
    plot = plot_qini(
        training.holdout_outcome,
        training.holdout_uplift,
        training.holdout_treatment,
        plots_dir / "qini_curve.png",
    )
    held_out = training.summary["holdout_campaigns"]
    assert isinstance(held_out, list)
    holdout = sends.loc[sends["campaign_id"].isin(held_out)]
    y = holdout["outcome"].astype(int).to_numpy()
    t = holdout["is_treated"].astype(int).to_numpy()
    # The model's holdout rows: the held-out campaigns of its campaign type, in send order.
    audited = holdout.loc[holdout["campaign_type"] == config.campaign_type]
    audit = (
        audit_targeting(
            audited, training.holdout_uplift, customers, fairness or FairnessConfig(), config.k
        )
        if customers is not None
        else None
    )
    gate_failures = tuple(f"fairness gate: {r}" for r in audit.reasons) if audit is not None else ()

    def decide(champion: CampaignUpliftModel | None, version: str | None) -> PromotionDecision:
        before = qini_coefficient(y, champion.predict(holdout), t) if champion is not None else None
        return with_gate(
            decide_by_metric(
                "qini",
                training.metrics["qini"],
                before,
                rows=len(holdout),
                champion_version=version,
            ),
            gate_failures,
        )

    card = ModelCard(
        model_name=MODEL_NAME,
        intended_use="Estimate, per customer, how much a retention offer raises the chance to "
        "stay, from the CRM's randomised offer tests, to offer it where it changes the outcome.",
        not_intended_for=("Other treatments than the tested retention offer.",),
        data_window={k: str(v) for k, v in training.summary.items()},
        metrics=training.metrics,
        plots={"Qini curve": plot},
        fairness_table=audit.groups if audit is not None else None,
        fairness_gate=FairnessGate(audit.gate_passed, audit.reasons + audit.inconclusive)
        if audit is not None
        else None,
        known_limits=(
            "Learns only from randomised tests: a campaign without a random control arm "
            "must not be added to the campaigns table.",
            "Uplift is a small difference of two probabilities; single-customer values are "
            "noisy, segments and rankings are what to use.",
        ),
    )
    i = training.interval
    return Training(
        candidate=Candidate(
            name=MODEL_NAME,
            model=training.model,
            decide=decide,
            params=flat_params(config),
            metrics={**training.metrics, **(audit.as_metrics() if audit is not None else {})},
            card=card,
            card_dir=plots_dir / "model_card",
            plots=(plot,),
            json_artifacts={
                "split_summary.json": training.summary,
                **({"fairness_report.json": audit.to_dict()} if audit is not None else {}),
            },
        ),
        summary={
            "uplift_at_30": i.estimate,
            "uplift_at_30_interval": f"[{i.low:.3f}, {i.high:.3f}] (bootstrap 95%)",
            "qini": training.metrics["qini"],
            "auuc": training.metrics["auuc"],
            "average_effect": training.metrics["average_effect"],
            "holdout_campaigns": ", ".join(held_out),
            "holdout_rows": int(training.metrics["holdout_rows"]),
            "fairness_gate": "not audited"
            if audit is None
            else ("passed" if audit.gate_passed else "FAILED"),
        },
        tables={"fairness": audit.table_markdown()} if audit is not None else {},
    )


def score(
    model: CampaignUpliftModel,
    version: str,
    features: pd.DataFrame,
    rules: ReasonRules = DEFAULT_RULES,
) -> pd.DataFrame:
    """Uplift, both outcome probabilities and the response segment per customer: the rows of
    ``serving.customer_uplift``; the reasons by ``rules`` (``CRM_REASON_*``)."""
    uplift = predict_retention_uplift(model, features, rules)
    uplift["model_version"] = version
    return uplift
