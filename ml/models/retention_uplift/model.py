"""Retention uplift from the CRM's own randomised campaign tests (``marts.campaign_sends``).

Which customers does a retention offer keep, beyond those who would have stayed anyway? The
learners and metrics are :mod:`ml.modelling.uplift`; this module is the use case: the rows of one campaign
type, an out-of-time holdout of whole campaigns (the newest ones, as a new campaign would be
judged), Qini / AUUC / uplift@k with a bootstrap interval there, and a model refitted on every
campaign for serving. The outcome is "retained 90 days after the send", so a positive uplift is
churn prevented.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ml.data.features import CATEGORICAL_FEATURES, CHURN_FEATURES
from ml.modelling.boosting import catboost_frame
from ml.modelling.customer_reasons import CUSTOMER_CONCEPTS, concept_phrase, typical_values
from ml.modelling.evaluation import save_figure
from ml.modelling.reasons import (
    DEFAULT_RULES,
    ReasonRules,
    ReasonWords,
    cite_factors,
    concept_phrases,
    write_reasons,
)
from ml.modelling.uplift import (
    UPLIFT_BOOSTING,
    SegmentThresholds,
    UpliftConfig,
    UpliftInterval,
    UpliftModel,
    auuc,
    bootstrap_uplift_at_k,
    fit_uplift_model,
    perfect_qini_curve,
    qini_coefficient,
    qini_curve,
    segment_customers,
)

UPLIFT_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "as_of_date",
    "campaign_type",
    "retention_uplift",
    "p_retained_if_treated",
    "p_retained_if_not",
    "uplift_segment",
    "uplift_reason",
    "uplift_reason_factors",
)
EFFECT_WORDS = ReasonWords(raises="makes the offer work better", lowers="makes it work less")

_SEGMENT_REASON = {
    "persuadable": "the offer is predicted to raise the chance to stay",
    "do_not_disturb": "contact is predicted to lower the chance to stay",
    "sure_thing": "likely to stay without an offer",
    "lost_cause": "likely to leave with or without an offer",
}


@dataclass(frozen=True)
class CampaignUpliftConfig:
    """Settings of the campaign uplift model.

    Attributes:
        campaign_type: Which campaigns to learn from (their treatment must be the same offer).
        holdout_share: At least this share of rows, as the newest whole campaigns, is held out.
        k: Targeted fraction of uplift@k.
        n_boot: Bootstrap resamples of the uplift@k interval.
        learner: Uplift learner settings (``ml.modelling.uplift.UpliftConfig``).
        segments: Segment boundaries. A customer without a material effect whose retention
            without contact is below ``response_threshold`` (a 90-day churn risk of 25% or more)
            is a lost cause.
    """

    campaign_type: str = "retention_offer"
    holdout_share: float = 0.3
    k: float = 0.3
    n_boot: int = 200
    learner: UpliftConfig = field(
        default_factory=lambda: UpliftConfig(boosting=UPLIFT_BOOSTING.with_threads(2))
    )
    segments: SegmentThresholds = field(
        default_factory=lambda: SegmentThresholds(min_uplift=0.02, response_threshold=0.75)
    )

    def __post_init__(self) -> None:
        if not 0 < self.holdout_share < 1:
            raise ValueError(f"holdout_share must be in (0, 1), got {self.holdout_share}")


@dataclass(frozen=True, eq=False)
class CampaignUpliftModel:
    """The served uplift model of one campaign type."""

    learner: UpliftModel
    campaign_type: str
    segments: SegmentThresholds

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Predicted retention uplift per row (``P(retained | offer) - P(retained | none)``)."""
        return self.learner.predict_uplift(frame)


