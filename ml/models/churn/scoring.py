"""Turn model output into rows of ``serving.customer_scores``.

The frame returned by :func:`score_customers` has the columns of the serving table
(``ml.serving.tables``), with pandas dtypes that DuckDB reads as its SQL types (``as_of_date`` holds
``datetime.date`` values so it lands as DATE, ``scored_at`` is a naive UTC timestamp).
:func:`validate_scores` is the gate the publisher runs before it replaces the last good table.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from ml.data.features import KEY_COLUMNS
from ml.modelling.explanations import ShapMode
from ml.modelling.reasons import DEFAULT_RULES, ReasonRules
from ml.models.churn.explain import explain_scores
from ml.models.churn.model import ChurnModel

RISK_BANDS: tuple[str, ...] = ("high", "medium", "low")


@dataclass(frozen=True)
class RiskBands:
    """Probability thresholds of the risk bands: ``high >= high``, ``medium >= medium``, else low.

    Attributes:
        high: Lowest probability of the high band.
        medium: Lowest probability of the medium band.
    """

    high: float = 0.4
    medium: float = 0.15

    def __post_init__(self) -> None:
        if not 0.0 <= self.medium <= self.high <= 1.0:
            raise ValueError(
                f"risk bands need 0 <= medium <= high <= 1, got medium={self.medium}, "
                f"high={self.high}"
            )

    def assign(self, proba: np.ndarray) -> np.ndarray:
        """Band name per probability."""
        return np.select([proba >= self.high, proba >= self.medium], ["high", "medium"], "low")


def feature_fingerprints(
    features: pd.DataFrame, rules: ReasonRules = DEFAULT_RULES, shap_mode: ShapMode = "regular"
) -> np.ndarray:
    """A 64-bit hash of each row's feature values and of how it was explained: the reason rules
    and the SHAP mode (``features_fingerprint``, signed).

    Equal values give equal hashes whatever the row order, so a daily run can tell the customers
    whose features did not change since their last score (:func:`unchanged_scores`). The rules
    and the SHAP mode are in the hash because they change the served drivers or reason without
    changing a feature: after an operator changes either, every row is explained again.
    """
    hashed = pd.util.hash_pandas_object(features, index=False).to_numpy(dtype=np.uint64)
    # XOR with one constant per way of explaining keeps equal rows equal and distinct rows
    # distinct.
    explained_by = pd.Index([repr((rules, shap_mode))])
    salt = pd.util.hash_pandas_object(explained_by).to_numpy(dtype=np.uint64)[0]
    return (hashed ^ salt).view(np.int64)


def unchanged_scores(
    features: pd.DataFrame,
    fingerprints: np.ndarray,
    previous: pd.DataFrame,
    model_version: str,
) -> np.ndarray:
    """Which rows of ``features`` can keep their row of ``previous`` (the last published scores).

    A row keeps its score when the customer was scored for the same as-of date by the same model
    version from the same feature values (``features_fingerprint``); everything else is scored
    again: a new customer, changed features, a new as-of date or a new champion.
    """
    if previous.empty or features.empty:
        return np.zeros(len(features), dtype=bool)
    keys = pd.DataFrame(
        {
            "customer_id": features["customer_id"].astype(str).to_numpy(),
            "as_of_date": pd.to_datetime(features["as_of_date"]).dt.date.to_numpy(),
            "features_fingerprint": fingerprints,
        }
    )
    kept = previous.loc[
        previous["model_version"].astype(str) == str(model_version),
        ["customer_id", "as_of_date", "features_fingerprint"],
    ].assign(
        customer_id=lambda f: f["customer_id"].astype(str),
        as_of_date=lambda f: pd.to_datetime(f["as_of_date"]).dt.date,
        features_fingerprint=lambda f: f["features_fingerprint"].astype("int64"),
        _kept=True,
    )
    matched = keys.merge(kept, on=["customer_id", "as_of_date", "features_fingerprint"], how="left")
    return matched["_kept"].eq(True).to_numpy(dtype=bool)


def _naive_utc(moment: datetime) -> pd.Timestamp:
    # TIMESTAMP has no zone: store UTC wall time, converting aware datetimes first.
    stamp = pd.Timestamp(moment)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert(UTC).tz_localize(None)
    return stamp


def score_customers(
    model: ChurnModel,
    frame: pd.DataFrame,
    model_name: str,
    model_version: str,
    scored_at: datetime,
    bands: RiskBands | None = None,
    typical: dict[str, float] | None = None,
    shap_mode: ShapMode = "regular",
    rules: ReasonRules = DEFAULT_RULES,
) -> pd.DataFrame:
    """Score, band and explain every row of a feature frame.

    Args:
        model: The churn model (normally the champion).
        frame: Scoring rows (``read_scoring_features``): keys and the model's features.
        model_name: Registered model name written to each row.
        model_version: Registered model version written to each row.
        scored_at: When the scoring ran (naive = UTC; aware datetimes are converted to UTC).
        bands: Risk band thresholds; defaults to :class:`RiskBands`.
        typical: What the reasons call typical (``ml.models.churn.explain.explain_scores``).
        shap_mode: How CatBoost computes the SHAP values of the drivers (``CRM_SHAP_MODE``).
        rules: What a reason may cite (``CRM_REASON_*``, ``ml.modelling.reasons.reason_rules``).

    Returns:
        One row per input row with exactly the columns of ``serving.customer_scores``.
    """
    bands = bands or RiskBands()
    if len(frame):
        # One prepared frame and one Pool for the probabilities and the explanations.
        prepared = model.prepare(frame)
        pool = model.pool(prepared)
        proba = model.predict_proba_of_pool(pool)
        explained = explain_scores(
            model,
            frame,
            prepared=prepared,
            pool=pool,
            typical=typical,
            shap_mode=shap_mode,
            rules=rules,
        )
    else:
        proba = np.empty(0)
        explained = explain_scores(model, frame, typical=typical, shap_mode=shap_mode, rules=rules)
    n = len(frame)
    scores = pd.DataFrame(
        {
            "customer_id": frame["customer_id"].astype(str).to_numpy(dtype=object),
            "as_of_date": pd.to_datetime(frame["as_of_date"]).dt.date.to_numpy(dtype=object),
            "scored_at": pd.Series([_naive_utc(scored_at)] * n, dtype="datetime64[us]"),
            "churn_probability": proba.astype("float64"),
            "churn_risk_band": bands.assign(proba).astype(object),
            "churn_top_drivers": explained["churn_top_drivers"].to_numpy(dtype=object),
            "churn_reason": explained["churn_reason"].to_numpy(dtype=object),
            "model_name": np.full(n, model_name, dtype=object),
            "model_version": np.full(n, str(model_version), dtype=object),
            "churn_reason_factors": explained["churn_reason_factors"].to_numpy(dtype=object),
            "features_fingerprint": feature_fingerprints(
                frame[list(model.feature_names)], rules, shap_mode
            ),
        }
    )
    return scores


def validate_scores(scores: pd.DataFrame) -> None:
    """Check scores against the serving contract before they replace the published table.

    Args:
        scores: Output of :func:`score_customers`.

    Raises:
        ValueError: If the frame is empty, has a null or out-of-range probability, an unknown risk band, null keys or duplicate
            (customer_id, as_of_date) keys. The message names the rule and the row count.
    """
    if scores.empty:
        raise ValueError("scores are empty: refusing to replace the published table")
    proba = pd.to_numeric(scores["churn_probability"], errors="coerce")
    nulls = int(proba.isna().sum())
    if nulls:
        raise ValueError(f"{nulls} of {len(scores)} rows have a null churn_probability")
    outside = int(((proba < 0) | (proba > 1)).sum())
    if outside:
        raise ValueError(f"{outside} of {len(scores)} rows have churn_probability outside [0, 1]")
    bad_band = int((~scores["churn_risk_band"].isin(RISK_BANDS)).sum())
    if bad_band:
        raise ValueError(f"{bad_band} rows have a churn_risk_band outside {list(RISK_BANDS)}")
    keys = scores[list(KEY_COLUMNS)]
    null_keys = int(keys.isna().any(axis=1).sum())
    if null_keys:
        raise ValueError(f"{null_keys} rows have a null customer_id or as_of_date")
    duplicates = int(keys.duplicated().sum())
    if duplicates:
        raise ValueError(f"{duplicates} rows duplicate a (customer_id, as_of_date) key")
