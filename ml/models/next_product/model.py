"""Next product to offer: per customer, the propensity to buy each category not bought yet.

One CatBoost classifier over (customer, as-of date, candidate category) rows, with the category as
a feature next to the customer's features: it learns both what sells in general and which
customers buy what, and it scores every candidate category in one pass. The label is a completed
order of that category in the 90 days after the as-of date (``marts.product_purchase_labels``).

Out of time like churn: the newest labelled as-of date is held out for evaluation, the dates
before it train; the served model is refitted on all of them with the same settings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from catboost import CatBoostClassifier, Pool

from ml.data.features import CATEGORICAL_FEATURES, CHURN_FEATURES
from ml.modelling.boosting import BoostingParams, HoldsBoosting, catboost_frame
from ml.modelling.customer_reasons import CUSTOMER_CONCEPTS, concept_phrase, typical_values
from ml.modelling.evaluation import EvaluationResult, evaluate
from ml.modelling.reasons import (
    DEFAULT_RULES,
    Concept,
    ReasonRules,
    ReasonWords,
    cite_factors,
    concept_phrases,
    write_reasons,
)

CATEGORY_COLUMN = "product_category"
LABEL = "purchased_within_90d"
FEATURES: tuple[str, ...] = (CATEGORY_COLUMN, *CHURN_FEATURES)
CAT_FEATURES: tuple[str, ...] = (CATEGORY_COLUMN, *CATEGORICAL_FEATURES)
OFFER_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "as_of_date",
    CATEGORY_COLUMN,
    "probability",
    "offer_reason",
    "offer_reason_factors",
)
OFFER_WORDS = ReasonWords(raises="raises the chance", lowers="holds the chance down")


# Every categorical here has a handful of values: one-hot is exact and several times faster than
# CatBoost's target statistics.
NEXT_PRODUCT_BOOSTING = BoostingParams(
    iterations=300, depth=4, learning_rate=0.08, one_hot_max_size=16
)


@dataclass(frozen=True)
class NextProductConfig(HoldsBoosting):
    """Settings of the next-product model.

    Attributes:
        boosting: CatBoost settings.
        training_as_of_dates: Newest labelled as-of dates used (the newest one is the holdout).
    """

    boosting: BoostingParams = NEXT_PRODUCT_BOOSTING
    training_as_of_dates: int = 7

    def __post_init__(self) -> None:
        if self.training_as_of_dates < 2:
            raise ValueError("training_as_of_dates must be at least 2 (one is the holdout)")


def _pool(frame: pd.DataFrame, labels: np.ndarray | None = None) -> Pool:
    features = catboost_frame(frame, FEATURES, CAT_FEATURES, what="next-product")
    return Pool(features, label=labels, cat_features=list(CAT_FEATURES))


@dataclass(frozen=True, eq=False)
class NextProductModel:
    """A fitted next-product classifier.

    Attributes:
        booster: CatBoost classifier of ``P(buys category within 90 days | customer, category)``.
        categories: The categories seen in training.
        config: Settings it was fitted with.
        purchase_rates: Share of training candidates that bought, per category (the "average"
            the offer reasons compare with).
    """

    booster: CatBoostClassifier
    categories: tuple[str, ...]
    config: NextProductConfig
    purchase_rates: dict[str, float]

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Purchase probability per candidate row."""
        return np.asarray(self.booster.predict_proba(_pool(frame))[:, 1], dtype=float)

    def features(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The model's features of the candidate rows, in model order."""
        return catboost_frame(frame, FEATURES, CAT_FEATURES, what="next-product")

    def shap_values(self, frame: pd.DataFrame) -> np.ndarray:
        """SHAP contributions per row and feature in log-odds (bias dropped)."""
        shap = self.booster.get_feature_importance(_pool(frame), type="ShapValues")
        return np.asarray(shap, dtype=float)[:, :-1]


def _fit(frame: pd.DataFrame, config: NextProductConfig) -> CatBoostClassifier:
    labels = frame[LABEL].astype(bool).to_numpy()
    if labels.all() or not labels.any():
        raise ValueError("next-product training rows need both purchases and non-purchases")
    booster = config.boosting.classifier()
    booster.fit(_pool(frame, labels))
    return booster


@dataclass(frozen=True)
class NextProductTraining:
    """The served model and its out-of-time evaluation.

    Attributes:
        model: Refitted on every training as-of date, holdout included.
        holdout: Metrics of the model fitted without the holdout date, on that date.
        holdout_labels: The holdout's 0/1 labels (for plots; no ids).
        holdout_probability: Its predicted probabilities.
        summary: Aggregate description: dates, rows, purchase rate per category.
    """

    model: NextProductModel
    holdout: EvaluationResult
    holdout_labels: np.ndarray
    holdout_probability: np.ndarray
    summary: dict[str, object]


def train_next_product_model(
    labelled: pd.DataFrame, config: NextProductConfig | None = None
) -> NextProductTraining:
    """Fit on all but the newest labelled as-of date, evaluate on it, then refit on all.

    Args:
        labelled: ``ml.data.datasets.read_product_candidates(con, labelled=True, ...)``.
        config: Model settings.

    Raises:
        ValueError: With fewer than two labelled as-of dates or a one-class training set.
    """
    config = config or NextProductConfig()
    dates = sorted(labelled["as_of_date"].unique())
    if len(dates) < 2:
        raise ValueError(f"need at least two labelled as-of dates, got {len(dates)}")
    is_holdout = (labelled["as_of_date"] == dates[-1]).to_numpy()
    train, holdout = labelled.loc[~is_holdout], labelled.loc[is_holdout]
    categories = tuple(sorted(labelled[CATEGORY_COLUMN].astype(str).unique()))
    rates = labelled.groupby(CATEGORY_COLUMN)[LABEL].mean()
    purchase_rates = {str(k): float(v) for k, v in rates.items()}
    first = NextProductModel(_fit(train, config), categories, config, purchase_rates)
    y = holdout[LABEL].astype(int).to_numpy()
    proba = first.predict(holdout)
    metrics = evaluate(y, proba)
    served = NextProductModel(_fit(labelled, config), categories, config, purchase_rates)
    summary: dict[str, object] = {
        "training_as_of_dates": [_iso(d) for d in dates[:-1]],
        "holdout_as_of_date": _iso(dates[-1]),
        "training_rows": len(train),
        "holdout_rows": len(holdout),
        "purchase_rate_by_category": purchase_rates,
    }
    return NextProductTraining(served, metrics, y, proba, summary)


def _iso(day: object) -> str:
    return pd.Timestamp(day).date().isoformat()  # type: ignore[arg-type]


def _why(
    model: NextProductModel, offers: pd.DataFrame, rules: ReasonRules
) -> tuple[np.ndarray, np.ndarray]:
    """The reason rules (``ml.modelling.reasons``) on the offered candidates: what raises or
    holds down the chance to buy, and the factors JSON."""
    prepared = model.features(offers)
    cited = cite_factors(model.shap_values(offers), FEATURES, CUSTOMER_CONCEPTS, rules)
    today = typical_values(offers)
    rates = pd.Series(model.purchase_rates, dtype=float)

    def phrase(concept: Concept, values: pd.DataFrame) -> pd.Series:
        if concept.features != (CATEGORY_COLUMN,):
            return concept_phrase(concept, values, today)
        category = values[CATEGORY_COLUMN].astype(str)
        rate = (100 * category.map(rates)).round(1).astype(str)
        return category + " (bought by " + rate + "% of the customers who had not bought it)"

    reasons = write_reasons(cited, concept_phrases(cited, prepared, phrase), OFFER_WORDS)
    return reasons.text, reasons.factors


def recommend(
    model: NextProductModel, candidates: pd.DataFrame, rules: ReasonRules = DEFAULT_RULES
) -> pd.DataFrame:
    """The most likely category per customer among the ones not bought yet.

    Args:
        model: A fitted model.
        candidates: ``read_product_candidates(con, labelled=False)``: one row per customer and
            category not bought yet, at one as-of date.

    Returns:
        One row per customer with a candidate: ``customer_id``, ``as_of_date``,
        ``product_category``, ``probability``, ``offer_reason`` (the probability against the
        category's average purchase rate, in words, then what the reason rules of
        ``ml.modelling.reasons`` cite: ``"...; raises the chance: ..."``) and
        ``offer_reason_factors`` (their JSON); customers who bought every category have no row.
    """
    if candidates.empty:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in OFFER_COLUMNS})
    scored = candidates.loc[:, ["customer_id", "as_of_date", CATEGORY_COLUMN]].copy()
    scored["probability"] = model.predict(candidates)
    scored["row"] = np.arange(len(candidates))
    # Highest probability first; the category name breaks ties so reruns give the same offer.
    scored = scored.sort_values(
        ["customer_id", "probability", CATEGORY_COLUMN], ascending=[True, False, True]
    )
    best = scored.drop_duplicates("customer_id", keep="first").reset_index(drop=True)
    # Dates, not timestamps: DuckDB then stores DATE, as docs/output-tables.md says.
    best["as_of_date"] = pd.to_datetime(best["as_of_date"]).dt.date.to_numpy(dtype=object)
    average = best[CATEGORY_COLUMN].astype(str).map(model.purchase_rates).astype(float)
    ratio = (best["probability"] / average).round(1).astype(str)
    percent = (100 * best["probability"]).round(1).astype(str)
    best["offer_reason"] = (
        percent
        + "% chance to buy "
        + best[CATEGORY_COLUMN].astype(str)
        + " within 90 days, "
        + ratio
        + "x the average customer who has not bought it"
    )
    why, factors = _why(model, candidates.iloc[best["row"].to_numpy()], rules)
    best["offer_reason"] = best["offer_reason"] + "; " + why
    best["offer_reason_factors"] = factors
    return best.loc[:, list(OFFER_COLUMNS)]