@dataclass(frozen=True)
class CampaignUpliftTraining:
    """The served model and its evaluation on the held-out campaigns.

    Attributes:
        model: Refitted on every campaign with a known outcome.
        metrics: Holdout uplift@k, Qini coefficient, AUUC, average effect, row counts.
        interval: uplift@k with its bootstrap interval on the holdout.
        holdout_outcome: Holdout outcomes (0/1), for plots; no ids.
        holdout_treatment: Holdout arms (0/1).
        holdout_uplift: Holdout predictions of the model fitted without the holdout.
        summary: Aggregate description of the split.
    """

    model: CampaignUpliftModel
    metrics: dict[str, float]
    interval: UpliftInterval
    holdout_outcome: np.ndarray
    holdout_treatment: np.ndarray
    holdout_uplift: np.ndarray
    summary: dict[str, object]


def _holdout_campaigns(sends: pd.DataFrame, share: float) -> set[str]:
    """The newest whole campaigns that together hold at least ``share`` of the rows."""
    per_campaign = sends.groupby("campaign_id").agg(
        rows=("send_id", "size"), first=("as_of_date", "min")
    )
    newest_first = per_campaign.sort_values(["first", "rows"], ascending=False)
    cumulative = newest_first["rows"].cumsum() / len(sends)
    # Take campaigns until the share is reached (the one that crosses it included).
    n = int(np.searchsorted(cumulative.to_numpy(), share) + 1)
    return set(newest_first.index[:n])


def _fit(sends: pd.DataFrame, config: CampaignUpliftConfig) -> UpliftModel:
    return fit_uplift_model(
        sends.loc[:, list(CHURN_FEATURES)],
        sends["is_treated"].astype(int).to_numpy(),
        sends["outcome"].astype(int).to_numpy(),
        cat_features=CATEGORICAL_FEATURES,
        config=config.learner,
    )


def train_campaign_uplift(
    sends: pd.DataFrame, config: CampaignUpliftConfig | None = None
) -> CampaignUpliftTraining:
    """Fit on older campaigns, evaluate on the newest, then refit on all of them.

    Args:
        sends: ``ml.data.datasets.read_campaign_sends(con)``: sends with a known outcome and the
            customer's features before the send.
        config: Settings.

    Raises:
        ValueError: When the campaign type has fewer than two campaigns, or an arm or outcome
            class is missing in the training or holdout rows.
    """
    config = config or CampaignUpliftConfig()
    rows = sends.loc[sends["campaign_type"] == config.campaign_type].reset_index(drop=True)
    if rows["campaign_id"].nunique() < 2:
        raise ValueError(
            f"{config.campaign_type}: need at least two campaigns with known outcomes, "
            f"got {rows['campaign_id'].nunique()}"
        )
    held = _holdout_campaigns(rows, config.holdout_share)
    is_holdout = rows["campaign_id"].isin(held).to_numpy()
    train, holdout = rows.loc[~is_holdout], rows.loc[is_holdout]
    first = _fit(train, config)
    y = holdout["outcome"].astype(int).to_numpy()
    t = holdout["is_treated"].astype(int).to_numpy()
    u = first.predict_uplift(holdout)
    interval = bootstrap_uplift_at_k(y, u, t, k=config.k, n_boot=config.n_boot)
    metrics = {
        f"uplift_at_{round(config.k * 100)}": interval.estimate,
        f"uplift_at_{round(config.k * 100)}_low": interval.low,
        f"uplift_at_{round(config.k * 100)}_high": interval.high,
        "qini": qini_coefficient(y, u, t),
        "auuc": auuc(y, u, t),
        "average_effect": float(y[t == 1].mean() - y[t == 0].mean()),
        "training_rows": float(len(train)),
        "holdout_rows": float(len(holdout)),
    }
    model = CampaignUpliftModel(_fit(rows, config), config.campaign_type, config.segments)
    summary: dict[str, object] = {
        "campaign_type": config.campaign_type,
        "training_campaigns": sorted(set(train["campaign_id"])),
        "holdout_campaigns": sorted(held),
        "treated_share": float(rows["is_treated"].mean()),
        "outcome_rate": float(rows["outcome"].mean()),
    }
    return CampaignUpliftTraining(model, metrics, interval, y, t, u, summary)


def _why(
    model: CampaignUpliftModel, features: pd.DataFrame, rules: ReasonRules
) -> tuple[np.ndarray, np.ndarray]:
    """The reason rules (``ml.modelling.reasons``) on the offer's effect in log-odds: what makes
    it larger or smaller than the average effect, and the factors JSON."""
    learner = model.learner
    prepared = catboost_frame(features, learner.feature_names, learner.cat_features)
    shap = learner.effect_contributions(features)
    cited = cite_factors(shap, learner.feature_names, CUSTOMER_CONCEPTS, rules)
    today = typical_values(features)
    phrases = concept_phrases(
        cited, prepared, lambda concept, values: concept_phrase(concept, values, today)
    )
    reasons = write_reasons(cited, phrases, EFFECT_WORDS)
    return reasons.text, reasons.factors


def predict_retention_uplift(
    model: CampaignUpliftModel, features: pd.DataFrame, rules: ReasonRules = DEFAULT_RULES
) -> pd.DataFrame:
    """Uplift, both outcome probabilities and the response segment per customer.

    Args:
        model: A served model.
        features: ``read_scoring_features`` rows (one per customer at one as-of date).

        rules: What the reason cites (``ml.modelling.reasons``).

    Returns:
        The columns :data:`UPLIFT_COLUMNS`, one row per input row. ``uplift_reason`` is the
        segment in words with both probabilities, then what makes the offer's effect (log-odds
        of staying with the offer minus without) larger or smaller than the average effect, by
        the reason rules; ``uplift_reason_factors`` is their JSON.
    """
    p_treated, p_control = model.learner.predict_outcomes(features)
    segments = pd.Series(
        np.asarray(segment_customers(p_treated, p_control, model.segments), dtype=object)
    )

    def pct(p: np.ndarray) -> pd.Series:
        return pd.Series(np.round(100 * p).astype(int)).astype(str) + "%"

    reason = (
        segments.map(_SEGMENT_REASON)
        + ": "
        + pct(p_control)
        + " without an offer, "
        + pct(p_treated)
        + " with one"
    )
    nothing = np.empty(0, dtype=object)
    why, factors = _why(model, features, rules) if len(features) else (nothing, nothing)
    return pd.DataFrame(
        {
            "customer_id": features["customer_id"].to_numpy(),
            # Dates, not timestamps: DuckDB then stores DATE, as docs/output-tables.md says.
            "as_of_date": pd.to_datetime(features["as_of_date"]).dt.date.to_numpy(dtype=object),
            "campaign_type": model.campaign_type,
            "retention_uplift": model.predict(features),
            "p_retained_if_treated": p_treated,
            "p_retained_if_not": p_control,
            "uplift_segment": segments.to_numpy(),
            "uplift_reason": (reason + "; " + pd.Series(why, dtype=object)).to_numpy(dtype=object),
            "uplift_reason_factors": np.asarray(factors, dtype=object),
        }
    )


def plot_qini(outcome: np.ndarray, uplift: np.ndarray, treatment: np.ndarray, path: Path) -> Path:
    """Qini curve of the holdout against random targeting and the perfect ranking."""
    actual = qini_curve(outcome, uplift, treatment)
    perfect = perfect_qini_curve(outcome, treatment)
    fig = Figure(figsize=(5.5, 4.2))
    ax = fig.add_subplot()
    ax.plot(actual.n_targeted, actual.gain, label="model")
    ax.plot(perfect.n_targeted, perfect.gain, linestyle=":", label="perfect")
    end_x, end_y = actual.n_targeted[-1], actual.gain[-1]
    ax.plot([0, end_x], [0, end_y], linestyle="--", color="grey", label="random")
    ax.set_xlabel("customers contacted (by predicted uplift)")
    ax.set_ylabel("extra customers retained")
    ax.set_title("Qini curve, held-out campaigns")
    ax.legend(loc="best")
    fig.tight_layout()
    return save_figure(fig, path)
